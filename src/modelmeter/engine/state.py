"""The counts of a monitor, their size and their checkpoint.

A monitor's state is a window ring of additive counts (:class:`~modelmeter.engine.windows.
BucketRing`), a second ring for realized performance (the *performance ring*: the statistics
counted by label arrival, :data:`PERFORMANCE`, in the performance window, often longer than
the window), totals over all time, and the latency and label-delay histograms. Both rings
move to the same time (:meth:`MonitorState.advance`). The state's size in bytes is known from
the shapes before anything is allocated (:class:`StateTooLarge` above a limit). A checkpoint
is plain JSON-able data, format :data:`CHECKPOINT_FORMAT`: ``{"format", "ring",
"performance_ring", "totals", "latency", "label_delay"}``; statistics added to the engine
after a checkpoint was written start empty when it is loaded (see :meth:`MonitorState.load`).

The totals are the counters a Prometheus merges over collectors (operations, quality codes,
the confusion matrix, and the drift bins, expected outcomes and reconstruction sums of
:data:`ADDED_TOTALS`): they are cumulative for the version's state, so a collector restarted
from its checkpoint (and the operation log after it) continues from the same values.

>>> state = MonitorState(3, 10.0, {"ops": (4,)}, {"ops": (4,)})
>>> state.nbytes, sorted(state.to_checkpoint())
(128, ['format', 'label_delay', 'latency', 'performance_ring', 'ring', 'totals'])
>>> daily = MonitorState(3, 10.0, {"ops": (4,)}, {"ops": (4,)},
...                      performance_shapes={"labels": (1,)}, performance_buckets=(25, 3600.0))
>>> daily.nbytes, daily.performance.n_buckets  # 8 * (3 * 4 + 4 + 25 * 1)
(328, 25)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from modelmeter.engine.loss import LOSS
from modelmeter.engine.multivariate import STATISTIC
from modelmeter.engine.operations import LABEL_DELAY_BOUNDS, LATENCY_BOUNDS, CumulativeHistogram
from modelmeter.engine.windows import BucketRing

__all__ = [
    "ADDED_TOTALS",
    "CHECKPOINT_FORMAT",
    "EXPECTED_TERMS",
    "LABELS",
    "PERFORMANCE",
    "PERFORMANCE_RING",
    "MonitorState",
    "StateTooLarge",
]

CHECKPOINT_FORMAT = 1

#: The window ring's band statistic of the expected outcomes, shape (2, k, k)
#: (:func:`~modelmeter.engine.bands.band_terms`); checkpoints written before it lack it.
EXPECTED_TERMS = "expected_terms"
#: The performance ring's count of labels with a prediction (shape (1,)), by arrival.
LABELS = "labels"
#: The realized statistics, counted by label arrival: the performance ring holds them (with
#: :data:`LABELS`); checkpoints written before it had them in the window ring.
PERFORMANCE = frozenset({"confusion", "regression", "segment_confusion", "segment_regression"})
#: The checkpoint key of the performance ring.
PERFORMANCE_RING = "performance_ring"

#: Totals that checkpoints written before them lack (they load as 0, counting from then on):
#: bin counts of the features and of the output, expected outcomes, reconstruction sums.
ADDED_TOTALS = frozenset({"numeric_bins", "categorical_bins", "output", "expected", STATISTIC})

FloatArray = npt.NDArray[np.float64]
Shapes = Mapping[str, tuple[int, ...]]


class StateTooLarge(ValueError):
    """The window state of a configuration would exceed the bytes allowed for it."""

    def __init__(self, required: int, limit: int) -> None:
        super().__init__(
            f"the window state needs {required} bytes, above the limit of {limit} bytes; use "
            "fewer features, categories or drift bins, or fewer, longer buckets"
        )
        self.required = required
        self.limit = limit


class MonitorState:
    """Rings, totals and histograms of the given shapes (float64 counts).

    ``shapes`` are the window ring's statistics (``n_buckets`` of ``bucket_seconds``),
    ``performance_shapes`` the performance ring's, in ``performance_buckets`` (``(n_buckets,
    bucket_seconds)``; None: the window's). Raises :class:`StateTooLarge` when the rings and
    totals would need more than ``max_bytes``.
    """

    def __init__(
        self,
        n_buckets: int,
        bucket_seconds: float,
        shapes: Shapes,
        total_shapes: Shapes,
        max_bytes: int | None = None,
        *,
        performance_shapes: Shapes | None = None,
        performance_buckets: tuple[int, float] | None = None,
    ) -> None:
        performance_shapes = performance_shapes or {}
        perf_buckets, perf_seconds = performance_buckets or (n_buckets, bucket_seconds)
        per_bucket = sum(int(np.prod(shape)) for shape in shapes.values())
        per_perf_bucket = sum(int(np.prod(shape)) for shape in performance_shapes.values())
        totals = sum(int(np.prod(shape)) for shape in total_shapes.values())
        #: bytes of the rings and totals (float64), known before they are allocated
        self.nbytes = 8 * (n_buckets * per_bucket + perf_buckets * per_perf_bucket + totals)
        if max_bytes is not None and self.nbytes > max_bytes:
            raise StateTooLarge(self.nbytes, max_bytes)
        self.ring = BucketRing(n_buckets, bucket_seconds, shapes)
        #: the performance ring: realized statistics by label arrival (:data:`PERFORMANCE`)
        self.performance = BucketRing(perf_buckets, perf_seconds, performance_shapes)
        self.totals: dict[str, FloatArray] = {
            name: np.zeros(shape) for name, shape in total_shapes.items()
        }
        self.latency = CumulativeHistogram(LATENCY_BOUNDS)
        self.label_delay = CumulativeHistogram(LABEL_DELAY_BOUNDS)

    def advance(self, time: float) -> None:
        """Move both rings to the bucket of ``time`` (never backwards), expiring old buckets."""
        self.ring.advance(time)
        self.performance.advance(time)

    def to_checkpoint(self) -> dict[str, Any]:
        """All state as plain JSON-able data (dicts, lists, numbers, strings)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "ring": self.ring.to_data(),
            PERFORMANCE_RING: self.performance.to_data(),
            "totals": {name: array.tolist() for name, array in self.totals.items()},
            "latency": self.latency.to_data(),
            "label_delay": self.label_delay.to_data(),
        }

    def load(self, data: Mapping[str, Any]) -> None:
        """Replace the counts with a checkpoint's; ValueError if it does not fit the shapes
        (other features, classes, bins or window).

        Checkpoints written before multivariate drift, segments, the loss estimate or the
        band statistic of the estimate (:data:`EXPECTED_TERMS`) existed load with those
        windows empty (the estimate's band is then too narrow until the window has turned
        over: the expected counts loaded have no terms), and those written before the totals
        of :data:`ADDED_TOTALS` with those totals at 0; one with multivariate drift loads
        into a monitor without it (that window and total are dropped).

        A checkpoint written before the performance ring (no ``"performance_ring"``) has the
        realized statistics in its window ring: they move to the performance ring when that
        ring has the window's buckets (the default), with the count of :data:`LABELS` taken
        from them; otherwise the performance window starts empty.
        """
        if data.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint format {data.get('format')!r} is not {CHECKPOINT_FORMAT}")
        ring = self.ring
        shapes = ring.shapes
        n_buckets = ring.n_buckets
        ring_data = data["ring"]
        if (
            int(ring_data["n_buckets"]) != n_buckets
            or float(ring_data["bucket_seconds"]) != ring.bucket_seconds
        ):
            raise ValueError("checkpoint window (buckets) differs from the configuration")
        arrays = dict(ring_data["arrays"])
        performance_data = data.get(PERFORMANCE_RING)
        if performance_data is None:  # written before the performance ring
            moved = {name: arrays.pop(name) for name in PERFORMANCE if name in arrays}
            performance_data = self._performance_of_old(ring_data, moved)
        performance = self._load_performance(performance_data)
        if STATISTIC in arrays and STATISTIC not in shapes:
            del arrays[STATISTIC]
        for name, shape in shapes.items():
            added_later = name in (STATISTIC, LOSS, EXPECTED_TERMS) or name.startswith("segment_")
            if added_later and name not in arrays:
                arrays[name] = np.zeros((n_buckets, *shape)).tolist()
        loaded = BucketRing.from_data({**ring_data, "arrays": arrays}, shapes)
        totals = dict(data["totals"])
        if STATISTIC in totals and STATISTIC not in self.totals:
            del totals[STATISTIC]
        for name, array in self.totals.items():
            if name in ADDED_TOTALS and name not in totals:
                totals[name] = np.zeros(array.shape)
        if set(totals) != set(self.totals):
            raise ValueError("checkpoint totals do not match the configuration")
        restored: dict[str, FloatArray] = {}
        for name, values in totals.items():
            array = np.asarray(values, dtype=np.float64)
            expected = self.totals[name].shape
            if array.size == 0 == self.totals[name].size:  # JSON drops zero-length axes
                array = array.reshape(expected)
            if array.shape != expected:
                raise ValueError(f"checkpoint total {name!r} has shape {array.shape}")
            restored[name] = array
        self.latency.load(data["latency"])
        self.label_delay.load(data["label_delay"])
        self.ring = loaded
        self.performance = performance
        self.totals.update(restored)

    def _performance_of_old(
        self, ring_data: Mapping[str, Any], moved: Mapping[str, Any]
    ) -> Mapping[str, Any] | None:
        """The performance ring of a checkpoint written before it: the realized statistics
        ``moved`` out of its window ring (``ring_data``), or None when the performance ring
        has other buckets than that ring (it starts empty)."""
        performance = self.performance
        if (
            int(ring_data["n_buckets"]) != performance.n_buckets
            or float(ring_data["bucket_seconds"]) != performance.bucket_seconds
        ):
            return None
        arrays = dict(moved)
        if LABELS in performance.shapes:
            for name, axes in (("confusion", (1, 2)), ("regression", None)):
                if name in moved:
                    values = np.asarray(moved[name], dtype=np.float64)
                    labels = values.sum(axis=axes) if axes else values[:, 0]
                    arrays[LABELS] = labels.reshape(-1, 1).tolist()
        return {**ring_data, "arrays": arrays}

    def _load_performance(self, data: Mapping[str, Any] | None) -> BucketRing:
        """The performance ring of a checkpoint (None: an empty one); ValueError if it does
        not fit."""
        performance = self.performance
        shapes = performance.shapes
        n_buckets = performance.n_buckets
        if data is None:
            return BucketRing(n_buckets, performance.bucket_seconds, shapes)
        if (
            int(data["n_buckets"]) != n_buckets
            or float(data["bucket_seconds"]) != performance.bucket_seconds
        ):
            raise ValueError(
                "checkpoint performance window (buckets) differs from the configuration"
            )
        arrays = dict(data["arrays"])
        for name, shape in shapes.items():
            if name.startswith("segment_") and name not in arrays:
                arrays[name] = np.zeros((n_buckets, *shape)).tolist()
        return BucketRing.from_data({**data, "arrays": arrays}, shapes)
