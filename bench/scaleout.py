"""Scale-out benchmark: one model's traffic over 1, 2 and 3 real collectors on this machine.

    .venv/bin/python bench/scaleout.py [--seconds 8] [--collectors 1,2,3] [--batch 1000]

For each count N it starts N collectors (own processes and data directories on 127.0.0.1,
default settings, SQLite synchronous FULL), registers the same binary model with 20 numeric
features on each, and runs N client processes at once, one per collector (as the SDK's routing
splits one model's ids), each sending batches back to back (bench/ingest.py's client). It reports
the events/s of all collectors together, each collector's CPU seconds and events per collector
CPU-second, and the size of one ``/metrics`` scrape per collector (bytes and series, all and of
the model), from which Prometheus's samples/s at a 15 s scrape interval follow.

On a 2-core machine N collectors and N clients share two cores: the total can only grow until
the cores are busy; events per collector CPU-second is the figure that carries over to a machine
with a core per collector (docs/deploy.md, "Capacity").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import JSON, cpu_seconds, free_port, reference_csv, spec, start_collector

SCRAPE_INTERVAL = 15.0


def scrape_size(url: str) -> tuple[int, int, int]:
    """Bytes of one /metrics answer, its sample lines, and those of the model ``bench``."""
    text = httpx.get(f"{url}/metrics", timeout=60).text
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    return len(text.encode()), len(samples), sum('model="bench"' in line for line in samples)


def run(n: int, seconds: float, batch: int, tmp: Path) -> dict[str, Any]:
    ref = tmp / "reference.csv"
    ref.write_bytes(reference_csv(20))
    body = orjson.dumps(spec(20, ref.name))
    procs, urls = [], []
    try:
        for i in range(n):
            port = free_port()
            data = tmp / f"n{n}-c{i}" / "data"
            data.parent.mkdir(parents=True)
            (data.parent / ref.name).write_bytes(ref.read_bytes())
            procs.append(start_collector(data, port))
            url = f"http://127.0.0.1:{port}"
            r = httpx.put(f"{url}/v1/models/bench", content=body, headers=JSON, timeout=60)
            assert r.status_code == 201, r.text
            urls.append(url)
        cpu_before = [cpu_seconds(p.pid) for p in procs]
        clients = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(Path(__file__).resolve().parent / "ingest.py"),
                    "--client",
                    url,
                    "--batch",
                    str(batch),
                    "--seconds",
                    str(seconds),
                    "--seed",
                    str(7 + i),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for i, url in enumerate(urls)
        ]
        results = []
        for c in clients:
            out, _ = c.communicate(timeout=seconds + 120)
            assert c.returncode == 0, out
            results.append(json.loads(out.strip().splitlines()[-1]))
        cpu = [cpu_seconds(p.pid) - b for p, b in zip(procs, cpu_before, strict=True)]
        sizes = [scrape_size(url) for url in urls]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
    events = [r["events"] for r in results]
    wall = max(r["seconds"] for r in results)
    return {
        "collectors": n,
        "events_per_s": sum(events) / wall,
        "per_collector_events_per_s": [
            e / r["seconds"] for e, r in zip(events, results, strict=True)
        ],
        "cpu_seconds": cpu,
        "events_per_cpu_second": [e / c for e, c in zip(events, cpu, strict=True)],
        "p50_ms": [1000 * r["p50"] for r in results],
        "scrape_bytes": [s[0] for s in sizes],
        "scrape_series": [s[1] for s in sizes],
        "model_series": [s[2] for s in sizes],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--collectors", default="1,2,3", help="counts to run, comma-separated")
    parser.add_argument("--batch", type=int, default=1000, help="events per request")
    args = parser.parse_args()
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d')}")  # fmt: skip
    print("| collectors | events/s total | events/s per collector | collector CPU-s | "
          "events per collector CPU-second | p50 ms | /metrics bytes | series (model) | "
          "Prometheus samples/s per collector at 15 s |")  # fmt: skip
    print("| ---: | ---: | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.collectors.split(",")):
            r = run(n, args.seconds, args.batch, Path(tmp))

            def show(values: list[float], fmt: str = "{:,.0f}") -> str:  # "a / b / c"
                return " / ".join(fmt.format(v) for v in values)

            print(
                f"| {n} | {r['events_per_s']:,.0f} | {show(r['per_collector_events_per_s'])} | "
                f"{show(r['cpu_seconds'], '{:.1f}')} | {show(r['events_per_cpu_second'])} | "
                f"{show(r['p50_ms'], '{:.0f}')} | {show(r['scrape_bytes'])} | "
                f"{show(r['scrape_series'])} ({show(r['model_series'])}) | "
                f"{show([s / SCRAPE_INTERVAL for s in r['scrape_series']], '{:.0f}')} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
