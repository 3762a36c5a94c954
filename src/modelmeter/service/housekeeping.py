"""Housekeeping of the hub: checkpoints, expiry by TTL and idle time, the store's budget.

:class:`Housekeeping` is the part of :class:`~modelmeter.service.hub.Hub` that the
collector's background loop calls: it writes checkpoints of the monitors that changed, expires
stored events past ``MODELMETER_LABEL_TTL`` (and idle versions and replicas), and keeps the
store within ``MODELMETER_STORE_BUDGET``; every event that expires unjoined is counted.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING

from modelmeter.service.entries import ModelEntry
from modelmeter.service.state import StoreState
from modelmeter.settings import Settings
from modelmeter.store import Expired, Store

__all__ = ["Housekeeping"]

log = logging.getLogger("modelmeter.collector")


class Housekeeping:
    """The housekeeping half of the hub (mixed into :class:`~modelmeter.service.hub.Hub`,
    which provides the state and the version lifecycle declared here)."""

    settings: Settings
    store: Store
    lock: threading.RLock
    models: dict[str, ModelEntry]
    expired_counts: dict[tuple[str, str, str], int]

    if TYPE_CHECKING:

        def _retire(self, entry: ModelEntry, version: str, reason: str) -> None: ...

        def _expire_replicas(self, entry: ModelEntry, now: float) -> None: ...

    def checkpoint(self) -> int:
        """Checkpoint every monitor that changed since its last checkpoint; returns how many."""
        written = 0
        with self.lock:
            for entry in self.models.values():
                for version, monitor in entry.monitors.items():
                    seq = entry.applied_seq[version]
                    if seq <= entry.checkpoint_seq[version]:
                        continue
                    data = json.dumps(monitor.to_checkpoint()).encode()
                    with self.store.transaction() as tx:
                        tx.put_checkpoint(entry.name, version, seq, data)
                    entry.checkpoint_seq[version] = seq
                    written += 1
        return written

    def expire(self, now: float) -> Expired:
        """Drop predictions and labels older than the TTL, retire idle versions."""
        with self.lock:
            with self.store.transaction() as tx:
                expired = tx.expire(now - self.settings.label_ttl_seconds)
            self._count_expired(expired, "ttl")
            idle = self.settings.version_idle_seconds
            for entry in self.models.values():
                self._expire_replicas(entry, now)
                if idle > 0:
                    for version in [v for v, t in entry.last_seen.items() if 0 < t < now - idle]:
                        self._retire(entry, version, "idle")
        return expired

    def enforce_budget(self) -> StoreState:
        """Keep the store within MODELMETER_STORE_BUDGET (the oldest stored events expire
        early, counted), its file near the pages in use and its WAL within
        MODELMETER_MAX_WAL_BYTES; the usage after."""
        budget = self.settings.store_budget_bytes
        with self.lock:
            self.store.reclaim()
            usage = self.store.usage()
            if usage.wal_bytes > self.settings.max_wal_bytes:
                self.store.truncate_wal()
                usage = self.store.usage()
            rounds = 0
            while budget and usage.total_bytes > budget * 0.95 and rounds < 20:
                with self.store.transaction() as tx:
                    expired = tx.expire_oldest(0.05)
                self._count_expired(expired, "budget")
                self.store.truncate_wal()
                usage = self.store.usage()
                rounds += 1
            if rounds:
                log.warning(
                    "store at its budget (MODELMETER_STORE_BUDGET=%d bytes): the oldest stored "
                    "events expired early; %d bytes in use now",
                    budget,
                    usage.total_bytes,
                )
        return StoreState(usage.database_bytes, usage.wal_bytes, budget)

    def _count_expired(self, expired: Expired, reason: str) -> None:
        """Count what expired unjoined, and take it off the models' waiting counts (kept
        incrementally: a recount would scan every stored prediction under the lock)."""
        for kind, per_model in (("predictions", expired.predictions), ("labels", expired.labels)):
            for model, count in per_model.items():
                if count:
                    self.expired_counts[(model, kind, reason)] += count
        for model, count in expired.predictions.items():
            if (entry := self.models.get(model)) is not None:
                entry.pending_labels = max(0, entry.pending_labels - count)
        for model, count in expired.labels.items():
            if (entry := self.models.get(model)) is not None:
                entry.waiting_labels = max(0, entry.waiting_labels - count)
