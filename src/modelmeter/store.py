"""The collector's durable state: one SQLite file in WAL mode.

Durability design
-----------------
The engine's state is a pure function of the sequence of *engine operations* applied to it
(``observe(PredictionBatch)`` and ``label(LabelBatch)``). The store keeps that sequence as an
**operation log**: every request writes, in **one transaction**, its rows (predictions waiting
for labels, labels waiting for predictions, ids) *and* the engine operations it caused, as
log rows ``(seq, model, version, kind, payload)`` with a growing ``seq``. Only after the commit is
the operation applied to the in-memory monitor and the request acknowledged; so an
acknowledged event is always in the log or in a checkpoint.

A **checkpoint** of a monitor records ``ModelMonitor.to_checkpoint()`` together with the
``seq`` of the last log row applied to it; writing it deletes the log rows it covers, in the
same transaction. A restart (also after ``kill -9``) rebuilds each monitor as
``from_checkpoint(...)`` and replays the log rows after its ``seq`` in ``seq`` order. Because
the operations are applied in commit order (one lock around store and engine) and the engine is
deterministic, the rebuilt state equals the state of an uninterrupted collector that processed
the acknowledged requests, which equals an offline computation from the acknowledged events.

``PRAGMA synchronous``: in WAL mode ``NORMAL`` does not fsync at commit; a committed
transaction is in the WAL file (in the OS page cache), so it survives a crash or ``kill -9``
of the collector but not a power loss or kernel panic. ``FULL`` (the default) fsyncs the WAL
at every commit, so a 2xx means "on disk" even across power loss, at the cost of one fsync per
request (negligible with batches of hundreds of events).

The tables and the migrations of older files are in :mod:`modelmeter.store_schema`; expiry,
size and space upkeep in :mod:`modelmeter.store_upkeep`. This module is the write and read
path: :class:`Transaction` (one request's writes) and :class:`Store`.

>>> import tempfile, pathlib
>>> store = Store(pathlib.Path(tempfile.mkdtemp()) / "s.sqlite3")
>>> with store.transaction() as tx:
...     seq = tx.append_log("m", "default", "observe", b"{}")
>>> [row.seq for row in store.log_after("m", "default", 0)] == [seq]
True
>>> store.close()
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelmeter.store_schema import connect
from modelmeter.store_upkeep import Expired, ExpiryWrites, SpaceUpkeep, StoreUsage

__all__ = [
    "Expired",
    "LogRow",
    "ModelRecord",
    "PendingLabel",
    "Store",
    "StoreUsage",
    "StoredPrediction",
    "Transaction",
]

_CHUNK = 500  # ids per IN (...) query, below SQLite's parameter limit


@dataclass(frozen=True)
class ModelRecord:
    """A registered model as stored: its spec (JSON bytes) and reference data."""

    name: str
    spec: bytes
    reference: bytes | None
    reference_name: str | None
    created: float
    updated: float


@dataclass(frozen=True)
class LogRow:
    """One engine operation of the log."""

    seq: int
    model: str
    version: str
    kind: str
    payload: bytes


@dataclass(frozen=True)
class StoredPrediction:
    """A prediction kept for joining its label."""

    id: str
    version: str
    ts: float
    prediction: str | float | None
    scores: float | bytes | None
    labeled: int  # 0 waiting, 1 labeled, 2 its version retired
    segments: bytes | None = None  # JSON list of the segment value codes (models with segments)


@dataclass(frozen=True)
class PendingLabel:
    """A label that arrived before its prediction."""

    id: str
    label: bytes
    ts: float


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class Transaction(ExpiryWrites):
    """The writes of one request; obtained from :meth:`Store.transaction`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def put_model(self, record: ModelRecord) -> None:
        self._conn.execute(
            "INSERT INTO models (name, spec, reference, reference_name, created, updated) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET spec=excluded.spec, "
            "reference=excluded.reference, reference_name=excluded.reference_name, "
            "updated=excluded.updated",
            (
                record.name,
                record.spec,
                record.reference,
                record.reference_name,
                record.created,
                record.updated,
            ),
        )

    def reset_model_state(self, model: str) -> None:
        """Forget the engine state of ``model`` (log and checkpoints); pending rows stay."""
        self._conn.execute("DELETE FROM oplog WHERE model = ?", (model,))
        self._conn.execute("DELETE FROM checkpoints WHERE model = ?", (model,))

    def delete_model(self, model: str) -> None:
        """Forget ``model`` entirely: its spec, versions, log, checkpoints and waiting rows."""
        for table in ("oplog", "checkpoints", "predictions", "pending_labels", "versions"):
            self._conn.execute(f"DELETE FROM {table} WHERE model = ?", (model,))  # fixed names
        self._conn.execute("DELETE FROM models WHERE name = ?", (model,))

    def touch_versions(self, model: str, versions: Iterable[str], seen: float) -> None:
        """Record ``versions`` as live, last seen at ``seen``."""
        self._conn.executemany(
            "INSERT INTO versions (model, version, last_seen) VALUES (?, ?, ?) "
            "ON CONFLICT (model, version) DO UPDATE SET last_seen = excluded.last_seen",
            [(model, v, seen) for v in versions],
        )

    def retire_version(self, model: str, version: str) -> int:
        """Forget the engine state of a version; its waiting predictions stop waiting (their
        late labels are then recognised as belonging to a retired version). Returns how many
        predictions were waiting."""
        for table in ("oplog", "checkpoints", "versions"):
            self._conn.execute(
                f"DELETE FROM {table} WHERE model = ? AND version = ?",  # fixed names
                (model, version),
            )
        cursor = self._conn.execute(
            "UPDATE predictions SET labeled = 2, prediction = NULL, scores = NULL, segments = NULL "
            "WHERE model = ? AND version = ? AND labeled = 0",
            (model, version),
        )
        return int(cursor.rowcount)

    def append_log(self, model: str, version: str, kind: str, payload: bytes) -> int:
        cursor = self._conn.execute(
            "INSERT INTO oplog (model, version, kind, payload) VALUES (?, ?, ?, ?)",
            (model, version, kind, payload),
        )
        assert cursor.lastrowid is not None
        return int(cursor.lastrowid)

    def put_checkpoint(self, model: str, version: str, seq: int, data: bytes) -> None:
        """Store a checkpoint covering the log up to ``seq`` and drop those log rows."""
        self._conn.execute(
            "INSERT OR REPLACE INTO checkpoints (model, version, seq, data) VALUES (?, ?, ?, ?)",
            (model, version, seq, data),
        )
        self._conn.execute(
            "DELETE FROM oplog WHERE model = ? AND version = ? AND seq <= ?",
            (model, version, seq),
        )

    def insert_predictions(
        self,
        model: str,
        rows: Sequence[tuple[Any, ...]],
        received: float,
    ) -> None:
        """Rows ``(id, version, ts, prediction, scores, labeled[, segments])``: ``segments``
        (JSON bytes of the segment value codes, or None) may be left out."""
        self._conn.executemany(
            "INSERT INTO predictions (model, id, version, ts, prediction, scores, labeled, "
            "received, segments) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    model,
                    r[0],
                    r[1],
                    r[2],
                    r[3],
                    r[4],
                    int(r[5]),
                    received,
                    r[6] if len(r) > 6 else None,
                )
                for r in rows
            ],
        )

    def mark_labeled(self, model: str, ids: Sequence[str]) -> None:
        """The predictions ``ids`` got their label: keep only their id (for idempotence)."""
        self._conn.executemany(
            "UPDATE predictions SET labeled = 1, prediction = NULL, scores = NULL, segments = NULL "
            "WHERE model = ? AND id = ?",
            [(model, i) for i in ids],
        )

    def insert_pending_labels(
        self, model: str, rows: Sequence[tuple[str, bytes, float]], received: float
    ) -> None:
        """Rows ``(id, label_json, ts)``."""
        self._conn.executemany(
            "INSERT INTO pending_labels (model, id, label, ts, received) VALUES (?, ?, ?, ?, ?)",
            [(model, i, lab, ts, received) for i, lab, ts in rows],
        )

    def delete_pending_labels(self, model: str, ids: Sequence[str]) -> None:
        self._conn.executemany(
            "DELETE FROM pending_labels WHERE model = ? AND id = ?", [(model, i) for i in ids]
        )


