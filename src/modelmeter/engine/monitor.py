"""ModelMonitor: one model version's sliding-window and cumulative statistics."""

from __future__ import annotations

import math
from collections.abc import Mapping
from itertools import repeat
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from modelmeter.engine.batch import LabelBatch, PredictionBatch
from modelmeter.engine.config import FeatureSpec, MonitorConfig, ReferenceData
from modelmeter.engine.drift import (
    CategoricalBinning,
    NumericBinning,
    benjamini_hochberg,
    chi2_pvalue,
    chi2_pvalue_rows,
    jensen_shannon,
    jensen_shannon_rows,
    ks_rows,
    psi,
    psi_rows,
    wasserstein_rows,
)
from modelmeter.engine.estimation import Calibrator
from modelmeter.engine.features import CategoricalBlock, NumericBlock
from modelmeter.engine.loss import LOSS, LossEstimator
from modelmeter.engine.multivariate import METHOD, STATISTIC, ReconstructionDrift, block_tables
from modelmeter.engine.operations import LABEL_DELAY_BOUNDS, LATENCY_BOUNDS, CumulativeHistogram
from modelmeter.engine.performance import (
    classification_figures,
    confusion_counts,
    regression_figures,
    regression_sums,
)
from modelmeter.engine.quality import (
    N_CODES,
    issue_counts,
)
from modelmeter.engine.segments import LABELED as SEGMENT_LABELED
from modelmeter.engine.segments import LABELS as SEGMENT_LABELS
from modelmeter.engine.segments import PREDICTIONS as SEGMENT_PREDICTIONS
from modelmeter.engine.segments import Segments
from modelmeter.engine.snapshot import (
    ClassificationFigures,
    DriftFigures,
    MultivariateFigures,
    RegressionFigures,
    SegmentFigures,
    Snapshot,
)
from modelmeter.engine.windows import BucketRing

__all__ = ["ModelMonitor", "StateTooLarge"]

CHECKPOINT_FORMAT = 1
NAN = float("nan")
NO_PREDICTION = -2  # class code of an errored event ("" or None)
UNKNOWN_CLASS = -1
CHUNK = 4096  # events per feature matrix: keeps the (features, events) temporaries in cache

# Operations counters: [predictions, errors, labeled (by prediction time), labels (by arrival)]
PREDICTIONS, ERRORS, LABELED, LABELS = 0, 1, 2, 3

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class _Prepared(NamedTuple):
    """A validated prediction batch, ready to count (nothing in it can fail any more)."""

    n: int
    timestamps: FloatArray
    predicted: IntArray | FloatArray  # class codes (classification) or values (regression)
    valid: BoolArray  # rows with a prediction
    scores: FloatArray | None
    scored: BoolArray | None  # rows with scores (and a prediction)
    latency: FloatArray | None
    errors: BoolArray | None


class StateTooLarge(ValueError):
    """The window state of a configuration would exceed the bytes allowed for it."""

    def __init__(self, required: int, limit: int) -> None:
        super().__init__(
            f"the window state needs {required} bytes, above the limit of {limit} bytes; use "
            "fewer features, categories or drift bins, or fewer, longer buckets"
        )
        self.required = required
        self.limit = limit


