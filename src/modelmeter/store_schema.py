"""The store's SQLite file: its tables, how it is opened, and the migrations of older files.

A data directory written by any earlier collector opens with this one: the tables are created
if missing (``CREATE TABLE IF NOT EXISTS``) and a column added since is added in place
(:data:`MIGRATIONS`), with its default for the old rows.

>>> import tempfile, pathlib
>>> conn = connect(pathlib.Path(tempfile.mkdtemp()) / "s.sqlite3", "NORMAL", 1 << 20)
>>> conn.execute("PRAGMA journal_mode").fetchone()[0]
'wal'
>>> conn.close()
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["MIGRATIONS", "SCHEMA", "connect"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY,
    spec BLOB NOT NULL,              -- the spec as JSON
    reference BLOB,                  -- reference data bytes (uploaded or read at registration)
    reference_name TEXT,             -- file name (its suffix tells CSV from Parquet)
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (   -- the live versions of each model
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    last_seen REAL NOT NULL DEFAULT 0,   -- when its last prediction was received
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
    labeled INTEGER NOT NULL,        -- 0 waiting, 1 labeled, 2 its version retired; once
                                     -- not 0, prediction and scores are NULL (only the id
                                     -- stays, to recognise a repeated event or label)
    received REAL NOT NULL,
    segments BLOB,                   -- JSON list of segment value codes; NULL: no segments
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

#: ``(table, column, declaration, which stores lack it)``: columns added after the first release.
MIGRATIONS: tuple[tuple[str, str, str, str], ...] = (
    ("versions", "last_seen", "REAL NOT NULL DEFAULT 0", "written before versions could retire"),
    ("predictions", "segments", "BLOB", "written before segments"),
)


def connect(path: Path, synchronous: str, max_wal_bytes: int) -> sqlite3.Connection:
    """The store's connection (autocommit: the store opens its own transactions), in WAL
    mode, with every table and column this version needs."""
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30.0)
    # Free pages (deleted log rows, expired predictions) go back to the file system in
    # reclaim(); only a new database takes this mode (an old one keeps its file size).
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=OFF")
    # After each checkpoint the WAL file is truncated back to this size (SQLite reuses the
    # file from its start but never shrinks it otherwise); see also Store.truncate_wal().
    conn.execute(f"PRAGMA journal_size_limit={int(max_wal_bytes)}")
    conn.executescript(SCHEMA)
    for table, column, declaration, _ in MIGRATIONS:
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in columns:  # fixed names, from MIGRATIONS
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
    return conn
