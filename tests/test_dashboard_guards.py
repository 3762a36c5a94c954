"""Sample guards on the dashboard, the source line of each card, and the glossary links.

No figure below its ``min_samples`` is coloured against a threshold: the pure tests build views
from Prometheus answers shaped as the collector and the rules export them; the browser test
runs the real collector, a real Prometheus with the shipped recording rules, the dashboard and
headless Chromium, and sends a model fewer labels than its min_samples, then enough.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import dashboard_support as ds
from dashboard_support import component_text as _text
from dashboard_support import find_component as _component
from helpers import prom_query, require_binary, wait_until
from modelmeter.dashboard import create_app
from modelmeter.dashboard.glossary import anchor, glossary_children, href
from modelmeter.dashboard.guards import below_min_samples, sample_note
from modelmeter.dashboard.panels import render_view
from modelmeter.dashboard.queries import RawRefresh, Selection
from modelmeter.dashboard.view import DRIFT_STATISTICS, build_view

MV = {"model": "m", "version": "v1"}
LEVELS = ("card-ok", "card-warning", "card-critical")


def _vector(*rows: tuple[dict[str, str], float]) -> dict[str, Any]:
    return {
        "resultType": "vector",
        "result": [{"metric": m, "value": [1.0, str(v)]} for m, v in rows],
    }


def _gauge(name: str, number: float, **labels: str) -> tuple[dict[str, str], float]:
    at = {} if name in ("model_min_samples", "model_window_seconds") else MV
    return {"__name__": name, **at, **labels}, number


def _model(
    *rows: tuple[dict[str, str], float], min_samples: float = 100, labeled_5m: float | None = None
) -> RawRefresh:
    """One binary model's answers: thresholds, min_samples, a 5m window, and ``rows``;
    ``labeled_5m`` labels in the derived query's 5-minute outcome counts (``None``: no
    answer)."""
    base = [
        _gauge("model_min_samples", min_samples, model="m"),
        _gauge("model_window_seconds", 300.0, model="m"),
        ({"__name__": "model_alert_threshold", "model": "m", "threshold": "accuracy_warning"}, 0.8),
        (
            {"__name__": "model_alert_threshold", "model": "m", "threshold": "accuracy_critical"},
            0.7,
        ),
        ({"__name__": "model_alert_threshold", "model": "m", "threshold": "drift_psi"}, 0.2),
        ({"__name__": "model_alert_threshold", "model": "m", "threshold": "quality_ratio"}, 0.05),
        ({"__name__": "model_alert_threshold", "model": "m", "threshold": "label_coverage"}, 0.5),
        (
            {"__name__": "model_alert_threshold", "model": "m", "threshold": "latency_p95_seconds"},
            0.5,
        ),
    ]
    answers = {**ds.empty_answers(), "instant": _vector(*base, *rows)}
    if labeled_5m is not None:
        outcome = {"mm_series": "merged_outcomes", "class": "1"}
        answers["derived"] = _vector(
            ({**outcome, "outcome": "tp"}, labeled_5m / 2),
            ({**outcome, "outcome": "fn"}, labeled_5m / 2),
            ({**outcome, "outcome": "fp"}, 3.0),
        )
    catalog = [{"model": "m", "version": "v1", "task": "binary"}]
    return RawRefresh(Selection("m", "v1"), 1.0, catalog, answers, {}, 8)


def _card(raw: RawRefresh, metric: str = "accuracy") -> tuple[dict[str, Any], Any]:
    view = build_view(raw)
    card = next(c for c in view["cards"] if c["metric"] == metric)
    return card, _component(render_view(view)["cards"], f"card-{metric}")


# --- pure: the guard and its words ---------------------------------------------------------


def test_the_guard_trusts_only_the_collectors_own_figures_with_an_unknown_sample() -> None:
    assert below_min_samples(99, 100, True) and below_min_samples(99, 100, False)
    assert not below_min_samples(100, 100, False)
    assert not below_min_samples(None, 100, True)  # the collector omits it below min_samples
    assert below_min_samples(None, 100, False)  # a rule: nothing says the sample is enough
    assert below_min_samples(5, None, False) and not below_min_samples(5, None, True)
    assert sample_note(37, 100) == "n = 37 < 100"


def test_a_recording_rule_below_min_samples_is_greyed_with_its_n() -> None:
    # The collector omits model_accuracy below min_samples; the rule has no guard of its own.
    raw = _model(
        _gauge("model:accuracy:ratio_rate5m", 0.5),  # far below accuracy_critical (0.7)
        _gauge("model_window_labeled_predictions", 40.0),
        labeled_5m=40.0,
    )
    card, shown = _card(raw)
    assert card["source"] == "recording rule" and card["rule"] == "model:accuracy:ratio_rate5m"
    assert card["guarded"] and card["samples"] == 40.0
    assert not any(level in shown.className.split() for level in LEVELS), shown.className
    assert shown.className == "card card-none card-guarded"
    value = _component(shown, "card-accuracy-realized")
    assert _text(value) == "0.500" and "card-value-guarded" in value.className
    assert _text(_component(shown, "card-accuracy-guard")) == "n = 40 < 100"
    assert (
        _text(_component(shown, "card-accuracy-source"))
        == "recording rule 5m · n = 40 labels (below min_samples 100)"
    )


def test_a_recording_rule_with_enough_labels_is_coloured() -> None:
    raw = _model(_gauge("model:accuracy:ratio_rate5m", 0.5), labeled_5m=120.0)
    card, shown = _card(raw)
    assert not card["guarded"]
    assert shown.className == "card card-critical"
    assert _component(shown, "card-accuracy-guard") is None
    assert _text(_component(shown, "card-accuracy-source")) == "recording rule 5m · n = 120 labels"


def test_a_recording_rule_without_its_sample_stays_greyed() -> None:
    # The derived query failed: the rule's 5-minute labels are unknown.
    card, shown = _card(_model(_gauge("model:accuracy:ratio_rate5m", 0.95)))
    assert card["guarded"] and shown.className == "card card-none card-guarded"
    assert _text(_component(shown, "card-accuracy-guard")) == "n unknown (min_samples 100)"
    assert _text(_component(shown, "card-accuracy-source")) == (
        "recording rule 5m · n = — labels (sample size unknown)"
    )


def test_the_collector_figure_names_its_performance_window_and_sample() -> None:
    raw = _model(
        _gauge("model_accuracy", 0.91),
        _gauge("model_performance_window_seconds", 172800.0, model="m"),
        _gauge("model_performance_window_labels", 1234.0),
        _gauge("model_window_labeled_predictions", 80.0),  # the main window: not the sample
        _gauge("model_window_predictions", 5000.0),
    )
    card, shown = _card(raw)
    assert card["source"] == "collector" and not card["guarded"]
    assert shown.className == "card card-ok"
    assert _text(_component(shown, "card-accuracy-source")) == (
        "collector · performance window 2d · n = 1,234 labels"
    )


def test_an_older_collector_falls_back_to_the_windows_labels() -> None:
    # No model_performance_window_* gauges: the window's labels and length.
    raw = _model(_gauge("model_accuracy", 0.75), _gauge("model_window_labeled_predictions", 150.0))
    card, shown = _card(raw)
    assert card["samples"] == 150.0 and shown.className == "card card-warning"
    assert _text(_component(shown, "card-accuracy-source")) == (
        "collector · performance window 5m · n = 150 labels"
    )


def test_a_collector_figure_whose_sample_is_below_is_greyed() -> None:
    raw = _model(_gauge("model_accuracy", 0.5), _gauge("model_performance_window_labels", 37.0))
    card, shown = _card(raw)
    assert card["guarded"] and shown.className == "card card-none card-guarded"
    assert _text(_component(shown, "card-accuracy-source")) == (
        "collector · performance window 5m · n = 37 labels (below min_samples 100)"
    )


def test_without_a_value_the_card_says_what_it_waits_for() -> None:
    card, shown = _card(_model(_gauge("model_performance_window_labels", 37.0), labeled_5m=37.0))
    assert card["realized"] is None and not card["guarded"]
    assert _text(_component(shown, "card-accuracy-realized")) == "—"
    assert _component(shown, "card-accuracy-guard") is None
    assert _text(_component(shown, "card-accuracy-source")) == (
        "waiting for ≥ 100 labeled predictions in the performance window 5m · n = 37 labels"
    )


def test_an_estimate_below_min_samples_is_greyed() -> None:
    raw = _model(
        _gauge("model_estimated_accuracy", 0.9),
        _gauge("model_window_predictions", 37.0),
        _gauge("model_accuracy", 0.9),
        _gauge("model_performance_window_labels", 120.0),
    )
    card, shown = _card(raw)
    assert card["estimated_guarded"] and not card["guarded"]
    estimated = _component(shown, "card-accuracy-estimated")
    assert _text(estimated) == "0.900" and estimated.className == "figure-guarded"
    assert "(n = 37 < 100)" in _text(shown)


def test_a_spread_model_guards_the_merged_figures_on_the_summed_sample() -> None:
    info = {"__name__": "model_info", **MV, "task": "binary", "job": "j"}
    rows: list[tuple[dict[str, str], float]] = [
        ({"__name__": "model_positive_class_info", **MV, "class": "1"}, 1.0),
        _gauge("model_performance_window_seconds", 300.0, model="m"),
    ]
    for i, (tp, fn) in enumerate(((12.0, 4.0), (15.0, 9.0))):  # 40 labels over 2 collectors
        at = {"instance": f"c{i}:1", "job": "j"}
        rows += [
            ({**info, "instance": f"c{i}:1"}, 1.0),
            (
                {"__name__": "model_performance_window_outcomes", **MV, **at, "class": "1"}
                | {"outcome": "tp"},
                tp,
            ),
            (
                {"__name__": "model_performance_window_outcomes", **MV, **at, "class": "1"}
                | {"outcome": "fn"},
                fn,
            ),
        ]
    view = build_view(_model(*rows, labeled_5m=0.0))
    card = next(c for c in view["cards"] if c["metric"] == "accuracy")
    assert view["merged"] and card["realized"] == pytest.approx(27 / 40)
    assert card["guarded"] and card["samples"] == 40.0
    assert card["source_text"] == (
        "merged over 2 collectors · performance window 5m · n = 40 labels (below min_samples 100)"
    )
    shown = _component(render_view(view)["cards"], "card-accuracy")
    assert shown.className == "card card-none card-guarded"


def test_tables_and_tiles_below_min_samples_are_not_coloured() -> None:
    drift = [
        ({"__name__": "model_feature_drift", **MV, "feature": "x", "statistic": s}, v)
        for s, v in (("psi", 0.9), ("ks", 0.4))  # "ks": a collector from before the rename
    ]
    raw = _model(
        *drift,
        _gauge("model_window_predictions", 37.0),
        _gauge("model_label_coverage_ratio", 0.1),
        _gauge("model_feature_quality_ratio", 0.5, feature="x", issue="missing"),
        _gauge("model_segment_accuracy", 0.2, segment="c", value="it"),
        _gauge("model_segment_window_labeled_predictions", 20.0, segment="c", value="it"),
    )
    view = build_view(raw)
    (row,) = view["drift"]
    assert row["guarded"] and row["ks_binned"] == 0.4 and set(DRIFT_STATISTICS) <= set(row)
    out = render_view(view)
    drift_html = str(out["drift_table"])
    assert "drift-row drift-none" in drift_html and "drift-critical" not in drift_html
    assert "n = 37 < 100" in _text(out["drift_table"])
    assert "KS (binned)" in _text(out["drift_table"])
    assert "cell-warning" not in str(out["quality"]) and "cell-none" in str(out["quality"])
    assert "n = 37 < 100 predictions in the window" in _text(out["quality"])
    coverage = _component(out["labels"], "labels-coverage-guard")
    assert _text(coverage) == "n = 37 < 100" and "stat-critical" not in str(out["labels"])
    from modelmeter.dashboard.panels import segment_table

    segments = str(segment_table(view, "c"))
    assert "cell-critical" not in segments and "0.200 (n = 20 < 100)" in segments
    # with enough predictions the same figures are coloured
    enough = build_view(
        _model(
            *drift,
            _gauge("model_window_predictions", 500.0),
            _gauge("model_feature_quality_ratio", 0.5, feature="x", issue="missing"),
        )
    )
    out = render_view(enough)
    assert "drift-row drift-warning" in str(out["drift_table"])  # over threshold, no test flag
    assert "cell-warning" in str(out["quality"])


def test_the_p95_tile_is_guarded_by_the_latencies_behind_it() -> None:
    raw = _model(_gauge("model_window_predictions", 500.0))
    raw.data["derived"] = _vector(
        ({"mm_series": "latency_p95"}, 2.0), ({"mm_series": "latency_samples"}, 12.0)
    )
    out = render_view(build_view(raw))
    assert "stat-critical" not in str(out["ops"]) and "stat-warning" not in str(out["ops"])
    assert _text(_component(out["ops"], "ops-p95-guard")) == "n = 12 < 100"
    raw.data["derived"] = _vector(
        ({"mm_series": "latency_p95"}, 2.0), ({"mm_series": "latency_samples"}, 120.0)
    )
    assert "stat-warning" in str(render_view(build_view(raw))["ops"])


# --- the glossary ----------------------------------------------------------------------------


def test_card_titles_and_table_headers_link_to_the_glossary() -> None:
    raw = _model(
        _gauge("model_accuracy", 0.9),
        _gauge("model:precision:ratio_rate5m", 0.9),
        ({"__name__": "model_feature_drift", **MV, "feature": "x", "statistic": "psi"}, 0.1),
        _gauge("model_feature_quality_ratio", 0.01, feature="x", issue="missing"),
        labeled_5m=10.0,
    )
    out = render_view(build_view(raw))
    cards = str(out["cards"])
    for metric in ("accuracy", "precision", "recall", "f1_score"):
        assert f"href='/glossary#model_{metric}'" in cards, metric
    # the rule a card shows links to its own entry (colons become hyphens)
    assert "href='/glossary#model-precision-ratio_rate5m'" in cards
    assert href("model:precision:ratio_rate5m") == "/glossary#model-precision-ratio_rate5m"
    assert "href='/glossary#model_feature_drift'" in str(out["drift_table"])
    assert "href='/glossary#model_feature_quality_ratio'" in str(out["quality"])


def test_the_glossary_page_says_when_the_file_is_missing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "metrics.md"
    text = _text(glossary_children([missing]))
    assert "The metric glossary is missing" in text and str(missing) in text
    (placeholder,) = ds.glossary_for_tests(tmp_path)
    children = glossary_children([placeholder])
    # each anchor is the id of its section (not left to the markdown renderer's raw HTML)
    ids = {getattr(c, "id", None) for c in children}
    assert {"model_accuracy", "model-accuracy-ratio_rate5m"} <= ids
    section = next(c for c in children if getattr(c, "id", None) == "model_accuracy")
    assert "model_accuracy" in section.children.children  # its markdown: the entry
    # /glossary is served by the same app (and behind its basic auth)
    app = create_app("http://127.0.0.1:9", glossary=[missing])
    assert app.server.test_client().get("/glossary").status_code == 200
    protected = create_app("http://127.0.0.1:9", basic_auth=("ops", "pw"))
    assert protected.server.test_client().get("/glossary").status_code == 401


def test_every_family_the_dashboard_links_has_a_glossary_anchor() -> None:
    assert ds.GLOSSARY.is_file(), f"the glossary {ds.GLOSSARY} is missing"
    text = ds.GLOSSARY.read_text()
    anchors = set(re.findall(r"<a id=\"([^\"]+)\"></a>", text))
    linked = {
        "model_accuracy",
        "model_precision",
        "model_recall",
        "model_f1_score",
        "model_mean_absolute_error",
        "model_root_mean_squared_error",
        "model_feature_drift",
        "model_feature_drift_detected",
        "model_feature_quality_ratio",
        "model_alert_threshold",
        "model_multivariate_drift",
        "model:accuracy:ratio_rate5m",
    }
    missing = sorted(f for f in linked if anchor(f) not in anchors)
    assert not missing, f"docs/metrics.md has no anchor for {missing}"


# --- in the browser: real collector, Prometheus with the rules, dashboard, Chromium ----------

MODEL = "guarded"
MIN_SAMPLES = 100
FEW, MORE = 40, 80  # 40 labels: below min_samples; 40 + 80 = 120: enough


@pytest.fixture(scope="module")
def guarded_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require_binary("prometheus")
    tmp = tmp_path_factory.mktemp("guards")
    collector = ds.collector(tmp).start()
    prometheus = None
    try:
        url = collector.url  # type: ignore[attr-defined]
        model = ds.cancer_model(seed=0)
        body = ds.spec(model, ds.write_reference(model, tmp / "ref.csv"), min_samples=MIN_SAMPLES)
        ds.register(url, MODEL, body)
        prometheus = ds.prometheus_for(tmp, f"127.0.0.1:{collector.port}").start()  # type: ignore[attr-defined]
        prom = prometheus.url  # type: ignore[attr-defined]
        # One unlabeled prediction creates the version: its outcome counters are scraped at 0
        # before any label, so the 5-minute rule sees every label of the test as an increase.
        (first,) = ds.events(model, "unlabeled", 1, seed=10)
        del first["label"]
        ds.send(url, MODEL, [first])
        wait_until(
            lambda: bool(
                prom_query(prom, f'model_classification_outcomes_total{{model="{MODEL}"}}')
            ),
            timeout=40,
            what="Prometheus to scrape the model's outcome counters",
        )
        glossary = ds.glossary_for_tests(tmp)
        with ds.dashboard_server(prom, refresh_seconds=1.0, glossary=glossary) as dashboard:
            yield {"collector": url, "prometheus": prom, "dashboard": dashboard, "model": model}
    finally:
        if prometheus is not None:
            prometheus.stop()
        collector.stop()


def _accuracy(collector_url: str) -> float | None:
    response = httpx.get(f"{collector_url}/v1/models/{MODEL}", timeout=10)
    response.raise_for_status()
    value = response.json()["snapshots"]["v1"]["realized"]["accuracy"]
    return None if value is None else float(value)


@pytest.mark.browser
@pytest.mark.e2e
def test_below_min_samples_the_card_is_greyed_then_coloured(
    guarded_stack: dict[str, Any],
) -> None:
    require_binary("chromium")
    from playwright.sync_api import expect, sync_playwright

    from test_dashboard_browser import CHROMIUM_ARGS

    stack = guarded_stack
    model = stack["model"]
    ds.send(stack["collector"], MODEL, ds.events(model, "few", FEW, seed=11))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(stack["dashboard"])
        card = page.locator("#card-accuracy")
        # 40 labels: the collector omits model_accuracy, the card shows the 5-minute rule,
        # greyed with its sample, in no threshold colour.
        expect(page.locator("#card-accuracy-guard")).to_have_text(
            f"n = {FEW} < {MIN_SAMPLES}", timeout=60_000
        )
        expect(card).to_have_class("card card-none card-guarded")
        expect(page.locator("#card-accuracy-source")).to_have_text(
            f"recording rule 5m · n = {FEW} labels (below min_samples {MIN_SAMPLES})"
        )
        value = page.locator("#card-accuracy-realized")
        expect(value).to_have_class("card-value card-value-guarded")
        assert re.fullmatch(r"[01]\.\d{3}", value.inner_text()), value.inner_text()
        assert _accuracy(stack["collector"]) is None  # the collector's own guard
        # 120 labels: the collector's figure, coloured against the thresholds.
        ds.send(stack["collector"], MODEL, ds.events(model, "more", MORE, seed=12))
        total = FEW + MORE
        expect(page.locator("#card-accuracy-source")).to_have_text(
            f"collector · performance window 5m · n = {total} labels", timeout=60_000
        )
        expect(card).to_have_class(re.compile(r"^card card-(ok|warning|critical)$"))
        expect(page.locator("#card-accuracy-guard")).to_have_count(0)
        accuracy = _accuracy(stack["collector"])
        assert accuracy is not None
        expect(value).to_have_text(f"{accuracy:.3f}")
        expect(value).to_have_class("card-value")
        # The title opens the glossary at the family's anchor, in a new tab.
        title = page.locator("#card-accuracy a.card-title")
        expect(title).to_have_attribute("href", "/glossary#model_accuracy")
        with page.context.expect_page() as opened:
            title.click()
        glossary = opened.value
        glossary.wait_for_load_state()
        assert glossary.url == f"{stack['dashboard']}/glossary#model_accuracy"
        target = glossary.locator("#model_accuracy")
        expect(target).to_be_attached(timeout=20_000)
        expect(glossary.locator("#glossary-page")).to_be_visible()
        expect(glossary.locator("#dashboard-page")).to_be_hidden()
        # scrolled to the anchor once the markdown rendered
        glossary.wait_for_function(
            "document.querySelector('#model_accuracy') !== null"
            " && document.querySelector('#model_accuracy').getBoundingClientRect().top < 200",
            timeout=20_000,
        )
        browser.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.mark.browser
@pytest.mark.e2e
def test_the_glossary_page_queries_no_prometheus(tmp_path: Path) -> None:
    """The glossary page of an app whose Prometheus does not answer: it renders, and its
    ticks make no Prometheus call (the refresh is skipped there)."""
    require_binary("chromium")
    from playwright.sync_api import expect, sync_playwright

    from helpers import free_port
    from test_dashboard_browser import CHROMIUM_ARGS

    app = create_app(
        f"http://127.0.0.1:{free_port()}",
        refresh_seconds=0.5,
        glossary=ds.glossary_for_tests(tmp_path),
    )
    client = app.server.config["modelmeter_fetcher"].client

    def is_refresh(request: Any) -> bool:
        if "/_dash-update-component" not in request.url:
            return False
        body = json.loads(request.post_data or "{}")
        return "view-store.data" in str(body.get("output"))

    with ds.serve_app(app) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(f"{url}/glossary#model-accuracy-ratio_rate5m")
        expect(page.locator("#model-accuracy-ratio_rate5m")).to_be_attached(timeout=20_000)
        for _ in range(4):  # the interval keeps ticking; each tick's refresh is skipped
            page.wait_for_event("request", predicate=is_refresh, timeout=30_000)
        browser.close()
    assert client.calls == 0, client.calls
