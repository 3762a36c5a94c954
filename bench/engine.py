"""Benchmark of the streaming engine: throughput, memory, and one window against peers.

    .venv/bin/python bench/engine.py             # full run (10 M rows, windows of 100k and 1M)
    .venv/bin/python bench/engine.py --quick     # smaller sizes, about a minute
    .venv/bin/python bench/engine.py --no-peers  # without Evidently / NannyML
    .venv/bin/python bench/engine.py --write-results  # also update bench/RESULTS.md "## Engine"

Data: 20 numeric + 5 categorical features (8 values each), a binary model with scores; a
reference of 100,000 rows; the stream drifts mildly in 5 numeric and 1 categorical feature.

1. ``observe()`` rows per second at batch sizes 1, 100, 10,000 and 100,000 (every statistic:
   drift bins, quality, output drift, estimated confusion, latency, operations). Rows per
   CPU-second of this process ("per core") and per wall-second.
2. Memory: RSS and checkpoint size after 1 M and after 10 M rows (the window slides all the
   time): flat means bounded by features x bins x buckets, not by traffic.
3. One window of 100,000 and 1,000,000 rows, same data for everyone: this engine (observe +
   snapshot), a scipy loop (ks_2samp per numeric feature, chi2_contingency per categorical
   one), Evidently's data-drift report and NannyML's univariate drift calculator. The peers
   run in bench/.venv-peers (created here if missing) through bench/peers.py.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import scipy
from scipy import stats

from modelmeter.engine import (
    FeatureSpec,
    LabelBatch,
    ModelMonitor,
    MonitorConfig,
    MultivariateConfig,
    PredictionBatch,
    ReferenceData,
)

BENCH = Path(__file__).resolve().parent
PEERS_VENV = BENCH / ".venv-peers"
N_NUMERIC, N_CATEGORICAL = 20, 5
REFERENCE_ROWS = 100_000
RATE = 10_000.0  # events per second of stream time: 100,000 rows = 10 s
VOCABULARY = np.array([f"v{i}" for i in range(8)])
NUMERIC = [f"n{j:02d}" for j in range(N_NUMERIC)]
CATEGORICAL = [f"c{j}" for j in range(N_CATEGORICAL)]


class Data:
    """Rows as a numeric matrix, a categorical string matrix, scores, predictions, labels."""

    def __init__(self, rng: np.random.Generator, n: int, drift: bool) -> None:
        shift = np.zeros(N_NUMERIC)
        if drift:
            shift[:5] = np.linspace(0.05, 0.4, 5)
        self.numeric = rng.normal(shift, 1.0, (n, N_NUMERIC))
        probabilities = np.linspace(1.0, 2.0, len(VOCABULARY))
        probabilities /= probabilities.sum()
        codes = rng.choice(len(VOCABULARY), (n, N_CATEGORICAL), p=probabilities)
        if drift:
            codes[:, 0] = rng.choice(len(VOCABULARY), n, p=probabilities[::-1])
        self.categorical = VOCABULARY[codes]
        logit = self.numeric[:, :4] @ np.array([1.0, -0.8, 0.5, 0.3])
        self.scores = 1.0 / (1.0 + np.exp(-logit))
        self.predictions = np.where(self.scores >= 0.5, "1", "0").astype(object)
        self.labels = np.where(rng.random(n) < self.scores, "1", "0").astype(object)
        self.latency = rng.lognormal(-3.5, 0.8, n)
        # Columns as the engine takes them (a collector builds them once per request).
        self.columns: dict[str, np.ndarray] = {
            name: np.ascontiguousarray(self.numeric[:, j]) for j, name in enumerate(NUMERIC)
        }
        for j, name in enumerate(CATEGORICAL):
            self.columns[name] = self.categorical[:, j].astype(object)

    def batch(self, start: int, stop: int, t0: float) -> PredictionBatch:
        rows = slice(start, stop)
        return PredictionBatch(
            timestamps=t0 + np.arange(stop - start) / RATE,
            features={name: column[rows] for name, column in self.columns.items()},
            predictions=self.predictions[rows],
            scores=self.scores[rows],
            latency_seconds=self.latency[rows],
        )


MULTIVARIATE = [True]  # --no-multivariate turns the multivariate drift off


def config() -> MonitorConfig:
    features = tuple(FeatureSpec(n, "numeric", low=-6.0, high=6.0) for n in NUMERIC) + tuple(
        FeatureSpec(c, "categorical") for c in CATEGORICAL
    )
    return MonitorConfig(
        task="binary",
        classes=("0", "1"),
        positive_class="1",
        features=features,
        multivariate=MultivariateConfig() if MULTIVARIATE[0] else None,
    )


def fresh_monitor(reference: Data) -> ModelMonitor:
    return ModelMonitor(
        config(),
        ReferenceData(reference.columns, reference.predictions, reference.labels, reference.scores),
    )


def timed(action: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process)."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def throughput(reference: Data, pool: Data, sizes: dict[int, int]) -> list[dict[str, Any]]:
    rows_out = []
    for batch_size, total in sizes.items():
        monitor = fresh_monitor(reference)
        batches = []
        t = 1_000_000.0
        for start in range(0, total, batch_size):
            begin = start % pool.numeric.shape[0]
            stop = min(begin + batch_size, pool.numeric.shape[0])
            batches.append(pool.batch(begin, stop, t))
            t += (stop - begin) / RATE
        rows = sum(len(b) for b in batches)

        def run(monitor: ModelMonitor = monitor, batches: list[PredictionBatch] = batches) -> None:
            for batch in batches:
                monitor.observe(batch)

        wall, cpu = timed(run)
        snap_wall, _ = timed(lambda monitor=monitor, t=t: monitor.snapshot(t))
        rows_out.append(
            {
                "batch": batch_size,
                "rows": rows,
                "cpu_rate": rows / cpu,
                "wall_rate": rows / wall,
                "snapshot_ms": snap_wall * 1e3,
            }
        )
        print(
            f"  batch {batch_size:>7,}: {rows / cpu:>12,.0f} rows/CPU-s "
            f"{rows / wall:>12,.0f} rows/s",
            file=sys.stderr,
        )
    return rows_out


def count_numbers(value: Any) -> int:
    """How many numbers a checkpoint holds (its size in values, independent of digits)."""
    if isinstance(value, dict):
        return sum(count_numbers(v) for v in value.values())
    if isinstance(value, list):
        return sum(count_numbers(v) for v in value)
    return 1 if isinstance(value, int | float) else 0


def memory(reference: Data, pool: Data, total: int, marks: list[int]) -> list[dict[str, Any]]:
    """Observe (and label) ``total`` rows; at each mark: RSS, the peak memory traced by
    tracemalloc since the previous mark (numpy reports its buffers to it), state size."""
    monitor = fresh_monitor(reference)
    tracemalloc.start()
    process = psutil.Process()
    batch_size = 100_000
    n_pool = pool.numeric.shape[0] // batch_size
    t = 2_000_000.0
    out = []
    done = 0
    wall, cpu = time.perf_counter(), time.process_time()
    while done < total:
        k = (done // batch_size) % n_pool
        batch = pool.batch(k * batch_size, (k + 1) * batch_size, t)
        monitor.observe(batch)
        # Labels for the same events, 30 s later: realized performance and coverage too.
        monitor.label(
            LabelBatch(
                batch.timestamps + 30.0,
                batch.timestamps,
                batch.predictions,
                pool.labels[k * batch_size : (k + 1) * batch_size],
            )
        )
        t += batch_size / RATE
        done += batch_size
        if done in marks:
            monitor.snapshot(t)
            gc.collect()
            state = monitor.to_checkpoint()
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            out.append(
                {
                    "rows": done,
                    "rss_mib": process.memory_info().rss / 2**20,
                    "traced_mib": peak / 2**20,
                    "numbers": count_numbers(state),
                    "checkpoint_kib": len(json.dumps(state)) / 1024,
                    "cpu_rate": done / (time.process_time() - cpu),
                    "wall_rate": done / (time.perf_counter() - wall),
                }
            )
            print(
                f"  {done:>11,} rows: RSS {out[-1]['rss_mib']:.1f} MiB, "
                f"checkpoint {out[-1]['checkpoint_kib']:.1f} KiB",
                file=sys.stderr,
            )
    return out


def best_of(repeat: int, action: Callable[[], Any]) -> tuple[float, float]:
    """The fastest of ``repeat`` runs: (wall seconds, CPU seconds)."""
    runs = [timed(action) for _ in range(repeat)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def ours_window(reference: Data, current: Data, rows: int, repeat: int) -> dict[str, float]:
    fit_wall, _ = timed(lambda: fresh_monitor(reference))
    batches = [
        current.batch(start, min(start + 100_000, rows), 5_000_000.0)
        for start in range(0, rows, 100_000)
    ]

    def run() -> None:
        monitor = fresh_monitor(reference)
        wall, cpu = time.perf_counter(), time.process_time()
        for batch in batches:
            monitor.observe(batch)
        snap = monitor.snapshot(5_000_000.0)
        assert snap.drift["n00"].samples == rows
        timings.append((time.perf_counter() - wall, time.process_time() - cpu))

    timings: list[tuple[float, float]] = []
    for _ in range(repeat):
        run()  # the monitor is built outside the timed part (see fit_seconds)
    return {
        "seconds": min(t[0] for t in timings),
        "cpu_seconds": min(t[1] for t in timings),
        "fit_seconds": fit_wall,
    }


def scipy_window(reference: Data, current: Data, rows: int, repeat: int) -> dict[str, float]:
    def run() -> None:
        for j in range(N_NUMERIC):
            stats.ks_2samp(reference.numeric[:, j], current.numeric[:rows, j])
        for j in range(N_CATEGORICAL):
            _, ref_counts = np.unique(reference.categorical[:, j], return_counts=True)
            _, cur_counts = np.unique(current.categorical[:rows, j], return_counts=True)
            stats.chi2_contingency(np.vstack([ref_counts, cur_counts]))

    wall, cpu = best_of(repeat, run)
    return {"seconds": wall, "cpu_seconds": cpu, "fit_seconds": 0.0}


def ensure_peers_venv() -> Path:
    python = PEERS_VENV / "bin" / "python"
    if python.exists():
        return python
    print(f"creating {PEERS_VENV} (Evidently, NannyML; a few minutes) ...", file=sys.stderr)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(PEERS_VENV)], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--progress-bar",
            "on",
            "-r",
            str(BENCH / "requirements-peers.txt"),
        ],
        check=True,
    )
    return python


def peers_window(
    reference: Data, current: Data, rows: list[int], tools: list[str], repeat: int
) -> list[dict[str, Any]]:
    python = ensure_peers_venv()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "window.npz"
        np.savez(
            path,
            numeric_names=np.array(NUMERIC),
            categorical_names=np.array(CATEGORICAL),
            reference_numeric=reference.numeric,
            reference_categorical=reference.categorical,
            current_numeric=current.numeric[: max(rows)],
            current_categorical=current.categorical[: max(rows)],
        )
        env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}
        command = [
            str(python),
            str(BENCH / "peers.py"),
            str(path),
            "--rows",
            *map(str, rows),
            "--tools",
            *tools,
        ]
        done = subprocess.run(command, env=env, check=True, stdout=subprocess.PIPE, text=True)
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return records


def machine() -> dict[str, str]:
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "load average at start": load,
    }


def markdown(
    command: str,
    info: dict[str, str],
    rates: list[dict[str, Any]],
    mem: list[dict[str, Any]],
    windows: list[dict[str, Any]],
    notes: list[str],
) -> str:
    lines = ["## Engine", "", f"Command: `{command}`", ""]
    lines += [f"- {key}: {value}" for key, value in info.items()]
    lines += [
        "",
        "### observe() throughput (20 numeric + 5 categorical features, binary, all statistics)",
        "",
        "| batch size | rows | rows/s per core (CPU time) | rows/s (wall) | snapshot() ms |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rates:
        lines.append(
            f"| {r['batch']:,} | {r['rows']:,} | {r['cpu_rate']:,.0f} | {r['wall_rate']:,.0f} "
            f"| {r['snapshot_ms']:.1f} |"
        )
    lines += [
        "",
        "### Memory while the window slides (batches of 100,000 + their labels)",
        "",
        "| rows observed | RSS MiB | peak traced MiB | state numbers | checkpoint KiB (JSON) "
        "| rows/s per core | rows/s (wall) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in mem:
        lines.append(
            f"| {m['rows']:,} | {m['rss_mib']:.1f} | {m['traced_mib']:.1f} | {m['numbers']:,} "
            f"| {m['checkpoint_kib']:.1f} | {m['cpu_rate']:,.0f} | {m['wall_rate']:,.0f} |"
        )
    lines += [
        "",
        "### One window, same data (reference 100,000 rows, 25 features)",
        "",
        "| rows | tool | wall s | CPU s | fit s (once per reference) "
        "| modelmeter faster by (wall) | (CPU) |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    ours = {w["rows"]: w for w in windows if w["tool"] == "modelmeter"}
    for w in windows:
        mine = ours[w["rows"]]
        wall_ratio = cpu_ratio = ""
        if w["tool"] != "modelmeter":
            wall_ratio = f"{w['seconds'] / mine['seconds']:,.1f}x"
            cpu_ratio = f"{w['cpu_seconds'] / mine['cpu_seconds']:,.1f}x"
        lines.append(
            f"| {w['rows']:,} | {w['tool']} | {w['seconds']:.3f} | {w['cpu_seconds']:.3f} "
            f"| {w['fit_seconds']:.3f} | {wall_ratio} | {cpu_ratio} |"
        )
    lines += ["", *notes, ""]
    return "\n".join(lines)


def write_results(section: str) -> None:
    path = BENCH / "RESULTS.md"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n\n"
    start = text.find("## Engine\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + ("" if end < 0 else text[end:])
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark of the modelmeter engine.")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about a minute)")
    parser.add_argument("--no-peers", action="store_true", help="skip Evidently and NannyML")
    parser.add_argument(
        "--peer-rows", type=int, nargs="+", help="window sizes for the peers (default: as ours)"
    )
    parser.add_argument("--write-results", action="store_true", help="update bench/RESULTS.md")
    parser.add_argument(
        "--no-multivariate", action="store_true", help="turn the multivariate drift off"
    )
    parser.add_argument(
        "--throughput-only", action="store_true", help="only the observe() throughput table"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="window timings: best of N (Evidently: 1 run)"
    )
    args = parser.parse_args()
    MULTIVARIATE[0] = not args.no_multivariate
    command = ".venv/bin/python bench/engine.py " + " ".join(sys.argv[1:])
    info = machine()
    rng = np.random.default_rng(2024)
    print("generating data ...", file=sys.stderr)
    reference = Data(rng, REFERENCE_ROWS, drift=False)
    pool_rows = 500_000 if args.quick else 1_000_000
    pool = Data(rng, pool_rows, drift=True)
    if args.quick:
        sizes = {1: 5_000, 100: 100_000, 10_000: 500_000, 100_000: 1_000_000}
        total, marks, window_rows = 2_000_000, [200_000, 2_000_000], [100_000]
    else:
        sizes = {1: 20_000, 100: 300_000, 10_000: 2_000_000, 100_000: 3_000_000}
        total, marks, window_rows = 10_000_000, [1_000_000, 10_000_000], [100_000, 1_000_000]
    print("observe() throughput:", file=sys.stderr)
    rates = throughput(reference, pool, sizes)
    if args.throughput_only:
        for row in rates:
            print(json.dumps(row))
        return 0
    print("memory:", file=sys.stderr)
    mem = memory(reference, pool, total, marks)
    print("one window:", file=sys.stderr)
    current = pool
    windows: list[dict[str, Any]] = []
    for rows in window_rows:
        windows.append(
            {
                "tool": "modelmeter",
                "rows": rows,
                **ours_window(reference, current, rows, args.repeat),
            }
        )
        windows.append(
            {
                "tool": "scipy loop",
                "rows": rows,
                **scipy_window(reference, current, rows, args.repeat),
            }
        )
    notes = [
        "Rates per core are rows divided by the CPU time of the benchmark process; the wall "
        "rate also reflects other load on the machine (see the load average).",
        "RSS includes the benchmark's own data (the row pool and the reference): what matters "
        "is that it does not grow. Peak traced is the most memory allocated at once between "
        "two marks (tracemalloc; numpy reports its buffers), i.e. the per-batch working set. "
        "State numbers is the count of numbers in the checkpoint (fixed by features x bins x "
        "buckets); the JSON grows a little only because sums get more digits.",
        "modelmeter's window time is observe() of every row (all statistics, not drift "
        "only) plus snapshot(); the fit column is building the monitor from the reference. "
        f"Window timings are the best of {args.repeat} runs (Evidently: one run).",
    ]
    if not args.no_peers:
        peer_rows = args.peer_rows or window_rows
        tools = ["nannyml", "evidently"]
        for result in peers_window(reference, current, peer_rows, tools, args.repeat):
            if "versions" in result:
                info["peers"] = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
            else:
                windows.append(result)
        missing = sorted(set(peer_rows) - set(window_rows))
        for rows in missing:
            windows.append(
                {
                    "tool": "modelmeter",
                    "rows": rows,
                    **ours_window(reference, current, rows, args.repeat),
                }
            )
        if set(window_rows) - set(peer_rows):
            notes.append(
                f"The peers ran at {', '.join(f'{r:,}' for r in peer_rows)} rows only "
                "(to keep the run short)."
            )
        notes.append(
            "Evidently: Report([DataDriftPreset()]) on Dataset.from_pandas (its default tests: "
            "Wasserstein / Jensen-Shannon at this size). NannyML: UnivariateDriftCalculator with "
            "KS + Jensen-Shannon (continuous) and chi2 + Jensen-Shannon (categorical), one chunk; "
            "fit on the reference timed apart."
        )
    else:
        notes.append("Peers skipped (--no-peers).")
    windows.sort(key=lambda w: (w["rows"], w["tool"] != "modelmeter", w["tool"]))
    section = markdown(command, info, rates, mem, windows, notes)
    print(section)
    if args.write_results:
        write_results(section)
        print(f"updated {BENCH / 'RESULTS.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
