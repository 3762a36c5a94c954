"""The whole demo on loopback: the known drift of the rainfall data shows as metrics and alerts.

Real collector, real Prometheus (1 s scrape, the project's alert rules with ``for:`` set to 0s
and its recording rules), ``modelmeter demo`` as a child process replaying rows 4,000..16,000
at 100 rows/s with a 30 s window, and the real dashboard in headless Chromium.

What the data does (``modelmeter demo --measure``): ``visibility`` shifts at about row 5,000;
``dew_point`` and ``sea_level_pressure`` change at row 12,000, where the model's accuracy falls
from about 0.78 to about 0.62; ``temperature`` stays put (KS <= 0.09 against the reference).
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import dashboard_support as ds
from helpers import (
    ManagedProcess,
    free_port,
    prom_alerts,
    prom_query,
    require_binary,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

MODEL = "rainfall"
START, END, SPEED, WINDOW = 4000, 16_000, 100.0, 30.0
DRIFT_ROW = 12_000
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run"]


@dataclass
class Sample:
    row: int  # the replay's position when sampled (rows served by the model service)
    accuracy: float | None
    estimated: float | None
    labeled: int
    firing: set[tuple[str, str]]  # (alertname, feature or "")


class Recorder(threading.Thread):
    """Every second: the collector's snapshot and Prometheus's firing alerts."""

    def __init__(self, collector: str, prometheus: str, service: str) -> None:
        super().__init__(daemon=True)
        self.collector, self.prometheus, self.service = collector, prometheus, service
        self.samples: list[Sample] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            try:
                served = httpx.get(f"{self.service}/healthz", timeout=5).json()["rows_served"]
                snap = httpx.get(f"{self.collector}/v1/models/{MODEL}", timeout=5).json()
                alerts = prom_alerts(self.prometheus)
            except (httpx.HTTPError, KeyError):
                continue
            s = snap["snapshots"].get("default")
            if not s:
                continue
            self.samples.append(
                Sample(
                    row=START + served,
                    accuracy=(s.get("realized") or {}).get("accuracy"),
                    estimated=(s.get("estimated") or {}).get("accuracy"),
                    labeled=int(s.get("window_labeled") or 0),
                    firing={
                        (a["labels"]["alertname"], a["labels"].get("feature", ""))
                        for a in alerts
                        if a["state"] == "firing" and a["labels"].get("model") == MODEL
                    },
                )
            )


def demo_process(tmp: Path, collector_url: str) -> tuple[ManagedProcess, int]:
    port = free_port()
    argv = [
        sys.executable, "-m", "modelmeter.demo.cli",
        "--collector-url", collector_url, "--data-dir", str(tmp / "demo"),
        "--model-port", str(port), "--speed", str(SPEED), "--label-delay", "1",
        "--window", f"{WINDOW:g}s", "--bucket", "2s", "--min-samples", "400",
        "--start-row", str(START), "--end-row", str(END),
    ]  # fmt: skip
    ready = f"http://127.0.0.1:{port}/healthz"
    return ManagedProcess("demo", argv, tmp / "demo.log", ready_url=ready), port


def test_demo_shows_the_known_drift(tmp_path: Path) -> None:
    require_binary("prometheus")
    require_binary("chromium")
    from playwright.sync_api import expect, sync_playwright

    collector = ds.collector(tmp_path).start()
    prometheus: ManagedProcess | None = None
    demo: ManagedProcess | None = None
    recorder: Recorder | None = None
    try:
        url = collector.url  # type: ignore[attr-defined]
        prometheus = ds.prometheus_for(tmp_path, f"127.0.0.1:{collector.port}")  # type: ignore[attr-defined]
        prometheus.start()
        prom = prometheus.url  # type: ignore[attr-defined]
        demo, port = demo_process(tmp_path, url)
        demo.start(timeout=90)  # trains, registers, then serves: the replay starts now
        recorder = Recorder(url, prom, f"http://127.0.0.1:{port}")
        recorder.start()
        wait_until(
            lambda: prom_query(prom, f'model_predictions_total{{model="{MODEL}"}} > 0'),
            timeout=60,
            what="Prometheus to scrape the demo's first predictions",
        )
        with ds.dashboard_server(prom, refresh_seconds=1.0) as dashboard, sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(dashboard)
            # visibility has drifted a few seconds into the replay
            drift = page.locator('.alert-warning[data-alertname="FeatureDrift"]')
            expect(drift.filter(has_text="visibility")).to_be_visible(timeout=60_000)
            # after row 12,000 accuracy falls below the critical threshold
            critical = page.locator('.alert-critical[data-alertname="CriticalModelAccuracy"]')
            expect(critical).to_be_visible(timeout=150_000)
            expect(drift.filter(has_text="dew_point")).to_be_visible(timeout=30_000)
            browser.close()
        running = demo
        wait_until(lambda: not running.alive(), timeout=120, what="the replay to end")
        assert demo.proc is not None and demo.proc.returncode == 0, demo.log()
        final = httpx.get(f"{url}/v1/models/{MODEL}", timeout=5).json()["snapshots"]["default"]
    finally:
        if recorder is not None:
            recorder.stop.set()
            recorder.join(timeout=5)
        for proc in (demo, prometheus, collector):
            if proc is not None:
                proc.stop()

    samples = recorder.samples
    assert samples, "no snapshot recorded"
    window_rows = SPEED * WINDOW
    # before: windows of rows after 4,000 and before 8,000; after: windows past row 12,000
    before = [s for s in samples if START + window_rows / 2 <= s.row <= 8000 and s.accuracy]
    after = [s for s in samples if s.row - window_rows >= DRIFT_ROW and s.accuracy]
    report = "\n".join(
        f"row {s.row:7.0f} acc {s.accuracy} est {s.estimated} n {s.labeled} {sorted(s.firing)}"
        for s in samples
    )
    assert before and after, report
    # accuracy falls after the known drift point
    assert min(s.accuracy or 0.0 for s in before) > 0.74, report
    assert max(s.accuracy or 1.0 for s in after) < 0.70, report
    assert final["realized"]["accuracy"] < 0.70
    # the estimate tracks the realized accuracy before the concept drift, not after it
    gaps_before = [s.estimated - s.accuracy for s in before if s.estimated and s.accuracy]
    gaps_after = [s.estimated - s.accuracy for s in after if s.estimated and s.accuracy]
    assert gaps_before and max(abs(g) for g in gaps_before) < 0.05, report
    assert gaps_after and min(gaps_after) > 0.07, report
    # FeatureDrift: the drifting features fire, the stable temperature never does
    fired: set[str] = set().union(
        *({f for name, f in s.firing if name == "FeatureDrift"} for s in samples)
    )
    assert {"visibility", "dew_point", "sea_level_pressure"} <= fired, report
    assert "temperature" not in fired, report
    assert any(("CriticalModelAccuracy", "") in s.firing for s in after), report
