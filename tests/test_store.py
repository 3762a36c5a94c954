"""The SQLite store: transactions, the operation log and checkpoints, pending rows, expiry."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelmeter.store import ModelRecord, Store


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
    with store.transaction() as tx:
        assert tx.expire(before=50.0) == (0, 0)
        assert tx.expire(before=101.0) == (1200, 1)
    assert store.pending_counts() == {}


def test_models_round_trip_and_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    s = Store(path)
    record = ModelRecord("m", b'{"task": "regression"}', b"x,y\n", "ref.csv", 1.0, 2.0)
    with s.transaction() as tx:
        tx.put_model(record)
        tx.add_versions("m", ["v1", "v2", "v1"])
    s.close()
    s = Store(path)
    assert s.models() == [record]
    assert s.versions("m") == ["v1", "v2"]
    s.close()
