"""Validation of the batches a monitor consumes, done once per batch.

:class:`BatchChecker` turns a :class:`~modelmeter.engine.batch.PredictionBatch` into a
:class:`CheckedPredictions` and a :class:`~modelmeter.engine.batch.LabelBatch` into a
:class:`CheckedLabels`: the batch with its columns converted (class codes, float64 arrays,
masks), or a ValueError naming the wrong column. Nothing in a checked batch can fail any more,
so a monitor counts it without looking again: :meth:`ModelMonitor.check
<modelmeter.engine.monitor.ModelMonitor.check>` returns the checked batch, and ``observe`` /
``label`` take it as well as the raw one (a checked batch made by another monitor's checker is
validated again). The columns of the batch must not be changed in between.

>>> import numpy as np
>>> from modelmeter.engine.config import MonitorConfig
>>> config = MonitorConfig(task="binary", features=(), classes=("0", "1"))
>>> checker = BatchChecker(config, ClassCodes(config.classes), None)
>>> checked = checker.predictions(
...     PredictionBatch(np.array([1.0, 2.0]), {}, np.array(["1", ""], dtype=object)), None)
>>> checked.predicted.tolist(), checked.valid.tolist()
([1, -2], [True, False])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import numpy.typing as npt

from modelmeter.engine.batch import LabelBatch, PredictionBatch
from modelmeter.engine.columns import float_column, object_values
from modelmeter.engine.config import MonitorConfig
from modelmeter.engine.segments import Segments

__all__ = ["NO_PREDICTION", "BatchChecker", "CheckedLabels", "CheckedPredictions", "ClassCodes"]

NO_PREDICTION = -2  # class code of an errored event ("" or None)
UNKNOWN_CLASS = -1

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class ClassCodes:
    """Class strings -> codes ``0 .. k - 1``; an errored prediction ("" or None) is
    :data:`NO_PREDICTION`."""

    def __init__(self, classes: tuple[str, ...]) -> None:
        self.classes = classes
        self._codes: dict[object, int] = {c: i for i, c in enumerate(classes)}
        self._codes[""] = NO_PREDICTION
        self._codes[None] = NO_PREDICTION

    def index(self, values: npt.NDArray[np.generic], column: str) -> IntArray:
        """Class codes; ValueError naming ``column`` on a value that is not a class."""
        values = object_values(values, column, np.shape(values)[0])
        codes = np.fromiter(
            map(self._codes.get, values, repeat(UNKNOWN_CLASS)), np.int64, values.shape[0]
        )
        unknown = np.flatnonzero(codes == UNKNOWN_CLASS)
        if unknown.size:
            first = int(unknown[0])
            raise ValueError(
                f"column {column!r}: value {values[first]!r} at index {first} is not one of the "
                f"classes {list(self.classes)} ({unknown.size} such values); classes are "
                "strings, convert ints and bools with str()"
            )
        return codes


@dataclass(frozen=True, eq=False)
class CheckedPredictions:
    """A validated prediction batch, ready to count (nothing in it can fail any more)."""

    batch: PredictionBatch
    checker: BatchChecker  # the checker that validated it
    n: int
    timestamps: FloatArray
    predicted: IntArray | FloatArray  # class codes (classification) or values (regression)
    valid: BoolArray  # rows with a prediction
    scores: FloatArray | None
    scored: BoolArray | None  # rows with scores (and a prediction)
    latency: FloatArray | None
    errors: BoolArray | None

    def __len__(self) -> int:
        return self.n


@dataclass(frozen=True, eq=False)
class CheckedLabels:
    """A validated label batch, ready to count."""

    batch: LabelBatch
    checker: BatchChecker
    arrived: FloatArray
    made: FloatArray
    predicted: IntArray | FloatArray
    actual: IntArray | FloatArray
    valid: BoolArray  # rows with a prediction
    segments: IntArray | None  # segment codes (n, segments), None: not given or no segments

    def __len__(self) -> int:
        return int(self.arrived.shape[0])


def check_now(now: float | None) -> None:
    """ValueError unless ``now`` is None or a finite number."""
    if now is not None and not math.isfinite(now):
        raise ValueError(f"now must be a finite number of seconds, got {now}")


class BatchChecker:
    """Validation of a monitor's batches against its configuration."""

    def __init__(
        self, config: MonitorConfig, classes: ClassCodes, segments: Segments | None
    ) -> None:
        self.config = config
        self._classes = classes
        self._k = len(config.classes)
        self._names = tuple(spec.name for spec in config.features)
        self._feature_names = frozenset(self._names)
        self._segments = segments

    def predictions(
        self, batch: PredictionBatch | CheckedPredictions, now: float | None
    ) -> CheckedPredictions:
        """The checked batch; ValueError naming the column that is wrong."""
        check_now(now)
        if isinstance(batch, CheckedPredictions):
            if batch.checker is self:
                return batch
            batch = batch.batch
        timestamps = float_column(batch.timestamps, "timestamps", None)
        n = timestamps.shape[0]
        if not np.isfinite(timestamps).all():
            raise ValueError("column 'timestamps': every timestamp must be a finite number")
        if isinstance(batch.unknown_features, bool) or not (
            isinstance(batch.unknown_features, int | np.integer) and batch.unknown_features >= 0
        ):
            raise ValueError("unknown_features must be an integer >= 0")
        self._check_features(batch, n)
        predicted: IntArray | FloatArray
        if self.config.is_classification:
            predicted = self._classes.index(
                object_values(batch.predictions, "predictions", n), "predictions"
            )
            valid = predicted >= 0
        else:
            predicted = float_column(batch.predictions, "predictions", n)
            if np.isinf(predicted).any():
                raise ValueError("column 'predictions': values must be finite (NaN = errored)")
            valid = ~np.isnan(predicted)
        scores, scored = self._scores(batch.scores, n, valid)
        latency = None
        if batch.latency_seconds is not None:
            latency = float_column(batch.latency_seconds, "latency_seconds", n)
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
        return CheckedPredictions(
            batch, self, n, timestamps, predicted, valid, scores, scored, latency, errors
        )

    def _check_features(self, batch: PredictionBatch, n: int) -> None:
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

    def labels(self, batch: LabelBatch | CheckedLabels, now: float | None) -> CheckedLabels:
        """The checked batch; ValueError naming the column that is wrong."""
        check_now(now)
        if isinstance(batch, CheckedLabels):
            if batch.checker is self:
                return batch
            batch = batch.batch
        arrived = float_column(batch.label_timestamps, "label_timestamps", None)
        n = arrived.shape[0]
        made = float_column(batch.prediction_timestamps, "prediction_timestamps", n)
        for column, values in (("label_timestamps", arrived), ("prediction_timestamps", made)):
            if not np.isfinite(values).all():
                raise ValueError(f"column {column!r}: every timestamp must be a finite number")
        predicted: IntArray | FloatArray
        actual: IntArray | FloatArray
        if self.config.is_classification:
            predicted = self._classes.index(
                object_values(batch.predictions, "predictions", n), "predictions"
            )
            actual = self._classes.index(object_values(batch.labels, "labels", n), "labels")
            if np.any(actual < 0):
                raise ValueError("column 'labels': a label must be one of the classes, not empty")
            valid = predicted >= 0
        else:
            predicted = float_column(batch.predictions, "predictions", n)
            actual = float_column(batch.labels, "labels", n)
            if not np.isfinite(actual).all():
                raise ValueError("column 'labels': regression labels must be finite numbers")
            valid = np.isfinite(predicted)
        codes = None if self._segments is None else self._segments.check(batch.segments, n)
        return CheckedLabels(batch, self, arrived, made, predicted, actual, valid, codes)
