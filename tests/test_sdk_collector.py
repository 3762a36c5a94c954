"""The SDK against the real collector: batching, flush, restarts, drops, 4xx, fairness.

Each test starts the real collector (``helpers.collector_process``) on a free loopback port
and registers the demo model (a scikit-learn classifier on the NOAA rainfall data); counts
are read back from ``GET /v1/models/{model}`` and ``/metrics``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

import dashboard_support as ds
from helpers import ManagedProcess, free_port, wait_until
from modelmeter.demo import artifacts, data, model
from modelmeter.sdk import Client, monitor, replica_name

MODEL = "rainfall"


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, artifacts.DemoArtifacts]:
    dataset = data.load("rainfall")
    estimator = model.train(dataset)
    reference = model.reference_frame(estimator, dataset)
    lo, hi = dataset.train_rows
    files, _ = artifacts.ensure_artifacts(
        tmp_path_factory.mktemp("demo"), reference, dataset.frame.iloc[lo:hi], "1m", "5s", 20
    )
    return (dataset, estimator), files


def start_collector(tmp: Path, port: int | None = None) -> ManagedProcess:
    proc = ds.collector(tmp)
    if port is not None:  # same port and data directory as a previous run
        proc.argv[proc.argv.index("--port") + 1] = str(port)
        proc.ready_url = f"http://127.0.0.1:{port}/readyz"
        proc.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
        proc.port = port  # type: ignore[attr-defined]
    return proc.start()


@pytest.fixture
def collector(tmp_path: Path, demo_files: Any) -> Iterator[ManagedProcess]:
    proc = start_collector(tmp_path)
    try:
        artifacts.register(proc.url, MODEL, demo_files[1])  # type: ignore[attr-defined]
        yield proc
    finally:
        proc.stop()


def snapshot(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/v1/models/{MODEL}", timeout=10)
    response.raise_for_status()
    snap: dict[str, Any] = response.json()["snapshots"]["default"]
    return snap


def ingest_counts(url: str) -> dict[tuple[str, str], float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    pattern = re.compile(
        r'^modelmeter_ingest_events_total\{kind="(\w+)",model="rainfall",outcome="(\w+)"\} (\S+)$',
        re.M,
    )
    return {(kind, outcome): float(v) for kind, outcome, v in pattern.findall(text)}


def labeled_total(url: str) -> float:
    """Predictions joined with their label so far (the confusion matrix of every version)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    pattern = re.compile(r"^model_labeled_predictions_total\{([^}]*)\} (\S+)$", re.M)
    return sum(float(v) for labels, v in pattern.findall(text) if f'model="{MODEL}"' in labels)


