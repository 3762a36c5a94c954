"""Store benchmark: bytes on disk per stored prediction, and the WAL under a burst.

    .venv/bin/python bench/store.py [--n 100000] [--burst 100000] [--max-wal 64MiB,8MiB]

Everything goes through the real collector (``python -m modelmeter collector``, started as in
tests/helpers.py) over HTTP; the SQLite file is read only after the collector stopped (a
clean stop checkpoints the WAL into the database and removes it).

1. **Waiting predictions.** ``--n`` predictions (batches of 1,000, no labels), collector
   stopped; the database file, the pages in use, and the ``predictions`` table with its
   index (``dbstat``), each divided by ``--n``. ``VACUUM INTO`` a copy gives the compacted
   size: SQLite reuses free pages but never gives them back to the file system by itself.
2. **Labeled predictions.** The collector restarted on the same data; every prediction gets
   its label; stopped again; the same measures. A labeled prediction keeps only its id (for
   idempotence), so its row should be smaller.
3. **Burst.** A fresh collector per ``--max-wal`` value (``MODELMETER_MAX_WAL_BYTES``);
   ``--burst`` predictions then their labels as fast as one client sends them (batches of
   1,000); the WAL file is sampled every 20 ms by a thread; peak and final WAL size.

Run it against another checkout with ``PYTHONPATH=<checkout>/src`` (the collector is
started with the same interpreter and environment).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import ManagedProcess, collector_process, free_port  # noqa: E402
from modelmeter.units import parse_size  # noqa: E402
from service_support import events as make_events  # noqa: E402
from service_support import reference_csv, spec_dict  # noqa: E402

JSON = {"content-type": "application/json"}
MiB = 1024 * 1024
MODEL = "store-bench"
BATCH = 1000  # events per request (--batch)
FEATURES = 10


class Collector:
    """The real collector on one data directory; restartable on the same port."""

    def __init__(self, workdir: Path, data_dir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {"MODELMETER_LABEL_TTL": "30d", "MODELMETER_LOG_LEVEL": "warning", **env}
        self.proc: ManagedProcess | None = None

    def start(self) -> Collector:
        proc = collector_process(self.workdir, self.port, self.data_dir, self.env)
        self.proc = proc.start(timeout=120)
        return self

    def stop(self) -> None:
        assert self.proc is not None
        code = self.proc.stop(timeout=60)
        if code not in (0, -15):
            raise RuntimeError(f"collector exited with {code}:\n{self.proc.log()}")

    @property
    def db(self) -> Path:
        return self.data_dir / "modelmeter.sqlite3"


def register(client: httpx.Client) -> None:
    response = client.put(
        f"/v1/models/{MODEL}",
        files={
            "spec": ("spec.json", orjson.dumps(spec_dict(n_numeric=FEATURES)), "application/json"),
            "reference": ("reference.csv", reference_csv(2000, FEATURES), "text/csv"),
        },
        timeout=60.0,
    )
    response.raise_for_status()


def bodies(n: int, prefix: str) -> tuple[list[bytes], list[bytes]]:
    """Prediction and label bodies of ``n`` events in batches of BATCH."""
    pool = make_events(0, 2000, seed=3, n_numeric=FEATURES)
    predictions, labels = [], []
    for start in range(0, n, BATCH):
        batch = []
        lab = []
        for i in range(start, min(n, start + BATCH)):
            event = pool[i % len(pool)]
            fields = {k: v for k, v in event.items() if k not in ("id", "_label")}
            batch.append({"id": f"{prefix}{i}", **fields})
            lab.append({"id": f"{prefix}{i}", "label": event["_label"]})
        predictions.append(orjson.dumps({"predictions": batch}))
        labels.append(orjson.dumps({"labels": lab}))
    return predictions, labels


def send(client: httpx.Client, kind: str, payloads: Sequence[bytes]) -> float:
    """POST every body; check each was fully accepted; the events/s."""
    key = "accepted" if kind == "predictions" else "matched"
    t0 = time.perf_counter()
    for body in payloads:
        response = client.post(f"/v1/models/{MODEL}/{kind}", content=body, headers=JSON)
        response.raise_for_status()
        result = response.json()
        expected = len(orjson.loads(body)[kind])
        if result[key] != expected:
            raise RuntimeError(f"{kind}: {result} for {expected} events")
    elapsed = time.perf_counter() - t0
    return sum(len(orjson.loads(b)[kind]) for b in payloads) / elapsed


def measure(db: Path, n: int, workdir: Path) -> dict[str, Any]:
    """Sizes of a stopped collector's database, per prediction."""
    wal = Path(f"{db}-wal")
    file_bytes = db.stat().st_size
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        used = page_size * (
            conn.execute("PRAGMA page_count").fetchone()[0]
            - conn.execute("PRAGMA freelist_count").fetchone()[0]
        )
        tables = {
            str(name): (int(size), int(payload))
            for name, size, payload in conn.execute(
                "SELECT name, SUM(pgsize), SUM(payload) FROM dbstat GROUP BY name"
            )
        }
        rows = conn.execute("SELECT COUNT(*), SUM(labeled = 1) FROM predictions").fetchone()
        copy = workdir / f"vacuumed-{time.monotonic_ns()}.sqlite3"
        conn.execute("VACUUM INTO ?", (str(copy),))
    finally:
        conn.close()
    vacuumed = copy.stat().st_size
    copy.unlink()
    fixed = sum(tables.get(t, (0, 0))[0] for t in ("models", "checkpoints", "sqlite_schema"))
    pred_pages = sum(tables.get(t, (0, 0))[0] for t in ("predictions", "predictions_received"))
    pred_payload = sum(tables.get(t, (0, 0))[1] for t in ("predictions", "predictions_received"))
    return {
        "rows": int(rows[0]),
        "labeled_rows": int(rows[1] or 0),
        "wal_left": wal.stat().st_size if wal.exists() else 0,
        "file_per_prediction": file_bytes / n,
        "used_per_prediction": used / n,
        "growing_per_prediction": (used - fixed) / n,
        "vacuumed_per_prediction": vacuumed / n,
        "predictions_table_per_prediction": pred_pages / n,
        "predictions_payload_per_prediction": pred_payload / n,
        "file_mib": file_bytes / MiB,
        "tables_mib": {k: round(v[0] / MiB, 2) for k, v in sorted(tables.items()) if v[0]},
    }


