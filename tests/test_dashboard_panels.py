"""The dashboard's panels from real snapshots: the cards' change against the reference (or
the start of the range), regression cards and graphs, the segment table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dashboard_support import component_text as _text
from dashboard_support import empty_answers
from dashboard_support import find_component as _component
from modelmeter.dashboard import format as fmt
from modelmeter.dashboard.app import create_app
from modelmeter.dashboard.layout import IDS
from modelmeter.dashboard.panels import render_view
from modelmeter.dashboard.queries import (
    PERF_METRICS,
    RawRefresh,
    Selection,
)
from modelmeter.dashboard.view import build_view

# --- the cards' change: against the reference figure, else against the start of the range ---

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
T0 = 1_750_000_000.0
EARLY, LATE = 100, 150  # labeled reference rows replayed as traffic by each time


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
    answers = empty_answers() | {
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
    answers = empty_answers() | {
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
    answers = empty_answers() | {
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
