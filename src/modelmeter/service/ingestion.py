"""Ingestion: a request's events checked, stored in one transaction and applied, never silently.

:class:`Ingestion` is the part of :class:`~modelmeter.service.hub.Hub` that turns a validated
predictions or labels body into store rows and engine operations (see the hub's module
docstring for what each outcome means). Every operation is checked by the engine before the
commit; whatever the engine refuses is answered in ``rejected`` with its index and reason.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import orjson

from modelmeter.service.entries import ModelEntry, ReplicaUsage
from modelmeter.service.ingest import Schema, check_target
from modelmeter.service.labels import LabelEvent, label_batch, label_payload, validate_labels
from modelmeter.service.predictions import (
    PredictionEvent,
    observe_batch,
    observe_payload,
    validate_predictions,
)
from modelmeter.service.resources import Resources, validate_resources
from modelmeter.settings import Settings
from modelmeter.store import Store

__all__ = ["Ingestion"]

log = logging.getLogger("modelmeter.collector")

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
#: label rows: (label_ts, prediction_ts, prediction, label, scores, segment codes or None)
_LabelRow = tuple[float, float, Any, Any, Any, Any]


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


class Ingestion:
    """The ingestion half of the hub (mixed into :class:`~modelmeter.service.hub.Hub`, which
    provides the state and lifecycle declared here)."""

    settings: Settings
    store: Store
    lock: threading.RLock
    ingest_counts: dict[tuple[str, str, str], int]
    timings: dict[str, float]

    def entry(self, name: str) -> ModelEntry:
        raise NotImplementedError

    def _apply(
        self, entry: ModelEntry, version: str, kind: str, payload: Any, batch: Any = None
    ) -> bool:
        raise NotImplementedError

    def _admit_versions(
        self, entry: ModelEntry, events: list[PredictionEvent], rejected: list[tuple[int, str]]
    ) -> list[PredictionEvent]:
        raise NotImplementedError

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
                # the checked batch is applied as it is: observe()/label() skip revalidating it
                op.batch = entry.monitor(op.version).check(convert(op.payload, entry.schema), now)
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
        payloads = {v: observe_payload(group, schema) for v, group in by_version.items()}
        codes = self._segment_codes(entry, by_version, payloads)
        for event in fresh:
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
                    (label_ts, event.ts, event.prediction, label, None, codes.get(event.id))
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
                    None if labeled or event.id not in codes else orjson.dumps(codes[event.id]),
                )
            )
        ops = [
            _Op(v, "observe", {**payloads[v], "now": now}, [e.index for e in group])
            for v, group in by_version.items()
        ]
        for version, lrows in label_rows.items():
            payload = {**label_payload(lrows, schema), "now": now}
            ops.append(_Op(version, "label", payload, label_indices[version]))
        return rows, ops, joined, bad_labels

    @staticmethod
    def _segment_codes(
        entry: ModelEntry,
        by_version: dict[str, list[PredictionEvent]],
        payloads: dict[str, dict[str, Any]],
    ) -> dict[str, list[int]]:
        """Event id -> its segment value codes (empty when the model has no segments)."""
        if not entry.config.segments:
            return {}
        out: dict[str, list[int]] = {}
        for version, group in by_version.items():
            features = payloads[version]["features"]
            columns = {
                name: np.array(features[name], dtype=object) for name in entry.config.segments
            }
            found = entry.monitor(version).segment_codes(columns)
            if found is None:
                continue
            for event, row in zip(group, found.tolist(), strict=True):
                out[event.id] = row
        return out

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
                        (
                            max(lab.ts, stored.ts),
                            stored.ts,
                            prediction,
                            lab.label,
                            None,
                            None if stored.segments is None else orjson.loads(stored.segments),
                        )
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
