"""The dashboard without a browser: formatting, empty states, settings, auth, tick skipping."""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from dash.exceptions import PreventUpdate

from helpers import ManagedProcess, free_port, wait_until
from modelmeter.dashboard import format as fmt
from modelmeter.dashboard.app import Fetcher, create_app
from modelmeter.dashboard.cli import configure, settings_from
from modelmeter.dashboard.layout import GRAPHS, IDS, build_layout
from modelmeter.dashboard.panels import NO_MODEL, _since, drift_status, render_view
from modelmeter.dashboard.queries import (
    PERF_METRICS,
    PromClient,
    PromUnavailable,
    RawRefresh,
    Selection,
)
from modelmeter.dashboard.view import _drift, build_view


def test_formatting_never_turns_missing_into_zero() -> None:
    for f in (fmt.ratio, fmt.delta, fmt.percent, fmt.count, fmt.rate, fmt.seconds, fmt.bytes_):
        assert f(None) == "—"
    assert fmt.ratio(0.0) == "0.000"
    assert fmt.seconds(0.5) == "500.0 ms" and fmt.seconds(90) == "90.0 s"
    assert fmt.seconds(600) == "10.0 min" and fmt.seconds(7200) == "2.0 h"
    assert fmt.bytes_(512) == "512 B" and fmt.bytes_(1536) == "1.5 KiB"
    assert fmt.rate(0.25) == "0.250/s" and fmt.rate(0) == "0.0/s"
    assert fmt.ago(10_000, 10_000 - 7200) == "2.0 h ago"


def test_since_reads_prometheus_timestamps_with_nanoseconds() -> None:
    assert _since("2026-01-02T03:04:05.123456789Z", 1767323045.0 + 65).startswith(
        "since 2026-01-02 03:04:05 UTC (1 min ago)"
    )
    assert _since(None, 0.0) == ""


def _empty_answers() -> dict[str, Any]:
    empty_vector = {"resultType": "vector", "result": []}
    empty_matrix = {"resultType": "matrix", "result": []}
    return {
        "alerts": {"alerts": []},
        "instant": empty_vector,
        "derived": empty_vector,
        "perf": empty_matrix,
        "ops": empty_matrix,
        "drift": empty_matrix,
        "resources": empty_matrix,
    }


def test_no_model_says_what_to_do() -> None:
    view = build_view(RawRefresh(Selection(None, None), 1.0, [], {"alerts": None}, {}, 2))
    out = render_view(view)
    assert out["main_hidden"] and not out["empty_hidden"]
    assert NO_MODEL in str(out["empty"]) and "README, Quick start" in NO_MODEL


def test_a_model_without_data_shows_hints_in_every_panel() -> None:
    catalog = [{"model": "m", "version": "v1", "task": "binary"}]
    view = build_view(RawRefresh(Selection("m", "v1"), 1.0, catalog, _empty_answers(), {}, 8))
    out = render_view(view)
    assert not out["main_hidden"]
    text = str(out)
    for hint in (
        "waiting for ≥",
        "No active alerts for m",
        "No drift figures yet",
        "No data-quality figures yet",
        "No labels yet",
        "No serving replica",
    ):
        assert hint in text, hint
    for graph in GRAPHS:
        figure = out["figures"][graph]
        assert figure["data"] == []
        assert figure["layout"]["annotations"][-1]["text"]  # the empty message
        assert figure["layout"]["uirevision"] == "m|v1|15m"


def test_alert_store_without_alerts_api_is_explained() -> None:
    catalog = [{"model": "m", "version": "v1", "task": "binary"}]
    answers = _empty_answers() | {"alerts": None}
    view = build_view(RawRefresh(Selection("m", "v1"), 1.0, catalog, answers, {"alerts": "404"}, 8))
    assert "does not serve /api/v1/alerts" in str(render_view(view)["alerts"])


def test_layout_has_every_component_the_callbacks_use() -> None:
    text = str(build_layout(2.0))
    for component_id in [*IDS.values(), *GRAPHS]:
        assert f"'{component_id}'" in text, component_id


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    configure(parser)
    return parser.parse_args(list(argv))