def per_prediction(workdir: Path, n: int) -> list[dict[str, Any]]:
    collector = Collector(workdir, workdir / "per-prediction", {})
    predictions, labels = bodies(n, "p")
    collector.start()
    with httpx.Client(base_url=collector.url, timeout=60.0) as client:
        register(client)
        rate = send(client, "predictions", predictions)
    collector.stop()
    waiting = measure(collector.db, n, workdir) | {"phase": "waiting for label", "rate": rate}
    collector.start()
    with httpx.Client(base_url=collector.url, timeout=60.0) as client:
        rate = send(client, "labels", labels)
    collector.stop()
    labeled = measure(collector.db, n, workdir) | {"phase": "labeled", "rate": rate}
    return [waiting, labeled]


class WalWatcher(threading.Thread):
    """Samples the size of the WAL file every ``interval`` seconds; keeps the peak."""

    def __init__(self, wal: Path, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.wal = wal
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            with contextlib.suppress(FileNotFoundError):
                self.peak = max(self.peak, self.wal.stat().st_size)
            self.samples += 1
            time.sleep(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()


def burst(workdir: Path, n: int, max_wal: str | None) -> dict[str, Any]:
    env = {"MODELMETER_MAX_WAL_BYTES": max_wal} if max_wal else {}
    collector = Collector(workdir, workdir / f"burst-{max_wal or 'default'}", env)
    predictions, labels = bodies(n, "b")
    collector.start()
    assert collector.proc is not None
    process = psutil.Process(collector.proc.pid)
    watcher = WalWatcher(Path(f"{collector.db}-wal"))
    with httpx.Client(base_url=collector.url, timeout=60.0) as client:
        register(client)
        watcher.start()
        t0 = time.perf_counter()
        prediction_rate = send(client, "predictions", predictions)
        peak_after_predictions = watcher.peak
        label_rate = send(client, "labels", labels)
        elapsed = time.perf_counter() - t0
        time.sleep(1.0)  # one more housekeeping round
        metrics = client.get("/metrics").text
    rss = process.memory_info().rss
    watcher.stop()
    final = Path(f"{collector.db}-wal")
    final_wal = final.stat().st_size if final.exists() else 0
    collector.stop()
    gauge = None
    for line in metrics.splitlines():
        if line.startswith("modelmeter_store_wal_bytes "):
            gauge = float(line.split()[1])
    return {
        "max_wal": max_wal or "default",
        "events": n,
        "seconds": elapsed,
        "prediction_rate": prediction_rate,
        "label_rate": label_rate,
        "peak_wal_predictions_mib": peak_after_predictions / MiB,
        "peak_wal_mib": watcher.peak / MiB,
        "final_wal_mib": final_wal / MiB,
        "wal_gauge_mib": None if gauge is None else gauge / MiB,
        "rss_mib": rss / MiB,
        "samples": watcher.samples,
    }


def markdown(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:,.1f}" if abs(v) >= 100 else f"{v:,.2f}"
        return f"{v:,}" if isinstance(v, int) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows])


