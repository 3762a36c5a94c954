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

__all__ = ["LogRow", "ModelRecord", "PendingLabel", "Store", "StoredPrediction", "Transaction"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY,
    spec BLOB NOT NULL,              -- the spec as JSON
    reference BLOB,                  -- reference data bytes (uploaded or read at registration)
    reference_name TEXT,             -- file name (its suffix tells CSV from Parquet)
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    PRIMARY KEY (model, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS oplog (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    kind TEXT NOT NULL,              -- 'observe' | 'label'
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS oplog_model ON oplog (model, version, seq);
CREATE TABLE IF NOT EXISTS checkpoints (
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    seq INTEGER NOT NULL,            -- last oplog seq included
    data BLOB NOT NULL,
    PRIMARY KEY (model, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS predictions (
    model TEXT NOT NULL,
    id TEXT NOT NULL,
    version TEXT NOT NULL,
    ts REAL NOT NULL,
    prediction BLOB,                 -- no affinity: class (TEXT), value (REAL) or NULL (error)
    scores BLOB,                     -- no affinity: P(positive) (REAL), probabilities (JSON)
    labeled INTEGER NOT NULL,
    received REAL NOT NULL,
    PRIMARY KEY (model, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS predictions_received ON predictions (received);
CREATE TABLE IF NOT EXISTS pending_labels (
    model TEXT NOT NULL,
    id TEXT NOT NULL,
    label BLOB NOT NULL,             -- JSON
    ts REAL NOT NULL,
    received REAL NOT NULL,
    PRIMARY KEY (model, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pending_labels_received ON pending_labels (received);
"""

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
    labeled: bool


@dataclass(frozen=True)
class PendingLabel:
    """A label that arrived before its prediction."""

    id: str
    label: bytes
    ts: float


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class Transaction:
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

    def add_versions(self, model: str, versions: Iterable[str]) -> None:
        self._conn.executemany(
            "INSERT OR IGNORE INTO versions (model, version) VALUES (?, ?)",
            [(model, v) for v in versions],
        )

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
        rows: Sequence[tuple[str, str, float, str | float | None, float | bytes | None, bool]],
        received: float,
    ) -> None:
        """Rows ``(id, version, ts, prediction, scores, labeled)``."""
        self._conn.executemany(
            "INSERT INTO predictions (model, id, version, ts, prediction, scores, labeled, "
            "received) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(model, i, v, ts, p, s, int(lab), received) for i, v, ts, p, s, lab in rows],
        )

    def mark_labeled(self, model: str, ids: Sequence[str]) -> None:
        self._conn.executemany(
            "UPDATE predictions SET labeled = 1 WHERE model = ? AND id = ?",
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

    def expire(self, before: float) -> tuple[int, int]:
        """Delete predictions and pending labels received before ``before``."""
        a = self._conn.execute("DELETE FROM predictions WHERE received < ?", (before,)).rowcount
        b = self._conn.execute("DELETE FROM pending_labels WHERE received < ?", (before,)).rowcount
        return int(a), int(b)


class Store:
    """SQLite store (WAL). Thread-safe: one connection, serialized by an internal lock.

    Parameters
    ----------
    path: the database file (created with its directory).
    synchronous: ``"FULL"`` (durable across power loss) or ``"NORMAL"`` (across process crash).
    """

    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, got {synchronous!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            str(self.path), check_same_thread=False, isolation_level=None, timeout=30.0
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={synchronous}")
        self._conn.execute("PRAGMA foreign_keys=OFF")
        self._conn.executescript(_SCHEMA)

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

    def versions(self, model: str) -> list[str]:
        return [
            r[0]
            for r in self._query(
                "SELECT version FROM versions WHERE model = ? ORDER BY version", (model,)
            )
        ]

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
                "SELECT id, version, ts, prediction, scores, labeled FROM predictions "
                f"WHERE model = ? AND id IN ({marks})",
                (model, *chunk),
            ):
                found[row[0]] = StoredPrediction(
                    row[0], row[1], float(row[2]), row[3], row[4], bool(row[5])
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