def test_settings_environment_and_flags() -> None:
    s = settings_from(_args(), {"PROM_URL": "http://vm:8428", "PORT": "9000"})
    assert (s.prom_url, s.port, s.host, s.refresh_seconds) == (
        "http://vm:8428",
        9000,
        "127.0.0.1",
        2.0,
    )
    s = settings_from(_args("--port", "8123", "--host", "0.0.0.0"), {"PORT": "9000"})
    assert (s.port, s.host) == (8123, "0.0.0.0")
    with pytest.raises(ValueError, match="PORT='x'"):
        settings_from(_args(), {"PORT": "x"})
    with pytest.raises(ValueError, match="MODELMETER_DASHBOARD_PASSWORD"):
        settings_from(_args(), {"MODELMETER_DASHBOARD_USER": "ops"})
    with pytest.raises(ValueError, match="MODELMETER_DASHBOARD_REFRESH"):
        settings_from(_args(), {"MODELMETER_DASHBOARD_REFRESH": "soon"})


def test_basic_auth_protects_every_page() -> None:
    app = create_app("http://127.0.0.1:9", basic_auth=("ops", "s3cret"))
    client = app.server.test_client()
    denied = client.get("/")
    assert denied.status_code == 401
    assert "Basic" in denied.headers["WWW-Authenticate"]
    assert client.get("/", headers={"Authorization": "Basic b3BzOndyb25n"}).status_code == 401
    ok = client.get("/", headers={"Authorization": "Basic b3BzOnMzY3JldA=="})  # ops:s3cret
    assert ok.status_code == 200 and b"modelmeter" in ok.data
    assert client.get("/healthz").status_code == 200  # for launchers: no data, no auth
    assert create_app("http://127.0.0.1:9").server.test_client().get("/").status_code == 200


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers: a hung Prometheus."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    sock.close()


def test_a_hung_prometheus_times_out_and_ticks_do_not_pile_up(silent_server: str) -> None:
    client = PromClient(silent_server, timeout=0.5)
    fetcher = Fetcher(client, max_age=1.0)
    sel = Selection("m", "v1")
    outcome: list[BaseException] = []

    def slow_fetch() -> None:
        try:
            fetcher.fetch(sel)
        except BaseException as exc:
            outcome.append(exc)

    started = time.monotonic()
    first = threading.Thread(target=slow_fetch)
    first.start()
    while client.calls < 2:  # the first fetch is waiting on the silent server
        time.sleep(0.01)
    with pytest.raises(PreventUpdate):  # the next tick is skipped, not queued
        fetcher.fetch(sel)
    first.join()
    elapsed = time.monotonic() - started
    assert isinstance(outcome[0], PromUnavailable) and "Timeout" in str(outcome[0])
    assert elapsed < 1.5  # one timeout (calls run in parallel), not one per call
    assert client.calls == 2
    client.close()


def test_the_command_serves_the_page_with_basic_auth(tmp_path: Path) -> None:
    port = free_port()
    env = {
        "PROM_URL": f"http://127.0.0.1:{free_port()}",
        "PORT": str(port),
        "MODELMETER_DASHBOARD_USER": "ops",
        "MODELMETER_DASHBOARD_PASSWORD": "s3cret",
    }
    argv = [sys.executable, "-m", "modelmeter.dashboard.cli", "--refresh", "1s"]
    with ManagedProcess("dashboard", argv, tmp_path / "dashboard.log", env=env) as proc:
        url = f"http://127.0.0.1:{port}/"
        wait_until(
            lambda: httpx.get(url, timeout=2).status_code == 401,
            timeout=30,
            what="the dashboard to answer 401 without credentials",
        )
        page = httpx.get(url, auth=("ops", "s3cret"), timeout=5)
        assert page.status_code == 200 and "<title>modelmeter</title>" in page.text
        assert "on http://127.0.0.1:" in proc.log() and "basic auth" in proc.log()


def test_drift_rows_follow_the_feature_drift_rule() -> None:
    # FeatureDrift fires on PSI over the threshold AND a significant test: the table agrees.
    psi = {"a": 0.05, "b": 0.5, "c": 0.3, "d": 0.12}
    detected = {"a": 1.0, "b": 0.0, "c": 1.0, "d": 0.0}
    by_name = {
        "model_feature_drift": [({"feature": f, "statistic": "psi"}, v) for f, v in psi.items()],
        "model_feature_drift_detected": [({"feature": f}, v) for f, v in detected.items()],
    }
    rows = _drift(by_name, threshold=0.2)
    assert [r["feature"] for r in rows] == ["c", "b", "d", "a"]
    statuses = [drift_status(r["ratio"], r["detected"]) for r in rows]
    assert statuses == [
        ("critical", "drifted"),
        ("warning", "over threshold, not significant"),
        ("warning", "near threshold"),
        ("ok", "small shift"),
    ]


