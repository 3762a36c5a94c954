"""Ingest benchmark: events/s and request latency of one real collector over HTTP.

    .venv/bin/python bench/ingest.py [--seconds 8] [--write-results]
    .venv/bin/python bench/ingest.py --shift-refit 0,5s --rounds 3 --input-shift 1 \
        --synchronous FULL --batches 100,1000 --skip-scrape --seconds 20

Starts the collector as its own process on 127.0.0.1 (fresh data directory, default
settings, SQLite WAL with synchronous FULL, then NORMAL), registers a binary model with 20
numeric features, then runs a *separate client process* (httpx, one connection, requests
back to back) for batches of 1, 100 and 1,000 events. Reports events/s, events per collector
CPU-second, p50/p99 request latency, where the collector's time went (its ``/debug/timings``
perf_counter sums: parse, validate, prepare, store, engine), and the ``/metrics`` scrape time
with 100 models x 25 features.

``--shift-refit`` runs the collector with each MODELMETER_SHIFT_REFIT_INTERVAL listed (``0``:
shift-aware CBPE off, plain CBPE, no live sample; a short interval such as ``5s`` makes the
refits happen during the measurement; unset: the collector's default), ``--rounds`` repeats
the whole set interleaved (off, on, off, on, ...), and ``--input-shift`` moves the client's
``f1`` by that many standard deviations, so the refits find a shift and apply it (0: they find
none and fall back to plain CBPE, a cheaper fit). The table counts the refits that ran during
each measurement and their mean seconds (``/debug/timings``); the collector's CPU seconds
include them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
JSON = {"content-type": "application/json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reference_csv(n_features: int, n: int = 2000, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features))
    score = 1 / (1 + np.exp(-x[:, 0]))
    lines = [",".join([*(f"f{i}" for i in range(n_features)), "prediction", "label", "score"])]
    label = (rng.random(n) < score).astype(int)
    for i in range(n):
        row = [f"{v:.5f}" for v in x[i]] + [str(int(score[i] > 0.5)), str(label[i])]
        lines.append(",".join([*row, f"{score[i]:.5f}"]))
    return ("\n".join(lines) + "\n").encode()


def spec(n_features: int, path: str) -> dict[str, Any]:
    return {
        "task": "binary",
        "classes": ["0", "1"],
        "features": [
            {"name": f"f{i}", "type": "numeric", "range": [-6, 6]} for i in range(n_features)
        ],
        "reference": {"path": path, "score": "score"},
    }


# --- the client process ---------------------------------------------------------------------


def client_main(url: str, batch: int, seconds: float, seed: int, shift: float = 0.0) -> None:
    """Send pre-built batches back to back for ``seconds``; print a JSON result line."""
    rng = np.random.default_rng(seed)
    templates = []
    for t in range(8):  # ids carry a placeholder replaced per request: every id is new
        x = rng.normal(size=(batch, 20))
        x[:, 1] += shift  # f1 moves: the model's score (f0) does not see it
        x = x.round(5)
        events = [
            {
                "id": f"s{seed}-@@@@@@@-{t}-{j}",
                "features": {f"f{i}": float(v) for i, v in enumerate(row)},
                "prediction": int(row[0] > 0),
                "score": float(1 / (1 + np.exp(-row[0]))),
                "latency_seconds": 0.004,
            }
            for j, row in enumerate(x)
        ]
        templates.append(orjson.dumps({"predictions": events}))
    latencies = []
    sent = 0
    path = "/v1/models/bench/predictions"
    with httpx.Client(base_url=url, timeout=30.0) as client:
        client.post(path, content=templates[0].replace(b"@@@@@@@", b"warm-up"), headers=JSON)
        start = time.perf_counter()
        i = 0
        while time.perf_counter() - start < seconds:
            body = templates[i % len(templates)].replace(b"@@@@@@@", b"%07d" % i)
            t0 = time.perf_counter()
            response = client.post(path, content=body, headers=JSON)
            latencies.append(time.perf_counter() - t0)
            assert response.status_code == 200, response.text
            sent += response.json()["accepted"]
            i += 1
        elapsed = time.perf_counter() - start
    print(json.dumps({"batch": batch, "events": sent, "seconds": elapsed,
                      "p50": float(np.percentile(latencies, 50)),
                      "p99": float(np.percentile(latencies, 99)),
                      "requests": len(latencies)}))  # fmt: skip


# --- the driver -------------------------------------------------------------------------------


def start_collector(
    data_dir: Path, port: int, synchronous: str = "FULL", shift_refit: str | None = None
) -> subprocess.Popen[bytes]:
    # /debug/timings is off by default; the reference files lie beside the data directory.
    argv = [sys.executable, "-m", "modelmeter.service", "--port", str(port),
            "--data-dir", str(data_dir), "--log-level", "warning",
            "--sqlite-synchronous", synchronous, "--debug-endpoints",
            "--reference-dir", str(data_dir.parent)]  # fmt: skip
    if shift_refit is not None:
        argv += ["--shift-refit-interval", shift_refit]
    proc = subprocess.Popen(argv, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the collector did not become ready")


def timings(url: str) -> dict[str, float]:
    return {k: float(v) for k, v in httpx.get(f"{url}/debug/timings").json().items()}


def cpu_seconds(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def run_batch(
    url: str, batch: int, seconds: float, seed: int, pid: int, shift: float = 0.0
) -> dict[str, Any]:
    before = timings(url)
    cpu_before = cpu_seconds(pid)
    out = subprocess.run(
        [sys.executable, __file__, "--client", url, "--batch", str(batch),
         "--seconds", str(seconds), "--seed", str(seed), "--x-shift", str(shift)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    after = timings(url)
    result["cpu"] = cpu_seconds(pid) - cpu_before
    result["server"] = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    return result


def scrape_time(tmp: Path) -> tuple[float, float, int]:
    """Median and max /metrics time with 100 models x 25 features, each with a window of data."""
    port = free_port()
    proc = start_collector(tmp / "scrape-data", port)
    url = f"http://127.0.0.1:{port}"
    try:
        ref = tmp / "ref25.csv"
        ref.write_bytes(reference_csv(25, n=500))
        body = orjson.dumps(spec(25, str(ref)))
        rng = np.random.default_rng(5)
        with httpx.Client(base_url=url, timeout=60) as c:
            for m in range(100):
                assert c.put(f"/v1/models/m{m}", content=body, headers=JSON).status_code == 201
                x = rng.normal(size=(200, 25))
                events = [{"id": str(i), "features": {f"f{j}": float(v) for j, v in enumerate(r)},
                           "prediction": int(r[0] > 0), "label": int(r[1] > 0),
                           "score": 0.6} for i, r in enumerate(x)]  # fmt: skip
                c.post(f"/v1/models/m{m}/predictions", content=orjson.dumps(
                    {"predictions": events}), headers=JSON)  # fmt: skip
            times = []
            size = 0
            for _ in range(15):
                t0 = time.perf_counter()
                r = c.get("/metrics")
                times.append(time.perf_counter() - t0)
                size = len(r.content)
        return float(np.median(times)), float(max(times)), size
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """Median events per collector CPU-second over the rounds, per configuration, and each
    refit interval's ratio to the first one listed (e.g. on / off)."""
    per: dict[tuple[str, int, str], list[float]] = {}
    for r in rows:
        key = (r["mode"], r["batch"], r["refit"])
        per.setdefault(key, []).append(r["events"] / max(r["cpu"], 1e-9))
    first = rows[0]["refit"]
    lines = [
        "| synchronous | batch | shift refit | rounds | median events per collector CPU-second "
        f"| ratio to {first} |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for (mode, batch, refit), values in per.items():
        base = float(np.median(per[(mode, batch, first)]))
        median = float(np.median(values))
        lines.append(
            f"| {mode} | {batch:,} | {refit} | {len(values)} | {median:,.0f} | "
            f"{median / base:.3f} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--write-results", action="store_true",
                        help="append an 'Ingest' section to bench/RESULTS.md")  # fmt: skip
    parser.add_argument(
        "--synchronous", default="FULL,NORMAL", help="SQLite synchronous modes to run"
    )
    parser.add_argument("--skip-scrape", action="store_true")
    parser.add_argument("--batches", default="1,100,1000", help="comma-separated batch sizes")
    parser.add_argument(
        "--shift-refit",
        help="comma-separated MODELMETER_SHIFT_REFIT_INTERVAL values to run, e.g. 0,5s "
        "(0: shift-aware CBPE off); unset: the collector's default",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat every configuration, interleaved"
    )
    parser.add_argument(
        "--input-shift",
        type=float,
        default=0.0,
        help="move the client's f1 by this many standard deviations (refits then apply)",
    )
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--x-shift", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args.client, args.batch, args.seconds, args.seed, args.x_shift)
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="modelmeter-bench-"))
    ref = tmp / "ref20.csv"
    ref.write_bytes(reference_csv(20))
    rows = []
    modes = args.synchronous.split(",")
    refits: list[str | None] = (
        [None] if args.shift_refit is None else [v.strip() for v in args.shift_refit.split(",")]
    )
    for round_ in range(args.rounds):
        for mode in modes:
            for refit in refits:
                port = free_port()
                name = f"data-{mode}-{refit or 'default'}-{round_}"
                proc = start_collector(tmp / name, port, mode, refit)
                url = f"http://127.0.0.1:{port}"
                try:
                    put = httpx.put(f"{url}/v1/models/bench",
                                    content=orjson.dumps(spec(20, str(ref))),
                                    headers=JSON, timeout=60)  # fmt: skip
                    assert put.status_code == 201, put.text
                    sizes = [int(b) for b in args.batches.split(",")]
                    for seed, batch in enumerate(sizes, start=1):
                        result = run_batch(
                            url, batch, args.seconds, seed, proc.pid, args.input_shift
                        )
                        result |= {"mode": mode, "refit": refit or "default", "round": round_}
                        rows.append(result)
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
    scrape = ""
    if not args.skip_scrape:
        scrape_median, scrape_max, scrape_bytes = scrape_time(tmp)
        scrape = (
            f"`/metrics` with 100 models x 25 features (200 events each): median "
            f"{scrape_median * 1e3:.1f} ms, max (first scrape, every snapshot computed) "
            f"{scrape_max * 1e3:.1f} ms over 15 scrapes, {scrape_bytes / 1024:.0f} KiB."
        )

    lines = [
        "| synchronous | shift refit | batch | requests | events/s "
        "| events per collector CPU-second | p50 latency | p99 latency "
        "| refits (mean s) | server time per event "
        "(parse / validate / prepare: id lookups + columns / store: commit / engine) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        s, n = r["server"], max(1.0, r["server"].get("events", 1.0))
        stages = ("parse", "validate", "prepare", "store", "engine")
        parts = " / ".join(f"{s.get(k, 0.0) / n * 1e6:.1f}" for k in stages)
        count = int(s.get("shift_refits", 0.0))
        each = s.get("shift_refit_seconds", 0.0) / count if count else 0.0
        lines.append(
            f"| {r['mode']} | {r['refit']} | {r['batch']:,} | {r['requests']:,} | "
            f"{r['events'] / r['seconds']:,.0f} | "
            f"{r['events'] / max(r['cpu'], 1e-9):,.0f} | "
            f"{r['p50'] * 1e3:.2f} ms | {r['p99'] * 1e3:.2f} ms | "
            f"{count} ({each:.3f} s) | {parts} µs |"
        )
    if len(refits) > 1:
        lines += ["", *summary(rows)]
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    machine = f"load average at the end {load}; " + (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"
    )
    table = "\n".join(lines)
    print(table)
    print(scrape)
    if args.write_results:
        section = (
            "\n## Ingest\n\n"
            f"Command: `.venv/bin/python bench/ingest.py {' '.join(sys.argv[1:])}`\n\n"
            f"Machine: {machine}. One collector process (uvicorn, 1 worker, SQLite WAL); "
            "one client process (httpx, one connection, "
            "requests back to back); 20 numeric features per event; every request is one "
            "SQLite transaction.\n\n"
            f"{table}\n\n{scrape}\n"
        )
        results = ROOT / "bench" / "RESULTS.md"
        if not results.exists():
            results.write_text("# Benchmark results\n")
        with results.open("a") as f:
            f.write(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
