"""One model over several collectors: the SDK routes every event by its prediction id.

The hash (rendezvous, BLAKE2b-64) is checked against its specification in docs/sdk.md and a
test vector; adding a collector moves only about 1/N of the ids, all to the new one. Against
recording servers (``test_sdk.Recorder``) and then three real collectors, every event reaches
the collector its id hashes to, labels find their prediction there, each collector hears of
the drops of its own events only, and a collector that is down (``kill -9``) gets its share
retried, never sent to the others.
"""

from __future__ import annotations

import hashlib
import random
import re
import sqlite3
import string
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest

from helpers import ManagedProcess, collector_process, free_port, wait_until
from modelmeter.sdk import Client
from modelmeter.sdk.routing import Router, collector_key, weight
from service_support import events, spec_dict, write_reference
from test_sdk import Recorder

URLS = ["http://c1:8000", "http://c2:8000", "http://c3:8000"]
# the test vector of docs/sdk.md: BLAKE2b-64 of "{url}\n{id}", big-endian
VECTOR = {
    "http://c1:8000": 0x63740F62B1C61BE4,
    "http://c2:8000": 0xF17BC073E4866AC9,
    "http://c3:8000": 0xB2849FD3DA82653D,
}


def seeded_ids(n: int, seed: int = 13) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(string.hexdigits[:16], k=32)) for _ in range(n)]


def spec_choice(urls: list[str], pid: str) -> str:
    """The collector of ``pid`` computed from the text of the spec, independently of Router."""
    best_key, best = "", -1
    for key in sorted((u.rstrip("/") for u in urls), key=str.encode):  # a tie: the smallest
        digest = hashlib.blake2b(f"{key}\n{pid}".encode(), digest_size=8).digest()
        if int.from_bytes(digest, "big") > best:
            best_key, best = key, int.from_bytes(digest, "big")
    return best_key


# ------------------------------------------------------------------ the hash


def test_the_test_vector() -> None:
    for url, expected in VECTOR.items():
        assert weight(url, "p-1") == expected
        raw = hashlib.blake2b(f"{url}\np-1".encode(), digest_size=8).hexdigest()
        assert int(raw, 16) == expected
    router = Router(URLS)
    assert URLS[router.index("p-1")] == "http://c2:8000"  # the highest of the three weights
    assert router.partition(["p-1", "p-2", "p-3", "p-4"]) == [[1], [0, 2], [3]]


def test_the_router_follows_the_spec_and_is_stable() -> None:
    ids = seeded_ids(3000)
    router = Router(URLS)
    chosen = [URLS[router.index(pid)] for pid in ids]
    assert chosen == [spec_choice(URLS, pid) for pid in ids]
    # the order of the list, trailing slashes and credentials do not change where an id goes
    other = Router(["http://c3:8000/", "http://u:pw@c1:8000", "http://c2:8000//"])
    assert [other.keys[other.index(pid)] for pid in ids] == chosen
    assert collector_key("https://u:pw@gw.example/mm/") == "https://gw.example/mm"
    # a new router (another process) routes the same way
    assert [URLS[Router(list(URLS)).index(pid)] for pid in ids[:100]] == chosen[:100]
    # balance: each collector gets a third, within 3 points on 3,000 ids
    for url in URLS:
        assert abs(chosen.count(url) / len(ids) - 1 / 3) < 0.03, url


def test_equal_urls_are_refused() -> None:
    with pytest.raises(ValueError, match="different"):
        Client(["http://c1:8000", "http://c1:8000/"], model="m")
    with pytest.raises(ValueError, match="non-empty"):
        Client([], model="m")
    with pytest.raises(ValueError, match="http://"):
        Client(["http://c1:8000", "c2:8000"], model="m")


