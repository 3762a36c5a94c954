"""The counts of a monitor, their size and their checkpoint.

A monitor's state is a window ring of additive counts (:class:`~modelmeter.engine.windows.
BucketRing`), totals over all time, and the latency and label-delay histograms. Its size in
bytes is known from the shapes before anything is allocated (:class:`StateTooLarge` above a
limit). A checkpoint is plain JSON-able data, format :data:`CHECKPOINT_FORMAT`:
``{"format", "ring", "totals", "latency", "label_delay"}``; statistics added to the engine
after a checkpoint was written start empty when it is loaded (see :meth:`MonitorState.load`).

The totals are the counters a Prometheus merges over collectors (operations, quality codes,
the confusion matrix, and the drift bins, expected outcomes and reconstruction sums of
:data:`ADDED_TOTALS`): they are cumulative for the version's state, so a collector restarted
from its checkpoint (and the operation log after it) continues from the same values.

>>> state = MonitorState(3, 10.0, {"ops": (4,)}, {"ops": (4,)})
>>> state.nbytes, sorted(state.to_checkpoint())
(128, ['format', 'label_delay', 'latency', 'ring', 'totals'])
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

__all__ = ["ADDED_TOTALS", "CHECKPOINT_FORMAT", "MonitorState", "StateTooLarge"]

CHECKPOINT_FORMAT = 1

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
    """Ring, totals and histograms of the given shapes (float64 counts).

    Raises :class:`StateTooLarge` when ring and totals would need more than ``max_bytes``.
    """

    def __init__(
        self,
        n_buckets: int,
        bucket_seconds: float,
        shapes: Shapes,
        total_shapes: Shapes,
        max_bytes: int | None = None,
    ) -> None:
        per_bucket = sum(int(np.prod(shape)) for shape in shapes.values())
        totals = sum(int(np.prod(shape)) for shape in total_shapes.values())
        #: bytes of the window ring and totals (float64), known before they are allocated
        self.nbytes = 8 * (n_buckets * per_bucket + totals)
        if max_bytes is not None and self.nbytes > max_bytes:
            raise StateTooLarge(self.nbytes, max_bytes)
        self.ring = BucketRing(n_buckets, bucket_seconds, shapes)
        self.totals: dict[str, FloatArray] = {
            name: np.zeros(shape) for name, shape in total_shapes.items()
        }
        self.latency = CumulativeHistogram(LATENCY_BOUNDS)
        self.label_delay = CumulativeHistogram(LABEL_DELAY_BOUNDS)

    def to_checkpoint(self) -> dict[str, Any]:
        """All state as plain JSON-able data (dicts, lists, numbers, strings)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "ring": self.ring.to_data(),
            "totals": {name: array.tolist() for name, array in self.totals.items()},
            "latency": self.latency.to_data(),
            "label_delay": self.label_delay.to_data(),
        }

    def load(self, data: Mapping[str, Any]) -> None:
        """Replace the counts with a checkpoint's; ValueError if it does not fit the shapes
        (other features, classes, bins or window).

        Checkpoints written before multivariate drift, segments or the loss estimate existed
        load with those windows empty, and those written before the totals of
        :data:`ADDED_TOTALS` with those totals at 0; one with multivariate drift loads into a
        monitor without it (that window and total are dropped).
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
        if STATISTIC in arrays and STATISTIC not in shapes:
            del arrays[STATISTIC]
        for name, shape in shapes.items():
            added_later = name in (STATISTIC, LOSS) or name.startswith("segment_")
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
        self.totals.update(restored)
