"""The estimate's 95 % band and its calibration on the dashboard, from synthetic Prometheus
answers shaped as the collector exports them: the band around the dotted line of the
performance graph, "estimated 0.812 (0.774–0.850)" and the calibration line on the cards, the
sample guard on the band, and no band for a model spread over collectors."""

from __future__ import annotations

from typing import Any

import pytest

import dashboard_support as ds
from dashboard_support import component_text as _text
from dashboard_support import find_component as _component
from modelmeter.dashboard.panels import render_view
from modelmeter.dashboard.queries import BAND_METRICS, RawRefresh, Selection, build_plan
from modelmeter.dashboard.view import build_view

MV = {"model": "m", "version": "v1"}
T = (1_750_000_000.0, 1_750_000_030.0)


def _vector(rows: list[tuple[dict[str, str], float]]) -> dict[str, Any]:
    return {
        "resultType": "vector",
        "result": [{"metric": m, "value": [T[1], str(v)]} for m, v in rows],
    }


def _matrix(history: dict[str, tuple[float, float]]) -> dict[str, Any]:
    return {
        "resultType": "matrix",
        "result": [
            {"metric": {"__name__": name, **MV}, "values": [[T[0], str(a)], [T[1], str(b)]]}
            for name, (a, b) in history.items()
        ],
    }


BAND = {
    "model_estimated_accuracy": (0.80, 0.812),
    "model_estimated_accuracy_lower": (0.76, 0.774),
    "model_estimated_accuracy_upper": (0.84, 0.85),
}


def _raw(
    rows: list[tuple[dict[str, str], float]],
    history: dict[str, tuple[float, float]],
    predictions: float = 500.0,
) -> RawRefresh:
    base = [
        ({"__name__": "model_min_samples", "model": "m"}, 100.0),
        ({"__name__": "model_window_seconds", "model": "m"}, 300.0),
        ({"__name__": "model_window_predictions", **MV}, predictions),
        ({"__name__": "model_accuracy", **MV}, 0.8),
    ]
    answers = ds.empty_answers() | {"instant": _vector(base + rows), "perf": _matrix(history)}
    catalog = [{"model": "m", "version": "v1", "task": "binary"}]
    return RawRefresh(Selection("m", "v1"), T[1], catalog, answers, {}, 8)


def _gauges(values: dict[str, float], **labels: str) -> list[tuple[dict[str, str], float]]:
    return [({"__name__": name, **MV, **labels}, v) for name, v in values.items()]


LATEST = {name: b for name, (_, b) in BAND.items()}


def test_the_band_history_comes_in_the_performance_range_query() -> None:
    plan = build_plan(Selection("m", "v1"), now=T[1])
    perf = next(c for c in plan if c.key == "perf")
    assert len(plan) == 6  # no extra call for the band
    for name in BAND_METRICS:
        assert f"|{name}|" in perf.params["query"] or f'|{name}"' in perf.params["query"]
    assert len(BAND_METRICS) == 8


def test_the_graph_draws_the_band_around_the_dotted_line() -> None:
    rows = [*_gauges(LATEST), *_gauges({"model_estimation_shift_aware": 0.0})]
    figure = render_view(build_view(_raw(rows, BAND)))["figures"]["perf-graph"]
    traces = figure["data"]
    names = [t["name"] for t in traces]
    lower = names.index("Accuracy (estimated) lower")
    upper = names.index("Accuracy (estimated) upper")
    assert upper == lower + 1  # tonexty fills to the trace just before: the lower bound
    assert traces[lower]["y"] == [0.76, 0.774] and traces[upper]["y"] == [0.84, 0.85]
    assert traces[lower]["x"] == [int(1000 * t) for t in T]
    assert traces[upper]["fill"] == "tonexty" and traces[lower]["fill"] == "none"
    assert not traces[lower]["showlegend"] and not traces[upper]["showlegend"]
    assert "lower" in traces[lower]["hovertemplate"]
    assert "upper" in traces[upper]["hovertemplate"]
    line = traces[names.index("Accuracy (estimated)")]
    assert line["line"]["dash"] == "dash" and line["legendgroup"] == traces[upper]["legendgroup"]
    assert max(lower, upper) < names.index("Accuracy (estimated)")  # the band under the lines
    assert traces[upper]["fillcolor"].startswith("rgba(") and traces[upper]["line"]["width"] == 0