def test_adding_a_collector_moves_a_quarter_of_the_ids_all_to_it() -> None:
    """100,000 seeded ids, 3 -> 4 collectors: the ids that move all go to the new one, and
    they are 1/4 of the ids within 0.01 (the binomial standard deviation is 0.0014)."""
    ids = seeded_ids(100_000)
    four = [*URLS, "http://c4:8000"]
    before, after = Router(URLS), Router(four)
    moved = [pid for pid in ids if URLS[before.index(pid)] != four[after.index(pid)]]
    assert {four[after.index(pid)] for pid in moved} == {"http://c4:8000"}
    assert abs(len(moved) / len(ids) - 0.25) < 0.01, len(moved)
    # removing it again moves exactly those back, and nothing else
    assert all(URLS[before.index(pid)] == four[after.index(pid)] for pid in set(ids) - set(moved))


# ------------------------------------------------------------------ against recording servers


@pytest.fixture
def servers() -> Iterator[list[Recorder]]:
    recs = [Recorder() for _ in range(3)]
    yield recs
    for rec in recs:
        rec.close()


def make_client(urls: list[str], **kwargs: Any) -> Client:
    options: dict[str, Any] = {"flush_interval": 60.0, "timeout": 2.0, "max_backoff": 0.2}
    options.update(kwargs)
    return Client(urls, "m", **options)


def test_one_url_is_as_before(servers: list[Recorder]) -> None:
    client = make_client(servers[0].url + "/")
    assert client.urls == (servers[0].url,) and client.url == servers[0].url
    assert repr(client) == f"Client(url={servers[0].url!r}, model='m', version='default')"
    assert [s._thread.name for s in client._senders] == ["modelmeter-sdk"]
    client.log_prediction({"x": 1.0}, 1, id="a")
    assert client.flush(timeout=10)
    assert list(client.collector_stats) == [servers[0].url]
    assert client.collector_stats[servers[0].url] == client.stats
    client.close()


def test_every_event_goes_where_its_id_hashes(servers: list[Recorder]) -> None:
    urls = [rec.url for rec in servers]
    router = Router(urls)
    client = make_client(urls, batch_size=7)
    assert "url=[" in repr(client)
    singles = [client.log_prediction({"x": float(i)}, i % 2, score=0.5) for i in range(60)]
    features = np.arange(80.0).reshape(40, 2)
    block = client.log_predictions(
        features,
        np.arange(40) % 2,
        probabilities=np.full((40, 2), 0.5),
        classes=[0, 1],
        latency_seconds=[i / 1000 for i in range(40)],
        feature_names=["a", "b"],
        ids=[f"b-{i}" for i in range(40)],
    )
    frame = pd.DataFrame({"a": range(30), "b": range(30, 60)})
    argmax = client.log_predictions(frame, None, probabilities=[[0.2, 0.8]] * 30, classes="ny")
    client.log_labels({pid: 1 for pid in singles + block + argmax})
    assert client.flush(timeout=20)
    assert client.stats == {"sent": 260, "dropped": 0, "rejected": 0, "retried": 0, "queued": 0}
    expected: dict[str, set[str]] = {url: set() for url in urls}
    for pid in singles + block + argmax:
        expected[urls[router.index(pid)]].add(pid)
    for rec, url in zip(servers, urls, strict=True):
        got = [e["id"] for e in rec.events()]
        assert len(got) == len(set(got)) and set(got) == expected[url]
        assert {e["id"] for e in rec.events("labels")} == expected[url]
        assert client.collector_stats[url]["sent"] == 2 * len(expected[url])
        assert max(len(body["predictions"]) for body in rec.bodies()) <= 7
    # a selection of a block's rows keeps each row's own values
    by_id = {e["id"]: e for rec in servers for e in rec.events()}
    for i in range(40):
        event = by_id[f"b-{i}"]
        assert event["features"] == {"a": 2.0 * i, "b": 2.0 * i + 1}
        assert event["prediction"] == i % 2 and event["latency_seconds"] == i / 1000
        assert event["probabilities"] == {"0": 0.5, "1": 0.5}
    for i, pid in enumerate(argmax):
        assert by_id[pid]["features"] == {"a": i, "b": 30 + i} and by_id[pid]["prediction"] == "y"
    client.close()