# --- the cards' change: against the reference figure, else against the start of the range ---

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
T0 = 1_750_000_000.0
EARLY, LATE = 100, 150  # labeled reference rows replayed as traffic by each time


def _component(tree: Any, component_id: str) -> Any:
    """The Dash component with ``component_id`` inside ``tree`` (lists and children)."""
    if isinstance(tree, list | tuple):
        return next((c for c in (_component(t, component_id) for t in tree) if c), None)
    if getattr(tree, "id", None) == component_id:
        return tree
    children = getattr(tree, "children", None)
    return _component(children, component_id) if children is not None else None


def _text(component: Any) -> str:
    if isinstance(component, str):
        return component
    if isinstance(component, list | tuple):
        return "".join(map(_text, component))
    children = getattr(component, "children", None)
    return "" if children is None else _text(children)


def _exported(spec: Any, snapshot: Any) -> list[tuple[dict[str, str], float]]:
    """The model samples the collector code exports for one snapshot (name and labels, value)."""
    from prometheus_client.parser import text_string_to_metric_families

    from modelmeter.exposition import CollectorState, ModelState, build_registry, render

    state = CollectorState(models=[ModelState("cancer", spec, {"v1": snapshot})])
    body = render(build_registry(lambda: state)).decode()
    return [
        ({"__name__": s.name, **s.labels}, s.value)
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if s.name.startswith("model_") and "le" not in s.labels
    ]


@pytest.fixture(scope="module")
def replay() -> dict[str, Any]:
    """The breast-cancer example model's reference rows replayed through a real monitor and
    exported by the real collector code, as Prometheus would answer the dashboard's queries."""
    from modelmeter.engine import LabelBatch, ModelMonitor, PredictionBatch
    from modelmeter.spec import load_reference, load_spec

    spec = load_spec(EXAMPLES / "binary-spec.yaml")
    reference = load_reference(spec)
    monitor = ModelMonitor(spec.monitor_config(), reference)
    bodies = []
    for start, stop, t in ((0, EARLY, T0), (EARLY, LATE, T0 + 30)):
        rows = slice(start, stop)
        stamps = np.full(stop - start, t)
        predictions = np.asarray(reference.predictions[rows], dtype=object)
        monitor.observe(
            PredictionBatch(
                stamps,
                {name: np.asarray(v[rows]) for name, v in reference.features.items()},
                predictions,
                scores=None if reference.scores is None else reference.scores[rows],
            ),
            now=t,
        )
        labels = np.asarray(reference.labels[rows], dtype=object)
        monitor.label(LabelBatch(stamps + 5, stamps, predictions, labels), now=t + 5)
        bodies.append((t + 10, _exported(spec, monitor.snapshot(t + 10))))
    (early_t, early), (now, late) = bodies
    perf = [
        {"metric": labels, "values": [[early_t, repr(e)], [now, repr(value)]]}
        for labels, value in late
        if labels["__name__"] in PERF_METRICS
        for e in [next(v for lab, v in early if lab == labels)]
    ]
    answers = _empty_answers() | {
        "instant": {
            "resultType": "vector",
            "result": [{"metric": lab, "value": [now, repr(v)]} for lab, v in late],
        },
        "perf": {"resultType": "matrix", "result": perf},
    }
    return {"answers": answers, "now": now, "reference": reference}


