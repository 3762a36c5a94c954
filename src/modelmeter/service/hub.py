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
version's window state and series; its predictions stay in the store until their TTL, no
longer waiting, so a late label for one is answered as ``retired`` and counted, never applied
to another version and never an error. A version that comes back starts from zero.

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
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from modelmeter.engine import ModelMonitor, MonitorConfig, ReferenceData, StateTooLarge
from modelmeter.exposition import (
    CollectorState,
    ModelState,
    ServingResources,
    StoreState,
    series_bound,
)
from modelmeter.service.entries import ModelEntry, ReplicaUsage, fingerprint
from modelmeter.service.ingest import (
    IngestError,
    LabelEvent,
    PredictionEvent,
    Resources,
    Schema,
    check_target,
    label_batch,
    label_payload,
    observe_batch,
    observe_payload,
    validate_labels,
    validate_predictions,
    validate_resources,
)
from modelmeter.service.references import read_reference
from modelmeter.settings import Settings
from modelmeter.spec import ModelSpec, SpecError, load_reference, load_spec
from modelmeter.store import Expired, ModelRecord, Store

__all__ = ["Hub", "ModelEntry", "ReplicaUsage"]

log = logging.getLogger("modelmeter.collector")

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
#: label rows: (label_ts, prediction_ts, prediction, label, scores)
_LabelRow = tuple[float, float, Any, Any, Any]


@dataclasses.dataclass
class _Op:
    """One engine operation of a request, with the events it stands for."""

    version: str
    kind: str  # "observe" | "label"
    payload: dict[str, Any]
    indices: list[int]  # indices of the request's events it counts
    seq: int = 0
    batch: Any = None  # the engine batch of the payload, once built by Hub._checked


