"""The collector's model state: registered models, their monitors, and the store behind them.

One :class:`Hub` per collector process. A single lock serializes every change: a request's
store transaction and the engine calls it causes happen under the lock, in commit order, so
the operation log replays to exactly the live state (see :mod:`modelmeter.store`). Readers
(``/metrics``, the JSON API) take the same lock for their snapshot, so they never see a
half-applied request.

This is why a collector is **one process**: the engine state lives in its memory, and two
workers would each hold half of it. To scale out, shard models across collectors (each model
sends to one collector); Prometheus sums their counters.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson

from modelmeter.engine import ModelMonitor, MonitorConfig, ReferenceData, Snapshot
from modelmeter.exposition import CollectorState, ModelState, ServingResources
from modelmeter.service.ingest import (
    IngestError,
    LabelEvent,
    PredictionEvent,
    Resources,
    Schema,
    label_batch,
    label_payload,
    observe_batch,
    observe_payload,
    validate_labels,
    validate_predictions,
    validate_resources,
)
from modelmeter.settings import Settings
from modelmeter.service.references import read_reference
from modelmeter.spec import ModelSpec, SpecError, load_reference, load_spec
from modelmeter.store import ModelRecord, Store

__all__ = ["Hub", "ModelEntry", "ReplicaUsage"]

log = logging.getLogger("modelmeter.collector")

_NUMPY = orjson.OPT_SERIALIZE_NUMPY


@dataclass
class ReplicaUsage:
    """Last resource report of one serving replica."""

    version: str
    cpu_ratio: float | None
    memory_bytes: float | None
    seen: float


@dataclass
class ModelEntry:
    """A registered model in memory: spec, engine config, reference and one monitor per version."""

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
    replicas: dict[str, ReplicaUsage] = field(default_factory=dict)
    pending_labels: int = 0
    snapshots: dict[str, tuple[tuple[int, int], Snapshot]] = field(default_factory=dict)

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
        found = self.monitors.get(version)
        if found is None:
            found = self.monitors[version] = ModelMonitor(self.config, self.reference)
            self.applied_seq[version] = 0
            self.checkpoint_seq[version] = 0
        return found


def _fingerprint(document: bytes, reference: bytes | None) -> bytes:
    return hashlib.sha256(document + b"\0" + (reference or b"")).digest()


class Hub:
    """All models of one collector, backed by a :class:`~modelmeter.store.Store`."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.lock = threading.RLock()
        self.models: dict[str, ModelEntry] = {}
        self.ingest_counts: dict[tuple[str, str, str], int] = defaultdict(int)
        self.timings: dict[str, float] = defaultdict(float)
        self.ready = False

    # --- startup ----------------------------------------------------------------------------
    def load(self) -> None:
        """Rebuild every model from the store: checkpoint, then replay of the log after it."""
        with self.lock:
            pending = self.store.pending_counts()
            for record in self.store.models():
                try:
                    entry = self._entry_from_record(record)
                except (SpecError, ValueError) as exc:
                    log.error("model %s cannot be restored: %s", record.name, exc)
                    continue
                entry.pending_labels = pending.get(record.name, 0)
                for version in self.store.versions(record.name):
                    self._restore_monitor(entry, version)
                self.models[record.name] = entry
            self.ready = True

    def _entry_from_record(self, record: ModelRecord) -> ModelEntry:
        spec = load_spec(record.spec)
        reference = load_reference(spec, data=record.reference)
        config = spec.monitor_config()
        return ModelEntry(
            record.name,
            spec,
            config,
            reference,
            Schema.from_config(config),
            record.created,
            record.updated,
            _fingerprint(orjson.dumps(spec.to_dict()), record.reference),
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

    def _apply(self, entry: ModelEntry, version: str, kind: str, payload: Any) -> None:
        monitor = entry.monitor(version)
        try:
            if kind == "observe":
                monitor.observe(observe_batch(payload, entry.schema), now=payload.get("now"))
            else:
                monitor.label(label_batch(payload, entry.schema), now=payload.get("now"))
        except Exception:  # a validation gap or engine bug: same effect live and on replay
            # (never a crash loop at restore), so log it loudly and go on
            log.exception("engine refused a %s batch of %s/%s", kind, entry.name, version)

    # --- registration -----------------------------------------------------------------------
    def register(
        self, name: str, spec: ModelSpec, reference: bytes | None, reference_name: str | None
    ) -> tuple[bool, ModelSpec]:
        """Register or replace a model. Returns ``(created, spec)``.

        Replacing a spec resets the model's engine state (its counters restart at 0, which
        Prometheus treats as a counter reset); predictions waiting for labels are kept. The
        same spec with the same reference data again changes nothing, so a model service may
        register at every start.
        """
        if reference is None:
            reference, reference_name = read_reference(spec, self.settings)
        document = orjson.dumps(spec.to_dict())
        fingerprint = _fingerprint(document, reference)
        existing = self.models.get(name)
        if existing is not None and existing.fingerprint == fingerprint:
            return False, existing.spec
        ref_data = load_reference(spec, data=reference)
        config = spec.monitor_config()
        try:
            ModelMonitor(config, ref_data)  # the engine fits bins and calibration now
        except ValueError as exc:
            raise IngestError(
                422, f"the spec and reference data cannot be monitored: {exc}"
            ) from None
        now = time.time()
        with self.lock:
            existing = self.models.get(name)
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
                name, spec, config, ref_data, Schema.from_config(config), created, now, fingerprint
            )
            if existing is not None:
                entry.pending_labels = existing.pending_labels
                entry.replicas = existing.replicas
                for version in existing.monitors:
                    entry.monitor(version)
            self.models[name] = entry
        return existing is None, spec

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

    # --- ingestion --------------------------------------------------------------------------
    def _allowed_versions(
        self, entry: ModelEntry, events: list[PredictionEvent], rejected: list[tuple[int, str]]
    ) -> list[PredictionEvent]:
        known = set(entry.monitors)
        room = self.settings.max_versions - len(known)
        kept = []
        for event in events:
            if event.version not in known:
                if room <= 0:
                    rejected.append(
                        (
                            event.index,
                            f"model {entry.name!r} already has "
                            f"{self.settings.max_versions} versions (MODELMETER_MAX_VERSIONS); "
                            f"version {event.version!r} is refused",
                        )
                    )
                    continue
                known.add(event.version)
                room -= 1
            kept.append(event)
        return kept

    def ingest_predictions(self, name: str, doc: Any, now: float) -> dict[str, Any]:
        """Validate, store and apply a predictions body; the response body of the request."""
        entry = self.entry(name)
        t0 = time.perf_counter()
        resources = validate_resources(doc)
        events, rejected = validate_predictions(doc, entry.schema, now, self.settings.max_events)
        t1 = time.perf_counter()
        with self.lock:
            if self.entry(name) is not entry:  # a concurrent PUT replaced the spec: redo
                entry = self.entry(name)
                events, rejected = validate_predictions(
                    doc, entry.schema, now, self.settings.max_events
                )
            events = self._allowed_versions(entry, events, rejected)
            existing = self.store.existing_prediction_ids(name, [e.id for e in events])
            fresh = [e for e in events if e.id not in existing]
            waiting = (
                self.store.find_pending_labels(name, [e.id for e in fresh])
                if self.store.has_pending_labels(name)
                else {}
            )
            by_version: dict[str, list[PredictionEvent]] = defaultdict(list)
            for event in fresh:
                by_version[event.version].append(event)
            rows = []
            label_rows: dict[str, list[tuple[float, float, Any, Any, Any]]] = defaultdict(list)
            joined = []
            for event in fresh:
                label: Any = event.label
                label_ts = event.ts
                if label is None and event.id in waiting:
                    pending = waiting[event.id]
                    label = orjson.loads(pending.label)
                    label_ts = max(pending.ts, event.ts)
                if event.id in waiting:
                    joined.append(event.id)
                has_prediction = not (
                    event.prediction == ""
                    or (isinstance(event.prediction, float) and math.isnan(event.prediction))
                )
                if label is not None and has_prediction:
                    label_rows[event.version].append(
                        (label_ts, event.ts, event.prediction, label, event.scores)
                    )
                scores = event.scores
                rows.append(
                    (
                        event.id,
                        event.version,
                        event.ts,
                        event.prediction if has_prediction else None,
                        orjson.dumps(scores) if isinstance(scores, tuple) else scores,
                        label is not None,
                    )
                )
            ops: list[tuple[str, str, Any]] = []
            for version, group in by_version.items():
                ops.append(
                    (version, "observe", {**observe_payload(group, entry.schema), "now": now})
                )
            for version, lrows in label_rows.items():
                ops.append((version, "label", {**label_payload(lrows, entry.schema), "now": now}))
            t2 = time.perf_counter()
            seqs = []
            if fresh:
                with self.store.transaction() as tx:
                    tx.add_versions(name, by_version)
                    tx.insert_predictions(name, rows, now)
                    if joined:
                        tx.delete_pending_labels(name, joined)
                    for version, kind, payload in ops:
                        seqs.append(
                            tx.append_log(name, version, kind, orjson.dumps(payload, option=_NUMPY))
                        )
            t3 = time.perf_counter()
            for (version, kind, payload), seq in zip(ops, seqs, strict=True):
                self._apply(entry, version, kind, payload)
                entry.applied_seq[version] = seq
            t4 = time.perf_counter()
            labeled_now = sum(1 for r in rows if r[5])
            entry.pending_labels += len(rows) - labeled_now
            if resources is not None:
                self._record_resources(entry, resources, fresh or events, now)
            counts = self.ingest_counts
            counts[(name, "predictions", "accepted")] += len(fresh)
            counts[(name, "predictions", "duplicate")] += len(events) - len(fresh)
            counts[(name, "predictions", "rejected")] += len(rejected)
        timings = self.timings
        timings["validate"] += t1 - t0
        timings["prepare"] += t2 - t1
        timings["store"] += t3 - t2
        timings["engine"] += t4 - t3
        timings["requests"] += 1
        timings["events"] += len(fresh)
        rejected.sort()
        return {
            "accepted": len(fresh),
            "duplicates": len(events) - len(fresh),
            "rejected": [{"index": i, "error": e} for i, e in rejected],
        }

    def _record_resources(
        self, entry: ModelEntry, res: Resources, events: list[PredictionEvent], now: float
    ) -> None:
        version = res.version or (events[0].version if events else "default")
        if version not in entry.monitors:
            return  # never let a resource report create a version label
        self._expire_replicas(entry, now)
        if res.replica not in entry.replicas and len(entry.replicas) >= self.settings.max_replicas:
            log.warning("model %s: replica limit reached, %s ignored", entry.name, res.replica)
            return
        entry.replicas[res.replica] = ReplicaUsage(version, res.cpu_ratio, res.memory_bytes, now)

    def _expire_replicas(self, entry: ModelEntry, now: float) -> None:
        idle = now - self.settings.replica_idle_seconds
        for replica in [r for r, u in entry.replicas.items() if u.seen < idle]:
            del entry.replicas[replica]

    def ingest_labels(self, name: str, doc: Any, now: float) -> dict[str, Any]:
        """Validate, store and apply a labels body; the response body of the request."""
        entry = self.entry(name)
        labels, rejected = validate_labels(doc, entry.schema, now, self.settings.max_events)
        with self.lock:
            if self.entry(name) is not entry:  # a concurrent PUT replaced the spec: redo
                entry = self.entry(name)
                labels, rejected = validate_labels(doc, entry.schema, now, self.settings.max_events)
            found = self.store.find_predictions(name, [lab.id for lab in labels])
            duplicates = 0
            matched: list[str] = []
            label_rows: dict[str, list[tuple[float, float, Any, Any, Any]]] = defaultdict(list)
            unmatched: list[LabelEvent] = []
            for lab in labels:
                stored = found.get(lab.id)
                if stored is None:
                    unmatched.append(lab)
                    continue
                if stored.labeled:
                    duplicates += 1
                    continue
                matched.append(lab.id)
                prediction = stored.prediction
                if prediction is None:
                    continue  # an errored event without prediction: nothing to score
                scores = stored.scores
                if isinstance(scores, bytes):  # multiclass probabilities, as JSON
                    scores = orjson.loads(scores)
                label_rows[stored.version].append(
                    (max(lab.ts, stored.ts), stored.ts, prediction, lab.label, scores)
                )
            already = self.store.find_pending_labels(name, [lab.id for lab in unmatched])
            new_pending = [lab for lab in unmatched if lab.id not in already]
            duplicates += len(unmatched) - len(new_pending)
            ops = [
                (version, {**label_payload(rows, entry.schema), "now": now})
                for version, rows in label_rows.items()
            ]
            seqs = []
            if matched or new_pending:
                with self.store.transaction() as tx:
                    tx.mark_labeled(name, matched)
                    tx.insert_pending_labels(
                        name,
                        [(lab.id, orjson.dumps(lab.label), lab.ts) for lab in new_pending],
                        now,
                    )
                    for version, payload in ops:
                        seqs.append(tx.append_log(name, version, "label", orjson.dumps(payload)))
            for (version, payload), seq in zip(ops, seqs, strict=True):
                self._apply(entry, version, "label", payload)
                entry.applied_seq[version] = seq
            entry.pending_labels -= len(matched)
            counts = self.ingest_counts
            counts[(name, "labels", "accepted")] += len(matched)
            counts[(name, "labels", "pending")] += len(new_pending)
            counts[(name, "labels", "duplicate")] += duplicates
            counts[(name, "labels", "rejected")] += len(rejected)
        rejected.sort()
        return {
            "matched": len(matched),
            "pending": len(new_pending),
            "duplicates": duplicates,
            "rejected": [{"index": i, "error": e} for i, e in rejected],
        }

    # --- housekeeping -----------------------------------------------------------------------
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

    def expire(self, now: float) -> tuple[int, int]:
        """Drop predictions and labels older than the TTL; recount pending labels."""
        with self.lock:
            with self.store.transaction() as tx:
                expired = tx.expire(now - self.settings.label_ttl_seconds)
            pending = self.store.pending_counts()
            for name, entry in self.models.items():
                entry.pending_labels = pending.get(name, 0)
                self._expire_replicas(entry, now)
        return expired

    # --- reading ----------------------------------------------------------------------------
    def state(self, now: float) -> CollectorState:
        """Snapshots of every model and version, taken under the lock (the /metrics provider)."""
        nan = math.nan
        with self.lock:
            models = []
            for entry in self.models.values():
                self._expire_replicas(entry, now)
                resources = {
                    (u.version, replica): ServingResources(
                        nan if u.cpu_ratio is None else u.cpu_ratio,
                        nan if u.memory_bytes is None else u.memory_bytes,
                    )
                    for replica, u in entry.replicas.items()
                }
                snapshots = {v: entry.snapshot(v, now) for v in entry.monitors}
                models.append(
                    ModelState(entry.name, entry.spec, snapshots, entry.pending_labels, resources)
                )
            return CollectorState(models=models, ingest=dict(self.ingest_counts))

    def describe(self, name: str, now: float) -> dict[str, Any]:
        """``GET /v1/models/{model}``: the spec and the current snapshot of each version."""
        with self.lock:
            entry = self.entry(name)
            snapshots = {v: entry.snapshot(v, now).to_dict() for v in entry.monitors}
            return {
                "model": name,
                "spec": entry.spec.to_dict(),
                "pending_labels": entry.pending_labels,
                "snapshots": snapshots,
            }

    def listing(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {"model": e.name, "task": e.spec.task, "versions": sorted(e.monitors)}
                for e in sorted(self.models.values(), key=lambda e: e.name)
            ]