def test_each_collector_hears_of_its_own_drops_only(servers: list[Recorder]) -> None:
    urls = [rec.url for rec in servers]
    router = Router(urls)
    client = make_client(urls, max_queue=5)
    labels = [f"l-{i}" for i in range(60)]
    client.log_labels([(pid, 0) for pid in labels])  # 5 per collector queued, the rest lost
    shares = [len(part) for part in router.partition(labels)]
    lost = [n - 5 for n in shares]
    assert client.reported_drops == {"predictions": 0, "labels": sum(lost)}
    assert client.stats["dropped"] == sum(lost)
    assert client.flush(timeout=20)
    ids = seeded_ids(60)
    for part in router.partition(ids):  # the report travels with predictions: 2 to each
        for p in part[:2]:
            client.log_prediction({"x": 1.0}, 0, id=ids[p])
    assert client.flush(timeout=20)
    for rec, n in zip(servers, lost, strict=True):
        report = rec.bodies()[-1]["resources"]["dropped"]
        assert report == {"predictions": 0, "labels": n}  # not the total: no double count
    assert {url: s["dropped"] for url, s in client.collector_stats.items()} == dict(
        zip(urls, lost, strict=True)
    )
    client.close()


def test_a_down_collector_is_retried_while_the_others_carry_on(servers: list[Recorder]) -> None:
    port = free_port()
    down = f"http://127.0.0.1:{port}"
    urls = [servers[0].url, down, servers[1].url]
    router = Router(urls)
    client = make_client(urls, batch_size=10, flush_interval=0.05)
    ids = [client.log_prediction({"x": 1.0}, 0, id=f"d-{i}") for i in range(90)]
    parts = [{ids[p] for p in part} for part in router.partition(ids)]
    assert all(parts)

    def others_done() -> bool:
        return all(client.collector_stats[u]["queued"] == 0 for u in (urls[0], urls[2]))

    wait_until(others_done, timeout=20, what="the collectors that are up to take their share")
    assert {e["id"] for e in servers[0].events()} == parts[0]
    assert {e["id"] for e in servers[1].events()} == parts[2]
    wait_until(lambda: client.collector_stats[down]["retried"] >= 2, timeout=20, what="retries")
    assert client.collector_stats[down]["queued"] == len(parts[1])
    assert not client.flush(timeout=0.3)
    late = Recorder(port=port)  # the collector is back, on its address
    try:
        assert client.flush(timeout=20)
        assert {e["id"] for e in late.events()} == parts[1]  # retried there, not rerouted
        assert client.stats["sent"] == 90 and client.stats["dropped"] == 0
    finally:
        client.close()
        late.close()


def test_a_forked_child_gets_a_sender_per_collector(servers: list[Recorder]) -> None:
    import os

    urls = [rec.url for rec in servers]
    router = Router(urls)
    client = make_client(urls)
    ids = seeded_ids(30)
    pid = os.fork()
    if pid == 0:  # the child: every collector's share through the inherited client
        code = 1
        try:
            for event_id in ids:
                client.log_prediction({"x": 1.0}, 0, id=event_id)
            code = 0 if client.flush(timeout=10) and client.stats["sent"] == 30 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    for rec, part in zip(servers, router.partition(ids), strict=True):
        assert sorted(e["id"] for e in rec.events()) == sorted(ids[p] for p in part)
    assert client.stats["sent"] == 0  # the parent's counts are its own
    client.close()


