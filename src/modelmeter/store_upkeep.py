"""The store's housekeeping: expiry of unjoined events, its size on disk, space reclaimed.

Mixed into :class:`~modelmeter.store.Transaction` (:class:`ExpiryWrites`: what a TTL or a
disk budget deletes, and what was still waiting) and :class:`~modelmeter.store.Store`
(:class:`SpaceUpkeep`: bytes in use, free pages returned, the WAL truncated).

>>> StoreUsage(4096, 1024).total_bytes
5120
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Expired", "ExpiryWrites", "SpaceUpkeep", "StoreUsage"]


@dataclass(frozen=True)
class Expired:
    """Per model: predictions that expired still waiting for a label, and labels still
    waiting for their prediction."""

    predictions: dict[str, int]
    labels: dict[str, int]


@dataclass(frozen=True)
class StoreUsage:
    """Bytes the store uses: database pages in use (free pages excluded) and the WAL file."""

    database_bytes: int
    wal_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.database_bytes + self.wal_bytes


class ExpiryWrites:
    """The expiring writes of a :class:`~modelmeter.store.Transaction`."""

    _conn: sqlite3.Connection

    def expire(self, before: float) -> Expired:
        """Delete predictions and pending labels received before ``before``; per model, how
        many predictions were still waiting for a label and how many labels for a
        prediction."""
        expired = self._waiting_before(before)
        self._conn.execute("DELETE FROM predictions WHERE received < ?", (before,))
        self._conn.execute("DELETE FROM pending_labels WHERE received < ?", (before,))
        return expired

    def expire_oldest(self, fraction: float) -> Expired:
        """Delete the oldest ``fraction`` of the predictions and of the pending labels (to
        stay within a disk budget); what was waiting, as :meth:`expire`."""
        cutoffs = []
        for table in ("predictions", "pending_labels"):
            (count,) = self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
            skip = max(1, int(count * fraction)) - 1
            row = self._conn.execute(
                f"SELECT received FROM {table} ORDER BY received LIMIT 1 OFFSET ?", (skip,)
            ).fetchone()
            cutoffs.append(None if row is None else float(row[0]))
        expired = Expired({}, {})
        for table, cutoff in zip(("predictions", "pending_labels"), cutoffs, strict=True):
            if cutoff is None:
                continue
            found = self._waiting_before(cutoff, inclusive=True)
            target = expired.predictions if table == "predictions" else expired.labels
            target.update(found.predictions if table == "predictions" else found.labels)
            self._conn.execute(f"DELETE FROM {table} WHERE received <= ?", (cutoff,))
        return expired

    def _waiting_before(self, before: float, inclusive: bool = False) -> Expired:
        op = "<=" if inclusive else "<"
        predictions = self._conn.execute(
            f"SELECT model, COUNT(*) FROM predictions WHERE received {op} ? AND labeled = 0 "
            "GROUP BY model",
            (before,),
        ).fetchall()
        labels = self._conn.execute(
            f"SELECT model, COUNT(*) FROM pending_labels WHERE received {op} ? GROUP BY model",
            (before,),
        ).fetchall()
        return Expired({m: int(n) for m, n in predictions}, {m: int(n) for m, n in labels})


class SpaceUpkeep:
    """The size and space upkeep of a :class:`~modelmeter.store.Store`."""

    path: Path
    _conn: sqlite3.Connection
    _lock: threading.RLock

    def usage(self) -> StoreUsage:
        """Bytes in use now (what a disk budget is compared with)."""
        with self._lock:
            page_size = self._conn.execute("PRAGMA page_size").fetchone()[0]
            pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
            free = self._conn.execute("PRAGMA freelist_count").fetchone()[0]
        wal = Path(f"{self.path}-wal")
        try:
            wal_bytes = wal.stat().st_size
        except FileNotFoundError:
            wal_bytes = 0
        return StoreUsage(int(page_size) * (int(pages) - int(free)), int(wal_bytes))

    def reclaim(self, min_free_ratio: float = 0.25) -> int:
        """Return free pages to the file system when they are at least ``min_free_ratio`` of
        the file (incremental auto-vacuum); the pages released."""
        with self._lock:
            pages = int(self._conn.execute("PRAGMA page_count").fetchone()[0])
            free = int(self._conn.execute("PRAGMA freelist_count").fetchone()[0])
            if free < 128 or free < pages * min_free_ratio:
                return 0
            self._conn.executescript(f"PRAGMA incremental_vacuum({free});")
            return free

    def truncate_wal(self) -> None:
        """Copy the WAL into the database and truncate it to zero bytes, if no reader holds it
        (a periodic bound on the WAL under sustained writes, when automatic checkpoints keep
        appending)."""
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