def _sklearn(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    t, p = y_true.astype(str), y_pred.astype(str)
    return {
        "accuracy": accuracy_score(t, p),
        "precision": precision_score(t, p, pos_label="malignant"),
        "recall": recall_score(t, p, pos_label="malignant"),
        "f1_score": f1_score(t, p, pos_label="malignant"),
    }


def _render(answers: dict[str, Any], now: float) -> tuple[dict[str, Any], dict[str, Any]]:
    catalog = [{"model": "cancer", "version": "v1", "task": "binary"}]
    view = build_view(RawRefresh(Selection("cancer", "v1"), now, catalog, answers, {}, 8))
    return view, render_view(view)


def test_cards_show_the_change_against_the_reference(replay: dict[str, Any]) -> None:
    reference = replay["reference"]
    on_reference = _sklearn(reference.labels, reference.predictions)
    realized = _sklearn(reference.labels[:LATE], reference.predictions[:LATE])
    view, out = _render(replay["answers"], replay["now"])
    for card in view["cards"]:
        metric = card["metric"]
        assert card["reference"] == pytest.approx(on_reference[metric], abs=1e-12)
        assert card["realized"] == pytest.approx(realized[metric], abs=1e-12)
        change = _component(out["cards"], f"card-{metric}-change")
        text = _text(change)
        assert text == f"{realized[metric] - on_reference[metric]:+.3f} vs reference", text
        assert f"reference data ({on_reference[metric]:.3f})" in change.title
    # accuracy 142/150 in the window against 217/228 on the reference data
    assert _text(_component(out["cards"], "card-accuracy-change")) == "-0.005 vs reference"


def test_cards_fall_back_to_the_start_of_the_range_without_a_reference(
    replay: dict[str, Any],
) -> None:
    answers = dict(replay["answers"])
    instant = answers["instant"]["result"]
    answers["instant"] = {
        "resultType": "vector",
        "result": [
            r for r in instant if not r["metric"]["__name__"].startswith("model_reference_")
        ],
    }
    reference = replay["reference"]
    start = _sklearn(reference.labels[:EARLY], reference.predictions[:EARLY])
    realized = _sklearn(reference.labels[:LATE], reference.predictions[:LATE])
    view, out = _render(answers, replay["now"])
    for card in view["cards"]:
        metric = card["metric"]
        assert card["reference"] is None
        change = _component(out["cards"], f"card-{metric}-change")
        assert _text(change) == (
            f"{realized[metric] - start[metric]:+.3f} vs start of the 15m range"
        )
        assert "exports no reference figure" in change.title


def test_a_single_instant_gets_a_readable_minute_around_it() -> None:
    from modelmeter.dashboard.figures import line_figure

    t = 1_795_735_536_000  # epoch ms, as view._matrix gives them
    one = line_figure({"a": {"t": [t], "v": [0.8]}}, "rev", "empty")
    assert one["layout"]["xaxis"]["range"] == [t - 30_000, t + 30_000]
    assert one["layout"]["xaxis"]["tickformat"] == "%H:%M:%S"
    many = line_figure({"a": {"t": [t, t + 15_000], "v": [0.8, 0.7]}}, "rev", "empty")
    assert "range" not in many["layout"]["xaxis"]  # Plotly fits the data, zoom survives


def test_a_regression_model_gets_error_cards_and_an_unbounded_graph() -> None:
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    from modelmeter.engine import LabelBatch, ModelMonitor, PredictionBatch
    from modelmeter.spec import load_reference, load_spec

    spec = load_spec(EXAMPLES / "regression-spec.yaml")
    reference = load_reference(spec)
    monitor = ModelMonitor(spec.monitor_config(), reference)
    n, t = 120, T0
    stamps = np.full(n, t)
    predictions = np.asarray(reference.predictions[:n], dtype=np.float64) + 10.0  # worse
    monitor.observe(
        PredictionBatch(
            stamps, {k: np.asarray(v[:n]) for k, v in reference.features.items()}, predictions
        ),
        now=t,
    )
    labels = np.asarray(reference.labels[:n], dtype=np.float64)
    monitor.label(LabelBatch(stamps + 5, stamps, predictions, labels), now=t + 5)
    snapshot = monitor.snapshot(t + 10)
    exported = _exported(spec, snapshot)
    estimated = snapshot.estimated_regression  # the loss model's, before labels
    assert estimated is not None
    history = [
        {
            "metric": {"__name__": name, "model": "cancer", "version": "v1"},
            "values": [[t, repr(value)], [t + 10, repr(value)]],
        }
        for name, value in (
            ("model_mean_absolute_error", 50.0),
            ("model_estimated_mean_absolute_error", estimated.mae),
        )
    ]
    answers = _empty_answers() | {
        "instant": {
            "resultType": "vector",
            "result": [{"metric": lab, "value": [t + 10, repr(v)]} for lab, v in exported],
        },
        "perf": {"resultType": "matrix", "result": history},
    }
    catalog = [{"model": "cancer", "version": "v1", "task": "regression"}]
    view = build_view(RawRefresh(Selection("cancer", "v1"), t + 10, catalog, answers, {}, 8))
    out = render_view(view)
    ref_y = np.asarray(reference.labels, dtype=np.float64)
    ref_p = np.asarray(reference.predictions, dtype=np.float64)
    expected = {
        "mean_absolute_error": (
            mean_absolute_error(labels, predictions),
            mean_absolute_error(ref_y, ref_p),
        ),
        "root_mean_squared_error": (
            mean_squared_error(labels, predictions) ** 0.5,
            mean_squared_error(ref_y, ref_p) ** 0.5,
        ),
    }
    assert [c["metric"] for c in view["cards"]] == list(expected)
    for card in view["cards"]:
        realized, on_reference = expected[card["metric"]]
        assert card["realized"] == pytest.approx(realized, rel=1e-12)
        assert card["reference"] == pytest.approx(on_reference, rel=1e-12)
        change = _component(out["cards"], f"card-{card['metric']}-change")
        assert _text(change) == f"{realized - on_reference:+.3f} vs reference"
        assert "delta-down" in change.children[0].className  # a larger error is worse: red
        figure = getattr(estimated, "mae" if card["metric"] == "mean_absolute_error" else "rmse")
        assert card["estimated"] == pytest.approx(figure, rel=1e-12)
        shown = _component(out["cards"], f"card-{card['metric']}-estimated")
        assert _text(shown) == fmt.ratio(figure)
    traces = {trace["name"]: trace for trace in out["figures"]["perf-graph"]["data"]}
    assert traces["MAE (estimated)"]["line"]["dash"] == "dash"  # the estimate: dotted
    assert traces["MAE (realized)"]["line"]["dash"] == "solid"
    assert "range" not in out["figures"]["perf-graph"]["layout"]["yaxis"]  # errors: not in [0, 1]


def test_the_segment_selector_shows_each_values_figures() -> None:
    """Segment series exported by the real collector code, read back from the instant query
    the dashboard already makes: the selector lists the segment features and the table shows
    each value's accuracy as scikit-learn computes it on that value's rows."""
    import json

    import pandas as pd
    from sklearn.metrics import accuracy_score

    from modelmeter.dashboard.panels import segment_options, segment_table
    from modelmeter.engine import LabelBatch, ModelMonitor, PredictionBatch
    from modelmeter.spec import load_reference, load_spec

    rng = np.random.default_rng(13)
    n = 600
    spec = load_spec(
        json.dumps(
            {
                "task": "binary",
                "classes": ["benign", "malignant"],
                "features": [
                    {"name": "x", "type": "numeric"},
                    {"name": "country", "type": "categorical", "categories": ["de", "it"]},
                ],
                "reference": {"score": "score"},
                "min_samples": 20,
                "segments": ["country"],
            }
        )
    )
    x = rng.normal(size=n)
    score = 1 / (1 + np.exp(-2 * x))
    country = rng.choice(["de", "it", "zz"], n)
    predicted = np.where(score > 0.5, "malignant", "benign").astype(object)
    flip = rng.random(n) < np.where(country == "it", 0.4, 0.05)
    actual = np.where(flip, np.where(predicted == "benign", "malignant", "benign"), predicted)
    frame = pd.DataFrame(
        {"x": x, "country": country, "prediction": predicted, "label": actual, "score": score}
    )
    monitor = ModelMonitor(
        spec.monitor_config(), load_reference(spec, data=frame.to_csv().encode())
    )
    features = {"x": x, "country": country.astype(object)}
    stamps = np.full(n, 1_000.0)
    monitor.observe(PredictionBatch(stamps, features, predicted, scores=score), now=1_000.0)
    codes = monitor.segment_codes(features)
    monitor.label(LabelBatch(stamps + 1, stamps, predicted, actual.astype(object), segments=codes))
    exported = _exported(spec, monitor.snapshot(1_010.0))
    answers = _empty_answers() | {
        "instant": {
            "resultType": "vector",
            "result": [{"metric": lab, "value": [1_010.0, repr(v)]} for lab, v in exported],
        }
    }
    view, _ = _render(answers, 1_010.0)
    assert segment_options(view) == [{"label": "country (3 values)", "value": "country"}]
    rows = {r["value"]: r for r in view["segments"]["country"]}
    assert list(rows) == ["de", "it", "other"]
    for value, member in (
        ("de", country == "de"),
        ("it", country == "it"),
        ("other", country == "zz"),
    ):
        assert rows[value]["accuracy"] == pytest.approx(
            accuracy_score(actual[member], predicted[member]), abs=1e-12
        )
        assert rows[value]["window_predictions"] == member.sum()
    table = _text(segment_table(view, "country"))
    assert "est. accuracy" in table and "other" in table
    assert "No segments" in _text(segment_table({"segments": {}}, None))
    app = create_app("http://127.0.0.1:9", refresh_seconds=2.0)
    outputs = " ".join(app.callback_map)
    assert f"{IDS['segments']}.children" in outputs and f"{IDS['segment']}.options" in outputs
