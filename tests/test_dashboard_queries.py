"""The dashboard's Prometheus queries: a fixed number of calls per refresh, bounded, correct.

The pure tests check the query builder; the others run the queries against a real Prometheus
scraping a real collector fed with real predictions (1 model with 5 features, then 20 more
models with 25 features each).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import dashboard_support as ds
from helpers import ManagedProcess, free_port, prom_query, require_binary, wait_until
from modelmeter.dashboard.panels import render_view
from modelmeter.dashboard.queries import (
    CALLS_PER_REFRESH,
    DRIFT_TOP,
    MAX_POINTS,
    RANGES,
    PromCall,
    PromClient,
    PromError,
    PromUnavailable,
    Selection,
    build_catalog_plan,
    build_plan,
    fetch_refresh,
    resolve,
    selector,
)
from modelmeter.dashboard.view import build_view

NOW = 1_750_000_000.0


def _catalog(n_models: int) -> list[dict[str, str]]:
    return [{"model": f"m{i:02d}", "version": "v1", "task": "binary"} for i in range(n_models)]


@pytest.mark.parametrize("n_models", [1, 20])
@pytest.mark.parametrize("n_features", [5, 25])
@pytest.mark.parametrize("range_key", list(RANGES))
def test_plan_size_is_constant(n_models: int, n_features: int, range_key: str) -> None:
    catalog = _catalog(n_models)
    features = [f"feature_{i}" for i in range(n_features)]
    for wanted in ("m00", f"m{n_models - 1:02d}", None):
        sel = resolve(Selection(wanted, None, range_key), catalog)
        calls = build_catalog_plan(sel, NOW) + build_plan(sel, NOW)
        assert len(calls) == CALLS_PER_REFRESH == 8
        text = " ".join(str(dict(c.params)) for c in calls)
        # No query names a feature or another model: one query serves them all.
        assert not any(f in text for f in features)
        assert all(m["model"] not in text for m in catalog if m["model"] != sel.model)


def test_the_instant_query_brings_the_reference_figures_without_another_call() -> None:
    sel = Selection("m", "v1")
    calls = {c.key: c for c in build_plan(sel, NOW)}
    match = re.search(r'__name__=~"([^"]+)"', calls["instant"].params["query"])
    assert match is not None
    names = re.compile(match.group(1))  # Prometheus anchors the regex: fullmatch
    for metric in ("accuracy", "precision", "recall", "f1_score"):
        assert names.fullmatch(f"model_reference_{metric}"), metric
        assert names.fullmatch(f"model_{metric}"), metric
    assert len(build_catalog_plan(sel, NOW)) + len(calls) == CALLS_PER_REFRESH == 8


@pytest.mark.parametrize("range_key", list(RANGES))
def test_range_queries_are_bounded(range_key: str) -> None:
    sel = Selection("m", "v1", range_key)
    for call in build_plan(sel, NOW):
        if call.path.endswith("query_range"):
            span = float(call.params["end"]) - float(call.params["start"])
            assert span == RANGES[range_key]
            assert span / float(call.params["step"]) <= MAX_POINTS


def test_selector_quotes_and_escapes_label_values() -> None:
    assert selector(Selection('a"b', "1.0")) == 'model="a\\"b", version=~"1\\\\.0|"'
    with pytest.raises(ValueError, match="not one of 15m, 1h, 6h, 24h"):
        Selection("m", "v", "2d")


def test_resolve_falls_back_to_what_exists() -> None:
    catalog = [*_catalog(3), {"model": "m01", "version": "v2", "task": "binary"}]
    assert resolve(Selection("m01", "v2"), catalog) == Selection("m01", "v2")
    assert resolve(Selection("m01", None), catalog).version == "v2"
    assert resolve(Selection("gone", "v1"), catalog).model == "m00"
    assert resolve(Selection("m00", "v1"), []) == Selection(None, None)


def test_unreachable_prometheus_raises_unavailable_fast() -> None:
    client = PromClient(f"http://127.0.0.1:{free_port()}", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(PromUnavailable, match="ConnectError"):
        fetch_refresh(client, Selection(None, None), NOW)
    assert time.monotonic() - started < 2
    assert client.calls == 2  # the catalog and alerts calls, in parallel; nothing more
    client.close()


# --- against a real Prometheus scraping a real collector ------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ManagedProcess, str]]:
    require_binary("prometheus")
    tmp: Path = tmp_path_factory.mktemp("dash-queries")
    collector = ds.collector(tmp).start()
    prometheus = None
    try:
        small = ds.cancer_model(n_features=5)
        body = ds.spec(small, ds.write_reference(small, tmp / "small.csv"))
        ds.register(collector.url, "one", body)  # type: ignore[attr-defined]
        ds.send(collector.url, "one", ds.events(small, "one", 120, seed=1))  # type: ignore[attr-defined]
        prometheus = ds.prometheus_for(tmp, f"127.0.0.1:{collector.port}").start()  # type: ignore[attr-defined]
        yield collector, prometheus.url  # type: ignore[attr-defined]
    finally:
        if prometheus is not None:
            prometheus.stop()
        collector.stop()


def _refresh(prom_url: str, sel: Selection) -> tuple[int, dict[str, Any]]:
    client = PromClient(prom_url, timeout=1.5)
    try:
        raw = fetch_refresh(client, sel, time.time())
        assert not raw.errors, raw.errors
        return client.calls, build_view(raw)
    finally:
        client.close()


@pytest.mark.e2e
def test_calls_per_refresh_stay_constant_with_models_and_features(
    stack: tuple[ManagedProcess, str], tmp_path: Path
) -> None:
    collector, prom_url = stack
    url = collector.url  # type: ignore[attr-defined]
    wait_until(
        lambda: prom_query(prom_url, 'model_feature_drift{model="one"}'),
        timeout=40,
        what="drift figures of model one in Prometheus",
    )
    calls_small, view = _refresh(prom_url, Selection(None, None))
    assert view["model"] == "one" and len(view["drift"]) == 5
    assert len(view["series"]["drift"]) == 6  # 5 features (top 6 of 5) and the output
    assert calls_small == CALLS_PER_REFRESH

    wide = ds.cancer_model(seed=2, n_features=25)
    reference_dir = collector.reference_dir  # type: ignore[attr-defined]
    body = ds.spec(wide, ds.write_reference(wide, reference_dir / "wide.csv"))
    for i in range(20):
        ds.register(url, f"wide-{i:02d}", body)
        ds.send(url, f"wide-{i:02d}", ds.events(wide, f"w{i}", 60, seed=10 + i))
    wait_until(
        lambda: (
            len(prom_query(prom_url, 'count by (model) (model_feature_drift{statistic="psi"})'))
            == 21
        ),
        timeout=40,
        what="drift figures of all 21 models",
    )
    calls_wide, view = _refresh(prom_url, Selection("wide-07", None))
    assert view["model"] == "wide-07" and len(view["catalog"]) == 21
    assert len(view["drift"]) == 25
    assert len(view["series"]["drift"]) == DRIFT_TOP + 1  # top features and the output
    assert calls_wide == calls_small == CALLS_PER_REFRESH


@pytest.mark.e2e
def test_view_figures_equal_the_collector_metrics(stack: tuple[ManagedProcess, str]) -> None:
    collector, prom_url = stack
    wait_until(
        lambda: prom_query(prom_url, 'model_accuracy{model="one"}'),
        timeout=40,
        what="accuracy of model one in Prometheus",
    )
    snapshot = httpx.get(f"{collector.url}/v1/models/one", timeout=10).json()  # type: ignore[attr-defined]
    figures = snapshot["snapshots"]["v1"]
    _, view = _refresh(prom_url, Selection("one", "v1"))
    cards = {c["metric"]: c for c in view["cards"]}
    for metric, key in (
        ("accuracy", "accuracy"),
        ("precision", "precision"),
        ("recall", "recall"),
        ("f1_score", "f1"),
    ):
        assert cards[metric]["realized"] == pytest.approx(figures["realized"][key], rel=1e-9)
        assert cards[metric]["estimated"] == pytest.approx(figures["estimated"][key], rel=1e-9)
        assert cards[metric]["reference"] == pytest.approx(figures["reference"][key], rel=1e-9)
    assert cards["accuracy"]["labeled"] == figures["window_labeled"]
    # The card's change is against the model's accuracy on its reference data.
    change = cards["accuracy"]["realized"] - cards["accuracy"]["reference"]
    shown = render_view(view)["cards"][0].children[-1]  # the card's last line
    assert shown.id == "card-accuracy-change"
    assert [part.children for part in shown.children] == [f"{change:+.3f}", " vs reference"]
    drift = {d["feature"]: d for d in view["drift"]}
    for feature, values in figures["drift"].items():
        assert drift[feature]["psi"] == pytest.approx(values["psi"], rel=1e-9)
    assert view["thresholds"]["accuracy_warning"] == pytest.approx(0.8)
    assert view["labels"]["coverage"] == pytest.approx(figures["label_coverage"])
    # Sorted by severity: PSI relative to the threshold, highest first.
    ratios = [d["ratio"] for d in view["drift"]]
    assert ratios == sorted(ratios, reverse=True)
    assert view["collector"]["memory"] and view["collector"]["memory"] > 10 * 2**20


@pytest.mark.e2e
def test_a_bad_query_is_a_prom_error_not_a_disconnect(stack: tuple[ManagedProcess, str]) -> None:
    _, prom_url = stack
    client = PromClient(prom_url)
    with pytest.raises(PromError, match="parse error"):
        client.call(PromCall("bad", "/api/v1/query", {"query": "sum(("}))
    client.close()


@pytest.mark.e2e
def test_the_same_queries_work_on_victoriametrics(
    stack: tuple[ManagedProcess, str], tmp_path: Path
) -> None:
    """A Prometheus-compatible store: VictoriaMetrics scraping the same collector."""
    binary = require_binary("victoria-metrics")
    collector, _ = stack
    port = free_port()
    config = tmp_path / "scrape.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: modelmeter\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{collector.port}']\n"  # type: ignore[attr-defined]
    )
    vm = ManagedProcess(
        "victoria-metrics",
        [
            binary,
            f"-storageDataPath={tmp_path / 'vm'}",
            f"-httpListenAddr=127.0.0.1:{port}",
            f"-promscrape.config={config}",
            "-search.latencyOffset=0s",
            "-loggerLevel=ERROR",
        ],
        tmp_path / "vm.log",
        ready_url=f"http://127.0.0.1:{port}/health",
    )
    with vm:
        vm_url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: prom_query(vm_url, 'model_feature_drift{model="one"}'),
            timeout=40,
            what="drift figures in VictoriaMetrics",
        )
        client = PromClient(vm_url)
        try:
            raw = fetch_refresh(client, Selection("one", None), time.time())
        finally:
            client.close()
        view = build_view(raw)
        assert set(raw.errors) <= {"alerts"}, raw.errors  # alerts need vmalert behind VM
        assert raw.calls == CALLS_PER_REFRESH
        assert view["model"] == "one" and len(view["drift"]) == 5
        assert len(view["series"]["drift"]) == 6  # 5 features (top 6 of 5) and the output
        assert view["cards"][0]["realized"] is not None
