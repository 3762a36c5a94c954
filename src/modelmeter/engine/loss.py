"""Direct loss estimation (DLE): a regression model's expected error before labels arrive.

At registration two gradient-boosted regressors are fitted on the reference data: inputs are
the features and the model's prediction, targets the absolute error ``|prediction - label|``
and the squared error. In the stream each prediction adds its predicted absolute and squared
loss to the window; the estimated MAE is the window's mean predicted absolute error and the
estimated RMSE the square root of its mean predicted squared error (NannyML's DLE).

The loss model (two gradient-boosted regressors read off into lookup tables, fitted once per
reference and memoised) is :class:`~modelmeter.engine.boosting.LossModel`; this module encodes
a batch's columns as its inputs and keeps the window sums.

>>> import numpy as np
>>> from modelmeter.engine import FeatureSpec, ModelMonitor, MonitorConfig, PredictionBatch
>>> from modelmeter.engine import ReferenceData
>>> rng = np.random.default_rng(0)
>>> x = rng.uniform(0, 2, 2000)
>>> config = MonitorConfig(task="regression", features=(FeatureSpec("x", "numeric"),),
...                        min_samples=50, multivariate=None)
>>> monitor = ModelMonitor(config, ReferenceData({"x": x}, x, x + rng.normal(0, 0.1 + x)))
>>> live = rng.uniform(1.5, 2, 500)  # where the model errs most
>>> monitor.observe(PredictionBatch(np.zeros(500), {"x": live}, live), now=0.0)
>>> bool(monitor.snapshot(0.0).estimated_regression.mae > 1.2)
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from modelmeter.engine.boosting import MAX_ITER, MAX_ROWS, MIN_ROWS, SEED, LossModel, regressor
from modelmeter.engine.columns import float_column
from modelmeter.engine.config import ReferenceData
from modelmeter.engine.drift import CategoricalBinning
from modelmeter.engine.features import Features
from modelmeter.engine.performance import regression_figures
from modelmeter.engine.snapshot import RegressionFigures
from modelmeter.engine.windows import BucketRing

__all__ = ["LOSS", "MAX_ITER", "MAX_ROWS", "SEED", "LossEstimator", "LossModel", "regressor"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

LOSS = "loss"
"""Ring statistic of the estimate: [predictions scored, sum of predicted |error|, sum of
predicted squared error]."""
CHUNK = 4096  # rows per input matrix in the stream (keeps the temporaries in cache)
MAX_CATEGORICAL_CODES = 255  # scikit-learn's native categorical limit; above: ordinal codes


class LossEstimator:
    """The loss model of a monitor and the encoding of its inputs from a batch's columns.

    Inputs: the numeric features as values (missing, non-finite and wrong-type values: NaN),
    the categorical features as their drift vocabulary's codes (``other`` included; missing
    and wrong-type: NaN), then the prediction. Built by :meth:`fit`; a monitor calls
    :meth:`count` per batch and :meth:`figures` per snapshot.
    """

    def __init__(
        self,
        numeric: Sequence[str],
        categorical: Sequence[tuple[str, CategoricalBinning]],
        model: LossModel,
    ) -> None:
        self.numeric = tuple(numeric)
        self.categorical = tuple(categorical)
        self.model = model

    @classmethod
    def fit(
        cls,
        numeric: Sequence[str],
        categorical: Sequence[tuple[str, CategoricalBinning]],
        features: Mapping[str, npt.NDArray[np.generic]],
        predictions: FloatArray,
        labels: FloatArray,
    ) -> LossEstimator | None:
        """Fit on the reference rows with a finite prediction and label; None if fewer than
        :data:`MIN_ROWS` such rows (no estimate)."""
        rows = np.isfinite(predictions) & np.isfinite(labels)
        if int(rows.sum()) < MIN_ROWS:
            return None
        encoder = cls(numeric, categorical, LossModel([], [[], []], [0.0, 0.0]))
        n = predictions.shape[0]
        inputs = encoder.inputs(features, {}, predictions, 0, n).T[rows]
        categories: list[int | None] = [None] * len(encoder.numeric)
        categories += [
            b.n_bins if b.n_bins <= MAX_CATEGORICAL_CODES else None for _, b in encoder.categorical
        ]
        categories.append(None)
        encoder.model = LossModel.fit(inputs, categories, predictions[rows], labels[rows])
        return encoder

    @classmethod
    def fit_reference(cls, features: Features, reference: ReferenceData) -> LossEstimator | None:
        """:meth:`fit` on a regression reference: the monitor's numeric features as values,
        its categorical ones by their drift vocabulary's codes (None: too few rows)."""
        n = np.shape(reference.predictions)[0]
        return cls.fit(
            [spec.name for spec in features.numeric.specs],
            list(features.categorical_binnings().items()),
            reference.features,
            np.asarray(reference.predictions, dtype=np.float64),
            float_column(reference.labels, "reference labels", n),
        )

    @staticmethod
    def shapes() -> dict[str, tuple[int, ...]]:
        """The ring statistic: predictions, predicted absolute and squared error."""
        return {LOSS: (3,)}

    def inputs(
        self,
        features: Mapping[str, npt.NDArray[np.generic]],
        wrong_type: Mapping[str, npt.NDArray[np.bool_]],
        predictions: FloatArray,
        start: int,
        stop: int,
    ) -> FloatArray:
        """The (inputs, stop - start) matrix of rows ``start:stop`` of a batch's columns."""
        names = self.numeric
        out = np.empty((len(names) + len(self.categorical) + 1, stop - start))
        for j, name in enumerate(names):
            out[j] = _as_float(np.asarray(features[name])[start:stop])
        for k, (name, binning) in enumerate(self.categorical):
            codes = binning.index(_as_object(np.asarray(features[name])[start:stop]))
            row = out[len(names) + k]
            row[:] = codes
            row[codes == binning.missing] = np.nan
        out[-1] = predictions[start:stop]
        for j, name in enumerate((*names, *(name for name, _ in self.categorical))):
            marked = wrong_type.get(name)
            if marked is not None:
                out[j, np.asarray(marked, dtype=bool)[start:stop]] = np.nan
        non_finite = ~np.isfinite(out[: len(names)])
        if non_finite.any():
            out[: len(names)][non_finite] = np.nan
        return out

    def count(
        self,
        ring: BucketRing,
        slots: IntArray,
        features: Mapping[str, npt.NDArray[np.generic]],
        wrong_type: Mapping[str, npt.NDArray[np.bool_]],
        predictions: FloatArray,
        valid: npt.NDArray[np.bool_],
    ) -> FloatArray:
        """Add the predicted losses of the events with a prediction (``valid``) to the ring;
        return them, shape (events with a prediction, 2): absolute and squared error."""
        n = slots.shape[0]
        predicted: list[FloatArray] = []
        for start in range(0, n, CHUNK):
            stop = min(start + CHUNK, n)
            losses = self.model.predict(
                self.inputs(features, wrong_type, predictions, start, stop).T
            )
            rows = valid[start:stop]
            chunk = slots[start:stop]
            if not rows.all():
                losses, chunk = losses[rows], chunk[rows]
            ring.add(LOSS, chunk, 0)
            ring.add(LOSS, chunk, 1, losses[:, 0])
            ring.add(LOSS, chunk, 2, losses[:, 1])
            predicted.append(losses)
        return np.concatenate(predicted) if predicted else np.zeros((0, 2))

    @staticmethod
    def figures(window: FloatArray, min_samples: int) -> RegressionFigures:
        """Estimated MAE and RMSE from the window's sums; NaN below ``min_samples``."""
        return regression_figures(window, min_samples)

    @staticmethod
    def window_figures(ring: BucketRing, min_samples: int) -> RegressionFigures:
        """:meth:`figures` of the ring's window."""
        return regression_figures(ring.window(LOSS), min_samples)


def _as_float(column: npt.NDArray[Any]) -> FloatArray:
    """Float64 values; in an object column a value that is not an int or float is NaN."""
    if column.dtype.kind in "fiub":
        return column.astype(np.float64, copy=False)
    if column.dtype.kind != "O":
        return np.full(column.shape[0], np.nan)
    return np.array(
        [
            float(v) if isinstance(v, int | float) and not isinstance(v, bool) else np.nan
            for v in column.tolist()
        ],
        dtype=np.float64,
    )


def _as_object(column: npt.NDArray[Any]) -> npt.NDArray[np.object_]:
    return column if column.dtype == object else column.astype(object)
