"""The model's output: its predictions and, later, their labels.

Fitted on the reference: the output's binning (the classes plus ``other`` for a classifier,
quantile bins for a regressor, as :mod:`modelmeter.engine.drift` bins a feature), the score
calibration of estimated performance (:class:`~modelmeter.engine.estimation.Calibrator`,
classification with scores) and the model's performance on the reference itself.

In the stream, predictions give prediction drift (``output`` counts; regression also
``output_sums``) and expected outcomes (``expected``: calibrated class probabilities summed
into a (predicted, actual) matrix, and beside it ``expected_terms``, the (2, k, k) statistic
of the estimate's confidence band, :func:`~modelmeter.engine.bands.band_terms`), in the
window ring; labels give realized performance (``confusion`` or the ``regression`` sums, and
the count of ``labels``) in the performance ring, by arrival (see
:mod:`modelmeter.engine.state`).

The calibrator in use is the reference's (plain CBPE) unless :meth:`ModelOutput.use_calibrator`
swapped in another one (a shift-aware refit, :mod:`modelmeter.engine.shift`): it applies to
the predictions counted from then on; those already in the window keep their expected counts.

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

from modelmeter.engine.bands import Bands, classification_bands
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
from modelmeter.engine.state import EXPECTED_TERMS, LABELS
from modelmeter.engine.windows import BucketRing

__all__ = ["LabelOutcome", "ModelOutput"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
NAN = float("nan")


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
        #: offsets of the cells an event adds to (see :meth:`_count_expected`)
        self._cells = np.concatenate([np.arange(self.k), np.arange(self.k) + self.k**2])[:, None]
        self.numeric: NumericBinning | None = None
        self.categorical: CategoricalBinning | None = None
        #: the calibrator in use (None: no calibration, no estimate)
        self.calibrator: Calibrator | None = None
        #: the reference's calibrator (plain CBPE)
        self.reference_calibrator: Calibrator | None = None
        #: the rows the calibration in use rests on (``reference_rows`` of the bands): the
        #: scored reference rows, or a shift-aware fit's effective sample size
        self.calibration_rows = NAN
        #: the scored reference rows (without NaN scores)
        self.scored_reference_rows = 0
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
                scores = np.asarray(reference.scores, np.float64)
                self.calibrator = self.reference_calibrator = Calibrator.fit(
                    scores,
                    np.asarray(reference.labels, dtype=object),
                    self.classes,
                    config.positive_class if config.task == "binary" else None,
                )
                scored = ~np.isnan(scores) if scores.ndim == 1 else ~np.isnan(scores).any(axis=1)
                self.scored_reference_rows = int(scored.sum())
                self.calibration_rows = float(self.scored_reference_rows)
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
                shapes[EXPECTED_TERMS] = (2, self.k, self.k)
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

    def use_calibrator(self, calibrator: Calibrator | None, rows: float | None = None) -> None:
        """Count the predictions observed from now on with ``calibrator``, fitted on ``rows``
        effective reference rows (the bands' ``reference_rows``); None: the reference's again.

        ValueError when there is no calibration to replace, or ``calibrator`` does not fit
        the classes.
        """
        if calibrator is None:
            self.calibrator = self.reference_calibrator
            self.calibration_rows = float(self.scored_reference_rows) if self.calibrator else NAN
            return
        plain = self.reference_calibrator
        if plain is None:
            raise ValueError("no calibration to replace: the reference has no scores")
        if calibrator.n_classes != plain.n_classes or calibrator.positive != plain.positive:
            raise ValueError(
                f"the calibrator has {calibrator.n_classes} classes (positive "
                f"{calibrator.positive}), the model {plain.n_classes} (positive {plain.positive})"
            )
        if rows is None or not rows > 0:
            raise ValueError(f"rows must be > 0, got {rows}")
        self.calibrator = calibrator
        self.calibration_rows = float(rows)

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
        probabilities = calibrator.probabilities(scores).T  # (k, n)
        k, n = probabilities.shape
        # Row j of ``cells`` holds each event's flat cell [0, p, j] (j < k) or [1, p, j - k]
        # of the (2, k, k) band statistic; its first k rows are the cells (p, j) of the
        # (k, k) expected counts. One bincount per statistic.
        cells = predicted * k + self._cells
        added = total.reshape(-1)
        added += ring.add("expected", event_slots, cells[:k], probabilities)
        # band_weights, laid out (2k, n): P_a (1 - P_a), then P_p P_a
        terms = np.empty((2 * k, n))
        np.subtract(1.0, probabilities, out=terms[:k])
        terms[:k] *= probabilities
        own = probabilities[predicted, np.arange(n)]
        np.multiply(probabilities, own, out=terms[k:])
        ring.add(EXPECTED_TERMS, event_slots, cells, terms)
        return Expected(rows, cells[:k], probabilities)

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
    ) -> tuple[ClassificationFigures | None, Bands | None, RegressionFigures | None]:
        """(realized, estimated, regression) figures: the realized ones (``realized``,
        ``regression``) of the performance ring's window, the estimated ones (with their
        band: :class:`~modelmeter.engine.bands.Bands`, None without calibration) of the
        window ring's."""
        if not self.config.is_classification:
            return None, None, regression_figures(performance.window("regression"), min_samples)
        k = self.k
        realized = classification_figures(
            performance.window("confusion").reshape(k, k), self.classes, self.positive, min_samples
        )
        bands = None
        if self.calibrator is not None:
            bands = classification_bands(
                ring.window("expected"),
                ring.window(EXPECTED_TERMS),
                self.classes,
                self.positive,
                min_samples,
                reference_rows=self.calibration_rows,
            )
        return realized, bands, None

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