class Store(SpaceUpkeep):
    """SQLite store (WAL). Thread-safe: one connection, serialized by an internal lock.

    Parameters
    ----------
    path: the database file (created with its directory).
    synchronous: ``"FULL"`` (durable across power loss) or ``"NORMAL"`` (across process crash).
    """

    def __init__(
        self, path: Path, synchronous: str = "FULL", max_wal_bytes: int = 64 * 1024**2
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, got {synchronous!r}")
        self.max_wal_bytes = int(max_wal_bytes)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = connect(self.path, synchronous, self.max_wal_bytes)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One ``BEGIN IMMEDIATE ... COMMIT``; rolled back if the block raises."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield Transaction(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._conn.execute(sql, params).fetchall())

    # --- models -----------------------------------------------------------------------------
    def models(self) -> list[ModelRecord]:
        rows = self._query(
            "SELECT name, spec, reference, reference_name, created, updated FROM models "
            "ORDER BY name"
        )
        return [ModelRecord(*row) for row in rows]

    def versions(self, model: str) -> dict[str, float]:
        """The live versions of ``model`` and when each last received a prediction."""
        return {
            r[0]: float(r[1])
            for r in self._query(
                "SELECT version, last_seen FROM versions WHERE model = ? ORDER BY version",
                (model,),
            )
        }

    # --- engine log and checkpoints ---------------------------------------------------------
    def checkpoint(self, model: str, version: str) -> tuple[int, bytes] | None:
        rows = self._query(
            "SELECT seq, data FROM checkpoints WHERE model = ? AND version = ?", (model, version)
        )
        return (int(rows[0][0]), bytes(rows[0][1])) if rows else None

    def log_after(self, model: str, version: str, seq: int) -> list[LogRow]:
        rows = self._query(
            "SELECT seq, model, version, kind, payload FROM oplog WHERE model = ? AND version = ? "
            "AND seq > ? ORDER BY seq",
            (model, version, seq),
        )
        return [LogRow(int(r[0]), r[1], r[2], r[3], bytes(r[4])) for r in rows]

    # --- predictions and labels -------------------------------------------------------------
    def find_predictions(self, model: str, ids: Sequence[str]) -> dict[str, StoredPrediction]:
        found: dict[str, StoredPrediction] = {}
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            for row in self._query(
                "SELECT id, version, ts, prediction, scores, labeled, segments FROM predictions "
                f"WHERE model = ? AND id IN ({marks})",
                (model, *chunk),
            ):
                found[row[0]] = StoredPrediction(
                    row[0],
                    row[1],
                    float(row[2]),
                    row[3],
                    row[4],
                    int(row[5]),
                    None if row[6] is None else bytes(row[6]),
                )
        return found

    def existing_prediction_ids(self, model: str, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            found.update(
                r[0]
                for r in self._query(
                    f"SELECT id FROM predictions WHERE model = ? AND id IN ({marks})",
                    (model, *chunk),
                )
            )
        return found

    def find_pending_labels(self, model: str, ids: Sequence[str]) -> dict[str, PendingLabel]:
        found: dict[str, PendingLabel] = {}
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            for row in self._query(
                f"SELECT id, label, ts FROM pending_labels WHERE model = ? AND id IN ({marks})",
                (model, *chunk),
            ):
                found[row[0]] = PendingLabel(row[0], bytes(row[1]), float(row[2]))
        return found

    def has_pending_labels(self, model: str) -> bool:
        """Whether any label of ``model`` waits for its prediction (skips a lookup if not)."""
        return bool(self._query("SELECT 1 FROM pending_labels WHERE model = ? LIMIT 1", (model,)))

    def waiting_label_counts(self) -> dict[str, int]:
        """Labels waiting for their prediction, per model."""
        return {
            r[0]: int(r[1])
            for r in self._query("SELECT model, COUNT(*) FROM pending_labels GROUP BY model")
        }

    def pending_counts(self) -> dict[str, int]:
        """Predictions waiting for a label, per model."""
        return {
            r[0]: int(r[1])
            for r in self._query(
                "SELECT model, COUNT(*) FROM predictions WHERE labeled = 0 GROUP BY model"
            )
        }

    def count_predictions(self, model: str) -> int:
        return int(self._query("SELECT COUNT(*) FROM predictions WHERE model = ?", (model,))[0][0])
