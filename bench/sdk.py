"""What the SDK adds to one predict call, with the collector up and down.

Measured on this machine, per call, over many calls in a tight loop (the worst case: the
sender thread competes for the GIL the whole time):

* ``log_prediction``: the time of the call itself (queue append, id, timestamp);
* ``monitor``: ``wrapped.predict_proba(one-row DataFrame)`` around an estimator that answers
  at once (the wrapper's own cost; a real model's time varies by more than that from call to
  call, so the real model is shown beside it only for scale);
* ``log_prediction`` with three collector URLs (down): the same plus routing the id, one
  hash per collector (rendezvous hashing; nothing is hashed with one URL);
* the longest a call waited when the queue was full with ``block_timeout=5 ms``;
* the sender thread (the second table): events per second from the first ``log_prediction``
  to the end of ``flush`` against the real collector, in a subprocess with orjson and in one
  where ``import orjson`` fails (the SDK's standard-library ``json`` path), and the time to
  encode one 500-event request body with each JSON path (orjson with the options the SDK
  used before it had a ``json`` path, the SDK's ``dumps`` with orjson, and the standard
  library's ``json``), without and with one NaN feature per event (``json`` then encodes
  twice: NaN travels as null).

The collector is the real one (``python -m modelmeter.service``) on a free loopback port;
"down" is a port nobody listens on. Run: ``python bench/sdk.py``; the table is printed and
written as the "SDK" section of bench/RESULTS.md (other sections are kept).
"""

from __future__ import annotations

import importlib.util
import json
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from modelmeter.demo import artifacts, data, model
from modelmeter.sdk import Client, monitor

RESULTS = Path(__file__).with_name("RESULTS.md")
CALLS = 20_000
MODEL_CALLS = 3_000
SENDER_EVENTS = 20_000
ENCODE_REPEATS = 200

# the sender's throughput, in its own process (argv: url, rows.json, "orjson" or "json")
SENDER_SCRIPT = """
import json, sys, time
if sys.argv[3] == "json":
    sys.modules["orjson"] = None  # import orjson raises ImportError: the stdlib path
from modelmeter.sdk import Client
url, rows_path, n = sys.argv[1], sys.argv[2], int(sys.argv[4])
with open(rows_path) as f:
    rows = json.load(f)
client = Client(url, "rainfall", max_queue=n, batch_size=500, flush_interval=60)
start = time.perf_counter()
for i in range(n):
    client.log_prediction(rows[i % len(rows)], 1, probabilities={0: 0.3, 1: 0.7})
flushed = client.flush(timeout=600)
elapsed = time.perf_counter() - start
stats = client.stats
client.close(timeout=5)
assert flushed, stats
assert sys.argv[3] == "orjson" or sys.modules.get("orjson") is None  # the json path ran
print(json.dumps({"seconds": elapsed, "stats": stats}))
"""


class FixedEstimator:
    """Answers every call with the same probabilities, at once: isolates the wrapper's cost."""

    def __init__(self, proba: np.ndarray) -> None:
        self.proba = proba
        self.classes_ = np.array([0, 1])

    def predict_proba(self, X: object) -> np.ndarray:
        return self.proba


def call_on_row(method: Callable[[Any], object], frames: list[Any], i: int) -> object:
    return method(frames[i])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    """(median, p99, max) in microseconds."""
    a = np.asarray(samples) * 1e6
    return float(np.median(a)), float(np.percentile(a, 99)), float(a.max())


def time_calls(call: Callable[[int], object], n: int) -> list[float]:
    clock = time.perf_counter
    out = []
    for i in range(n):
        t = clock()
        call(i)
        out.append(clock() - t)
    return out


