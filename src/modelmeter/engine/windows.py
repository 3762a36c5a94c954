"""A sliding time window kept as a ring of buckets of additive counts.

Time is cut into buckets of ``bucket_seconds``; bucket number ``b = floor(t / bucket_seconds)``
lives in slot ``b % n_buckets``. The ring covers the ``n_buckets`` newest buckets up to its
*head*: moving the head forward clears the slots of the buckets that fall out, so expiry
costs O(buckets), never O(events), and memory is fixed by the statistic shapes.

Events older than the window get slot ``n_buckets`` ("outside"): they still count in the
totals that :meth:`BucketRing.add` returns, never in the window. Events newer than the head
(clock skew) are put in the head bucket.

>>> import numpy as np
>>> ring = BucketRing(n_buckets=3, bucket_seconds=10.0, shapes={"hits": (2,)})
>>> ring.advance(25.0)
>>> slots = ring.slots(np.array([1.0, 21.0, 24.0, 99.0]))
>>> total = ring.add("hits", slots, np.array([0, 1, 1, 0]))
>>> ring.window("hits").tolist(), total.tolist()
([2.0, 2.0], [2.0, 2.0])
>>> ring.advance(55.0)  # buckets 3, 4, 5 remain: the events of bucket 2 have expired
>>> ring.window("hits").tolist()
[0.0, 0.0]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["BucketRing"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class BucketRing:
    """Named arrays of counts (float64), one copy per time bucket, summed over the window.

    Parameters
    ----------
    n_buckets
        Number of buckets in the window.
    bucket_seconds
        Width of one bucket.
    shapes
        Name -> shape of each statistic (e.g. ``{"confusion": (k, k)}``).
    """

    def __init__(
        self, n_buckets: int, bucket_seconds: float, shapes: Mapping[str, tuple[int, ...]]
    ) -> None:
        if n_buckets < 1:
            raise ValueError(f"n_buckets must be >= 1, got {n_buckets}")
        if not bucket_seconds > 0:
            raise ValueError(f"bucket_seconds must be > 0, got {bucket_seconds}")
        self.n_buckets = n_buckets
        self.bucket_seconds = float(bucket_seconds)
        self._shapes = {name: tuple(int(s) for s in shape) for name, shape in shapes.items()}
        self._data: dict[str, FloatArray] = {
            name: np.zeros((n_buckets, *shape)) for name, shape in self._shapes.items()
        }
        self._sizes = {name: int(np.prod(shape, dtype=np.int64)) for name, shape in shapes.items()}
        self._flat = {
            name: a.reshape(n_buckets, self._sizes[name]) for name, a in self._data.items()
        }
        self._head: int | None = None

    @property
    def head(self) -> int | None:
        """Number of the newest bucket (None until the ring has seen a time)."""
        return self._head

    @property
    def shapes(self) -> Mapping[str, tuple[int, ...]]:
        """Name -> shape of every statistic."""
        return dict(self._shapes)

    def bucket_of(self, time: float) -> int:
        """The bucket number of a time."""
        return math.floor(time / self.bucket_seconds)

    def advance(self, time: float) -> None:
        """Move the head to the bucket of ``time`` (never backwards), expiring old buckets."""
        if not math.isfinite(time):
            raise ValueError(f"time must be a finite number of seconds, got {time}")
        self.advance_to_bucket(self.bucket_of(time))

    def advance_to_bucket(self, bucket: int) -> None:
        """Move the head to bucket number ``bucket`` (never backwards)."""
        head = self._head
        if head is not None and bucket <= head:
            return
        if head is None or bucket - head >= self.n_buckets:
            for array in self._data.values():
                array.fill(0.0)
        else:
            cleared = np.arange(head + 1, bucket + 1) % self.n_buckets
            for array in self._data.values():
                array[cleared] = 0.0
        self._head = bucket

    def slots(self, times: FloatArray) -> IntArray:
        """Slot of each time: its ring slot, or ``n_buckets`` when older than the window.

        Times newer than the head go to the head bucket. The head must be set (advance first).
        """
        head = self._head
        if head is None:
            raise ValueError("the ring has no head yet: call advance(time) first")
        buckets = (times // self.bucket_seconds).astype(np.int64)
        np.minimum(buckets, head, out=buckets)
        slots: IntArray = buckets % self.n_buckets
        old = buckets <= head - self.n_buckets
        if old.any():
            slots[old] = self.n_buckets
        return slots

    def add(
        self,
        name: str,
        slots: IntArray,
        index: IntArray | int = 0,
        weights: FloatArray | None = None,
    ) -> FloatArray:
        """Count events into statistic ``name`` and return what they add over all time.

        Each event ``i`` adds ``weights[..., i]`` (default 1) at flat position
        ``index[..., i]`` (or at the one position ``index``) of the statistic, in its slot.
        ``index`` may be 2-d, shape (m, n): m positions per event (e.g. one per feature).
        The return value (flat, like the statistic) includes the events older than the
        window, for cumulative totals.
        """
        size = self._sizes[name]
        flat = self._flat[name]
        n = slots.shape[0]
        if n == 0:
            return np.zeros(size)
        first = int(slots[0])
        if n == 1 or (slots.min() == first and slots.max() == first):
            if isinstance(index, int):
                total = np.zeros(size)
                total[index] = float(n) if weights is None else float(weights.sum())
            else:
                w = None if weights is None else weights.ravel()
                total = np.bincount(index.ravel(), weights=w, minlength=size).astype(
                    np.float64, copy=False
                )
            if first < self.n_buckets:
                flat[first] += total
            return total
        w = None if weights is None else weights.ravel()
        counts = np.bincount(
            (slots * size + index).ravel(), weights=w, minlength=(self.n_buckets + 1) * size
        ).reshape(self.n_buckets + 1, size)
        flat += counts[: self.n_buckets]
        summed: FloatArray = counts.sum(axis=0).astype(np.float64, copy=False)
        return summed

    def add_dense(self, name: str, slot: int, values: FloatArray) -> None:
        """Add a whole array (shaped like the statistic) to one slot."""
        if 0 <= slot < self.n_buckets:
            self._data[name][slot] += values

    def window(self, name: str) -> FloatArray:
        """Sum of statistic ``name`` over the buckets of the window."""
        total: FloatArray = self._data[name].sum(axis=0)
        return total

    def to_data(self) -> dict[str, Any]:
        """Plain JSON-able state (lists and numbers); :meth:`from_data` restores it exactly."""
        return {
            "n_buckets": self.n_buckets,
            "bucket_seconds": self.bucket_seconds,
            "head": self._head,
            "arrays": {name: array.tolist() for name, array in self._data.items()},
        }

    @classmethod
    def from_data(
        cls, data: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]]
    ) -> BucketRing:
        """Rebuild a ring saved with :meth:`to_data`; ValueError if it does not fit ``shapes``."""
        ring = cls(int(data["n_buckets"]), float(data["bucket_seconds"]), shapes)
        arrays = data["arrays"]
        if set(arrays) != set(ring._shapes):
            raise ValueError(
                f"checkpoint ring has statistics {sorted(arrays)}, expected {sorted(ring._shapes)}"
            )
        for name, values in arrays.items():
            array = np.asarray(values, dtype=np.float64)
            if array.size == 0 == ring._data[name].size:
                # JSON cannot carry a zero-length axis: (n, 0, 2).tolist() reads back as (n, 0).
                array = array.reshape(ring._data[name].shape)
            if array.shape != ring._data[name].shape:
                raise ValueError(
                    f"checkpoint statistic {name!r} has shape {array.shape}, expected "
                    f"{ring._data[name].shape}; was the configuration changed?"
                )
            ring._data[name] = array
            ring._flat[name] = array.reshape(ring.n_buckets, ring._sizes[name])
        head = data["head"]
        ring._head = None if head is None else int(head)
        return ring
