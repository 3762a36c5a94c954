"""The hub's state at scrape time: replica resources, store size, one model's scrape state.

:mod:`modelmeter.scrape` reads these through its ``ResourceFigures`` and ``StoreFigures``
protocols; it knows nothing of the service.

>>> StoreState(4096, 1024).budget_bytes
0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from modelmeter.scrape import ModelState
from modelmeter.service.entries import ModelEntry

__all__ = ["ServingResources", "StoreState", "model_state"]


@dataclass(frozen=True)
class ServingResources:
    """The last resource report of one serving replica (sent by the SDK).

    ``cpu_ratio``: CPU time per second, 1.0 = one full core; ``memory_bytes``: RSS.
    """

    cpu_ratio: float
    memory_bytes: float


@dataclass(frozen=True)
class StoreState:
    """The collector's store at scrape time: bytes in use and the budget (0 = none)."""

    database_bytes: int
    wal_bytes: int
    budget_bytes: int = 0


def model_state(entry: ModelEntry, now: float) -> ModelState:
    """What /metrics exports of one model: a snapshot per live version, its replicas'
    last reports and drops (call under the hub's lock)."""
    nan = math.nan
    resources = {
        (u.version, replica): ServingResources(
            nan if u.cpu_ratio is None else u.cpu_ratio,
            nan if u.memory_bytes is None else u.memory_bytes,
        )
        for replica, u in entry.replicas.items()
    }
    dropped = {
        (replica, kind): count
        for replica, u in entry.replicas.items()
        for kind, count in u.dropped.items()
    }
    return ModelState(
        entry.name,
        entry.spec,
        {v: entry.snapshot(v, now) for v in entry.monitors},
        entry.pending_labels,
        resources,
        entry.waiting_labels,
        entry.last_prediction,
        dropped,
    )