def start_collector(
    tmp: Path, files: artifacts.DemoArtifacts
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelmeter.service", "--port", str(port),
         "--data-dir", str(tmp / "collector"), "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).is_success:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise SystemExit("the collector did not start; run it by hand to see why")
        time.sleep(0.1)
    artifacts.register(url, "rainfall", files)
    return proc, url


def has_json_path() -> bool:
    """True when the SDK has its standard-library json path (not the single-module SDK)."""
    try:
        return importlib.util.find_spec("modelmeter.sdk.encoding") is not None
    except ModuleNotFoundError:
        return False


def sender_throughput(url: str, rows_path: Path, backend: str) -> tuple[float, dict[str, int]]:
    """Events per second through a fresh client in a subprocess, and its final stats."""
    done = subprocess.run(
        [sys.executable, "-c", SENDER_SCRIPT, url, str(rows_path), backend, str(SENDER_EVENTS)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"the sender subprocess ({backend}) failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return SENDER_EVENTS / result["seconds"], result["stats"]


def encode_times(dict_rows: list[dict[str, Any]]) -> list[tuple[str, float, float]]:
    """(JSON path, median µs per 500-event body, the same with one NaN feature per event)."""
    import orjson

    def body(nan: bool) -> dict[str, Any]:
        events = []
        for i in range(500):
            features = dict(dict_rows[i % len(dict_rows)])
            if nan:
                features[next(iter(features))] = float("nan")
            events.append(
                {"id": f"{i:032x}", "timestamp": 1.7e9 + i, "features": features,
                 "prediction": 1, "version": "default",
                 "probabilities": {"0": 0.3, "1": 0.7}}
            )  # fmt: skip
        dropped = {"predictions": 0, "labels": 0}
        resources = {"replica": "bench-1", "cpu_ratio": 0.5, "memory_bytes": 1 << 28}
        return {"predictions": events, "resources": {**resources, "dropped": dropped}}

    option = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    paths: list[tuple[str, Callable[[Any], bytes]]] = [
        ("orjson.dumps (before: the SDK's only path)", partial(orjson.dumps, option=option))
    ]
    try:
        from modelmeter.sdk import encoding
    except ImportError:  # the SDK before it had a json path
        pass
    else:
        with_orjson = encoding.orjson_dumps()
        assert with_orjson is not None
        paths += [("SDK dumps, orjson installed", with_orjson),
                  ("SDK dumps, standard-library json", encoding.stdlib_dumps)]  # fmt: skip
    out = []
    for name, dumps in paths:
        medians = []
        for nan in (False, True):
            payload = body(nan)
            times = []
            for _ in range(ENCODE_REPEATS):
                t = time.perf_counter()
                dumps(payload)
                times.append(time.perf_counter() - t)
            medians.append(percentiles(times)[0])
        out.append((name, medians[0], medians[1]))
    return out


def main() -> None:
    dataset = data.load("rainfall")
    estimator = model.train(dataset)
    rows = dataset.frame.iloc[4000 : 4000 + MODEL_CALLS]
    dict_rows = [dict(zip(rows.columns, r, strict=True)) for r in rows.to_numpy().tolist()]
    one_row_frames = [rows.iloc[i : i + 1] for i in range(len(rows))]
    table: list[tuple[str, str, float, float, float]] = []

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        lo, hi = dataset.train_rows
        files, _ = artifacts.ensure_artifacts(
            tmp / "demo", model.reference_frame(estimator, dataset),
            dataset.frame.iloc[lo:hi], "1m", "5s", 50,
        )  # fmt: skip
        proc, up_url = start_collector(tmp, files)
        rows_path = tmp / "rows.json"
        rows_path.write_text(json.dumps(dict_rows))
        sender: list[tuple[str, float, dict[str, int]]] = []
        try:
            backends = ["orjson"]
            if has_json_path():
                backends.append("json")
            for backend in backends:
                rate, stats = sender_throughput(up_url, rows_path, backend)
                sender.append((backend, rate, stats))
                print(f"sender, {backend}: {rate:,.0f} events/s, {stats}", file=sys.stderr)
            for state, url in [("up", up_url), ("down", f"http://127.0.0.1:{free_port()}")]:
                client = Client(url, "rainfall", max_queue=100_000, max_backoff=1.0)

                def log(i: int, client: Client = client) -> object:
                    return client.log_prediction(
                        dict_rows[i % MODEL_CALLS], 1, probabilities={0: 0.3, 1: 0.7}
                    )

                time_calls(log, 2000)  # warm up
                med, p99, worst = percentiles(time_calls(log, CALLS))
                table.append((f"log_prediction, collector {state}", f"{CALLS:,}", med, p99, worst))

                # the wrapper's own cost: an estimator whose predict_proba costs ~nothing
                fixed = FixedEstimator(estimator.predict_proba(one_row_frames[0]))
                fast = monitor(fixed, client)
                diff = time_calls(
                    partial(call_on_row, fast.predict_proba, one_row_frames), MODEL_CALLS
                )
                bare = time_calls(
                    partial(call_on_row, fixed.predict_proba, one_row_frames), MODEL_CALLS
                )
                med, p99, worst = percentiles(diff)
                med -= percentiles(bare)[0]
                table.append(
                    (f"monitor(...).predict_proba(1-row DataFrame), collector {state}",
                     f"{MODEL_CALLS:,}", med, p99, worst)
                )  # fmt: skip
                # for scale: the real model, unwrapped and wrapped, interleaved
                wrapped = monitor(estimator, client)
                raw_times, wrapped_times = [], []
                clock = time.perf_counter
                for frame in one_row_frames[:1000]:
                    t = clock()
                    estimator.predict_proba(frame)
                    raw_times.append(clock() - t)
                    t = clock()
                    wrapped.predict_proba(frame)
                    wrapped_times.append(clock() - t)
                for label, times in [("bare", raw_times), ("monitored", wrapped_times)]:
                    med, p99, worst = percentiles(times)
                    table.append(
                        (f"for scale: {label} HistGradientBoosting, collector {state}",
                         "1,000", med, p99, worst)
                    )  # fmt: skip
                if state == "up":
                    client.flush(timeout=30)
                stats = client.stats
                client.close(timeout=2)
                print(f"collector {state}: {stats}", file=sys.stderr)
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    # several collectors: the call routes its id (one BLAKE2b-64 per collector)
    if "collector_stats" in vars(Client):  # not in an SDK from before several collectors
        urls = [f"http://127.0.0.1:{free_port()}" for _ in range(3)]
        client = Client(urls, "rainfall", max_queue=100_000, max_backoff=1.0)

        def routed(i: int) -> object:
            return client.log_prediction(
                dict_rows[i % MODEL_CALLS], 1, probabilities={0: 0.3, 1: 0.7}
            )

        time_calls(routed, 2000)  # warm up
        med, p99, worst = percentiles(time_calls(routed, CALLS))
        table.append(("log_prediction, 3 collectors (down)", f"{CALLS:,}", med, p99, worst))
        client.close(timeout=0)

    # full queue, collector down: a call waits at most block_timeout
    client = Client(f"http://127.0.0.1:{free_port()}", "rainfall", max_queue=100, batch_size=10,
                    block_timeout=0.005)  # fmt: skip
    med, p99, worst = percentiles(time_calls(lambda i: client.log_prediction(dict_rows[0], 1), 500))
    table.append(("log_prediction, queue full, block_timeout=5 ms", "500", med, p99, worst))
    client.close(timeout=0)

    header = "| case | calls | median µs | p99 µs | max µs |\n| --- | ---: | ---: | ---: | ---: |"
    lines = [f"| {c} | {n} | {m:.1f} | {p:.1f} | {w:.0f} |" for c, n, m, p, w in table]
    text = "\n".join([header, *lines])
    print(text)
    sender_header = (
        "| sender | events/s, log to end of flush | sent | dropped |\n| --- | ---: | ---: | ---: |"
    )
    sender_lines = [
        f"| {name}, {SENDER_EVENTS:,} events, batch 500 | {rate:,.0f} | {st['sent']:,} | "
        f"{st['dropped']:,} |"
        for name, rate, st in sender
    ]
    encode_header = (
        "| JSON path | µs per 500-event body | with a NaN feature per event |\n"
        "| --- | ---: | ---: |"
    )
    encode_lines = [f"| {n} | {a:.0f} | {b:.0f} |" for n, a, b in encode_times(dict_rows)]
    sender_text = "\n".join([sender_header, *sender_lines, "", encode_header, *encode_lines])
    print()
    print(sender_text)
    machine = f"{platform.processor() or platform.machine()}, Python {platform.python_version()}"
    section = (
        "## SDK\n\n"
        f"`python bench/sdk.py` ({time.strftime('%Y-%m-%d')}, {machine}). The time the SDK adds "
        "to the caller's thread, per call, in a tight loop while the sender thread works "
        "(the worst case for the GIL). Target: median below 20 µs. With a full queue a call "
        "waits `block_timeout`, plus at most one interpreter thread switch (5 ms). The max "
        "column is dominated by CPython's own pauses: a generation-2 garbage collection of "
        "the whole process (tens of ms here; about 4 ms with `gc` disabled) and the 5 ms "
        "thread switch interval while the sender thread encodes a batch.\n\n" + text + "\n\n"
        "The sender thread: throughput to the real collector (in a subprocess; `json`: "
        "`import orjson` made to fail) and the time to encode one request body.\n\n"
        + sender_text
        + "\n"
    )
    write_section(section)


def write_section(section: str) -> None:
    """Replace (or append) the "## SDK" section of RESULTS.md, keeping every other section."""
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(r"^## SDK\n.*?(?=^## |\Z)", re.M | re.S)
    new = (
        pattern.sub(section + "\n", old) if pattern.search(old) else old.rstrip() + "\n\n" + section
    )
    RESULTS.write_text(new)


if __name__ == "__main__":
    main()
