"""The SQLite store: transactions, the operation log and checkpoints, pending rows, expiry."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelmeter.store import Expired, ModelRecord, Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "data" / "s.sqlite3")
    yield s
    s.close()


def test_wal_mode_and_synchronous(tmp_path: Path) -> None:
    for mode, code in (("FULL", 2), ("NORMAL", 1)):
        s = Store(tmp_path / f"{mode}.sqlite3", synchronous=mode)
        assert s._query("PRAGMA journal_mode")[0][0] == "wal"
        assert s._query("PRAGMA synchronous")[0][0] == code
        s.close()
    with pytest.raises(ValueError, match="FULL or NORMAL"):
        Store(tmp_path / "x.sqlite3", synchronous="OFF")


def test_a_failed_transaction_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.append_log("m", "v", "observe", b"{}")
        tx.insert_predictions("m", [("a", "v", 1.0, b'"1"', None, False)], 5.0)
        raise RuntimeError("boom")
    assert store.log_after("m", "v", 0) == []
    assert store.existing_prediction_ids("m", ["a"]) == set()


def test_checkpoint_drops_the_log_it_covers(store: Store) -> None:
    with store.transaction() as tx:
        seqs = [tx.append_log("m", "v", "observe", str(i).encode()) for i in range(3)]
        tx.append_log("m", "other", "observe", b"x")
    with store.transaction() as tx:
        tx.put_checkpoint("m", "v", seqs[1], b'{"state": 1}')
    assert store.checkpoint("m", "v") == (seqs[1], b'{"state": 1}')
    assert [r.payload for r in store.log_after("m", "v", seqs[1])] == [b"2"]
    assert [r.seq for r in store.log_after("m", "v", 0)] == [seqs[2]]  # older rows deleted
    assert len(store.log_after("m", "other", 0)) == 1


def test_predictions_labels_and_expiry(store: Store) -> None:
    ids = [f"id{i}" for i in range(1200)]  # more than one IN (...) chunk
    with store.transaction() as tx:
        tx.insert_predictions("m", [(i, "v", 1.0, b'"1"', b"0.7", False) for i in ids], 100.0)
        tx.insert_pending_labels("m", [("late", b'"0"', 3.0)], 100.0)
        tx.mark_labeled("m", ids[:10])
    assert store.existing_prediction_ids("m", [*ids, "nope"]) == set(ids)
    found = store.find_predictions("m", ["id0", "id20"])
    assert found["id0"].labeled and not found["id20"].labeled
    assert found["id20"].scores == b"0.7"
    assert store.pending_counts() == {"m": 1190}
    assert store.has_pending_labels("m") and not store.has_pending_labels("other")
    assert store.find_pending_labels("m", ["late"])["late"].label == b'"0"'
    assert found["id0"].prediction is None and found["id0"].scores is None  # only the id stays
    with store.transaction() as tx:
        assert tx.expire(before=50.0) == Expired({}, {})
        assert tx.expire(before=101.0) == Expired({"m": 1190}, {"m": 1})  # what still waited
    assert store.pending_counts() == {}
    assert store.existing_prediction_ids("m", ids) == set()


def test_retiring_a_version_keeps_its_ids_but_stops_waiting(store: Store) -> None:
    with store.transaction() as tx:
        tx.touch_versions("m", ["v1", "v2"], 10.0)
        tx.insert_predictions("m", [("a", "v1", 1.0, "1", 0.7, False)], 10.0)
        tx.insert_predictions("m", [("b", "v2", 1.0, "1", 0.7, False)], 10.0)
        tx.append_log("m", "v1", "observe", b"{}")
        tx.put_checkpoint("m", "v1", 0, b"{}")
    with store.transaction() as tx:
        assert tx.retire_version("m", "v1") == 1
    assert store.versions("m") == {"v2": 10.0}
    assert store.checkpoint("m", "v1") is None and store.log_after("m", "v1", 0) == []
    found = store.find_predictions("m", ["a", "b"])
    assert (found["a"].labeled, found["a"].prediction) == (2, None)
    assert found["b"].labeled == 0
    assert store.pending_counts() == {"m": 1}


def test_expire_oldest_and_usage(store: Store) -> None:
    rows = [(f"p{i}", "v", 1.0, "1", None, False) for i in range(100)]
    with store.transaction() as tx:
        for i in range(10):
            tx.insert_predictions("m", rows[i * 10 : (i + 1) * 10], float(i))
        tx.insert_pending_labels("m", [(f"l{i}", b'"1"', 1.0) for i in range(10)], 0.0)
    before = store.usage()
    assert before.database_bytes > 0 and before.total_bytes >= before.database_bytes
    with store.transaction() as tx:
        expired = tx.expire_oldest(0.2)  # the two oldest receptions of predictions
    assert expired == Expired({"m": 20}, {"m": 10})
    assert store.pending_counts() == {"m": 80} and store.waiting_label_counts() == {}
    store.truncate_wal()
    assert store.usage().wal_bytes == 0


def test_models_round_trip_and_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    s = Store(path)
    record = ModelRecord("m", b'{"task": "regression"}', b"x,y\n", "ref.csv", 1.0, 2.0)
    with s.transaction() as tx:
        tx.put_model(record)
        tx.touch_versions("m", ["v1", "v2"], 5.0)
        tx.touch_versions("m", ["v1"], 7.0)
    s.close()
    s = Store(path)
    assert s.models() == [record]
    assert s.versions("m") == {"v1": 7.0, "v2": 5.0}
    s.close()


def test_reclaim_returns_free_pages_to_the_file_system(store: Store) -> None:
    rows = [(f"p{i}", "v", 1.0, "1", 0.5, False) for i in range(20_000)]
    with store.transaction() as tx:
        tx.insert_predictions("m", rows, 1.0)
    store.truncate_wal()
    full = store.path.stat().st_size
    with store.transaction() as tx:
        tx.expire(before=2.0)
    assert store.reclaim() > 0
    store.truncate_wal()
    assert store.path.stat().st_size < full / 4
    assert store.reclaim() == 0  # nothing left to release


def test_segment_codes_are_kept_until_labeled_and_an_old_store_gains_the_column(
    tmp_path: Path,
) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)  # the predictions table as it was before segments
    old.execute(
        "CREATE TABLE predictions (model TEXT NOT NULL, id TEXT NOT NULL, version TEXT NOT NULL,"
        " ts REAL NOT NULL, prediction BLOB, scores BLOB, labeled INTEGER NOT NULL,"
        " received REAL NOT NULL, PRIMARY KEY (model, id)) WITHOUT ROWID"
    )
    old.execute("INSERT INTO predictions VALUES ('m', 'old', 'v', 1.0, '1', NULL, 0, 1.0)")
    old.commit()
    old.close()
    store = Store(path)
    with store.transaction() as tx:
        tx.insert_predictions(
            "m",
            [("a", "v", 1.0, "1", 0.7, False, b"[2,0]"), ("b", "v", 1.0, "0", 0.2, False)],
            5.0,
        )
    found = store.find_predictions("m", ["old", "a", "b"])
    assert (found["old"].segments, found["a"].segments, found["b"].segments) == (
        None,
        b"[2,0]",
        None,
    )
    with store.transaction() as tx:
        tx.mark_labeled("m", ["a"])
    assert store.find_predictions("m", ["a"])["a"].segments is None
    store.close()