def main(argv: Sequence[str] | None = None) -> int:
    global BATCH
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="predictions stored (0: skip)")
    parser.add_argument("--burst", type=int, default=100_000, help="events in the burst")
    parser.add_argument(
        "--max-wal",
        default="default,8MiB",
        help="MODELMETER_MAX_WAL_BYTES values for the burst, comma-separated ('default')",
    )
    parser.add_argument("--batch", type=int, default=BATCH, help="events per request")
    args = parser.parse_args(argv)
    BATCH = args.batch
    for value in args.max_wal.split(","):
        if value != "default":
            parse_size(value)  # fail before starting anything
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 1024**3:.1f} GiB; load {os.getloadavg()[0]:.2f}; "
        f"{FEATURES} numeric + 1 categorical features, batches of {BATCH}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="modelmeter-store-") as tmp:
        workdir = Path(tmp)
        phases = per_prediction(workdir, args.n) if args.n else []
        print(f"\nBytes per stored prediction ({args.n:,} predictions, collector stopped):\n")
        print(
            markdown(
                [
                    "predictions",
                    "rows",
                    "database file",
                    "pages in use",
                    "in use less spec, reference, checkpoints",
                    "after VACUUM",
                    "predictions table + index",
                    "of which row payload",
                    "ingest events/s",
                ],
                [
                    [
                        p["phase"],
                        p["rows"],
                        p["file_per_prediction"],
                        p["used_per_prediction"],
                        p["growing_per_prediction"],
                        p["vacuumed_per_prediction"],
                        p["predictions_table_per_prediction"],
                        p["predictions_payload_per_prediction"],
                        p["rate"],
                    ]
                    for p in phases
                ],
            )
        )
        for p in phases:
            print(f"\n{p['phase']}: tables MiB {p['tables_mib']}; WAL left {p['wal_left']} B")
        bursts = [
            burst(workdir, args.burst, None if v == "default" else v)
            for v in args.max_wal.split(",")
        ]
    print(
        f"\nWAL during a burst ({args.burst:,} predictions, then their labels, "
        f"batches of {BATCH:,}):\n"
    )
    print(
        markdown(
            [
                "MODELMETER_MAX_WAL_BYTES",
                "predictions/s",
                "labels/s",
                "peak WAL MiB (predictions)",
                "peak WAL MiB (all)",
                "WAL MiB after",
                "modelmeter_store_wal_bytes MiB",
                "collector RSS MiB",
            ],
            [
                [
                    b["max_wal"],
                    b["prediction_rate"],
                    b["label_rate"],
                    b["peak_wal_predictions_mib"],
                    b["peak_wal_mib"],
                    b["final_wal_mib"],
                    b["wal_gauge_mib"],
                    b["rss_mib"],
                ]
                for b in bursts
            ],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
