"""The collector's model state: registered models, their monitors, and the store behind them.

One :class:`Hub` per collector process. A single lock serializes every change: a request's
store transaction and the engine calls it causes happen under the lock, in commit order, so
the operation log replays to exactly the live state (see :mod:`modelmeter.store`). Readers
(``/metrics``, the JSON API) take the same lock for their snapshot, so they never see a
half-applied request.

This is why a collector is **one process**: the engine state lives in its memory, and two
workers would each hold half of it. To scale out, shard models across collectors (each model
sends to one collector); Prometheus sums their counters.

Never silent: every event of a request ends in exactly one of the response's counts
(``accepted``/``matched``, ``duplicates``, ``pending``, ``retired``) or in ``rejected`` with
its index and reason, and in the same outcome of ``modelmeter_ingest_events_total``. The
engine checks each batch *before* the store commits it, so what is acknowledged is what the
engine counts.

Version lifecycle: a model keeps at most ``MODELMETER_MAX_VERSIONS`` live versions. A new
version beyond that retires the least recently seen one (``capacity``); a version without
predictions for ``MODELMETER_VERSION_IDLE`` retires (``idle``); ``DELETE
/v1/models/{model}/versions/{version}`` retires one by hand (``manual``). Retiring drops the
version's window state, live sample and series; its predictions stay in the store until their
TTL, no longer waiting, so a late label for one is answered as ``retired`` and counted, never
applied to another version and never an error. A version that comes back starts from zero.

Changed spec (another fingerprint of spec and reference): the engine state of every live
version restarts from zero (Prometheus sees counter resets); stored predictions and waiting
labels are kept. A later label is applied when its stored prediction still fits the new spec
(its class is still a class; regression stays regression), else rejected with the reason; a
waiting label that no longer fits is rejected when its prediction arrives (counted under
``kind="labels", outcome="rejected"`` and listed in ``rejected_labels``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections import defaultdict
from typing import Any

import orjson

from modelmeter.engine import (
    CheckedPredictions,
    ModelMonitor,
    MonitorConfig,
    ReferenceData,
    StateTooLarge,
)
from modelmeter.metric_table import series_bound
from modelmeter.scrape import CollectorState
from modelmeter.service.entries import ModelEntry, ReplicaUsage, fingerprint
from modelmeter.service.housekeeping import Housekeeping
from modelmeter.service.ingest import IngestError, Schema
from modelmeter.service.ingestion import Ingestion
from modelmeter.service.labels import label_batch
from modelmeter.service.predictions import PredictionEvent, observe_batch
from modelmeter.service.references import read_reference
from modelmeter.service.shift import ShiftRefits
from modelmeter.service.state import StoreState, model_state
from modelmeter.settings import Settings
from modelmeter.spec import ModelSpec, SpecError, load_reference, load_spec
from modelmeter.store import ModelRecord, Store

__all__ = ["Hub", "ModelEntry", "ReplicaUsage"]

log = logging.getLogger("modelmeter.collector")


class Hub(Ingestion, Housekeeping, ShiftRefits):
    """All models of one collector, backed by a :class:`~modelmeter.store.Store`."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.lock = threading.RLock()
        self.models: dict[str, ModelEntry] = {}
        self.ingest_counts: dict[tuple[str, str, str], int] = defaultdict(int)
        self.expired_counts: dict[tuple[str, str, str], int] = defaultdict(int)
        self.retired_counts: dict[tuple[str, str], int] = defaultdict(int)
        #: shift-aware refits per (model, outcome): applied, fallback, failed, discarded
        self.shift_refit_counts: dict[tuple[str, str], int] = defaultdict(int)
        self.timings: dict[str, float] = defaultdict(float)
        self.ready = False

    # --- startup ----------------------------------------------------------------------------
    def load(self) -> None:
        """Rebuild every model from the store: checkpoint, then replay of the log after it."""
        with self.lock:
            pending = self.store.pending_counts()
            waiting = self.store.waiting_label_counts()
            for record in self.store.models():
                try:
                    entry = self._entry_from_record(record)
                except (SpecError, ValueError) as exc:
                    log.error("model %s cannot be restored: %s", record.name, exc)
                    continue
                entry.pending_labels = pending.get(record.name, 0)
                entry.waiting_labels = waiting.get(record.name, 0)
                for version, seen in self.store.versions(record.name).items():
                    self._restore_monitor(entry, version)
                    entry.last_seen[version] = seen
                self.models[record.name] = entry
            self.ready = True

    def _config(self, spec: ModelSpec) -> MonitorConfig:
        return dataclasses.replace(
            spec.monitor_config(), max_categories=self.settings.max_categories
        )

    def _entry_from_record(self, record: ModelRecord) -> ModelEntry:
        spec = load_spec(record.spec)
        reference = load_reference(spec, data=record.reference)
        config = self._config(spec)
        return ModelEntry(
            record.name,
            spec,
            config,
            reference,
            Schema.from_config(config),
            record.created,
            record.updated,
            fingerprint(orjson.dumps(spec.to_dict()), record.reference),
        )

    def _restore_monitor(self, entry: ModelEntry, version: str) -> None:
        found = self.store.checkpoint(entry.name, version)
        entry.monitor(version)
        if found is not None:
            seq, data = found
            entry.applied_seq[version] = entry.checkpoint_seq[version] = seq
            try:
                entry.monitors[version] = ModelMonitor.from_checkpoint(
                    entry.config, entry.reference, json.loads(data)
                )
            except ValueError as exc:  # e.g. written by another engine version
                log.error(
                    "checkpoint of %s/%s does not fit (%s); its counts restart from the "
                    "events logged after it",
                    entry.name,
                    version,
                    exc,
                )
        for row in self.store.log_after(entry.name, version, entry.applied_seq[version]):
            self._apply(entry, version, row.kind, orjson.loads(row.payload))
            entry.applied_seq[version] = row.seq

    def _apply(
        self, entry: ModelEntry, version: str, kind: str, payload: Any, batch: Any = None
    ) -> bool:
        """Apply one logged operation (``batch``: its engine batch, if already built); False
        (logged) if the engine refused it.

        Live, every operation was checked by the engine before its commit, so a refusal here
        is an engine bug; on replay it has the same effect as live, and never a crash loop.
        """
        monitor = entry.monitor(version)
        now = payload.get("now")
        try:
            if kind == "observe":
                if batch is None:
                    batch = observe_batch(payload, entry.schema)
                if not isinstance(batch, CheckedPredictions):  # replay: check, as live
                    batch = monitor.check(batch, now)
                monitor.observe(batch, now=now)
            else:
                if batch is None:
                    batch = label_batch(payload, entry.schema)
                monitor.label(batch, now=now)
        except Exception:
            log.exception("engine refused a %s batch of %s/%s", kind, entry.name, version)
            return False
        if kind == "observe":
            try:  # the counted batch's features, for shift-aware CBPE
                self._sample(entry, version, monitor, batch.batch.features, batch.scored)
            except Exception:  # counted all the same: never an ingestion error
                log.exception("live sample of %s/%s: a batch was not sampled", entry.name, version)
        return True

    # --- registration -----------------------------------------------------------------------
    def register(
        self, name: str, spec: ModelSpec, reference: bytes | None, reference_name: str | None
    ) -> tuple[bool, ModelSpec]:
        """Register or replace a model. Returns ``(created, spec)``.

        Replacing a spec resets the model's engine state (see the module docstring); the same
        spec with the same reference data again changes nothing, so every replica of a model
        service may register at every start, concurrently.
        """
        if reference is None:
            reference, reference_name = read_reference(spec, self.settings)
        document = orjson.dumps(spec.to_dict())
        print_ = fingerprint(document, reference)
        existing = self.models.get(name)
        if existing is not None and existing.fingerprint == print_:
            return False, existing.spec
        ref_data = load_reference(spec, data=reference)
        config = self._config(spec)
        self._check_size(spec, config, ref_data)
        now = time.time()
        with self.lock:
            existing = self.models.get(name)
            if existing is not None and existing.fingerprint == print_:
                return False, existing.spec  # the same PUT won the race: keep its state
            if existing is None and len(self.models) >= self.settings.max_models:
                raise IngestError(
                    409,
                    f"the collector already has {len(self.models)} models, the limit "
                    "(MODELMETER_MAX_MODELS); delete one (DELETE /v1/models/{model}), raise the "
                    "limit, or run another collector for more models",
                )
            created = existing.created if existing else now
            record = ModelRecord(name, document, reference, reference_name, created, now)
            with self.store.transaction() as tx:
                tx.put_model(record)
                tx.reset_model_state(name)
            entry = ModelEntry(
                name, spec, config, ref_data, Schema.from_config(config), created, now, print_
            )
            if existing is not None:
                entry.pending_labels = existing.pending_labels
                entry.waiting_labels = existing.waiting_labels
                entry.replicas = existing.replicas
                for version in existing.monitors:
                    entry.monitor(version)
                entry.last_seen.update(existing.last_seen)
            self.models[name] = entry
        return existing is None, spec

    def _check_size(self, spec: ModelSpec, config: MonitorConfig, ref_data: ReferenceData) -> None:
        """422 unless the model's state and series stay within their limits at the most
        live versions (computed before anything is allocated)."""
        settings = self.settings
        versions = settings.max_versions
        try:  # the engine fits bins and calibration now, and sizes its state first
            ModelMonitor(
                config, ref_data, max_state_bytes=settings.max_model_state_bytes // versions
            )
        except StateTooLarge as exc:
            raise IngestError(
                422,
                f"the spec needs {exc.required:,} bytes of window state per version, "
                f"{exc.required * versions:,} bytes at {versions} live versions "
                f"(MODELMETER_MAX_VERSIONS), above MODELMETER_MAX_MODEL_STATE_BYTES "
                f"({settings.max_model_state_bytes:,}); use fewer features, categories or "
                "drift bins, a larger window.bucket or performance.bucket, or raise the limit",
            ) from None
        except ValueError as exc:
            raise IngestError(
                422, f"the spec and reference data cannot be monitored: {exc}"
            ) from None
        series = series_bound(spec, versions, settings.max_replicas, settings.max_categories)
        if series > settings.max_model_series:
            raise IngestError(
                422,
                f"the model could export up to {series:,} series at {versions} live versions "
                f"and {settings.max_replicas} replicas, above MODELMETER_MAX_MODEL_SERIES "
                f"({settings.max_model_series:,}); use fewer classes or features, lower "
                "MODELMETER_MAX_VERSIONS, or raise the limit",
            )

    def delete(self, name: str) -> None:
        """Forget a model: its spec, state, waiting predictions and labels, and its series."""
        with self.lock:
            self.entry(name)  # 404 if unknown
            with self.store.transaction() as tx:
                tx.delete_model(name)
            del self.models[name]

    def entry(self, name: str) -> ModelEntry:
        found = self.models.get(name)
        if found is None:
            raise IngestError(
                404, f"model {name!r} is not registered; PUT /v1/models/{name} with its spec first"
            )
        return found

    # --- version lifecycle ------------------------------------------------------------------
    def retire_version(self, name: str, version: str, now: float) -> None:
        """``DELETE /v1/models/{model}/versions/{version}``: retire a live version."""
        with self.lock:
            entry = self.entry(name)
            if version not in entry.monitors:
                raise IngestError(
                    404,
                    f"model {name!r} has no live version {version[:80]!r}; live versions: "
                    f"{sorted(entry.monitors)[:20]}",
                )
            self._retire(entry, version, "manual")

    def _retire(self, entry: ModelEntry, version: str, reason: str) -> None:
        with self.store.transaction() as tx:
            waiting = tx.retire_version(entry.name, version)
        entry.retire(version)
        entry.pending_labels = max(0, entry.pending_labels - waiting)
        self.retired_counts[(entry.name, reason)] += 1
        log.info(
            "model %s: version %s retired (%s); %d predictions no longer wait for labels",
            entry.name,
            version,
            reason,
            waiting,
        )

    def _admit_versions(
        self, entry: ModelEntry, events: list[PredictionEvent], rejected: list[tuple[int, str]]
    ) -> list[PredictionEvent]:
        """Start the batch's new versions, retiring the least recently seen live versions
        to stay at MODELMETER_MAX_VERSIONS; events of a version that finds no room (the batch
        alone has more versions than the limit) are rejected."""
        limit = self.settings.max_versions
        in_batch = {e.version for e in events}
        refused: set[str] = set()
        for version in dict.fromkeys(e.version for e in events):
            if version in entry.monitors:
                continue
            if len(entry.monitors) >= limit:
                others = [v for v in entry.monitors if v not in in_batch]
                if not others:
                    refused.add(version)
                    continue
                self._retire(entry, min(others, key=lambda v: (entry.last_seen[v], v)), "capacity")
            entry.monitor(version)
        if not refused:
            return events
        kept = []
        for event in events:
            if event.version in refused:
                rejected.append(
                    (
                        event.index,
                        f"version {event.version!r} is refused: this batch alone has more than "
                        f"{limit} versions (MODELMETER_MAX_VERSIONS); send fewer per request "
                        "or raise the limit",
                    )
                )
            else:
                kept.append(event)
        return kept

    # --- reading ----------------------------------------------------------------------------
    def state(self, now: float) -> CollectorState:
        """Snapshots of every model and version, taken under the lock (the /metrics provider)."""
        usage = self.store.usage()
        with self.lock:
            models = []
            for entry in self.models.values():
                self._expire_replicas(entry, now)
                models.append(model_state(entry, now))
            return CollectorState(
                models=models,
                ingest=dict(self.ingest_counts),
                expired=dict(self.expired_counts),
                retired=dict(self.retired_counts),
                refits=dict(self.shift_refit_counts),
                store=StoreState(
                    usage.database_bytes, usage.wal_bytes, self.settings.store_budget_bytes
                ),
            )

    def describe(self, name: str, now: float) -> dict[str, Any]:
        """``GET /v1/models/{model}``: the spec and the current snapshot of each version."""
        with self.lock:
            entry = self.entry(name)
            snapshots = {v: entry.snapshot(v, now).to_dict() for v in entry.monitors}
            return {
                "model": name,
                "spec": entry.spec.to_dict(),
                "pending_labels": entry.pending_labels,
                "waiting_labels": entry.waiting_labels,
                "snapshots": snapshots,
            }

    def listing(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {"model": e.name, "task": e.spec.task, "versions": sorted(e.monitors)}
                for e in sorted(self.models.values(), key=lambda e: e.name)
            ]
