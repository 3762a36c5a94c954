"""Benchmark: server-side time of one dashboard refresh, and its number of Prometheus calls.

Starts a real collector and a real Prometheus (1 s scrape) on loopback, registers models with
25 features each (a LogisticRegression on scikit-learn's bundled breast-cancer data, see
tests/dashboard_support.py) and feeds them real predictions. Then calls the dashboard's
refresh functions directly, as the Dash callbacks do: fetch (the Prometheus HTTP calls),
build_view, render_view, and the JSON encoding Dash applies to the store and the outputs.
Measured with 1 model, then with 20 models. Prints a table and writes the "Dashboard"
section of bench/RESULTS.md (other sections are kept).

    .venv/bin/python bench/dashboard.py [--refreshes 40] [--settle 600]
"""

from __future__ import annotations

import argparse
import platform
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from plotly.io.json import to_json_plotly  # noqa: E402  (what Dash encodes with)

import dashboard_support as ds  # noqa: E402
from helpers import prom_query, wait_until  # noqa: E402
from modelmeter.dashboard.panels import render_view  # noqa: E402
from modelmeter.dashboard.queries import PromClient, Selection, fetch_refresh  # noqa: E402
from modelmeter.dashboard.view import build_view  # noqa: E402

FEATURES = 25
RESULTS = ROOT / "bench" / "RESULTS.md"


def _encode(obj: object) -> str:
    return str(to_json_plotly(obj))


def measure(prom_url: str, model: str, refreshes: int) -> dict[str, float]:
    """Median and p95 of each stage of ``refreshes`` refreshes of ``model``."""
    client = PromClient(prom_url, timeout=1.5)
    stages: dict[str, list[float]] = {
        "fetch": [],
        "view": [],
        "render": [],
        "encode": [],
        "total": [],
    }
    calls: set[int] = set()
    size = 0
    try:
        for _ in range(refreshes):
            t0 = time.perf_counter()
            raw = fetch_refresh(client, Selection(model, None, "15m"), time.time())
            t1 = time.perf_counter()
            view = build_view(raw)
            t2 = time.perf_counter()
            out = render_view(view)
            t3 = time.perf_counter()
            payload = _encode(view) + _encode(out)
            t4 = time.perf_counter()
            assert not raw.errors, raw.errors
            assert len(view["drift"]) == FEATURES, len(view["drift"])
            calls.add(raw.calls)
            size = len(_encode(view))
            for key, value in zip(
                stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0), strict=True
            ):
                stages[key].append(1000 * value)
            del payload
    finally:
        client.close()
    assert len(calls) == 1, f"calls per refresh varied: {calls}"
    result = {f"{k}_median": statistics.median(v) for k, v in stages.items()}
    result["total_p95"] = sorted(stages["total"])[int(0.95 * (len(stages["total"]) - 1))]
    result["calls"] = float(calls.pop())
    result["view_kib"] = size / 1024
    return result


def _add_models(url: str, tmp: Path, names: list[str]) -> None:
    model = ds.cancer_model(seed=3, n_features=FEATURES)
    body = ds.spec(model, ds.write_reference(model, tmp / "reference.csv"))
    for i, name in enumerate(names):
        ds.register(url, name, body)
        ds.send(url, name, ds.events(model, name, 300, seed=100 + i))


class Feeder:
    """Keeps real traffic flowing: every 2 s, 20 predictions to each model (window stays full)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.model = ds.cancer_model(seed=3, n_features=FEATURES)
        self.names: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._round = 0

    def _run(self) -> None:
        while not self._stop.wait(2.0):
            self._round += 1
            for i, name in enumerate(list(self.names)):
                batch = ds.events(
                    self.model, f"{name}-f{self._round}", 20, seed=self._round * 97 + i
                )
                ds.send(self.url, name, batch)

    def __enter__(self) -> Feeder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _wait_models(prom_url: str, n: int) -> None:
    wait_until(
        lambda: (
            len(prom_query(prom_url, 'count by (model) (model_feature_drift{statistic="psi"})'))
            == n
        ),
        timeout=60,
        what=f"drift figures of {n} models in Prometheus",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refreshes", type=int, default=40)
    parser.add_argument(
        "--settle",
        type=float,
        default=120.0,
        help="seconds of 1 s scrapes before measuring (history to draw)",
    )
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        collector = ds.collector(tmp).start()
        prometheus = None
        try:
            url = collector.url  # type: ignore[attr-defined]
            _add_models(url, tmp, ["bench-00"])
            prometheus = ds.prometheus_for(tmp, f"127.0.0.1:{collector.port}").start()  # type: ignore[attr-defined]
            prom_url = prometheus.url  # type: ignore[attr-defined]
            with Feeder(url) as feeder:
                feeder.names.append("bench-00")
                _wait_models(prom_url, 1)
                time.sleep(args.settle)  # let history accumulate (what the graphs draw)
                rows.append((1, measure(prom_url, "bench-00", args.refreshes)))
                more = [f"bench-{i:02d}" for i in range(1, 20)]
                _add_models(url, tmp, more)
                feeder.names.extend(more)
                _wait_models(prom_url, 20)
                time.sleep(args.settle)
                rows.append((20, measure(prom_url, "bench-07", args.refreshes)))
        finally:
            if prometheus is not None:
                prometheus.stop()
            collector.stop()
    header = (
        "| models | features each | Prometheus calls / refresh | fetch ms | view ms | "
        "render ms | JSON ms | total median ms | total p95 ms | store KiB |"
    )
    lines = [header, "|" + "---|" * 10]
    for n, r in rows:
        lines.append(
            f"| {n} | {FEATURES} | {r['calls']:.0f} | {r['fetch_median']:.1f} | "
            f"{r['view_median']:.1f} | {r['render_median']:.1f} | {r['encode_median']:.1f} | "
            f"{r['total_median']:.1f} | {r['total_p95']:.1f} | {r['view_kib']:.0f} |"
        )
    table = "\n".join(lines)
    print(table)
    target_ok = all(r["total_p95"] < 200 for _, r in rows)
    constant = len({r["calls"] for _, r in rows}) == 1
    print(
        f"\ntarget < 200 ms: {'met' if target_ok else 'MISSED'}; "
        f"calls constant: {'yes' if constant else 'NO'}"
    )
    _write_section(table, args.refreshes, args.settle, target_ok, constant)
    return 0 if target_ok and constant else 1


def _write_section(
    table: str, refreshes: int, settle: float, target_ok: bool, constant: bool
) -> None:
    machine = f"{platform.machine()}, Python {platform.python_version()}"
    section = (
        "## Dashboard\n\n"
        "`bench/dashboard.py`: one refresh of the dashboard, server side, with the functions the "
        "Dash callbacks call (fetch from Prometheus, build the view, render the panels, JSON "
        "encoding). Real collector and real Prometheus 1 s scrape on loopback, models with 25 "
        "features fed with real predictions (20 every 2 s per model during the run), "
        f"{settle:.0f} s of history before measuring; {refreshes} refreshes each, 15 min range "
        f"({machine}, {time.strftime('%Y-%m-%d')}).\n\n"
        f"{table}\n\n"
        f"Target < 200 ms (p95): {'met' if target_ok else 'missed'}. Calls per refresh constant "
        f"in the number of models and features: {'yes' if constant else 'no'} (2 calls for the "
        "model catalog and the alerts, then 6 queries for the selected model, run in parallel "
        "with a 1.5 s timeout each).\n"
    )
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(r"^## Dashboard\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