def test_no_band_trace_without_the_band_series() -> None:
    history = {"model_estimated_accuracy": BAND["model_estimated_accuracy"]}
    traces = render_view(build_view(_raw([], history)))["figures"]["perf-graph"]["data"]
    assert [t["name"] for t in traces] == ["Accuracy (estimated)"]
    assert all("fill" not in t for t in traces)
    # one bound alone draws no band either
    history["model_estimated_accuracy_lower"] = BAND["model_estimated_accuracy_lower"]
    traces = render_view(build_view(_raw([], history)))["figures"]["perf-graph"]["data"]
    assert [t["name"] for t in traces] == ["Accuracy (estimated)"]


@pytest.mark.parametrize(
    ("calibration", "expected"),
    [
        (
            {"model_estimation_shift_aware": 1.0, "model_estimation_shift_auc": 0.8123},
            "shift-aware (AUC 0.81)",
        ),
        ({"model_estimation_shift_aware": 0.0, "model_estimation_shift_auc": 0.52}, "plain CBPE"),
        ({"model_estimation_shift_aware": 0.0}, "plain CBPE"),
        ({"model_estimation_shift_aware": 1.0}, "shift-aware"),
    ],
)
def test_the_card_shows_the_band_and_the_calibration(
    calibration: dict[str, float], expected: str
) -> None:
    view = build_view(_raw([*_gauges(LATEST), *_gauges(calibration)], BAND))
    card = next(c for c in view["cards"] if c["metric"] == "accuracy")
    assert (card["estimated_lower"], card["estimated_upper"]) == (0.774, 0.85)
    shown = _component(render_view(view)["cards"], "card-accuracy")
    assert _text(_component(shown, "card-accuracy-estimated")) == "0.812"
    band = _component(shown, "card-accuracy-band")
    assert _text(band) == " (0.774–0.850)" and band.className == "card-muted"
    assert "estimated 0.812 (0.774–0.850) · 500 predictions" in _text(shown)
    assert _text(_component(shown, "card-accuracy-calibration")) == expected
    # the other figures have no band series here: no band, but the same calibration
    precision = _component(render_view(view)["cards"], "card-precision")
    assert _component(precision, "card-precision-band") is None
    assert _text(_component(precision, "card-precision-calibration")) == expected


def test_a_card_without_band_or_calibration_shows_neither() -> None:
    view = build_view(_raw(_gauges({"model_estimated_accuracy": 0.812}), {}))
    shown = _component(render_view(view)["cards"], "card-accuracy")
    assert _component(shown, "card-accuracy-band") is None
    assert _component(shown, "card-accuracy-calibration") is None
    assert "estimated 0.812 · 500 predictions" in _text(shown)


def test_the_band_is_greyed_with_the_estimate_below_min_samples() -> None:
    rows = [*_gauges(LATEST), *_gauges({"model_estimation_shift_aware": 0.0})]
    view = build_view(_raw(rows, BAND, predictions=37.0))
    card = next(c for c in view["cards"] if c["metric"] == "accuracy")
    assert card["estimated_guarded"]
    shown = _component(render_view(view)["cards"], "card-accuracy")
    band = _component(shown, "card-accuracy-band")
    assert band.className == _component(shown, "card-accuracy-estimated").className
    assert band.className == "figure-guarded"
    assert "estimated 0.812 (0.774–0.850) (n = 37 < 100)" in _text(shown)


def test_a_spread_model_shows_no_merged_band() -> None:
    info = {"__name__": "model_info", **MV, "task": "binary", "job": "j"}
    rows: list[tuple[dict[str, str], float]] = [
        ({"__name__": "model:estimated_accuracy:ratio_rate5m", **MV}, 0.81),
    ]
    for i, aware in enumerate((1.0, 0.0)):  # each collector with its own band and calibration
        at = {"instance": f"c{i}:1", "job": "j"}
        rows += [({**info, **at}, 1.0), *_gauges(LATEST, **at)]
        rows += _gauges(
            {"model_estimation_shift_aware": aware, "model_estimation_shift_auc": 0.8}, **at
        )
    view = build_view(_raw(rows, BAND))
    assert view["merged"]
    card = next(c for c in view["cards"] if c["metric"] == "accuracy")
    assert card["estimated"] == 0.81
    assert card["estimated_lower"] is None and card["estimated_upper"] is None
    out = render_view(view)
    shown = _component(out["cards"], "card-accuracy")
    assert _component(shown, "card-accuracy-band") is None
    assert (
        _text(_component(shown, "card-accuracy-calibration")) == "shift-aware on 1 of 2 collectors"
    )
    assert all("fill" not in t for t in out["figures"]["perf-graph"]["data"])
