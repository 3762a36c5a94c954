"""Operational figures: latency and label-delay histograms with Prometheus semantics.

A value ``v`` falls in the first bucket whose bound ``b`` satisfies ``v <= b`` (the last
bucket is +Inf). The histograms are cumulative over the monitor's life, like Prometheus
histograms; counts are stored per bucket, not cumulatively.

>>> import numpy as np
>>> histogram = CumulativeHistogram((0.1, 1.0))
>>> histogram.add(np.array([0.05, 0.1, 0.5, 7.0]))
>>> histogram.value()
Histogram(bounds=(0.1, 1.0), counts=(2, 1, 1), sum=7.65, count=4)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from modelmeter.engine.snapshot import Histogram

__all__ = ["LABEL_DELAY_BOUNDS", "LATENCY_BOUNDS", "CumulativeHistogram"]

LATENCY_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Fine enough to read a delay of seconds (streaming feedback) as well as of days (batch labels).
LABEL_DELAY_BOUNDS = (
    1.0,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    900.0,
    1800.0,
    3600.0,
    7200.0,
    21600.0,
    43200.0,
    86400.0,
    259200.0,
    604800.0,
)

FloatArray = npt.NDArray[np.float64]


class CumulativeHistogram:
    """Counts of values per bucket, their sum and their number, over all time."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(float(b) for b in bounds)
        self._bounds = np.asarray(self.bounds)
        self._counts = np.zeros(len(self.bounds) + 1, dtype=np.int64)
        self._sum = 0.0

    def add(self, values: FloatArray) -> None:
        """Count finite values (NaN values are ignored)."""
        values = values[~np.isnan(values)]
        if values.size == 0:
            return
        index = np.searchsorted(self._bounds, values, side="left")
        self._counts += np.bincount(index, minlength=self._counts.size)
        self._sum += float(values.sum())

    def value(self) -> Histogram:
        """The histogram as a frozen value."""
        counts = tuple(int(c) for c in self._counts)
        return Histogram(bounds=self.bounds, counts=counts, sum=self._sum, count=sum(counts))

    def to_data(self) -> dict[str, Any]:
        """JSON-able state."""
        return {"counts": self._counts.tolist(), "sum": self._sum}

    def load(self, data: Mapping[str, Any]) -> None:
        """Restore state saved with :meth:`to_data`."""
        counts = np.asarray(data["counts"], dtype=np.int64)
        if counts.shape != self._counts.shape:
            raise ValueError(
                f"checkpoint histogram has {counts.size} buckets, expected {self._counts.size}"
            )
        self._counts = counts
        self._sum = float(data["sum"])
