"""The dashboard in headless Chromium, on a real collector and a real Prometheus.

One stack for the module: the collector (two models fed with real predictions of a sklearn
LogisticRegression on the bundled breast-cancer data), Prometheus scraping it every second
with the project's alert rules (``for:`` shortened to 0s) and recording rules, and the real
dashboard app. The tests run in file order: values, model switch, alerts (and the screenshot
in docs/dashboard.png), then Prometheus stopped and restarted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.metrics import accuracy_score

import dashboard_support as ds
from helpers import REPO, ManagedProcess, prom_query, require_binary, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MODEL_A, MODEL_B = "cancer", "cancer-small"
SCREENSHOT = REPO / "docs" / "dashboard.png"


@dataclass
class Stack:
    collector: ManagedProcess
    prometheus: ManagedProcess
    dashboard: str
    model_a: ds.CancerModel
    baseline_a: list[dict[str, Any]]


def _start(proc: ManagedProcess) -> ManagedProcess:
    return proc.start()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_binary("prometheus")
    tmp = tmp_path_factory.mktemp("dashboard")
    collector = ds.collector(tmp).start()
    prometheus: ManagedProcess | None = None
    try:
        url = collector.url  # type: ignore[attr-defined]
        model_a, model_b = ds.cancer_model(seed=0), ds.cancer_model(seed=1, c=0.01)
        ds.register(url, MODEL_A, ds.spec(model_a, ds.write_reference(model_a, tmp / "a.csv")))
        ds.register(url, MODEL_B, ds.spec(model_b, ds.write_reference(model_b, tmp / "b.csv")))
        baseline_a = ds.events(model_a, "a", 200, seed=1)
        ds.send(url, MODEL_A, baseline_a)
        ds.send(url, MODEL_B, ds.events(model_b, "b", 200, seed=2, version="v2"))
        prometheus = ds.prometheus_for(tmp, f"127.0.0.1:{collector.port}").start()  # type: ignore[attr-defined]
        wait_until(
            lambda: len(prom_query(prometheus.url, "model_accuracy")) == 2,  # type: ignore[union-attr]
            timeout=40,
            what="Prometheus to scrape both models' accuracy",
        )
        with ds.dashboard_server(prometheus.url, refresh_seconds=1.0) as dashboard:  # type: ignore[attr-defined]
            yield Stack(collector, prometheus, dashboard, model_a, baseline_a)
    finally:
        if prometheus is not None:
            prometheus.stop()
        collector.stop()


@pytest.fixture(scope="module")
def page(stack: Stack) -> Iterator[Any]:
    require_binary("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(stack.dashboard)
        yield page
        browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


def _snapshot(stack: Stack, model: str, version: str) -> dict[str, Any]:
    url = f"{stack.collector.url}/v1/models/{model}"  # type: ignore[attr-defined]
    response = httpx.get(url, timeout=10)
    response.raise_for_status()
    return dict(response.json()["snapshots"][version])


def _expect_cards(page: Any, snapshot: dict[str, Any]) -> None:
    from playwright.sync_api import expect

    for metric, key in (
        ("accuracy", "accuracy"),
        ("precision", "precision"),
        ("recall", "recall"),
        ("f1_score", "f1"),
    ):
        realized = snapshot["realized"][key]
        estimated = snapshot["estimated"][key]
        expect(page.locator(f"#card-{metric}-realized")).to_have_text(
            f"{realized:.3f}", timeout=20_000
        )
        expect(page.locator(f"#card-{metric}-estimated")).to_have_text(f"{estimated:.3f}")
        # The change is against the model's figure on its spec's reference data.
        change = realized - snapshot["reference"][key]
        expect(page.locator(f"#card-{metric}-change")).to_have_text(f"{change:+.3f} vs reference")
    # which source the card shows, and the labels behind it (no errored predictions here:
    # the performance window's labels are the window's)
    expect(page.locator("#card-accuracy-source")).to_have_text(
        f"collector · performance window 5m · n = {snapshot['window_labeled']:,} labels"
    )
    expect(page.locator("#card-accuracy a.card-title")).to_have_attribute(
        "href", "/glossary#model_accuracy"
    )


def test_cards_show_the_collector_figures(stack: Stack, page: Any) -> None:
    from playwright.sync_api import expect

    snapshot = _snapshot(stack, MODEL_A, "v1")
    # The collector's figure is the independent reference's (sklearn) on the events sent.
    y_true = [e["label"] for e in stack.baseline_a]
    y_pred = [e["prediction"] for e in stack.baseline_a]
    assert snapshot["realized"]["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    model = stack.model_a  # its reference: the held-out rows, predicted at 0.5 (write_reference)
    on_reference = accuracy_score(model.y, (model.scores(model.x) > 0.5).astype(int))
    assert snapshot["reference"]["accuracy"] == pytest.approx(on_reference, abs=1e-12)
    expect(page.locator(f"#{'model-select'}")).to_contain_text(MODEL_A, timeout=20_000)
    _expect_cards(page, snapshot)
    expect(page.locator("#card-accuracy-change")).to_contain_text("vs reference")
    # The estimate's 95 % band (the reference has scores, the window min_samples predictions)
    # and the calibration in use; the band drawn around the dotted line of the graph.
    lower, upper = snapshot["estimated_lower"]["accuracy"], snapshot["estimated_upper"]["accuracy"]
    assert lower <= snapshot["estimated"]["accuracy"] <= upper
    expect(page.locator("#card-accuracy-band")).to_contain_text(f"({lower:.3f}–{upper:.3f})")
    expect(page.locator("#card-accuracy-calibration")).to_have_text(
        re.compile(r"^(plain CBPE|shift-aware \(AUC \d\.\d\d\))$")
    )
    page.wait_for_function(
        "(document.querySelector('#perf-graph .js-plotly-plot')?.data ?? [])"
        ".some(t => t.fill === 'tonexty')",
        timeout=20_000,
    )
    expect(page.locator("#banner")).to_be_hidden()
    # Every feature of the spec has a drift row (one query, whatever the count).
    expect(page.locator("#drift-table tr.drift-row")).to_have_count(ds.FEATURES, timeout=20_000)


def test_model_selector_switches_models(stack: Stack, page: Any) -> None:
    from playwright.sync_api import expect

    page.locator("#model-select").click()
    page.get_by_role("option", name=MODEL_B, exact=True).click()
    expect(page.locator("#version-select")).to_contain_text("v2", timeout=20_000)
    _expect_cards(page, _snapshot(stack, MODEL_B, "v2"))
    page.locator("#model-select").click()
    page.get_by_role("option", name=MODEL_A, exact=True).click()
    expect(page.locator("#version-select")).to_contain_text("v1", timeout=20_000)
    _expect_cards(page, _snapshot(stack, MODEL_A, "v1"))


def test_accuracy_drop_and_drift_show_as_alerts(stack: Stack, page: Any) -> None:
    from playwright.sync_api import expect

    drifted = 1  # mean_texture moves by 3 standard deviations, and the labels flip
    batch = ds.events(
        stack.model_a, "drop", 400, seed=3, shift_feature=drifted, shift_sd=3.0, flip_labels=True
    )
    ds.send(stack.collector.url, MODEL_A, batch)  # type: ignore[attr-defined]
    critical = page.locator('.alert-critical[data-alertname="CriticalModelAccuracy"]')
    expect(critical).to_be_visible(timeout=60_000)
    drift = page.locator('.alert-warning[data-alertname="FeatureDrift"]')
    expect(drift).to_be_visible(timeout=60_000)
    expect(drift).to_contain_text(stack.model_a.features[drifted])
    expect(critical).to_contain_text("since")
    # The drifted feature tops the drift table, in red.
    first = page.locator("#drift-table tr.drift-row").first
    expect(first).to_have_attribute("data-feature", stack.model_a.features[drifted])
    expect(first).to_have_class("drift-row drift-critical")
    expect(page.locator("#card-accuracy")).to_have_class("card card-critical")
    snapshot = _snapshot(stack, MODEL_A, "v1")
    assert snapshot["realized"]["accuracy"] < 0.7
    _expect_cards(page, snapshot)
    page.wait_for_function(
        "document.querySelectorAll('#perf-graph .scatterlayer .trace').length >= 8"
    )
    # Let a few range steps (6 s at 15 min) accumulate so the picture shows lines, not dots.
    page.wait_for_function(
        "(document.querySelector('#throughput-graph .js-plotly-plot')?.data?.[0]?.x?.length"
        " ?? 0) >= 6",
        timeout=60_000,
    )
    if os.environ.get("MODELMETER_NO_SCREENSHOT") is None:
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_banner_when_prometheus_stops_and_gone_when_it_is_back(stack: Stack, page: Any) -> None:
    from playwright.sync_api import expect

    banner = page.locator("#banner")
    value = page.locator("#card-accuracy-realized")
    shown = value.inner_text()
    assert shown not in ("", "—")
    stack.prometheus.stop()
    expect(banner).to_be_visible(timeout=15_000)
    expect(banner).to_contain_text("Disconnected from Prometheus")
    expect(value).to_have_text(shown)  # the rest stays as it was
    stack.prometheus.start()  # same port, same data directory
    expect(banner).to_be_hidden(timeout=30_000)
    expect(value).not_to_have_text("—")
    assert np.isfinite(float(value.inner_text()))