def client_dropped(url: str) -> dict[tuple[str, str], float]:
    """``(replica, kind) -> count`` of ``modelmeter_client_dropped_events_total`` for MODEL."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    pattern = re.compile(r"^modelmeter_client_dropped_events_total\{([^}]*)\} (\S+)$", re.M)
    out = {}
    for label_text, value in pattern.findall(text):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if labels.get("model") == MODEL:
            out[(labels["replica"], labels["kind"])] = float(value)
    return out


def rows(dataset: Any, n: int, start: int = 4000) -> list[dict[str, float]]:
    frame = dataset.frame.iloc[start : start + n]
    return [dict(zip(frame.columns, r, strict=True)) for r in frame.to_numpy().tolist()]


def test_batches_and_flush(collector: ManagedProcess, demo_files: Any) -> None:
    (dataset, estimator), _ = demo_files
    url = collector.url  # type: ignore[attr-defined]
    client = Client(url, MODEL, batch_size=100, flush_interval=60)
    wrapped = monitor(estimator, client)
    frame = dataset.frame.iloc[4000:5234]
    for start in range(0, len(frame), 50):
        wrapped.predict_proba(frame.iloc[start : start + 50])
    ids = [client.log_prediction(r, 0) for r in rows(dataset, 66, start=6000)]
    client.log_labels(zip(ids, dataset.labels[6000:6066].tolist(), strict=True))
    assert client.flush(timeout=30)
    snap = snapshot(url)
    assert snap["predictions_total"] == 1234 + 66
    counts = ingest_counts(url)
    assert counts[("predictions", "accepted")] == 1300
    assert counts[("labels", "accepted")] == 66
    assert client.stats == {"sent": 1366, "dropped": 0, "rejected": 0, "retried": 0, "queued": 0}
    client.close()


def test_collector_restart_nothing_lost_or_doubled(tmp_path: Path, demo_files: Any) -> None:
    (dataset, _), files = demo_files
    first = start_collector(tmp_path)
    port = first.port  # type: ignore[attr-defined]
    url = first.url  # type: ignore[attr-defined]
    artifacts.register(url, MODEL, files)
    client = Client(url, MODEL, batch_size=100, flush_interval=0.2, max_backoff=1.0)
    before = [client.log_prediction(r, 1) for r in rows(dataset, 300)]
    assert client.flush(timeout=30)
    first.stop()
    # the collector is down: these queue, and the sender retries
    during = [client.log_prediction(r, 0) for r in rows(dataset, 500, start=5000)]
    client.log_labels(zip(before, dataset.labels[4000:4300].tolist(), strict=True))
    assert not client.flush(timeout=1.0)
    assert client.stats["retried"] >= 1
    second = start_collector(tmp_path, port=port)
    try:
        assert client.flush(timeout=30)
        snap = snapshot(url)
        assert snap["predictions_total"] == len(before) + len(during) == 800, (
            "the collector lost acknowledged predictions across a restart; its log:\n"
            + second.log()
        )
        counts = ingest_counts(url)
        # counters restart with the process; what the second collector took is exactly the rest
        assert counts.get(("predictions", "duplicate"), 0) == 0
        assert counts[("labels", "accepted")] == 300
        stats = client.stats
        assert stats["sent"] == 1100 and stats["dropped"] == 0 and stats["rejected"] == 0
        # sending the same ids again does not double count (ids make retries idempotent)
        client.log_predictions(rows(dataset, 300), [1] * 300, ids=before)
        assert client.flush(timeout=30)
        assert snapshot(url)["predictions_total"] == 800
        assert ingest_counts(url)[("predictions", "duplicate")] == 300
    finally:
        client.close()
        second.stop()


def test_collector_down_bounded_memory_and_drop_count(demo_files: Any) -> None:
    (dataset, _), _ = demo_files
    row = rows(dataset, 1)[0]
    client = Client(
        f"http://127.0.0.1:{free_port()}", MODEL, max_queue=1000, batch_size=100, max_backoff=0.5
    )
    process = psutil.Process()
    client.log_prediction(row, 0)
    rss_before = process.memory_info().rss
    for _ in range(200_000):
        client.log_prediction(row, 0)
    grown = process.memory_info().rss - rss_before
    stats = client.stats
    assert stats["queued"] <= 1000 + 100
    assert stats["dropped"] == 200_001 - stats["queued"]
    assert stats["sent"] == 0
    # 200,000 queued events would take well over 50 MB; bounded, the queue takes under 10
    assert grown < 10 * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB"
    assert not client.close(timeout=0.5)
    assert client.stats["dropped"] == 200_001


def test_4xx_is_not_retried(
    collector: ManagedProcess, demo_files: Any, caplog: pytest.LogCaptureFixture
) -> None:
    (dataset, _), _ = demo_files
    url = collector.url  # type: ignore[attr-defined]
    client = Client(url, "no-such-model", flush_interval=60)
    with caplog.at_level(logging.WARNING, logger="modelmeter.sdk"):
        for r in rows(dataset, 10):
            client.log_prediction(r, 0)
        assert client.flush(timeout=30)
    assert client.stats["rejected"] == 10 and client.stats["retried"] == 0
    assert "HTTP 404" in caplog.text and "no-such-model" in caplog.text
    # an unknown class is refused per event; the rest of the batch is taken
    good = Client(url, MODEL, flush_interval=60)
    good.log_prediction(rows(dataset, 1)[0], 0)
    good.log_prediction(rows(dataset, 1)[0], 7)
    assert good.flush(timeout=30)
    assert good.stats["sent"] == 1 and good.stats["rejected"] == 1
    client.close()
    good.close()


def test_labels_keep_up_with_sustained_predictions(
    collector: ManagedProcess, demo_files: Any
) -> None:
    """One client, 20 s of predictions at 3,000/s, each label logged 0.5 s after its
    prediction: labels arrive during the run (not all at the end), each one after its
    prediction, and at least 99 % of the predictions end up labeled."""
    (dataset, estimator), _ = demo_files
    url = collector.url  # type: ignore[attr-defined]
    rate, chunk, seconds, delay = 3000, 50, 20.0, 0.5
    frame = dataset.frame.iloc[4000:16000]
    predicted = estimator.predict(frame)
    truth = dataset.labels[4000:16000]
    client = Client(url, MODEL)  # the defaults: batches of 500, a partial batch every second
    due: deque[tuple[float, list[str], Any]] = deque()
    logged = {"predictions": 0, "labels": 0}
    samples: list[tuple[float, int, float, int]] = []  # (t, labels logged, labeled, queued)
    done = threading.Event()

    def watch() -> None:  # the collector's joined labels over time, once a second
        while not done.wait(1.0):
            t = time.monotonic() - start
            samples.append((t, logged["labels"], labeled_total(url), client.stats["queued"]))

    start = time.monotonic()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    i = 0
    while time.monotonic() - start < seconds:
        at = (i * chunk) % (len(frame) - chunk)
        ids = [f"s{i}-{k}" for k in range(chunk)]
        client.log_predictions(frame.iloc[at : at + chunk], predicted[at : at + chunk], ids=ids)
        logged["predictions"] += chunk
        due.append((time.monotonic() + delay, ids, truth[at : at + chunk].tolist()))
        while due and due[0][0] <= time.monotonic():
            _, label_ids, values = due.popleft()
            client.log_labels(zip(label_ids, values, strict=True))
            logged["labels"] += len(label_ids)
        i += 1
        pause = start + i * chunk / rate - time.monotonic()  # pacing, not waiting for a state
        if pause > 0:
            time.sleep(pause)
    for _, label_ids, values in due:
        client.log_labels(zip(label_ids, values, strict=True))
        logged["labels"] += len(label_ids)
    done.set()
    watcher.join(timeout=10)
    assert client.flush(timeout=60)
    total = logged["predictions"]
    assert total >= 0.9 * rate * seconds, f"the test logged only {total} predictions"
    assert snapshot(url)["predictions_total"] == total
    coverage = labeled_total(url) / total
    assert coverage >= 0.99, f"label coverage {coverage:.2%}"
    counts = ingest_counts(url)
    # every label was sent after its prediction: none had to wait at the collector
    assert counts.get(("labels", "pending"), 0) == 0
    assert counts[("labels", "accepted")] == total
    stats = client.stats
    assert stats["sent"] == 2 * total and stats["dropped"] == 0 and stats["rejected"] == 0
    # during the run the joined labels followed the logged ones within a few seconds, while
    # the client still held predictions (the old sender sent labels only on an empty queue)
    during = [s for s in samples if 3.0 <= s[0] <= seconds - 1.0]
    assert len(during) >= 10, samples
    behind = {t: logged_labels - labeled for t, logged_labels, labeled, _ in during}
    assert all(lag <= 3 * rate for lag in behind.values()), f"labels behind: {behind}"
    assert any(queued > 0 for *_, queued in during), samples
    client.close()


def test_the_collector_exports_what_the_client_dropped(
    collector: ManagedProcess, demo_files: Any
) -> None:
    (dataset, _), _ = demo_files
    url = collector.url  # type: ignore[attr-defined]
    client = Client(url, MODEL, max_queue=10, batch_size=10, flush_interval=60)
    row = rows(dataset, 1)[0]
    for _ in range(2000):  # far faster than batches of 10 go: most are dropped
        client.log_prediction(row, 0)
    client.log_labels([(f"missing-{i}", 0) for i in range(30)])  # 20 beyond the queue
    assert client.flush(timeout=30)
    client.log_predictions(rows(dataset, 5), [0] * 5)  # the report rides on predictions
    assert client.flush(timeout=30)
    lost = client.reported_drops
    assert lost["predictions"] > 0 and lost["labels"] == 20
    assert client.stats["dropped"] == lost["predictions"] + lost["labels"]
    replica = replica_name()
    expected = {(replica, kind): float(n) for kind, n in lost.items()}
    exported = wait_until(
        lambda: client_dropped(url) or None,
        timeout=10,
        what="modelmeter_client_dropped_events_total",
    )
    assert exported == expected
    client.close()