class ModelMonitor:
    """Streaming monitor of one model version: performance, drift, quality, operations.

    Feed it prediction batches with :meth:`observe` and label batches with :meth:`label`;
    read everything with :meth:`snapshot`. State is additive counts in a ring of time buckets
    plus cumulative totals; :meth:`to_checkpoint` saves it as plain JSON-able data.

    Not thread-safe: callers serialise calls (the collector holds a lock per monitor).

    ``observe`` and ``label`` take an optional ``now`` (Unix seconds): the newest bucket moves
    to it and later timestamps are counted in that bucket. Without ``now`` the newest bucket
    moves to the batch's latest timestamp, so a caller with a clock (the collector) should
    pass it, or a far-future timestamp would expire the window.

    Examples
    --------
    >>> import numpy as np
    >>> from modelmeter.engine import (
    ...     FeatureSpec, LabelBatch, ModelMonitor, MonitorConfig, PredictionBatch, ReferenceData)
    >>> rng = np.random.default_rng(7)
    >>> config = MonitorConfig(task="binary", classes=("no", "yes"),
    ...                        features=(FeatureSpec("x", "numeric"),), min_samples=50)
    >>> x = rng.normal(size=2000)
    >>> score = 1 / (1 + np.exp(-3 * x))
    >>> label = np.where(rng.random(2000) < score, "yes", "no").astype(object)
    >>> prediction = np.where(score > 0.5, "yes", "no").astype(object)
    >>> monitor = ModelMonitor(config, ReferenceData({"x": x}, prediction, label, score))
    >>> t = np.full(500, 1_000.0)
    >>> xs = rng.normal(1.0, 1.0, size=500)  # the inputs drift
    >>> ps = 1 / (1 + np.exp(-3 * xs))
    >>> predicted = np.where(ps > 0.5, "yes", "no").astype(object)
    >>> monitor.observe(PredictionBatch(t, {"x": xs}, predicted, scores=ps))
    >>> actual = np.where(rng.random(500) < ps, "yes", "no").astype(object)
    >>> monitor.label(LabelBatch(t + 5, t, predicted, actual))
    >>> snap = monitor.snapshot(now=1_010.0)
    >>> snap.window_predictions, snap.window_labeled, snap.label_coverage
    (500, 500, 1.0)
    >>> snap.drift["x"].drifted, snap.drift_detected
    (True, True)
    >>> abs(snap.estimated.accuracy - snap.realized.accuracy) < 0.05
    True

    The model's performance on its reference data, computed once from the reference's
    predictions and labels, is in every snapshot (whatever the window holds):

    >>> snap.reference.accuracy == float(np.mean(prediction == label))
    True
    >>> monitor.snapshot(now=5_000.0).reference == snap.reference
    True
    """

    def __init__(
        self, config: MonitorConfig, reference: ReferenceData, max_state_bytes: int | None = None
    ) -> None:
        self.config = config
        self._classes = config.classes
        self._k = len(config.classes)
        self._class_codes: dict[object, int] = {c: i for i, c in enumerate(config.classes)}
        self._class_codes[""] = NO_PREDICTION
        self._class_codes[None] = NO_PREDICTION
        self._positive = (
            config.classes.index(config.positive_class)
            if config.task == "binary" and config.positive_class is not None
            else None
        )
        numeric: list[tuple[FeatureSpec, NumericBinning]] = []
        categorical: list[tuple[FeatureSpec, CategoricalBinning]] = []
        for spec in config.features:
            if spec.name not in reference.features:
                raise ValueError(f"reference data has no column for feature {spec.name!r}")
            column = np.asarray(reference.features[spec.name])
            if spec.kind == "numeric":
                values, _ = _numeric_values(column, spec.name, column.shape[0])
                try:
                    numeric.append((spec, NumericBinning(values, config.drift_bins)))
                except ValueError as error:
                    raise ValueError(f"reference feature {spec.name!r}: {error}") from None
            else:
                objects = _object_values(column, spec.name, column.shape[0])
                binning = CategoricalBinning.fit(objects, spec.categories, config.max_categories)
                categorical.append((spec, binning))
        self._numeric = NumericBlock([s for s, _ in numeric], [b for _, b in numeric])
        self._categorical = CategoricalBlock(
            [s for s, _ in categorical], [b for _, b in categorical]
        )
        binnings = {spec.name: binning for spec, binning in categorical}
        self._segments = (
            Segments([(name, binnings[name]) for name in config.segments])
            if config.segments
            else None
        )
        self._names = tuple(spec.name for spec in config.features)
        self._feature_names = frozenset(self._names)
        self._output_numeric: NumericBinning | None = None
        self._output_categorical: CategoricalBinning | None = None
        self._calibrator: Calibrator | None = None
        self._reference_figures: ClassificationFigures | None = None
        self._reference_regression: RegressionFigures | None = None
        self._fit_output(reference)
        self._multivariate = self._fit_multivariate(reference)
        self._loss = self._fit_loss(reference)
        shapes = self._shapes()
        per_bucket = sum(int(np.prod(shape)) for shape in shapes.values())
        totals = sum(int(np.prod(shape)) for shape in self._total_shapes().values())
        #: bytes of the window ring and totals (float64), known before they are allocated
        self.state_bytes = 8 * (config.n_buckets * per_bucket + totals)
        if max_state_bytes is not None and self.state_bytes > max_state_bytes:
            raise StateTooLarge(self.state_bytes, max_state_bytes)
        self._ring = BucketRing(config.n_buckets, config.bucket_seconds, shapes)
        self._totals: dict[str, FloatArray] = {
            name: np.zeros(shape) for name, shape in self._total_shapes().items()
        }
        self._latency = CumulativeHistogram(LATENCY_BOUNDS)
        self._label_delay = CumulativeHistogram(LABEL_DELAY_BOUNDS)

    # ------------------------------------------------------------------ setup

    def _fit_output(self, reference: ReferenceData) -> None:
        config = self.config
        n = np.shape(reference.predictions)[0]
        if config.is_classification:
            predicted = self._class_index(
                np.asarray(reference.predictions), "reference predictions"
            )
            labels = self._class_index(np.asarray(reference.labels), "reference labels")
            if np.any(labels < 0):
                raise ValueError("reference labels: every label must be one of the classes")
            if labels.shape[0] != n:
                raise ValueError("reference labels and predictions differ in length")
            self._output_categorical = CategoricalBinning(
                self._classes,
                np.bincount(predicted[predicted >= 0], minlength=self._k + 1).astype(np.float64),
            )
            # Performance on the reference: every row with a prediction, whatever min_samples
            # (a fixed data set, not a window), by the realized figures' own functions.
            self._reference_figures = classification_figures(
                confusion_counts(predicted, labels, self._k), self._classes, self._positive, 1
            )
            if reference.scores is not None:
                self._calibrator = Calibrator.fit(
                    np.asarray(reference.scores, np.float64),
                    np.asarray(reference.labels, dtype=object),
                    self._classes,
                    config.positive_class if config.task == "binary" else None,
                )
        else:
            values = np.asarray(reference.predictions, dtype=np.float64)
            self._output_numeric = NumericBinning(values, config.drift_bins)
            actual = _float_column(reference.labels, "reference labels", n)
            rows = np.isfinite(values) & np.isfinite(actual)  # NaN prediction = errored
            self._reference_regression = regression_figures(
                regression_sums(values[rows], actual[rows]).sum(axis=0), 1
            )

    def _fit_multivariate(self, reference: ReferenceData) -> ReconstructionDrift | None:
        """PCA reconstruction error fitted on the reference (None: off, or < 2 features)."""
        settings = self.config.multivariate
        if settings is None or len(self.config.features) < 2:
            return None
        numeric, categorical = self._numeric, self._categorical
        rows = [np.asarray(reference.features[s.name]) for s in numeric.specs]
        n = rows[0].shape[0] if rows else np.shape(reference.features[categorical.specs[0].name])[0]
        values = np.empty((numeric.m, n))
        for j, (spec, column) in enumerate(zip(numeric.specs, rows, strict=True)):
            values[j] = _numeric_values(column, spec.name, n)[0]
        codes = [
            binning.index(_object_values(np.asarray(reference.features[spec.name]), spec.name, n))
            for spec, binning in zip(categorical.specs, categorical.binnings, strict=True)
        ]
        tables, index = block_tables(categorical.binnings, categorical.width, codes)
        if not categorical.m:
            index = np.zeros((0, n), dtype=np.int64)
        try:
            return ReconstructionDrift.fit(values, index, tables, settings.variance, settings.z)
        except ValueError as error:
            raise ValueError(f"reference data, multivariate drift: {error}") from None

    def _fit_loss(self, reference: ReferenceData) -> LossEstimator | None:
        """The DLE loss model of a regression model (None: classification, or too few rows)."""
        if self.config.is_classification:
            return None
        n = np.shape(reference.predictions)[0]
        return LossEstimator.fit(
            [spec.name for spec in self._numeric.specs],
            [
                (spec.name, binning)
                for spec, binning in zip(
                    self._categorical.specs, self._categorical.binnings, strict=True
                )
            ],
            reference.features,
            np.asarray(reference.predictions, dtype=np.float64),
            _float_column(reference.labels, "reference labels", n),
        )

    def _output_bins(self) -> int:
        binning = self._output_numeric or self._output_categorical
        assert binning is not None
        return binning.n_bins

    def _shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {"ops": (4,)}
        shapes.update(self._numeric.shapes())
        shapes.update(self._categorical.shapes())
        shapes["output"] = (self._output_bins() + 1,)
        if self._multivariate is not None:
            shapes[STATISTIC] = (3,)  # count, sum and sum of squares of the error
        if self.config.is_classification:
            shapes["confusion"] = (self._k, self._k)
            if self._calibrator is not None:
                shapes["expected"] = (self._k, self._k)
        else:
            shapes["output_sums"] = (self._output_bins() + 1,)
            shapes["regression"] = (3,)
            if self._loss is not None:
                shapes[LOSS] = (3,)  # predictions, predicted absolute and squared error
        segments = self._segments
        if segments is not None:
            shapes.update(segments.shapes(self._k if self.config.is_classification else None))
            if self._calibrator is not None:
                shapes["segment_expected"] = (segments.m, segments.width, self._k, self._k)
            if self._loss is not None:
                shapes["segment_loss"] = (segments.m, segments.width, 3)
        return shapes

    def _total_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {
            "ops": (4,),
            "unknown_features": (1,),
            "numeric_quality": (self._numeric.m, N_CODES),
            "categorical_quality": (self._categorical.m, N_CODES),
        }
        if self.config.is_classification:
            shapes["confusion"] = (self._k, self._k)
        return shapes

    def _class_index(self, values: npt.NDArray[np.generic], column: str) -> IntArray:
        """Class codes; ValueError naming ``column`` on a value that is not a class."""
        values = _object_values(values, column, np.shape(values)[0])
        codes = np.fromiter(
            map(self._class_codes.get, values, repeat(UNKNOWN_CLASS)), np.int64, values.shape[0]
        )
        unknown = np.flatnonzero(codes == UNKNOWN_CLASS)
        if unknown.size:
            first = int(unknown[0])
            raise ValueError(
                f"column {column!r}: value {values[first]!r} at index {first} is not one of the "
                f"classes {list(self._classes)} ({unknown.size} such values); classes are "
                "strings, convert ints and bools with str()"
            )
        return codes

    # ------------------------------------------------------------------ predictions

    def observe(self, batch: PredictionBatch, now: float | None = None) -> None:
        """Count a batch of prediction events (validated first; a bad batch changes nothing).

        Raises ValueError naming the column on a wrong length or shape, a non-finite
        timestamp, an unknown class, a score outside [0, 1] or a negative latency.
        """
        prepared = self._prepare(batch, now)
        if batch.unknown_features:
            self._totals["unknown_features"][0] += int(batch.unknown_features)
        if prepared.n == 0:
            if now is not None:
                self._ring.advance(now)
            return
        self._advance(now, prepared.timestamps)
        slots = self._ring.slots(prepared.timestamps)
        self._count_operations(prepared, slots)
        index = self._count_features(batch, slots, prepared.n)
        if self._multivariate is not None:
            self._count_multivariate(self._multivariate, batch, slots, prepared.n, index)
        self._count_output(prepared, slots)
        losses = None
        if self._loss is not None:
            predicted = np.asarray(prepared.predicted, dtype=np.float64)
            losses = self._loss.count(
                self._ring, slots, batch.features, batch.wrong_type, predicted, prepared.valid
            )
        if self._segments is not None:
            self._count_segments(self._segments, batch, prepared, slots, losses)
        if prepared.latency is not None:
            self._latency.add(prepared.latency)

    def _prepare(self, batch: PredictionBatch, now: float | None) -> _Prepared:
        if now is not None and not math.isfinite(now):
            raise ValueError(f"now must be a finite number of seconds, got {now}")
        timestamps = _float_column(batch.timestamps, "timestamps", None)
        n = timestamps.shape[0]
        if not np.isfinite(timestamps).all():
            raise ValueError("column 'timestamps': every timestamp must be a finite number")
        if isinstance(batch.unknown_features, bool) or not (
            isinstance(batch.unknown_features, int | np.integer) and batch.unknown_features >= 0
        ):
            raise ValueError("unknown_features must be an integer >= 0")
        expected = (n,)
        features = batch.features
        for name in self._names:
            column = features.get(name)
            if column is None:
                raise ValueError(
                    f"feature {name!r} is missing from the batch: pass every configured "
                    "feature (NaN or None for missing values)"
                )
            if getattr(column, "shape", None) != expected:
                raise ValueError(
                    f"feature {name!r}: expected a numpy array of {n} values (one per "
                    f"timestamp), got shape {np.shape(column)}"
                )
        for name, mask in batch.wrong_type.items():
            if name not in self._feature_names:
                raise ValueError(f"wrong_type names {name!r}, which is not a configured feature")
            kind = getattr(getattr(mask, "dtype", None), "kind", None)
            if np.shape(mask) != (n,) or kind not in ("b", "i", "u"):
                raise ValueError(f"wrong_type[{name!r}]: expected a bool mask of shape ({n},)")
        predicted: IntArray | FloatArray
        if self.config.is_classification:
            predicted = self._class_index(
                _object_values(batch.predictions, "predictions", n), "predictions"
            )
            valid = predicted >= 0
        else:
            predicted = _float_column(batch.predictions, "predictions", n)
            if np.isinf(predicted).any():
                raise ValueError("column 'predictions': values must be finite (NaN = errored)")
            valid = ~np.isnan(predicted)
        scores, scored = self._scores(batch.scores, n, valid)
        latency = None
        if batch.latency_seconds is not None:
            latency = _float_column(batch.latency_seconds, "latency_seconds", n)
            if latency.size and (np.fmin.reduce(latency) < 0 or np.fmax.reduce(latency) == np.inf):
                raise ValueError(
                    "column 'latency_seconds': values must be >= 0 and finite (NaN = not given)"
                )
        errors = None
        if batch.errors is not None:
            if np.shape(batch.errors) != (n,):
                raise ValueError(
                    f"column 'errors': expected shape ({n},), got {np.shape(batch.errors)}"
                )
            errors = np.asarray(batch.errors, dtype=bool)
        return _Prepared(n, timestamps, predicted, valid, scores, scored, latency, errors)

    def _scores(
        self, raw: FloatArray | None, n: int, valid: BoolArray
    ) -> tuple[FloatArray | None, BoolArray | None]:
        if raw is None or not self.config.is_classification:
            return None, None
        shape = (n,) if self.config.task == "binary" else (n, self._k)
        scores = np.asarray(raw)
        if scores.shape != shape or scores.dtype.kind not in "fiu":
            raise ValueError(
                f"column 'scores': expected numbers of shape {shape} (binary: P(positive); "
                f"multiclass: one column per class), got {scores.dtype} {scores.shape}"
            )
        scores = scores.astype(np.float64, copy=False)
        given = ~np.isnan(scores) if scores.ndim == 1 else ~np.isnan(scores).any(axis=1)
        flat = scores.ravel()
        if flat.size and (np.fmin.reduce(flat) < 0 or np.fmax.reduce(flat) > 1):
            raise ValueError("column 'scores': probabilities must be in [0, 1] (NaN = not given)")
        return scores, given & valid

    def _advance(self, now: float | None, timestamps: FloatArray) -> None:
        self._ring.advance(float(timestamps.max()) if now is None else now)

    def _count_operations(self, prepared: _Prepared, slots: IntArray) -> None:
        ring, totals = self._ring, self._totals["ops"]
        totals += ring.add("ops", slots, PREDICTIONS)
        if prepared.errors is not None and prepared.errors.any():
            totals += ring.add("ops", slots[prepared.errors], ERRORS)

    def _count_features(self, batch: PredictionBatch, slots: IntArray, n: int) -> IntArray | None:
        """Count every feature; return the categorical values' flat bin indices (for the
        multivariate drift; None when it is off)."""
        numeric, categorical = self._numeric, self._categorical
        index = None
        if self._multivariate is not None:
            index = np.empty((categorical.m, n), dtype=np.int64)
        if numeric.m:
            raw = [batch.features[spec.name] for spec in numeric.specs]
            if n <= CHUNK:
                try:
                    joined = None if batch.wrong_type else np.concatenate(raw)
                except (TypeError, ValueError):  # e.g. a text column among float ones
                    joined = None
                simple = joined is not None and joined.dtype.kind in "fiub"
            else:
                joined = None
                simple = not batch.wrong_type and all(c.dtype.kind in "fiub" for c in raw)
            if simple:
                # Common case: numeric columns and no type problems.
                for start in range(0, n, CHUNK):
                    stop = min(start + CHUNK, n)
                    if joined is None:
                        joined = np.concatenate([c[start:stop] for c in raw])
                    values = joined.astype(np.float64, copy=False).reshape(numeric.m, stop - start)
                    joined = None
                    quality = numeric.count(self._ring, values, None, slots[start:stop])
                    self._totals["numeric_quality"] += quality.reshape(numeric.m, N_CODES)
            else:
                self._count_numeric_slow(raw, batch, slots, n)
        if categorical.m:
            objects: list[npt.NDArray[Any]] = [
                batch.features[spec.name] for spec in categorical.specs
            ]
            objects = [c if c.dtype == object else c.astype(object) for c in objects]
            marks: list[BoolArray | None] = [None] * categorical.m
            if batch.wrong_type:
                for j, spec in enumerate(categorical.specs):
                    marked = batch.wrong_type.get(spec.name)
                    marks[j] = None if marked is None else np.asarray(marked, dtype=bool)
            for start in range(0, n, CHUNK):
                stop = min(start + CHUNK, n)
                quality = categorical.count(
                    self._ring,
                    [column[start:stop] for column in objects],
                    _chunk_mask(marks, start, stop),
                    slots[start:stop],
                    None if index is None else index[:, start:stop],
                )
                self._totals["categorical_quality"] += quality.reshape(categorical.m, N_CODES)
        return index

    def _count_multivariate(
        self,
        drift: ReconstructionDrift,
        batch: PredictionBatch,
        slots: IntArray,
        n: int,
        index: IntArray | None,
    ) -> None:
        """Reconstruction error of each event into the ring (missing, non-finite and
        wrong-type numeric values: the reference mean; categorical: as missing)."""
        specs = self._numeric.specs
        raw = [batch.features[spec.name] for spec in specs]
        if batch.wrong_type or not all(c.dtype.kind in "fiub" for c in raw):
            columns = []
            for spec, column in zip(specs, raw, strict=True):
                converted, bad = _numeric_values(np.asarray(column), spec.name, n)
                marked = batch.wrong_type.get(spec.name)
                if marked is not None:
                    bad = np.asarray(marked, dtype=bool) if bad is None else bad | marked
                columns.append(converted if bad is None else np.where(bad, np.nan, converted))
            raw = columns
        codes = np.zeros((0, n), dtype=np.int64) if index is None else index
        for start in range(0, n, CHUNK):
            stop = min(start + CHUNK, n)
            values = np.empty((len(raw), stop - start))
            for j, column in enumerate(raw):
                values[j] = column[start:stop]
            errors = drift.errors(values, codes[:, start:stop])
            drift.count(self._ring, slots[start:stop], errors)

    def _count_numeric_slow(
        self,
        raw: list[npt.NDArray[Any]],
        batch: PredictionBatch,
        slots: IntArray,
        n: int,
    ) -> None:
        """Numeric features with wrong-type masks or non-numeric (object) columns."""
        numeric = self._numeric
        columns: list[FloatArray] = []
        wrong: list[BoolArray | None] = []
        for spec, column in zip(numeric.specs, raw, strict=True):
            converted, bad = _numeric_values(np.asarray(column), spec.name, n)
            marked = batch.wrong_type.get(spec.name)
            if marked is not None:
                marked = np.asarray(marked, dtype=bool)
                bad = marked if bad is None else bad | marked
            columns.append(converted)
            wrong.append(bad)
        for start in range(0, n, CHUNK):
            stop = min(start + CHUNK, n)
            values = np.empty((numeric.m, stop - start))
            for j, column in enumerate(columns):
                values[j] = column[start:stop]
            quality = numeric.count(
                self._ring, values, _chunk_mask(wrong, start, stop), slots[start:stop]
            )
            self._totals["numeric_quality"] += quality.reshape(numeric.m, N_CODES)

    def _count_output(self, prepared: _Prepared, slots: IntArray) -> None:
        ring = self._ring
        if self._output_categorical is not None:
            codes = np.asarray(prepared.predicted, dtype=np.int64)
            bins = np.where(prepared.valid, codes, self._output_categorical.n_bins)
            ring.add("output", slots, bins)
            if self._calibrator is not None and prepared.scores is not None:
                self._count_expected(prepared, codes, slots)
            return
        binning = self._output_numeric
        assert binning is not None
        values = np.asarray(prepared.predicted, dtype=np.float64)
        bins = binning.index(values)
        if not prepared.valid.all():
            bins[~prepared.valid] = binning.n_bins
        ring.add("output", slots, bins)
        weights = values if prepared.valid.all() else np.where(prepared.valid, values, 0.0)
        ring.add("output_sums", slots, bins, weights)

    def segment_codes(self, features: Mapping[str, npt.NDArray[np.generic]]) -> IntArray | None:
        """(n, segments) value codes of events with these feature columns, as
        :class:`LabelBatch` ``segments`` takes them (None: the model has no segments)."""
        return None if self._segments is None else self._segments.codes(features)

    def _count_segments(
        self,
        segments: Segments,
        batch: PredictionBatch,
        prepared: _Prepared,
        slots: IntArray,
        losses: FloatArray | None,
    ) -> None:
        """Predictions per segment value, and their expected outcomes or predicted losses."""
        ring = self._ring
        codes = segments.codes(batch.features)
        segments.add(ring, "segment_ops", slots, codes, 3, SEGMENT_PREDICTIONS)
        if losses is not None:
            rows = prepared.valid
            valid_slots, valid_codes = slots[rows], codes[rows]
            segments.add(ring, "segment_loss", valid_slots, valid_codes, 3, 0)
            for position in (1, 2):
                segments.add(
                    ring,
                    "segment_loss",
                    valid_slots,
                    valid_codes,
                    3,
                    position,
                    losses[:, position - 1],
                )
        if self._calibrator is None or prepared.scores is None:
            return
        assert prepared.scored is not None
        rows = prepared.scored
        if not rows.any():
            return
        probabilities = self._calibrator.probabilities(prepared.scores[rows])
        flat = np.asarray(prepared.predicted, dtype=np.int64)[rows] * self._k
        k2 = self._k * self._k
        for actual in range(self._k):
            segments.add(
                ring,
                "segment_expected",
                slots[rows],
                codes[rows],
                k2,
                flat + actual,
                probabilities[:, actual],
            )

    def _count_expected(self, prepared: _Prepared, codes: IntArray, slots: IntArray) -> None:
        calibrator = self._calibrator
        assert calibrator is not None and prepared.scores is not None
        assert prepared.scored is not None
        rows = prepared.scored
        if not rows.any():
            return
        all_rows = bool(rows.all())
        scores = prepared.scores if all_rows else prepared.scores[rows]
        predicted = codes if all_rows else codes[rows]
        event_slots = slots if all_rows else slots[rows]
        probabilities = calibrator.probabilities(scores)
        flat = predicted * self._k
        for actual in range(self._k):
            self._ring.add("expected", event_slots, flat + actual, probabilities[:, actual])

    # ------------------------------------------------------------------ labels

    def label(self, batch: LabelBatch, now: float | None = None) -> None:
        """Count a batch of labels joined to their predictions (validated first).

        Realized performance counts a label in the bucket of its arrival; label coverage
        counts it in the bucket of its prediction, if that is still in the window.
        """
        arrived, made, predicted, actual, valid = self._prepare_labels(batch, now)
        n = arrived.shape[0]
        codes = None if self._segments is None else self._segments.check(batch.segments, n)
        if n == 0:
            if now is not None:
                self._ring.advance(now)
            return
        self._advance(now, arrived)
        ring = self._ring
        label_slots = ring.slots(arrived)
        ops = self._totals["ops"]
        ops += ring.add("ops", label_slots, LABELS)
        ops += ring.add("ops", ring.slots(made), LABELED)
        self._label_delay.add(np.maximum(arrived - made, 0.0))
        rows = label_slots if valid.all() else label_slots[valid]
        if self.config.is_classification:
            index = (predicted.astype(np.int64) * self._k + actual.astype(np.int64))[valid]
            self._totals["confusion"] += ring.add("confusion", rows, index).reshape(
                self._k, self._k
            )
        else:
            terms = regression_sums(
                np.asarray(predicted[valid], np.float64), np.asarray(actual[valid], np.float64)
            )
            for position in range(3):
                ring.add("regression", rows, position, terms[:, position])
        if codes is not None and self._segments is not None:
            self._label_segments(
                self._segments, codes, label_slots, ring.slots(made), predicted, actual, valid
            )

    def _label_segments(
        self,
        segments: Segments,
        codes: IntArray,
        label_slots: IntArray,
        made_slots: IntArray,
        predicted: IntArray | FloatArray,
        actual: IntArray | FloatArray,
        valid: BoolArray,
    ) -> None:
        ring = self._ring
        segments.add(ring, "segment_ops", label_slots, codes, 3, SEGMENT_LABELS)
        segments.add(ring, "segment_ops", made_slots, codes, 3, SEGMENT_LABELED)
        slots, codes = label_slots[valid], codes[valid]
        if self.config.is_classification:
            k = self._k
            index = (predicted.astype(np.int64) * k + actual.astype(np.int64))[valid]
            segments.add(ring, "segment_confusion", slots, codes, k * k, index)
            return
        terms = regression_sums(
            np.asarray(predicted[valid], np.float64), np.asarray(actual[valid], np.float64)
        )
        for position in range(3):
            segments.add(ring, "segment_regression", slots, codes, 3, position, terms[:, position])

    def _prepare_labels(
        self, batch: LabelBatch, now: float | None
    ) -> tuple[FloatArray, FloatArray, IntArray | FloatArray, IntArray | FloatArray, BoolArray]:
        """(arrived, made, predicted, actual, valid); ValueError naming a bad column."""
        if now is not None and not math.isfinite(now):
            raise ValueError(f"now must be a finite number of seconds, got {now}")
        arrived = _float_column(batch.label_timestamps, "label_timestamps", None)
        n = arrived.shape[0]
        made = _float_column(batch.prediction_timestamps, "prediction_timestamps", n)
        for column, values in (("label_timestamps", arrived), ("prediction_timestamps", made)):
            if not np.isfinite(values).all():
                raise ValueError(f"column {column!r}: every timestamp must be a finite number")
        if self.config.is_classification:
            predicted = self._class_index(
                _object_values(batch.predictions, "predictions", n), "predictions"
            )
            actual = self._class_index(_object_values(batch.labels, "labels", n), "labels")
            if np.any(actual < 0):
                raise ValueError("column 'labels': a label must be one of the classes, not empty")
            return arrived, made, predicted, actual, predicted >= 0
        predicted_values = _float_column(batch.predictions, "predictions", n)
        actual_values = _float_column(batch.labels, "labels", n)
        if not np.isfinite(actual_values).all():
            raise ValueError("column 'labels': regression labels must be finite numbers")
        return arrived, made, predicted_values, actual_values, np.isfinite(predicted_values)

    def check(self, batch: PredictionBatch | LabelBatch, now: float | None = None) -> None:
        """Raise the ValueError that ``observe`` / ``label`` would raise for ``batch``, without
        counting anything (a caller that must acknowledge only what the engine accepts checks
        first, then commits, then applies).

        >>> from modelmeter.engine.config import MonitorConfig, ReferenceData
        >>> config = MonitorConfig(task="binary", features=(), classes=("0", "1"), min_samples=1)
        >>> ref = ReferenceData({}, np.array(["0", "1"] * 30, dtype=object),
        ...                     np.array(["0", "1"] * 30, dtype=object))
        >>> ModelMonitor(config, ref).check(LabelBatch(
        ...     np.array([1.0]), np.array([1.0]), np.array(["2"], dtype=object),
        ...     np.array(["1"], dtype=object)))
        Traceback (most recent call last):
        ...
        ValueError: column 'predictions': value '2' at index 0 is not one of the classes ...
        """
        if isinstance(batch, PredictionBatch):
            self._prepare(batch, now)
        else:
            self._prepare_labels(batch, now)
            if self._segments is not None:
                self._segments.check(batch.segments, len(batch))

    # ------------------------------------------------------------------ reading

    def snapshot(self, now: float) -> Snapshot:
        """All figures at time ``now``; buckets older than ``now - window`` are expired first."""
        ring = self._ring
        ring.advance(now)
        config = self.config
        ops = ring.window("ops")
        predictions = int(ops[PREDICTIONS])
        realized: ClassificationFigures | None = None
        estimated: ClassificationFigures | None = None
        regression: RegressionFigures | None = None
        if config.is_classification:
            confusion = ring.window("confusion").reshape(self._k, self._k)
            realized = classification_figures(
                confusion, self._classes, self._positive, config.min_samples
            )
            if self._calibrator is not None:
                expected = ring.window("expected").reshape(self._k, self._k)
                estimated = classification_figures(
                    expected, self._classes, self._positive, config.min_samples
                )
        else:
            regression = regression_figures(ring.window("regression"), config.min_samples)
        drift, prediction_drift, detected = self._drift()
        quality = self._quality(ring.window("numeric_quality"), ring.window("categorical_quality"))
        ratio = {
            name: {issue: count / predictions if predictions else NAN for issue, count in c.items()}
            for name, c in quality.items()
        }
        totals = self._totals
        confusion_total: dict[tuple[str, str], int] = {}
        if config.is_classification:
            matrix = totals["confusion"]
            for p, predicted in enumerate(self._classes):
                for a, actual in enumerate(self._classes):
                    confusion_total[(predicted, actual)] = int(matrix[p, a])
        return Snapshot(
            time=float(now),
            window_seconds=config.window_seconds,
            min_samples=config.min_samples,
            window_predictions=predictions,
            window_errors=int(ops[ERRORS]),
            window_labeled=int(ops[LABELS]),
            label_coverage=min(float(ops[LABELED]) / predictions, 1.0) if predictions else NAN,
            realized=realized,
            estimated=estimated,
            regression=regression,
            drift=drift,
            prediction_drift=prediction_drift,
            drift_detected=detected,
            quality_window=quality,
            quality_window_ratio=ratio,
            predictions_total=int(totals["ops"][PREDICTIONS]),
            errors_total=int(totals["ops"][ERRORS]),
            unknown_features_total=int(totals["unknown_features"][0]),
            confusion_total=confusion_total,
            quality_total=self._quality(totals["numeric_quality"], totals["categorical_quality"]),
            latency=self._latency.value(),
            label_delay=self._label_delay.value(),
            reference=self._reference_figures,
            reference_regression=self._reference_regression,
            multivariate=self._multivariate_figures(),
            estimated_regression=None
            if self._loss is None
            else self._loss.figures(ring.window(LOSS), config.min_samples),
            segments=self._segment_figures(),
        )

    def _segment_figures(self) -> dict[str, dict[str, SegmentFigures]]:
        segments = self._segments
        if segments is None:
            return {}
        ring = self._ring
        minimum = self.config.min_samples
        ops = ring.window("segment_ops")
        windows = {
            name: ring.window(name)
            for name in ("segment_confusion", "segment_expected", "segment_regression")
            if name in ring.shapes
        }
        loss = ring.window("segment_loss") if "segment_loss" in ring.shapes else None
        out: dict[str, dict[str, SegmentFigures]] = {}
        for s, (name, values) in enumerate(zip(segments.names, segments.values, strict=True)):
            figures: dict[str, SegmentFigures] = {}
            for v, value in enumerate(values):
                predictions = int(ops[s, v, SEGMENT_PREDICTIONS])
                labeled = float(ops[s, v, SEGMENT_LABELED])
                realized = estimated = regression = estimated_regression = None
                if "segment_confusion" in windows:
                    realized = classification_figures(
                        windows["segment_confusion"][s, v], self._classes, self._positive, minimum
                    )
                if "segment_expected" in windows:
                    estimated = classification_figures(
                        windows["segment_expected"][s, v], self._classes, self._positive, minimum
                    )
                if "segment_regression" in windows:
                    regression = regression_figures(windows["segment_regression"][s, v], minimum)
                if loss is not None:
                    estimated_regression = regression_figures(loss[s, v], minimum)
                figures[value] = SegmentFigures(
                    predictions=predictions,
                    labeled=int(ops[s, v, SEGMENT_LABELS]),
                    label_coverage=min(labeled / predictions, 1.0) if predictions else NAN,
                    realized=realized,
                    estimated=estimated,
                    regression=regression,
                    estimated_regression=estimated_regression,
                )
            out[name] = figures
        return out

    def _multivariate_figures(self) -> MultivariateFigures | None:
        if self._multivariate is None:
            return None
        figures = self._multivariate.figures(self._ring.window(STATISTIC), self.config.min_samples)
        return MultivariateFigures(METHOD, *figures)

    def _quality(self, numeric: FloatArray, categorical: FloatArray) -> dict[str, dict[str, int]]:
        """Feature -> issue -> count, in configuration order, from the blocks' code counts."""
        by_name: dict[str, dict[str, int]] = {}
        for block, counts in ((self._numeric, numeric), (self._categorical, categorical)):
            table = counts.reshape(block.m, N_CODES)
            for j, spec in enumerate(block.specs):
                by_name[spec.name] = issue_counts(table[j])
        return {spec.name: by_name[spec.name] for spec in self.config.features}

    def _drift(self) -> tuple[dict[str, DriftFigures], DriftFigures, bool]:
        ring = self._ring
        raw: dict[str, tuple[int, float, float, float, float, float]] = {}
        numeric = self._numeric
        if numeric.m:
            for spec, figures in zip(numeric.specs, self._numeric_block_drift(), strict=True):
                raw[spec.name] = figures
        categorical = self._categorical
        if categorical.m:
            for spec, figures in zip(
                categorical.specs, self._categorical_block_drift(), strict=True
            ):
                raw[spec.name] = figures
        output_counts = ring.window("output")[:-1]
        if self._output_numeric is not None:
            output_sums = ring.window("output_sums")[:-1]
            output = self._numeric_drift(self._output_numeric, output_counts, output_sums)
        else:
            assert self._output_categorical is not None
            output = self._categorical_drift(
                self._output_categorical.reference_counts, output_counts
            )
        names = [spec.name for spec in self.config.features]
        pvalues = [raw[name][5] for name in names] + [output[5]]
        flags = benjamini_hochberg(pvalues, self.config.drift_fdr)
        drift = {name: DriftFigures(*raw[name], drifted=flags[i]) for i, name in enumerate(names)}
        return drift, DriftFigures(*output, drifted=flags[-1]), any(flags)

    def _numeric_block_drift(self) -> list[tuple[int, float, float, float, float, float]]:
        """:meth:`_numeric_drift` of every numeric feature at once (row-wise statistics on
        the block's (features, bins) matrices; the same figures, a few numpy calls)."""
        block = self._numeric
        counts, sums = block.window_rows(self._ring)
        reference = block.reference_counts
        statistics = np.stack(
            [
                psi_rows(reference, counts),
                jensen_shannon_rows(reference, counts),
                ks_rows(reference, counts),
                wasserstein_rows(reference, block.reference_sums, counts, sums, block.scales),
                chi2_pvalue_rows(reference, counts),
            ],
            axis=1,
        )
        return self._guarded_rows(counts.sum(axis=1), statistics)

    def _categorical_block_drift(self) -> list[tuple[int, float, float, float, float, float]]:
        """:meth:`_categorical_drift` of every categorical feature at once (row-wise statistics
        on zero-padded (features, bins) matrices: padding adds nothing to PSI, JS or chi-square)."""
        block = self._categorical
        counts = block.window_rows(self._ring)
        reference = block.reference_counts
        nan = np.full(block.m, NAN)
        statistics = np.stack(
            [
                psi_rows(reference, counts),
                jensen_shannon_rows(reference, counts),
                nan,
                nan,
                chi2_pvalue_rows(reference, counts),
            ],
            axis=1,
        )
        return self._guarded_rows(counts.sum(axis=1), statistics)

    def _guarded_rows(
        self, samples: FloatArray, statistics: FloatArray
    ) -> list[tuple[int, float, float, float, float, float]]:
        """One ``(samples, psi, js, ks, wasserstein, chi2 p)`` per row; NaN figures where the
        window holds fewer than ``min_samples`` values."""
        enough = (samples >= self.config.min_samples) & (samples > 0)
        if not enough.all():
            statistics[~enough] = NAN
        return [
            (int(n), *values)
            for n, values in zip(samples.tolist(), statistics.tolist(), strict=True)
        ]

    def _numeric_drift(
        self, binning: NumericBinning, counts: FloatArray, sums: FloatArray
    ) -> tuple[int, float, float, float, float, float]:
        samples = int(counts.sum())
        if samples < self.config.min_samples or samples == 0:
            return samples, NAN, NAN, NAN, NAN, NAN
        reference = binning.reference_counts
        return (
            samples,
            binning.psi(counts),
            jensen_shannon(reference, counts),
            binning.ks(counts),
            binning.wasserstein(counts, sums),
            chi2_pvalue(reference, counts),
        )

    def _categorical_drift(
        self, reference: FloatArray, counts: FloatArray
    ) -> tuple[int, float, float, float, float, float]:
        samples = int(counts.sum())
        if samples < self.config.min_samples or samples == 0:
            return samples, NAN, NAN, NAN, NAN, NAN
        return (
            samples,
            psi(reference, counts),
            jensen_shannon(reference, counts),
            NAN,
            NAN,
            chi2_pvalue(reference, counts),
        )

    # ------------------------------------------------------------------ checkpoints

    def to_checkpoint(self) -> dict[str, Any]:
        """All state as plain JSON-able data (dicts, lists, numbers, strings)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "ring": self._ring.to_data(),
            "totals": {name: array.tolist() for name, array in self._totals.items()},
            "latency": self._latency.to_data(),
            "label_delay": self._label_delay.to_data(),
        }

    @classmethod
    def from_checkpoint(
        cls, config: MonitorConfig, reference: ReferenceData, data: Mapping[str, Any]
    ) -> ModelMonitor:
        """A monitor for ``config``/``reference`` with the state saved by :meth:`to_checkpoint`.

        Raises ValueError when the checkpoint does not fit the configuration (other features,
        classes, bins or window): start a fresh monitor in that case.
        """
        monitor = cls(config, reference)
        if data.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint format {data.get('format')!r} is not {CHECKPOINT_FORMAT}")
        ring_data = data["ring"]
        if (
            int(ring_data["n_buckets"]) != config.n_buckets
            or float(ring_data["bucket_seconds"]) != config.bucket_seconds
        ):
            raise ValueError("checkpoint window (buckets) differs from the configuration")
        arrays = dict(ring_data["arrays"])
        if (STATISTIC in arrays) != (STATISTIC in monitor._ring.shapes):
            # Saved before multivariate drift (or with it, now off): load the rest; its
            # window starts empty (or is dropped).
            if arrays.pop(STATISTIC, None) is None:
                arrays[STATISTIC] = np.zeros((config.n_buckets, 3)).tolist()
            ring_data = {**ring_data, "arrays": arrays}
        for name, shape in monitor._ring.shapes.items():
            if name.startswith("segment_") and name not in arrays:
                # Saved before segments: their windows start empty.
                arrays[name] = np.zeros((config.n_buckets, *shape)).tolist()
                ring_data = {**ring_data, "arrays": arrays}
        if LOSS in monitor._ring.shapes and LOSS not in arrays:
            # Saved before the loss model: load the rest; the estimate's window starts empty.
            arrays[LOSS] = np.zeros((config.n_buckets, 3)).tolist()
            ring_data = {**ring_data, "arrays": arrays}
        monitor._ring = BucketRing.from_data(ring_data, monitor._ring.shapes)
        totals = data["totals"]
        if set(totals) != set(monitor._totals):
            raise ValueError("checkpoint totals do not match the configuration")
        for name, values in totals.items():
            array = np.asarray(values, dtype=np.float64)
            if array.size == 0 == monitor._totals[name].size:  # JSON drops zero-length axes
                array = array.reshape(monitor._totals[name].shape)
            if array.shape != monitor._totals[name].shape:
                raise ValueError(f"checkpoint total {name!r} has shape {array.shape}")
            monitor._totals[name] = array
        monitor._latency.load(data["latency"])
        monitor._label_delay.load(data["label_delay"])
        return monitor


# ---------------------------------------------------------------------- column helpers


def _chunk_mask(masks: list[BoolArray | None], start: int, stop: int) -> BoolArray | None:
    """(features, stop - start) matrix of the given per-feature masks, None if there are none."""
    if all(mask is None for mask in masks):
        return None
    matrix = np.zeros((len(masks), stop - start), dtype=bool)
    for j, mask in enumerate(masks):
        if mask is not None:
            matrix[j] = mask[start:stop]
    return matrix


def _float_column(values: Any, column: str, n: int | None) -> FloatArray:
    array = np.asarray(values)
    if array.ndim != 1 or (n is not None and array.shape[0] != n):
        expected = "a 1-d array" if n is None else f"shape ({n},)"
        raise ValueError(f"column {column!r}: expected {expected}, got shape {array.shape}")
    if array.dtype.kind not in "fiub":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"column {column!r}: expected numbers, got {array.dtype}") from None
    return array.astype(np.float64, copy=False)


def _object_values(values: Any, column: str, n: int) -> npt.NDArray[np.object_]:
    array = np.asarray(values)
    if array.ndim != 1 or array.shape[0] != n:
        raise ValueError(f"column {column!r}: expected shape ({n},), got {array.shape}")
    if array.dtype != object:
        array = array.astype(object)
    return array


def _numeric_values(
    values: npt.NDArray[Any], column: str, n: int
) -> tuple[FloatArray, BoolArray | None]:
    """Float64 values and a wrong-type mask (None if every value had a numeric type).

    Numeric dtypes convert directly; an object array goes value by value (slow path: a
    string or other non-number is NaN and marked wrong type); text arrays are all wrong type.
    """
    if values.ndim != 1 or values.shape[0] != n:
        raise ValueError(f"feature {column!r}: expected shape ({n},), got {values.shape}")
    kind = values.dtype.kind
    if kind in "fiub":
        return values.astype(np.float64, copy=False), None
    if kind == "O":
        converted = np.full(n, np.nan)
        wrong = np.zeros(n, dtype=bool)
        for i, value in enumerate(values.tolist()):
            if value is None:
                continue
            if isinstance(value, int | float) and not isinstance(value, bool):
                converted[i] = float(value)
            else:
                wrong[i] = True
        return converted, wrong if wrong.any() else None
    return np.full(n, np.nan), np.ones(n, dtype=bool)
