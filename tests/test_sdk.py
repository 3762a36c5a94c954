"""SDK unit tests: queueing, batching, retries and drops, against a tiny recording HTTP server.

The server is a real HTTP server on loopback (``http.server``) that records each request and
answers with statuses the test chooses; the tests against the real collector are in
``test_sdk_collector.py``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import modelmeter
from helpers import free_port, wait_until
from modelmeter.sdk import Client, monitor, replica_name


class Recorder:
    """A loopback HTTP server recording POSTed JSON; ``statuses`` are answered first, in order."""

    def __init__(self, port: int | None = None) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with recorder.lock:
                    status = recorder.statuses.pop(0) if recorder.statuses else 200
                    if status == 200:
                        recorder.requests.append((self.path, body))
                        recorder.headers = dict(self.headers)
                payload = json.dumps(
                    {"accepted": 0, "rejected": []} if status == 200 else {"detail": "nope"}
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.headers: dict[str, str] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", port or 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self, kind: str = "predictions") -> list[dict[str, Any]]:
        with self.lock:
            return [e for path, body in self.requests if path.endswith(kind) for e in body[kind]]

    def bodies(self, kind: str = "predictions") -> list[dict[str, Any]]:
        with self.lock:
            return [body for path, body in self.requests if path.endswith(kind)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.close()


def make_client(url: str, **kwargs: Any) -> Client:
    options: dict[str, Any] = {"flush_interval": 60.0, "timeout": 2.0, "max_backoff": 0.2}
    options.update(kwargs)
    return Client(url, "m", **options)


def test_public_api() -> None:
    assert modelmeter.Client is Client
    assert modelmeter.monitor is monitor
    assert modelmeter.__all__ == sorted(modelmeter.__all__)


def test_repr() -> None:
    client = make_client("http://127.0.0.1:9")
    assert repr(client) == "Client(url='http://127.0.0.1:9', model='m', version='default')"
    assert repr(monitor(LogisticRegression(), client)).startswith("monitor(LogisticRegression()")
    client.close(timeout=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "127.0.0.1:8000"}, "http://"),
        ({"model": ""}, "model"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_queue": 0}, "max_queue"),
        ({"flush_interval": -1}, "flush_interval"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"url": "http://127.0.0.1:9", "model": "m", **kwargs}
    with pytest.raises(ValueError, match=message):
        Client(**args)


def test_replica_name_is_valid() -> None:
    import re

    assert re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", replica_name())
    assert replica_name("a/b c", 1) == "a_b_c-1"


def test_batches_by_size(server: Recorder) -> None:
    client = make_client(server.url, batch_size=10)
    ids = [client.log_prediction({"x": float(i)}, prediction=i % 2) for i in range(25)]
    # two full batches go at once, without waiting for the 60 s flush interval
    wait_until(lambda: len(server.events()) >= 20, timeout=10, what="two full batches")
    assert client.flush(timeout=10)
    bodies = server.bodies()
    assert [len(b["predictions"]) for b in bodies] == [10, 10, 5]
    assert [e["id"] for e in server.events()] == ids
    assert len(set(ids)) == 25 and all(len(i) == 32 for i in ids)
    resources = bodies[0]["resources"]
    assert resources["replica"] == replica_name()
    assert resources["cpu_ratio"] >= 0 and resources["memory_bytes"] > 10_000_000
    # the drop report starts at zero, so the collector's counter exists before it first rises
    assert resources["dropped"] == {"predictions": 0, "labels": 0}
    assert client.stats == {"sent": 25, "dropped": 0, "rejected": 0, "retried": 0, "queued": 0}
    client.close()


def test_flush_interval_sends_partial_batch(server: Recorder) -> None:
    client = make_client(server.url, flush_interval=0.2)
    client.log_prediction({"x": 1.0}, prediction="a")
    wait_until(lambda: server.events(), timeout=5, what="the timed flush")
    client.close()


def test_event_fields(server: Recorder) -> None:
    client = make_client(server.url, version="v2", token="s3cret")
    client.log_prediction(
        {"x": np.float64(1.5), "c": "red"},
        np.int64(1),
        probabilities={0: 0.25, 1: 0.75},
        latency_seconds=0.002,
        id="abc",
        timestamp=1000.0,
        label=1,
    )
    client.log_prediction({"x": float("nan")}, None, error="ValueError: bad", id="err")
    client.log_label("abc", np.int64(1), timestamp=1001.0)
    assert client.flush(timeout=10)
    first, second = server.events()
    assert first == {
        "id": "abc",
        "timestamp": 1000.0,
        "features": {"x": 1.5, "c": "red"},
        "prediction": 1,
        "version": "v2",
        "probabilities": {"0": 0.25, "1": 0.75},
        "latency_seconds": 0.002,
        "label": 1,
    }
    assert second["features"] == {"x": None}  # NaN travels as null (missing)
    assert second["error"] == "ValueError: bad" and second["prediction"] is None
    assert server.events("labels") == [{"id": "abc", "label": 1, "timestamp": 1001.0}]
    assert server.headers["Authorization"] == "Bearer s3cret"
    client.close()


def test_log_predictions_dataframe_and_arrays(server: Recorder) -> None:
    client = make_client(server.url)
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    ids = client.log_predictions(
        frame,
        np.array([0, 1]),
        probabilities=np.array([[0.9, 0.1], [0.2, 0.8]]),
        classes=[0, 1],
        latency_seconds=0.01,
        labels=[0, 0],
    )
    client.log_predictions(np.array([[3.0, 4.0]]), ["z"], feature_names=["a", "b"], ids=["k"])
    client.log_predictions([{"a": 5.0}], [1], scores=[0.7])
    assert client.flush(timeout=10)
    events = server.events()
    assert [e["id"] for e in events[:2]] == ids
    assert events[0]["features"] == {"a": 1.0, "b": "x"}
    assert events[1]["probabilities"] == {"0": 0.2, "1": 0.8}
    assert events[1]["label"] == 0 and events[1]["latency_seconds"] == 0.01
    assert events[2]["features"] == {"a": 3.0, "b": 4.0} and events[2]["id"] == "k"
    assert events[3]["score"] == 0.7
    client.close()


def test_a_large_batch_goes_in_requests_of_batch_size(server: Recorder) -> None:
    """One call with more rows than ``batch_size`` is cut, so no request outgrows it (the
    collector answers a request above MODELMETER_MAX_EVENTS with 413: all of it lost)."""
    client = make_client(server.url, batch_size=10)
    n = 25
    frame = pd.DataFrame({"a": np.arange(n, dtype=float), "b": [f"c{i % 3}" for i in range(n)]})
    proba = np.column_stack([np.linspace(0, 1, n), 1 - np.linspace(0, 1, n)])
    ids = client.log_predictions(
        frame,
        np.arange(n) % 2,
        probabilities=proba,
        classes=[0, 1],
        latency_seconds=[i / 1000 for i in range(n)],
        labels=list(np.arange(n) % 2),
    )
    client.log_predictions(frame.iloc[:3], [0, 1, 0], latency_seconds=0.5)
    assert client.flush(timeout=10)
    assert [len(b["predictions"]) for b in server.bodies()] == [10, 10, 5 + 3]
    events = server.events()
    assert [e["id"] for e in events[:n]] == ids
    for i, e in enumerate(events[:n]):
        assert e["features"] == {"a": float(i), "b": f"c{i % 3}"}
        assert e["prediction"] == i % 2 and e["label"] == i % 2
        assert e["probabilities"] == {"0": proba[i, 0], "1": proba[i, 1]}
        assert e["latency_seconds"] == i / 1000
    assert [e["latency_seconds"] for e in events[n:]] == [0.5] * 3
    client.close()


def test_retries_5xx_and_429_then_delivers_once(server: Recorder) -> None:
    server.statuses = [503, 429, 500]
    client = make_client(server.url)
    ids = [client.log_prediction({"x": 1.0}, 0) for _ in range(3)]
    assert client.flush(timeout=20)
    assert [e["id"] for e in server.events()] == ids
    assert client.stats["retried"] == 3 and client.stats["sent"] == 3
    client.close()


def test_4xx_is_not_retried_and_logged_with_the_message(
    server: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    server.statuses = [404]
    client = make_client(server.url)
    with caplog.at_level(logging.WARNING, logger="modelmeter.sdk"):
        client.log_prediction({"x": 1.0}, 0)
        assert client.flush(timeout=10)
    assert server.events() == []
    assert client.stats["rejected"] == 1 and client.stats["retried"] == 0
    assert "HTTP 404: nope" in caplog.text
    # refused as a whole request: lost, so reported with the next predictions request
    server.statuses = [422]
    client.log_label("x", 0)
    assert client.flush(timeout=10)
    assert client.reported_drops == {"predictions": 1, "labels": 1}
    client.log_prediction({"x": 2.0}, 0)
    assert client.flush(timeout=10)
    assert server.bodies()[-1]["resources"]["dropped"] == {"predictions": 1, "labels": 1}
    assert client.stats["dropped"] == 0 and client.stats["rejected"] == 2
    client.close()


def test_per_event_rejections_are_counted() -> None:
    class Partial(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps({"accepted": 1, "rejected": [{"index": 1, "error": "bad id"}]})
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Partial)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    client = make_client(f"http://127.0.0.1:{httpd.server_address[1]}")
    client.log_prediction({"x": 1.0}, 0)
    client.log_prediction({"x": 1.0}, 0)
    assert client.flush(timeout=10)
    assert client.stats["sent"] == 1 and client.stats["rejected"] == 1
    # rejected one by one: the collector counts these itself; the client reports no loss
    assert client.reported_drops == {"predictions": 0, "labels": 0}
    client.close()
    httpd.shutdown()
    httpd.server_close()


def test_server_down_then_up_nothing_lost_or_doubled() -> None:
    port = free_port()
    client = make_client(f"http://127.0.0.1:{port}")
    ids = [client.log_prediction({"x": float(i)}, 0) for i in range(50)]
    assert not client.flush(timeout=0.5)  # nobody listens yet
    assert client.stats["retried"] >= 1 and client.stats["queued"] == 50
    rec = Recorder(port)
    try:
        assert client.flush(timeout=10)
        assert [e["id"] for e in rec.events()] == ids
        assert client.stats["sent"] == 50 and client.stats["dropped"] == 0
    finally:
        client.close()
        rec.close()


def test_bounded_queue_drops_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    client = make_client(f"http://127.0.0.1:{free_port()}", max_queue=100, batch_size=10)
    with caplog.at_level(logging.WARNING, logger="modelmeter.sdk"):
        for i in range(1000):
            client.log_prediction({"x": float(i)}, 0)
        client.log_labels([(str(i), 0) for i in range(150)])
    stats = client.stats
    # per kind at most max_queue waiting plus one batch in flight; the rest is counted
    assert stats["queued"] <= 2 * 110
    assert stats["dropped"] == 1150 - stats["queued"]
    assert caplog.text.count("queue full") == 1  # rate-limited
    assert not client.close(timeout=0.2)
    assert client.stats["dropped"] == 1150 and client.stats["queued"] == 0
    client.log_prediction({"x": 1.0}, 0)  # after close: counted, not kept
    assert client.stats["dropped"] == 1151 and client.stats["queued"] == 0


def test_labels_alternate_with_predictions_once_theirs_are_sent() -> None:
    """A backlog of predictions does not hold labels back until it is empty: after each
    prediction batch goes one batch of the labels whose predictions are sent."""
    port = free_port()
    client = make_client(f"http://127.0.0.1:{port}", batch_size=10)
    for i in range(50):
        client.log_prediction({"x": float(i)}, 0, id=f"p{i}")
    client.log_labels([(f"p{i}", 0) for i in range(10)])  # after 50 predictions
    for i in range(50, 100):
        client.log_prediction({"x": float(i)}, 0, id=f"p{i}")
    client.log_labels([(f"p{i}", 1) for i in range(50, 60)])  # after 100 predictions
    assert not client.flush(timeout=0.3)  # nobody listens yet: all of it waits
    rec = Recorder(port)
    try:
        assert client.flush(timeout=10)
        with rec.lock:
            order = [
                path.rsplit("/", 1)[1][0] + str(len(body[path.rsplit("/", 1)[1]]))
                for path, body in rec.requests
            ]
        # the old sender sent all ten prediction batches first; now labels go as soon as the
        # predictions logged before them are sent, and never ahead of them
        assert order == ["p10"] * 5 + ["l10"] + ["p10"] * 5 + ["l10"]
        assert [e["id"] for e in rec.events("labels")] == [
            f"p{i}" for i in (*range(10), *range(50, 60))
        ]
        assert client.stats["sent"] == 120 and client.stats["dropped"] == 0
    finally:
        client.close()
        rec.close()


def test_labels_do_not_wait_for_a_stream_of_newer_predictions(server: Recorder) -> None:
    """Sustained predictions from one thread, labels from another: every label is sent while
    predictions are still being logged (the old sender waited for an empty queue)."""
    client = make_client(server.url, batch_size=20, flush_interval=0.05)
    stop = threading.Event()

    def predictions() -> None:
        i = 0
        while not stop.is_set():
            client.log_predictions(
                [{"x": float(i + k)} for k in range(20)],
                [0] * 20,
                ids=[f"s{i + k}" for k in range(20)],
            )
            i += 20
            time.sleep(0.001)  # keeps the prediction queue from ever emptying

    thread = threading.Thread(target=predictions, daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(server.events()) >= 200, timeout=20, what="a first 200 predictions")
        client.log_labels([("s0", 0), ("s1", 1)])
        wait_until(lambda: server.events("labels"), timeout=20, what="labels during the stream")
        assert thread.is_alive() and client.stats["queued"] > 0
    finally:
        stop.set()
        thread.join(timeout=10)
    assert client.flush(timeout=20)
    client.close()


def test_a_full_prediction_queue_leaves_the_labels_their_room() -> None:
    client = make_client(f"http://127.0.0.1:{free_port()}", max_queue=5, batch_size=5)
    for i in range(100):
        client.log_prediction({"x": float(i)}, 0)
    client.log_labels([(str(i), 0) for i in range(5)])
    lost = client.reported_drops
    assert lost["labels"] == 0 and lost["predictions"] >= 100 - 10  # 5 queued, 5 in flight
    client.log_labels([("late", 0)])
    assert client.reported_drops["labels"] == 1
    assert client.stats["dropped"] == sum(client.reported_drops.values())
    client.close(timeout=0)


def test_drops_are_reported_with_the_next_predictions() -> None:
    port = free_port()
    client = make_client(f"http://127.0.0.1:{port}", max_queue=5, batch_size=5)
    for i in range(20):
        client.log_prediction({"x": float(i)}, 0)
    client.log_labels([(str(i), 0) for i in range(8)])
    dropped = client.stats["dropped"]
    assert client.reported_drops == {"predictions": dropped - 3, "labels": 3}
    rec = Recorder(port)
    try:
        assert client.flush(timeout=10)
        client.log_prediction({"x": 1.0}, 0)
        assert client.flush(timeout=10)
        bodies = rec.bodies()
        # every request after the drops carries the cumulative counts, the last one too
        assert all(b["resources"]["dropped"] == client.reported_drops for b in bodies)
        assert bodies[-1]["resources"]["replica"] == replica_name()
        assert client.stats["dropped"] == dropped
    finally:
        client.close()
        rec.close()


def test_without_psutil_the_report_travels_alone(server: Recorder) -> None:
    import subprocess
    import sys

    script = (
        "import sys\n"
        "sys.modules['psutil'] = None  # import psutil raises ImportError\n"
        "import modelmeter\n"
        "from modelmeter.sdk import replica_name\n"
        f"c = modelmeter.Client({server.url!r}, 'm', max_queue=1, flush_interval=3600)\n"
        "c.log_prediction({'x': 0.0}, 0, id='before')\n"
        "assert c.flush(timeout=10)\n"
        "c.log_labels({'a': 1, 'b': 0})  # one label too many: dropped\n"
        "c.log_prediction({'x': 1.0}, 0, id='after')\n"
        "assert c.flush(timeout=10) and c.close()\n"
        "print(replica_name())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], timeout=60, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    before, after = server.bodies()
    assert "resources" not in before  # nothing sampled, nothing lost: no resources at all
    assert after["resources"] == {
        "replica": done.stdout.decode().strip(),
        "dropped": {"predictions": 0, "labels": 1},
    }


def test_block_timeout_bounds_the_wait() -> None:
    client = make_client(f"http://127.0.0.1:{free_port()}", max_queue=1, block_timeout=0.2)
    client.log_prediction({"x": 1.0}, 0)
    # the sender may hold the first event in flight; fill the queue again
    client.log_prediction({"x": 1.0}, 0)
    start = time.perf_counter()
    client.log_prediction({"x": 1.0}, 0)
    waited = time.perf_counter() - start
    assert 0.15 < waited < 1.0
    assert client.stats["dropped"] >= 1
    client.close(timeout=0)


def test_never_raises_into_the_caller() -> None:
    client = make_client("http://127.0.0.1:9")
    assert client.log_predictions([[1.0]], [0, 1], feature_names=["x"]) == []  # wrong length
    assert client.log_predictions([[1.0]], [0]) == []  # plain rows need feature_names
    assert client.stats["dropped"] == 2
    client.close(timeout=0)


def test_unencodable_values_are_dropped_not_fatal(server: Recorder) -> None:
    client = make_client(server.url)
    client.log_prediction({"x": object()}, 0)  # JSON cannot encode it
    client.log_prediction({"x": 1.0}, 0)
    client.flush(timeout=5)
    client.log_prediction({"x": 2.0}, 0)
    assert client.flush(timeout=5)
    assert [e["features"]["x"] for e in server.events()][-1] == 2.0
    client.close()


def fitted_model() -> tuple[LogisticRegression, pd.DataFrame]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    y = (X["a"] + 0.5 * X["b"] > 0).astype(int)
    return LogisticRegression().fit(X, y), X


def test_monitor_reports_every_row(server: Recorder) -> None:
    model, X = fitted_model()
    client = make_client(server.url)
    wrapped = monitor(model, client)
    proba, ids = wrapped.predict_proba(X.iloc[:5], return_ids=True)
    np.testing.assert_array_equal(proba, model.predict_proba(X.iloc[:5]))
    predictions = wrapped.predict(X.iloc[5:8])
    np.testing.assert_array_equal(predictions, model.predict(X.iloc[5:8]))
    assert len(wrapped.last_ids) == 3
    # numpy input: names from estimator.feature_names_in_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # sklearn: "X does not have valid names"
        wrapped.predict_proba(X.to_numpy()[:1])
    assert wrapped.coef_ is model.coef_  # other attributes pass through
    assert client.flush(timeout=10)
    events = server.events()
    assert [e["id"] for e in events[:5]] == ids
    assert events[0]["features"] == {"a": X["a"][0], "b": X["b"][0]}
    assert events[0]["prediction"] == int(model.predict(X.iloc[:1])[0])
    assert events[0]["probabilities"] == pytest.approx(
        dict(zip(["0", "1"], proba[0].tolist(), strict=True))
    )
    assert all(0 < e["latency_seconds"] < 1 for e in events)
    assert events[5]["probabilities"]["1"] == pytest.approx(model.predict_proba(X.iloc[5:6])[0, 1])
    assert set(events[8]["features"]) == {"a", "b"}
    client.close()


def test_monitor_records_errors_and_reraises(server: Recorder) -> None:
    model, _ = fitted_model()
    client = make_client(server.url)
    wrapped = monitor(model, client, feature_names=["a", "b", "c"])
    with pytest.raises(ValueError), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # sklearn: "X does not have valid names"
        wrapped.predict(np.ones((2, 3)))  # the model expects 2 features
    assert client.flush(timeout=10)
    events = server.events()
    assert len(events) == 2 and all(e["error"].startswith("ValueError") for e in events)
    assert events[0]["prediction"] is None and events[0]["features"] == {"a": 1, "b": 1, "c": 1}
    assert [e["id"] for e in events] == wrapped.last_ids
    client.close()


def test_monitor_needs_predict() -> None:
    client = make_client("http://127.0.0.1:9")
    with pytest.raises(TypeError, match="predict"):
        monitor(object(), client)
    client.close(timeout=0)


def test_flushes_at_exit(server: Recorder, tmp_path: Any) -> None:
    import subprocess
    import sys

    script = (
        "import modelmeter\n"
        f"c = modelmeter.Client({server.url!r}, 'm', flush_interval=3600)\n"
        "for i in range(7):\n"
        "    c.log_prediction({'x': float(i)}, 0, id=f'exit-{i}')\n"
        "c.log_label('exit-0', 1)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], timeout=60, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    assert [e["id"] for e in server.events()] == [f"exit-{i}" for i in range(7)]
    assert server.events("labels")[0]["id"] == "exit-0"


def test_a_forked_child_gets_its_own_sender(server: Recorder) -> None:
    import os

    client = make_client(server.url)
    client.log_prediction({"x": 0.0}, 0, id="parent")
    assert client.flush(timeout=10)
    pid = os.fork()
    if pid == 0:  # the child: report one prediction through the inherited client, then exit
        code = 1
        try:
            client.log_prediction({"x": 1.0}, 0, id="child")
            code = 0 if client.flush(timeout=10) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    bodies = server.bodies()
    assert [b["predictions"][0]["id"] for b in bodies] == ["parent", "child"]
    assert bodies[0]["resources"]["replica"] != bodies[1]["resources"]["replica"]
    assert client.stats["sent"] == 1  # the parent's counts are its own
    client.close()