def test_block_timeout_bounds_the_whole_call() -> None:
    """A batch whose rows go to three full queues waits ``block_timeout`` in all, not for
    each collector."""
    urls = [f"http://127.0.0.1:{free_port()}" for _ in range(3)]
    router = Router(urls)
    client = make_client(urls, max_queue=1, block_timeout=0.3)
    ids = seeded_ids(30)
    one_each = [part[0] for part in router.partition(ids)]  # an id for each collector
    for p in one_each:  # fills the three queues (nothing is sent: no full batch, no interval)
        client.log_prediction({"x": 1.0}, 0, id=ids[p])
    assert client.stats == {"sent": 0, "dropped": 0, "rejected": 0, "retried": 0, "queued": 3}
    start = time.monotonic()
    client.log_predictions(
        [[1.0]] * 3, [0] * 3, ids=[ids[p] for p in one_each], feature_names=["x"]
    )
    waited = time.monotonic() - start
    assert 0.25 <= waited < 0.6, waited  # not 0.3 s for each of the three
    assert client.stats["dropped"] == 3
    client.close(timeout=0)


# ------------------------------------------------------------------ three real collectors


def ingest_counts(url: str) -> dict[tuple[str, str], float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    pattern = re.compile(
        r'^modelmeter_ingest_events_total\{kind="(\w+)",model="m",outcome="(\w+)"\} (\S+)$', re.M
    )
    return {(kind, outcome): float(v) for kind, outcome, v in pattern.findall(text)}


def metric_sum(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    pattern = re.compile(rf"^{name}\{{([^}}]*)\}} (\S+)$", re.M)
    return sum(float(v) for labels, v in pattern.findall(text) if 'model="m"' in labels)


def stored(data_dir: Path) -> tuple[dict[str, int], int]:
    """(id -> labeled flag of every stored prediction, labels waiting for a prediction)."""
    uri = f"file:{data_dir / 'modelmeter.sqlite3'}?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        rows = conn.execute("SELECT id, labeled FROM predictions WHERE model = 'm'").fetchall()
        pending = conn.execute("SELECT count(*) FROM pending_labels").fetchone()[0]
    conn.close()
    return dict(rows), int(pending)


class Cluster:
    """Three real collectors for model ``m``, each with its own port and data directory."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        ref = write_reference(tmp)
        self.procs: list[ManagedProcess] = []
        for i in range(3):
            proc = collector_process(tmp, data_dir=tmp / f"data-{i}").start()
            self.procs.append(proc)
            r = httpx.put(
                f"{proc.url}/v1/models/m",  # type: ignore[attr-defined]
                content=orjson.dumps(spec_dict(ref.name)),
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
            assert r.status_code in (200, 201), r.text
        self.urls: list[str] = [p.url for p in self.procs]  # type: ignore[attr-defined]
        self.router = Router(self.urls)

    def restart(self, i: int) -> None:
        old = self.procs[i]
        port = old.port  # type: ignore[attr-defined]
        self.procs[i] = collector_process(self.tmp, port=port, data_dir=self.tmp / f"data-{i}")
        self.procs[i].start()

    def share(self, ids: list[str]) -> list[set[str]]:
        return [{ids[p] for p in part} for part in self.router.partition(ids)]

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop()


def log_chunk(client: Client, batch: list[dict[str, Any]], as_block: bool) -> list[str]:
    if as_block:
        return client.log_predictions(
            [e["features"] for e in batch],
            [e["prediction"] for e in batch],
            scores=[e["score"] for e in batch],
            ids=[e["id"] for e in batch],
        )
    return [
        client.log_prediction(
            e["features"], e["prediction"], score=e["score"], id=e["id"],
            latency_seconds=e["latency_seconds"],
        )
        for e in batch
    ]  # fmt: skip


def test_three_collectors_every_label_matched(cluster: Cluster) -> None:
    client = Client(cluster.urls, "m", batch_size=200, flush_interval=0.1)
    sent: list[str] = []
    truth: dict[str, str] = {}
    previous: list[dict[str, Any]] = []
    for k in range(12):  # each chunk's labels are logged after the next chunk's predictions
        batch = events(k * 250, 250, seed=k)
        sent += log_chunk(client, batch, as_block=k % 2 == 1)
        truth.update({e["id"]: e["_label"] for e in batch})
        client.log_labels([(e["id"], e["_label"]) for e in previous])
        previous = batch
    client.log_labels([(e["id"], e["_label"]) for e in previous])
    assert client.flush(timeout=60), client.collector_stats
    assert client.stats == {"sent": 6000, "dropped": 0, "rejected": 0, "retried": 0, "queued": 0}
    shares = cluster.share(sent)
    total_predictions = total_labeled = 0.0
    for proc, url, share in zip(cluster.procs, cluster.urls, shares, strict=True):
        counts = ingest_counts(url)
        assert counts[("predictions", "accepted")] == len(share)
        assert counts[("labels", "accepted")] == len(share)  # matched, each one
        assert counts.get(("labels", "pending"), 0) == 0
        assert counts.get(("predictions", "duplicate"), 0) == 0
        ids, pending = stored(cluster.tmp / f"data-{cluster.procs.index(proc)}")
        assert set(ids) == share and set(ids.values()) == {1} and pending == 0
        assert client.collector_stats[url]["sent"] == 2 * len(share)
        total_predictions += metric_sum(url, "model_predictions_total")
        total_labeled += metric_sum(url, "model_labeled_predictions_total")
        assert metric_sum(url, "model_pending_labels") == 0
    assert total_predictions == total_labeled == len(sent) == 3000
    client.close()


def test_a_collector_killed_mid_stream_gets_its_share_retried(cluster: Cluster) -> None:
    client = Client(cluster.urls, "m", batch_size=100, flush_interval=0.1, max_backoff=0.5)
    victim = 1
    down_url = cluster.urls[victim]
    first = events(0, 600, seed=1)
    before = log_chunk(client, first[:300], as_block=False)
    wait_until(lambda: client.collector_stats[down_url]["sent"] > 0, timeout=30, what="a first ack")
    cluster.procs[victim].kill()  # SIGKILL mid-stream: what it acknowledged is in its WAL
    before += log_chunk(client, first[300:], as_block=False)
    during_batch = events(600, 900, seed=2)
    during: list[str] = []
    for start in range(0, 900, 150):  # keep logging, predictions and labels, while it is down
        chunk = during_batch[start : start + 150]
        during += log_chunk(client, chunk, as_block=start % 300 == 0)
        client.log_labels([(pid, "1") for pid in before[start // 150 :: 6]])
        client.log_labels([(e["id"], e["_label"]) for e in chunk])
    sent = before + during
    shares = cluster.share(sent)
    up = [i for i in range(3) if i != victim]

    def others_done() -> bool:
        return all(client.collector_stats[cluster.urls[i]]["queued"] == 0 for i in up)

    wait_until(others_done, timeout=60, what="the two live collectors to take their share")
    victim_stats = wait_until(
        lambda: (s := client.collector_stats[down_url])["retried"] >= 1 and s,
        timeout=30,
        what="retries to the killed collector",
    )
    assert victim_stats["queued"] > 0 and victim_stats["dropped"] == 0
    for i in up:  # the two others got none of its ids, during the outage either
        assert set(stored(cluster.tmp / f"data-{i}")[0]) == shares[i]
    cluster.restart(victim)
    assert client.flush(timeout=60), client.collector_stats
    stats = client.stats
    assert stats["sent"] == 2 * len(sent) and stats["dropped"] == stats["rejected"] == 0
    assert client.collector_stats[down_url]["retried"] >= 1
    for i in range(3):  # nothing acknowledged is missing; every id where the hash put it
        ids, pending = stored(cluster.tmp / f"data-{i}")
        assert set(ids) == shares[i], i
        assert set(ids.values()) == {1} and pending == 0, i
    for i in up:
        counts = ingest_counts(cluster.urls[i])
        assert counts[("predictions", "accepted")] == len(shares[i])
        assert counts.get(("predictions", "duplicate"), 0) == 0
    total = sum(metric_sum(u, "model_predictions_total") for u in cluster.urls)
    labeled = sum(metric_sum(u, "model_labeled_predictions_total") for u in cluster.urls)
    assert total == labeled == len(sent) == 1500
    client.close()
