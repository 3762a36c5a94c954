"""The model's output: its predictions and, later, their labels.

Fitted on the reference: the output's binning (the classes plus ``other`` for a classifier,
quantile bins for a regressor, as :mod:`modelmeter.engine.drift` bins a feature), the score
calibration of estimated performance (:class:`~modelmeter.engine.estimation.Calibrator`,
classification with scores) and the model's performance on the reference itself.

In the stream, predictions give prediction drift (``output`` counts; regression also
``output_sums``) and expected outcomes (``expected``: calibrated class probabilities summed
into a (predicted, actual) matrix), in the window ring; labels give realized performance
(``confusion`` or the ``regression`` sums, and the count of ``labels``) in the performance
ring, by arrival (see :mod:`modelmeter.engine.state`).

>>> import numpy as np
>>> from modelmeter.engine.checks import ClassCodes
>>> from modelmeter.engine.config import MonitorConfig, ReferenceData
>>> config = MonitorConfig(task="binary", features=(), classes=("0", "1"))
>>> labels = np.array(["0", "1", "1", "1"], dtype=object)
>>> output = ModelOutput(config, ReferenceData({}, labels[::-1], labels), ClassCodes(("0", "1")))
>>> output.reference_figures.accuracy, sorted(output.shapes()), sorted(output.performance_shapes())
(0.5, ['output'], ['confusion', 'labels'])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from modelmeter.engine.checks import CheckedLabels, CheckedPredictions, ClassCodes
from modelmeter.engine.columns import float_column
from modelmeter.engine.config import MonitorConfig, ReferenceData
from modelmeter.engine.drift import (
    CategoricalBinning,
    DriftRow,
    NumericBinning,
    categorical_drift,
    numeric_drift,
    reference_ratios,
)
from modelmeter.engine.estimation import Calibrator
from modelmeter.engine.performance import (
    classification_figures,
    confusion_counts,
    regression_figures,
    regression_sums,
)
from modelmeter.engine.segments import Expected
from modelmeter.engine.snapshot import BinCounts, ClassificationFigures, RegressionFigures
from modelmeter.engine.state import LABELS
from modelmeter.engine.windows import BucketRing

__all__ = ["LabelOutcome", "ModelOutput"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class LabelOutcome(NamedTuple):
    """What a label batch added, for the segments and the totals."""

    confusion: IntArray | None  # flat (predicted * k + actual) of the rows with a prediction
    terms: FloatArray | None  # regression sums of those rows (rows, 3)
    confusion_counts: FloatArray | None  # (k, k) added to the confusion matrix


class ModelOutput:
    """Output binning, calibration and reference performance of a model; the counting of
    its predictions and labels.

    ValueError (naming the column) when the reference's predictions or labels do not fit
    the configuration.
    """

    def __init__(self, config: MonitorConfig, reference: ReferenceData, codes: ClassCodes) -> None:
        self.config = config
        self.classes = config.classes
        self.k = len(config.classes)
        self.positive = (
            config.classes.index(config.positive_class)
            if config.task == "binary" and config.positive_class is not None
            else None
        )
        self.numeric: NumericBinning | None = None
        self.categorical: CategoricalBinning | None = None
        self.calibrator: Calibrator | None = None
        self.reference_figures: ClassificationFigures | None = None
        self.reference_regression: RegressionFigures | None = None
        n = np.shape(reference.predictions)[0]
        if config.is_classification:
            predicted = codes.index(np.asarray(reference.predictions), "reference predictions")
            labels = codes.index(np.asarray(reference.labels), "reference labels")
            if np.any(labels < 0):
                raise ValueError("reference labels: every label must be one of the classes")
            if labels.shape[0] != n:
                raise ValueError("reference labels and predictions differ in length")
            self.categorical = CategoricalBinning(
                self.classes,
                np.bincount(predicted[predicted >= 0], minlength=self.k + 1).astype(np.float64),
            )
            # Performance on the reference: every row with a prediction, whatever min_samples
            # (a fixed data set, not a window), by the realized figures' own functions.
            self.reference_figures = classification_figures(
                confusion_counts(predicted, labels, self.k), self.classes, self.positive, 1
            )
            if reference.scores is not None:
                self.calibrator = Calibrator.fit(
                    np.asarray(reference.scores, np.float64),
                    np.asarray(reference.labels, dtype=object),
                    self.classes,
                    config.positive_class if config.task == "binary" else None,
                )
        else:
            values = np.asarray(reference.predictions, dtype=np.float64)
            self.numeric = NumericBinning(values, config.drift_bins)
            actual = float_column(reference.labels, "reference labels", n)
            rows = np.isfinite(values) & np.isfinite(actual)  # NaN prediction = errored
            self.reference_regression = regression_figures(
                regression_sums(values[rows], actual[rows]).sum(axis=0), 1
            )
        binning = self.numeric or self.categorical
        assert binning is not None
        self._reference_ratios = reference_ratios(binning.reference_counts)

    def _bins(self) -> int:
        binning = self.numeric or self.categorical
        assert binning is not None
        return binning.n_bins

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Window ring statistics of predictions (``output`` has a last bin for no
        prediction)."""
        shapes: dict[str, tuple[int, ...]] = {"output": (self._bins() + 1,)}
        if self.config.is_classification:
            if self.calibrator is not None:
                shapes["expected"] = (self.k, self.k)
        else:
            shapes["output_sums"] = (self._bins() + 1,)
        return shapes

    def performance_shapes(self) -> dict[str, tuple[int, ...]]:
        """Performance ring statistics of labels: the count of labels with a prediction, and
        the confusion matrix (classification) or the regression sums."""
        shapes: dict[str, tuple[int, ...]] = {LABELS: (1,)}
        if self.config.is_classification:
            shapes["confusion"] = (self.k, self.k)
        else:
            shapes["regression"] = (3,)
        return shapes

    def total_shapes(self) -> dict[str, tuple[int, ...]]:
        """Statistics counted over all time: the output's bins, and a classifier's confusion
        matrix and (with calibration) expected outcomes."""
        shapes: dict[str, tuple[int, ...]] = {"output": (self._bins() + 1,)}
        if self.config.is_classification:
            shapes["confusion"] = (self.k, self.k)
            if self.calibrator is not None:
                shapes["expected"] = (self.k, self.k)
        return shapes

    # ------------------------------------------------------------------ counting

    def observe(
        self,
        ring: BucketRing,
        checked: CheckedPredictions,
        slots: IntArray,
        totals: Mapping[str, FloatArray],
    ) -> Expected | None:
        """Count the predictions (adding what they add over all time to the ``totals`` of
        :meth:`total_shapes`); return their expected outcomes (None: no scored rows)."""
        output = totals["output"]
        if self.categorical is not None:
            codes = np.asarray(checked.predicted, dtype=np.int64)
            bins = np.where(checked.valid, codes, self.categorical.n_bins)
            output += ring.add("output", slots, bins)
            if self.calibrator is not None and checked.scores is not None:
                return self._count_expected(ring, checked, codes, slots, totals["expected"])
            return None
        binning = self.numeric
        assert binning is not None
        values = np.asarray(checked.predicted, dtype=np.float64)
        bins = binning.index(values)
        if not checked.valid.all():
            bins[~checked.valid] = binning.n_bins
        output += ring.add("output", slots, bins)
        weights = values if checked.valid.all() else np.where(checked.valid, values, 0.0)
        ring.add("output_sums", slots, bins, weights)
        return None

    def _count_expected(
        self,
        ring: BucketRing,
        checked: CheckedPredictions,
        codes: IntArray,
        slots: IntArray,
        total: FloatArray,
    ) -> Expected | None:
        calibrator = self.calibrator
        assert calibrator is not None and checked.scores is not None
        assert checked.scored is not None
        rows = checked.scored
        if not rows.any():
            return None
        all_rows = bool(rows.all())
        scores = checked.scores if all_rows else checked.scores[rows]
        predicted = codes if all_rows else codes[rows]
        event_slots = slots if all_rows else slots[rows]
        probabilities = calibrator.probabilities(scores)
        flat = predicted * self.k
        added = total.reshape(-1)
        for actual in range(self.k):
            added += ring.add("expected", event_slots, flat + actual, probabilities[:, actual])
        return rows, flat, probabilities

    def label(self, ring: BucketRing, checked: CheckedLabels, slots: IntArray) -> LabelOutcome:
        """Count the labels (of rows with a prediction) in the buckets ``slots`` of their
        arrival in the performance ring ``ring``."""
        valid = checked.valid
        rows = slots if valid.all() else slots[valid]
        ring.add(LABELS, rows, 0)
        if self.config.is_classification:
            k = self.k
            index = (checked.predicted.astype(np.int64) * k + checked.actual.astype(np.int64))[
                valid
            ]
            added = ring.add("confusion", rows, index).reshape(k, k)
            return LabelOutcome(index, None, added)
        terms = regression_sums(
            np.asarray(checked.predicted[valid], np.float64),
            np.asarray(checked.actual[valid], np.float64),
        )
        for position in range(3):
            ring.add("regression", rows, position, terms[:, position])
        return LabelOutcome(None, terms, None)

    # ------------------------------------------------------------------ reading

    def drift(self, ring: BucketRing, min_samples: int) -> DriftRow:
        """Drift figures of the window's predictions (prediction drift)."""
        counts = ring.window("output")[None, :-1]
        if self.numeric is not None:
            binning = self.numeric
            sums = ring.window("output_sums")[None, :-1]
            return numeric_drift(
                binning.reference_counts[None, :],
                binning.reference_sums[None, :],
                counts,
                sums,
                np.array([binning.scale]),
                min_samples,
            )[0]
        assert self.categorical is not None
        return categorical_drift(self.categorical.reference_counts[None, :], counts, min_samples)[0]

    def figures(
        self, ring: BucketRing, performance: BucketRing, min_samples: int
    ) -> tuple[
        ClassificationFigures | None, ClassificationFigures | None, RegressionFigures | None
    ]:
        """(realized, estimated, regression) figures: the realized ones (``realized``,
        ``regression``) of the performance ring's window, the estimated ones of the window
        ring's."""
        if not self.config.is_classification:
            return None, None, regression_figures(performance.window("regression"), min_samples)
        k = self.k
        realized = classification_figures(
            performance.window("confusion").reshape(k, k), self.classes, self.positive, min_samples
        )
        estimated = None
        if self.calibrator is not None:
            estimated = classification_figures(
                ring.window("expected").reshape(k, k), self.classes, self.positive, min_samples
            )
        return realized, estimated, None

    def performance_window(
        self, performance: BucketRing
    ) -> tuple[int, dict[tuple[str, str], float]]:
        """The sample of the realized figures in the performance ring's window: the labels
        with a prediction, and (classification) ``(predicted, actual) -> count``."""
        labels = int(performance.window(LABELS)[0])
        if not self.config.is_classification:
            return labels, {}
        values = performance.window("confusion").tolist()
        counts = {
            (predicted, actual): float(values[p][a])
            for p, predicted in enumerate(self.classes)
            for a, actual in enumerate(self.classes)
        }
        return labels, counts

    def bins(self, total: FloatArray) -> BinCounts:
        """The output's drift bins: labels, predictions counted in each since the start (from
        the ``output`` total; errored ones are in none) and the reference's fractions."""
        binning = self.numeric or self.categorical
        assert binning is not None
        counts = tuple(total[: binning.n_bins].tolist())
        return BinCounts(binning.labels, counts, self._reference_ratios)

    def expected_total(self, matrix: FloatArray | None) -> dict[tuple[str, str], float]:
        """(predicted, actual) -> expected count since the start (empty: no calibration)."""
        if matrix is None:
            return {}
        values = matrix.tolist()
        return {
            (predicted, actual): values[p][a]
            for p, predicted in enumerate(self.classes)
            for a, actual in enumerate(self.classes)
        }

    def confusion_total(self, matrix: FloatArray | None) -> dict[tuple[str, str], int]:
        """(predicted, actual) -> count of the all-time confusion matrix (empty: regression)."""
        out: dict[tuple[str, str], int] = {}
        if matrix is None:
            return out
        for p, predicted in enumerate(self.classes):
            for a, actual in enumerate(self.classes):
                out[(predicted, actual)] = int(matrix[p, a])
        return out