def _first_per_index(rejected: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Rejections in index order, one (the first reason) per event."""
    first: dict[int, str] = {}
    for index, reason in rejected:
        first.setdefault(index, reason)
    return sorted(first.items())


class Hub:
    """All models of one collector, backed by a :class:`~modelmeter.store.Store`."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.lock = threading.RLock()
        self.models: dict[str, ModelEntry] = {}
        self.ingest_counts: dict[tuple[str, str, str], int] = defaultdict(int)
        self.expired_counts: dict[tuple[str, str, str], int] = defaultdict(int)
        self.retired_counts: dict[tuple[str, str], int] = defaultdict(int)
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
        try:
            if kind == "observe":
                if batch is None:
                    batch = observe_batch(payload, entry.schema)
                monitor.observe(batch, now=payload.get("now"))
            else:
                if batch is None:
                    batch = label_batch(payload, entry.schema)
                monitor.label(batch, now=payload.get("now"))
        except Exception:
            log.exception("engine refused a %s batch of %s/%s", kind, entry.name, version)
            return False
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
                "drift bins, a larger window.bucket, or raise the limit",
            ) from None
        except ValueError as exc:
            raise IngestError(
                422, f"the spec and reference data cannot be monitored: {exc}"
            ) from None
        series = series_bound(spec, versions, settings.max_replicas)
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

    # --- ingestion --------------------------------------------------------------------------
    def _checked(
        self, entry: ModelEntry, ops: list[_Op], rejected: list[tuple[int, str]], now: float
    ) -> list[_Op]:
        """The operations the engine accepts; the events of the others go to ``rejected``."""
        kept = []
        for op in ops:
            convert: Callable[[Any, Schema], Any] = (
                observe_batch if op.kind == "observe" else label_batch
            )
            try:
                op.batch = convert(op.payload, entry.schema)
                entry.monitor(op.version).check(op.batch, now)
            except Exception as exc:
                log.error("engine refused a %s batch of %s: %s", op.kind, entry.name, exc)
                rejected.extend(
                    (i, f"the engine refused this event's batch: {exc}") for i in op.indices
                )
                continue
            kept.append(op)
        return kept

    def _commit_and_apply(
        self,
        entry: ModelEntry,
        ops: list[_Op],
        write: Callable[[Any], None],
        rejected: list[tuple[int, str]],
    ) -> set[int]:
        """One transaction with ``write``'s rows and the operations' log rows, then the
        operations applied; returns the indices of events the engine failed on after the
        commit (stored, reported in ``rejected``)."""
        t0 = time.perf_counter()
        with self.store.transaction() as tx:
            write(tx)
            for op in ops:
                op.seq = tx.append_log(
                    entry.name, op.version, op.kind, orjson.dumps(op.payload, option=_NUMPY)
                )
        t1 = time.perf_counter()
        failed: set[int] = set()
        for op in ops:
            if not self._apply(entry, op.version, op.kind, op.payload, op.batch):
                failed.update(op.indices)
                rejected.extend(
                    (i, "stored, but the engine failed to count it (logged by the collector)")
                    for i in op.indices
                )
            entry.applied_seq[op.version] = op.seq
        self.timings["store"] += t1 - t0
        self.timings["engine"] += time.perf_counter() - t1
        return failed

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
            events = self._admit_versions(entry, events, rejected)
            existing = self.store.existing_prediction_ids(name, [e.id for e in events])
            fresh = [e for e in events if e.id not in existing]
            waiting = (
                self.store.find_pending_labels(name, [e.id for e in fresh])
                if self.store.has_pending_labels(name)
                else {}
            )
            rows, ops, joined, bad_labels = self._prediction_ops(entry, fresh, waiting, now)
            checked = self._checked(entry, ops, rejected, now)
            if len(checked) < len(ops):  # a version's events go in whole or not at all
                refused = {op.version for op in ops if all(op is not c for c in checked)}
                refused_events = [e for e in fresh if e.version in refused]
                rejected.extend(
                    (e.index, "the engine refused this event's version batch (see the others)")
                    for e in refused_events
                )
                ops = [op for op in checked if op.version not in refused]
                rows = [r for r, e in zip(rows, fresh, strict=True) if e.version not in refused]
                fresh = [e for e in fresh if e.version not in refused]
                joined = [i for i in joined if i not in {e.id for e in refused_events}]
            versions = {e.version for e in fresh}
            t2 = time.perf_counter()
            failed: set[int] = set()
            if fresh or joined:

                def write(tx: Any) -> None:
                    tx.touch_versions(name, versions, now)
                    tx.insert_predictions(name, rows, now)
                    if joined:
                        tx.delete_pending_labels(name, joined)

                failed = self._commit_and_apply(entry, ops, write, rejected)
                for version in versions:
                    entry.last_seen[version] = now
            labeled_now = sum(1 for r in rows if r[5])
            entry.pending_labels += len(rows) - labeled_now
            entry.waiting_labels = max(0, entry.waiting_labels - len(joined))
            if resources is not None:
                self._record_resources(entry, resources, fresh or events, now)
            counts = self.ingest_counts
            counts[(name, "predictions", "accepted")] += len(fresh) - len(failed)
            counts[(name, "predictions", "duplicate")] += len(existing)
            rejected = _first_per_index(rejected)
            counts[(name, "predictions", "rejected")] += len(rejected)
            counts[(name, "labels", "rejected")] += len(bad_labels)
        timings = self.timings
        timings["validate"] += t1 - t0
        timings["prepare"] += t2 - t1
        timings["requests"] += 1
        timings["events"] += len(fresh)
        body: dict[str, Any] = {
            "accepted": len(fresh) - len(failed),
            "duplicates": len(existing),
            "rejected": [{"index": i, "error": e} for i, e in rejected],
        }
        if bad_labels:
            body["rejected_labels"] = [{"id": i, "error": e} for i, e in bad_labels]
        return body

    def _prediction_ops(
        self, entry: ModelEntry, fresh: list[PredictionEvent], waiting: dict[str, Any], now: float
    ) -> tuple[list[tuple[Any, ...]], list[_Op], list[str], list[tuple[str, str]]]:
        """Store rows, engine operations (per version: observe, then label for the events
        that come with their label or found one waiting), the waiting labels consumed, and
        the waiting labels that no longer fit the spec."""
        schema = entry.schema
        by_version: dict[str, list[PredictionEvent]] = defaultdict(list)
        label_rows: dict[str, list[_LabelRow]] = defaultdict(list)
        label_indices: dict[str, list[int]] = defaultdict(list)
        rows = []
        joined: list[str] = []
        bad_labels: list[tuple[str, str]] = []
        for event in fresh:
            by_version[event.version].append(event)
            label: Any = event.label
            label_ts = event.ts
            pending = waiting.get(event.id)
            if pending is not None:
                joined.append(event.id)
                if label is None:
                    try:
                        label = check_target(orjson.loads(pending.label), schema, "label")
                    except ValueError as exc:
                        bad_labels.append((event.id, f"the waiting label no longer fits: {exc}"))
                    label_ts = max(pending.ts, event.ts)
            has_prediction = not (
                event.prediction == ""
                or (isinstance(event.prediction, float) and math.isnan(event.prediction))
            )
            if label is not None and has_prediction:
                label_rows[event.version].append(
                    (label_ts, event.ts, event.prediction, label, None)
                )
                label_indices[event.version].append(event.index)
            scores = event.scores
            labeled = label is not None
            rows.append(
                (
                    event.id,
                    event.version,
                    event.ts,
                    None if labeled or not has_prediction else event.prediction,
                    None
                    if labeled
                    else orjson.dumps(scores)
                    if isinstance(scores, tuple)
                    else scores,
                    labeled,
                )
            )
        ops = [
            _Op(
                v,
                "observe",
                {**observe_payload(group, schema), "now": now},
                [e.index for e in group],
            )
            for v, group in by_version.items()
        ]
        for version, lrows in label_rows.items():
            payload = {**label_payload(lrows, schema), "now": now}
            ops.append(_Op(version, "label", payload, label_indices[version]))
        return rows, ops, joined, bad_labels

    def _record_resources(
        self, entry: ModelEntry, res: Resources, events: Sequence[PredictionEvent], now: float
    ) -> None:
        version = res.version or (events[0].version if events else "default")
        self._expire_replicas(entry, now)
        known = entry.replicas.get(res.replica)
        if known is None and len(entry.replicas) >= self.settings.max_replicas:
            log.warning("model %s: replica limit reached, %s ignored", entry.name, res.replica)
            return
        dropped = dict(known.dropped) if known is not None else {}
        dropped.update(res.dropped)  # cumulative per client; a smaller value = its restart
        entry.replicas[res.replica] = ReplicaUsage(
            version, res.cpu_ratio, res.memory_bytes, now, dropped
        )

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
            duplicates = retired = 0
            matched: dict[int, str] = {}
            label_rows: dict[str, list[_LabelRow]] = defaultdict(list)
            label_indices: dict[str, list[int]] = defaultdict(list)
            unmatched: list[LabelEvent] = []
            for lab in labels:
                stored = found.get(lab.id)
                if stored is None:
                    unmatched.append(lab)
                elif stored.labeled == 1:
                    duplicates += 1
                elif stored.labeled == 2 or stored.version not in entry.monitors:
                    retired += 1
                elif stored.prediction is None:  # an errored event: nothing to score
                    matched[lab.index] = lab.id
                else:
                    try:
                        prediction = check_target(stored.prediction, entry.schema, "prediction")
                    except ValueError as exc:
                        rejected.append(
                            (lab.index, f"its prediction was made under an earlier spec: {exc}")
                        )
                        continue
                    matched[lab.index] = lab.id
                    label_rows[stored.version].append(
                        (max(lab.ts, stored.ts), stored.ts, prediction, lab.label, None)
                    )
                    label_indices[stored.version].append(lab.index)
            already = self.store.find_pending_labels(name, [lab.id for lab in unmatched])
            new_pending = [lab for lab in unmatched if lab.id not in already]
            duplicates += len(unmatched) - len(new_pending)
            ops = [
                _Op(v, "label", {**label_payload(rows, entry.schema), "now": now}, label_indices[v])
                for v, rows in label_rows.items()
            ]
            checked = self._checked(entry, ops, rejected, now)
            for op in ops:
                if all(op is not c for c in checked):
                    for index in op.indices:
                        matched.pop(index, None)
            failed: set[int] = set()
            if matched or new_pending:

                def write(tx: Any) -> None:
                    tx.mark_labeled(name, list(matched.values()))
                    tx.insert_pending_labels(
                        name,
                        [(lab.id, orjson.dumps(lab.label), lab.ts) for lab in new_pending],
                        now,
                    )

                failed = self._commit_and_apply(entry, checked, write, rejected)
            entry.pending_labels = max(0, entry.pending_labels - len(matched))
            entry.waiting_labels += len(new_pending)
            counts = self.ingest_counts
            counts[(name, "labels", "accepted")] += len(matched) - len(failed)
            counts[(name, "labels", "pending")] += len(new_pending)
            counts[(name, "labels", "duplicate")] += duplicates
            counts[(name, "labels", "retired")] += retired
            rejected = _first_per_index(rejected)
            counts[(name, "labels", "rejected")] += len(rejected)
        return {
            "matched": len(matched) - len(failed),
            "pending": len(new_pending),
            "duplicates": duplicates,
            "retired": retired,
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

    def expire(self, now: float) -> Expired:
        """Drop predictions and labels older than the TTL, retire idle versions, recount."""
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
            self._recount()
        return expired

    def enforce_budget(self) -> StoreState:
        """Keep the store within MODELMETER_STORE_BUDGET (the oldest stored events expire
        early, counted) and its WAL within MODELMETER_MAX_WAL_BYTES; the usage after."""
        budget = self.settings.store_budget_bytes
        with self.lock:
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
                self._recount()
        return StoreState(usage.database_bytes, usage.wal_bytes, budget)

    def _count_expired(self, expired: Expired, reason: str) -> None:
        for kind, per_model in (("predictions", expired.predictions), ("labels", expired.labels)):
            for model, count in per_model.items():
                if count:
                    self.expired_counts[(model, kind, reason)] += count

    def _recount(self) -> None:
        pending = self.store.pending_counts()
        waiting = self.store.waiting_label_counts()
        for name, entry in self.models.items():
            entry.pending_labels = pending.get(name, 0)
            entry.waiting_labels = waiting.get(name, 0)

    # --- reading ----------------------------------------------------------------------------
    def state(self, now: float) -> CollectorState:
        """Snapshots of every model and version, taken under the lock (the /metrics provider)."""
        nan = math.nan
        usage = self.store.usage()
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
                dropped = {
                    (replica, kind): count
                    for replica, u in entry.replicas.items()
                    for kind, count in u.dropped.items()
                }
                snapshots = {v: entry.snapshot(v, now) for v in entry.monitors}
                models.append(
                    ModelState(
                        entry.name,
                        entry.spec,
                        snapshots,
                        entry.pending_labels,
                        resources,
                        entry.waiting_labels,
                        entry.last_prediction,
                        dropped,
                    )
                )
            return CollectorState(
                models=models,
                ingest=dict(self.ingest_counts),
                expired=dict(self.expired_counts),
                retired=dict(self.retired_counts),
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
