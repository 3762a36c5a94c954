"""The collector's in-memory state of one registered model: spec, monitors, replicas.

A :class:`ModelEntry` holds one :class:`~modelmeter.engine.ModelMonitor` per *live* version.
The :class:`~modelmeter.service.hub.Hub` decides when a version starts and retires; the entry
only keeps the bookkeeping consistent (monitor, log position, checkpoint position, cached
snapshot, live sample, refit status and last-seen time always come and go together).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from modelmeter.engine import ModelMonitor, MonitorConfig, ReferenceData, Snapshot
from modelmeter.service.ingest import Schema
from modelmeter.service.shift import LiveSample, ShiftStatus
from modelmeter.spec import ModelSpec

__all__ = ["ModelEntry", "ReplicaUsage", "fingerprint"]


def fingerprint(document: bytes, reference: bytes | None) -> bytes:
    """Identity of a registration: the spec document and the reference bytes."""
    return hashlib.sha256(document + b"\0" + (reference or b"")).digest()


@dataclass
class ReplicaUsage:
    """Last resource report of one serving replica, and the drops its SDK reported."""

    version: str
    cpu_ratio: float | None
    memory_bytes: float | None
    seen: float
    dropped: dict[str, int] = field(default_factory=dict)


@dataclass
class ModelEntry:
    """A registered model in memory: spec, engine config, reference and one monitor per live
    version."""

    name: str
    spec: ModelSpec
    config: MonitorConfig
    reference: ReferenceData
    schema: Schema
    created: float
    updated: float
    fingerprint: bytes  # of the spec and reference bytes: an identical PUT keeps the state
    monitors: dict[str, ModelMonitor] = field(default_factory=dict)
    applied_seq: dict[str, int] = field(default_factory=dict)
    checkpoint_seq: dict[str, int] = field(default_factory=dict)
    last_seen: dict[str, float] = field(default_factory=dict)
    replicas: dict[str, ReplicaUsage] = field(default_factory=dict)
    pending_labels: int = 0  # predictions waiting for a label
    waiting_labels: int = 0  # labels waiting for a prediction
    snapshots: dict[str, tuple[tuple[int, int], Snapshot]] = field(default_factory=dict)
    #: shift-aware CBPE (modelmeter.service.shift): per live version its live sample (versions
    #: that can refit, while MODELMETER_SHIFT_REFIT_INTERVAL > 0) and its refits' outcome
    samples: dict[str, LiveSample] = field(default_factory=dict)
    shift_status: dict[str, ShiftStatus] = field(default_factory=dict)

    def snapshot(self, version: str, now: float) -> Snapshot:
        """``snapshot(now)`` of a version, reused while neither its state nor the window's
        head bucket changed (the window moves in whole buckets, aligned to multiples of
        ``bucket_seconds``, so the figures are identical)."""
        key = (self.applied_seq[version], int(now // self.config.bucket_seconds))
        cached = self.snapshots.get(version)
        if cached is not None and cached[0] == key:
            return cached[1]
        snap = self.monitors[version].snapshot(now)
        self.snapshots[version] = (key, snap)
        return snap

    def monitor(self, version: str) -> ModelMonitor:
        """The monitor of ``version``, started empty if the version is new."""
        found = self.monitors.get(version)
        if found is None:
            found = self.monitors[version] = ModelMonitor(self.config, self.reference)
            self.applied_seq[version] = 0
            self.checkpoint_seq[version] = 0
            self.last_seen.setdefault(version, 0.0)
        return found

    def retire(self, version: str) -> None:
        """Forget the in-memory state of ``version`` (the hub has retired it in the store)."""
        tables = (
            self.monitors,
            self.applied_seq,
            self.checkpoint_seq,
            self.snapshots,
            self.samples,
            self.shift_status,
        )
        for table in tables:
            table.pop(version, None)
        self.last_seen.pop(version, None)

    @property
    def last_prediction(self) -> float | None:
        """When a prediction of any live version was last received, if known."""
        seen = max(self.last_seen.values(), default=0.0)
        return seen if seen > 0 else None
