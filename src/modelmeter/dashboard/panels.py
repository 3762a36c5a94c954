"""Render the view (from the store) into the dashboard's panels: pure functions, no I/O.

Every panel says what to do when it has nothing to show, instead of staying blank.

>>> out = render_view({"model": None, "time": 0.0, "catalog": [], "errors": {}})
>>> out["empty_hidden"], "Quick start" in str(out["empty"])
(False, True)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from dash import html

from modelmeter.dashboard import format as fmt
from modelmeter.dashboard.figures import COLORS, PALETTE, line_figure
from modelmeter.dashboard.queries import DRIFT_TOP
from modelmeter.dashboard.view import QUALITY_ISSUES, REGRESSION_METRICS, card_metrics, iso

__all__ = ["NO_MODEL", "render_view", "segment_options", "segment_table"]

NO_MODEL = (
    "No model has sent predictions yet: see README, Quick start "
    "(register a spec with PUT /v1/models/{model}, then send predictions; "
    "Prometheus must scrape the collector's /metrics)."
)


def _level(
    value: float | None, warning: float | None, critical: float | None, lower_is_bad: bool = False
) -> str:
    """``ok``, ``warning``, ``critical`` or ``none`` for a value against two thresholds."""
    if value is None:
        return "none"

    def beyond(limit: float | None) -> bool:
        return limit is not None and (value < limit if lower_is_bad else value > limit)

    if beyond(critical):
        return "critical"
    if beyond(warning):
        return "warning"
    return "ok"


def _card(card: Mapping[str, Any], view: Mapping[str, Any]) -> html.Div:
    metric = card["metric"]
    thresholds = view.get("thresholds") or {}
    level = "none"
    if metric == "accuracy":
        level = _level(
            card["realized"],
            thresholds.get("accuracy_warning"),
            thresholds.get("accuracy_critical"),
            lower_is_bad=True,
        )
    elif card["realized"] is not None:
        level = "ok"
    change, against, why = _change(card, view)
    if card["realized"] is None:
        min_samples = fmt.count(view.get("min_samples"))
        hint = f"waiting for ≥ {min_samples} labeled predictions in the window"
    else:
        hint = f"{fmt.count(card['labeled'])} labeled in window"
    regression = metric in dict(REGRESSION_METRICS)  # errors: lower is better
    predictions = html.Span(f"{fmt.count(card['predictions'])} predictions")
    return html.Div(
        [
            html.Div(card["label"], className="card-title"),
            html.Div(
                fmt.ratio(card["realized"]), className="card-value", id=f"card-{metric}-realized"
            ),
            html.Div(
                [  # the estimate before labels: calibrated scores, or the DLE loss model
                    html.Span("estimated "),
                    html.Strong(fmt.ratio(card["estimated"]), id=f"card-{metric}-estimated"),
                    html.Span(" · "),
                    predictions,
                ],
                className="card-line",
            ),
            html.Div(hint, className="card-line card-muted", id=f"card-{metric}-samples"),
            html.Div(
                [
                    html.Strong(
                        fmt.delta(change), className=f"delta delta-{_better(change, regression)}"
                    ),
                    html.Span(f" vs {against}"),
                ],
                className="card-line",
                title=why,
                id=f"card-{metric}-change",
            ),
        ],
        className=f"card card-{level}",
        id=f"card-{metric}",
    )


def _change(card: Mapping[str, Any], view: Mapping[str, Any]) -> tuple[float | None, str, str]:
    """(realized minus the baseline, what the baseline is, a tooltip saying where it comes from).

    The baseline is the model's figure on its spec's reference data when the collector exports
    it (``model_reference_*``), else the first value in the selected time range.

    >>> change, against, why = _change({"realized": 0.75, "reference": 0.875, "start": 0.5,
    ...                                  "label": "Accuracy"}, {"range_key": "1h"})
    >>> change, against
    (-0.125, 'reference')
    >>> print(why)
    Realized accuracy in the window minus the model's accuracy on its spec's reference data (0.875).
    >>> _change({"realized": 0.75, "reference": None, "start": 0.5}, {"range_key": "1h"})[:2]
    (0.25, 'start of the 1h range')
    """
    realized, reference = card["realized"], card.get("reference")
    if reference is not None:
        change = realized - reference if realized is not None else None
        label = str(card.get("label") or card.get("metric", "figure"))
        name = label if label.isupper() else label.lower()  # "accuracy", but "F1"
        return (
            change,
            "reference",
            f"Realized {name} in the window minus the model's {name} on its spec's reference "
            f"data ({fmt.ratio(reference)}).",
        )
    start = card["start"]
    change = realized - start if realized is not None and start is not None else None
    return (
        change,
        f"start of the {view.get('range_key', '')} range",
        "The collector exports no reference figure; the change is measured against the "
        "first value in the selected time range.",
    )


def _better(change: float | None, lower_is_better: bool) -> str:
    """CSS class of a change: ``up`` (green) when better, ``down`` (red) when worse."""
    if change is None or abs(change) < 5e-4:
        return "flat"
    return "up" if (change < 0 if lower_is_better else change > 0) else "down"


def _since(active_at: str | None, now: float) -> str:
    if not active_at:
        return ""
    text = re.sub(r"(\.\d{6})\d+", r"\1", active_at).replace("Z", "+00:00")
    try:
        then = datetime.fromisoformat(text).timestamp()
    except ValueError:
        return active_at
    return f"since {iso(then).replace('T', ' ')} UTC ({fmt.ago(now, then)})"


def _alerts(view: Mapping[str, Any]) -> list[Any]:
    if not view.get("alerts_available", True):
        return [
            html.P(
                "This store does not serve /api/v1/alerts (VictoriaMetrics: start it with "
                "-vmalert.proxyURL pointing at vmalert).",
                className="muted",
            )
        ]
    rows: list[Any] = []
    for a in view.get("alerts", []):
        value = "" if a["value"] is None else f"value {a['value']:.4g}"
        extra = ", ".join(
            f"{k}={v}" for k, v in a["labels"].items() if k not in ("model", "instance", "job")
        )
        rows.append(
            html.Div(
                [
                    html.Div(
                        [
                            html.Span(a["state"].upper(), className=f"badge badge-{a['state']}"),
                            html.Strong(a["name"], className="alert-name"),
                            html.Span(extra, className="alert-labels"),
                            html.Span(
                                _since(a["active_at"], view["time"]), className="alert-since"
                            ),
                        ],
                        className="alert-head",
                    ),
                    html.Div(a["summary"], className="alert-summary"),
                    html.Div(
                        [html.Span(a["description"]), html.Span(value, className="muted")],
                        className="alert-description",
                    ),
                ],
                className=f"alert alert-{a['severity']} alert-{a['state']}",
                **{"data-alertname": a["name"], "data-severity": a["severity"]},
            )
        )
    others = view.get("other_alerts", 0)
    if not rows:
        rows.append(html.P(f"No active alerts for {view.get('model')}.", className="ok-text"))
    if others:
        rows.append(html.P(f"{others} more on other models.", className="muted"))
    return rows


def _stat(label: str, value: str, level: str = "none", stat_id: str = "") -> html.Div:
    return html.Div(
        [
            html.Div(value, className="stat-value", id=stat_id or None),
            html.Div(label, className="stat-label"),
        ],
        className=f"stat stat-{level}",
    )


def _ops(view: Mapping[str, Any]) -> list[Any]:
    ops, th = view.get("ops") or {}, view.get("thresholds") or {}
    return [
        _stat("predictions", fmt.rate(ops.get("predictions_rate")), stat_id="ops-predictions"),
        _stat(
            "errors",
            fmt.rate(ops.get("errors_rate")),
            _level(ops.get("errors_rate"), th.get("error_rate"), None),
            "ops-errors",
        ),
        _stat("p50", fmt.seconds(ops.get("latency_p50")), stat_id="ops-p50"),
        _stat(
            "p95",
            fmt.seconds(ops.get("latency_p95")),
            _level(ops.get("latency_p95"), th.get("latency_p95_seconds"), None),
            "ops-p95",
        ),
        _stat("p99", fmt.seconds(ops.get("latency_p99")), stat_id="ops-p99"),
    ]


def _table(header: Sequence[str], rows: Sequence[html.Tr], empty: str) -> Any:
    if not rows:
        return html.P(empty, className="muted")
    return html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in header])), html.Tbody(list(rows))],
        className="table",
    )


def drift_status(ratio: float | None, detected: bool) -> tuple[str, str]:
    """(level, words) of one feature, by the FeatureDrift rule: PSI over threshold AND test.

    >>> drift_status(1.8, True), drift_status(1.8, False), drift_status(0.2, True)
    (('critical', 'drifted'), ('warning', 'over threshold, not significant'), ('ok', 'small shift'))
    """
    over = ratio is not None and ratio >= 1
    if over and detected:
        return "critical", "drifted"
    if over:
        return "warning", "over threshold, not significant"
    if ratio is not None and ratio >= 0.5:
        return "warning", "near threshold"
    return "ok", "small shift" if detected else "ok"


def _drift_table(view: Mapping[str, Any]) -> Any:
    threshold = (view.get("thresholds") or {}).get("drift_psi")
    rows = []
    for d in view.get("drift", []):
        level, status = drift_status(d["ratio"], d["detected"])
        rows.append(
            html.Tr(
                [
                    html.Td(d["feature"]),
                    html.Td(fmt.ratio(d["psi"])),
                    html.Td(fmt.ratio(threshold, 2)),
                    html.Td(fmt.ratio(d["jensen_shannon"])),
                    html.Td(fmt.ratio(d["ks"] if d["ks"] is not None else d["chi2_pvalue"])),
                    html.Td(html.Span(status, className=f"pill pill-{level}")),
                ],
                className=f"drift-row drift-{level}",
                **{"data-feature": d["feature"]},
            )
        )
    table = _table(
        ["feature", "PSI", "threshold", "JS", "KS / χ² p", "status"],
        rows,
        "No drift figures yet: the window holds fewer predictions than the model's "
        f"min_samples ({fmt.count(view.get('min_samples'))}); keep sending predictions.",
    )
    return html.Div([_multivariate_card(view.get("multivariate") or {}), table])


def _multivariate_card(mv: Mapping[str, Any]) -> Any:
    """The window's mean PCA reconstruction error against its calibrated band."""
    if mv.get("error") is None:
        text = "Multivariate drift: no figure (off, fewer than 2 features, or below min_samples)."
        return html.Div(text, id="multivariate-card", className="multivariate-card muted")
    level, status = ("critical", "drifted") if mv.get("detected") else ("ok", "ok")
    return html.Div(
        [
            html.Span(f"Multivariate drift ({mv.get('method') or 'pca'} reconstruction error): "),
            html.Strong(f"{mv['error']:.3f}"),
            html.Span(f" band {fmt.ratio(mv.get('lower'), 3)} – {fmt.ratio(mv.get('upper'), 3)} "),
            html.Span(status, className=f"pill pill-{level}"),
        ],
        id="multivariate-card",
        className=f"multivariate-card drift-{level}",
    )


def _quality_table(view: Mapping[str, Any]) -> Any:
    limit = (view.get("thresholds") or {}).get("quality_ratio")
    rows = []
    for q in view.get("quality", []):
        cells = [html.Td(q["feature"])]
        for issue in QUALITY_ISSUES:
            value = q.get(issue)
            level = _level(value, limit, None) if value else "none"
            cells.append(html.Td(fmt.percent(value, 2), className=f"cell-{level}"))
        rows.append(html.Tr(cells))
    return _table(
        ["feature", "missing", "out of range", "unseen category", "wrong type"],
        rows,
        "No data-quality figures yet: they appear with the first predictions in the window.",
    )


def segment_options(view: Mapping[str, Any]) -> list[dict[str, str]]:
    """The segment selector's options: the model's segment features (from the view)."""
    segments = view.get("segments") or {}
    return [
        {"label": f"{name} ({len(rows)} values)", "value": name}
        for name, rows in sorted(segments.items())
    ]


def segment_table(view: Mapping[str, Any], segment: str | None) -> Any:
    """Per-value figures of one segment feature: volume, label coverage, realized and
    estimated performance; accuracy coloured against the model's accuracy thresholds."""
    segments = view.get("segments") or {}
    rows_of = segments.get(segment) if segment else None
    if not rows_of:
        return html.P(
            "No segments: declare up to 3 categorical features as `segments` in the spec "
            "to see performance per value (country, channel, device…)."
            if not segments
            else "Choose a segment feature.",
            className="muted",
        )
    th = view.get("thresholds") or {}
    regression = view.get("task") == "regression"
    figures = (
        (("mean_absolute_error", "MAE"), ("root_mean_squared_error", "RMSE"))
        if regression
        else (("accuracy", "accuracy"), ("precision", "precision"), ("recall", "recall"),
              ("f1_score", "F1"))
    )  # fmt: skip
    rows = []
    for r in rows_of:
        cells = [
            html.Td(r["value"]),
            html.Td(fmt.count(r.get("window_predictions"))),
            html.Td(fmt.count(r.get("window_labeled_predictions"))),
            html.Td(fmt.percent(r.get("label_coverage_ratio"))),
        ]
        for key, _ in figures:
            value = r.get(key)
            level = "none"
            if key == "accuracy":
                level = _level(value, th.get("accuracy_warning"), th.get("accuracy_critical"), True)
            cells.append(html.Td(fmt.ratio(value), className=f"cell-{level}"))
            cells.append(html.Td(fmt.ratio(r.get(f"estimated_{key}")), className="muted"))
        rows.append(html.Tr(cells, **{"data-value": r["value"]}))
    header = ["value", "predictions", "labeled", "coverage"]
    for _, label in figures:
        header += [label, f"est. {label}"]
    note = html.P(
        f"Figures appear with {fmt.count(view.get('min_samples'))} (min_samples) labels of a "
        "value (estimates: predictions); 'other' holds values outside the vocabulary.",
        className="muted",
    )
    return html.Div([_table(header, rows, ""), note])


def _labels(view: Mapping[str, Any]) -> list[Any]:
    labels, th = view.get("labels") or {}, view.get("thresholds") or {}
    coverage = labels.get("coverage")
    children: list[Any] = [
        html.Div(
            [
                _stat(
                    "label coverage",
                    fmt.percent(coverage),
                    _level(coverage, th.get("label_coverage"), None, lower_is_bad=True),
                    "labels-coverage",
                ),
                _stat("pending labels", fmt.count(labels.get("pending")), stat_id="labels-pending"),
                _stat("delay p50", fmt.seconds(labels.get("delay_p50")), stat_id="labels-p50"),
                _stat("delay p95", fmt.seconds(labels.get("delay_p95")), stat_id="labels-p95"),
            ],
            className="ops",
        )
    ]
    if coverage is None:
        children.append(
            html.P(
                "No labels yet: send them with POST /v1/models/{model}/labels "
                "(by prediction id) or inline with each prediction.",
                className="muted",
            )
        )
    return children


def _resources(view: Mapping[str, Any]) -> Any:
    th = view.get("thresholds") or {}
    rows = []
    for r in view.get("replicas", []):
        rows.append(
            html.Tr(
                [
                    html.Td(f"serving replica {r['replica']}"),
                    html.Td(
                        fmt.percent(r.get("cpu")),
                        className=f"cell-{_level(r.get('cpu'), th.get('cpu_ratio'), None)}",
                    ),
                    html.Td(
                        fmt.bytes_(r.get("memory")),
                        className=f"cell-{_level(r.get('memory'), th.get('memory_bytes'), None)}",
                    ),
                ]
            )
        )
    collector = view.get("collector") or {}
    if collector.get("cpu") is not None or collector.get("memory") is not None:
        rows.append(
            html.Tr(
                [
                    html.Td("collector"),
                    html.Td(fmt.percent(collector.get("cpu"))),
                    html.Td(fmt.bytes_(collector.get("memory"))),
                ]
            )
        )
    table = _table(
        ["process", "CPU (of one core)", "memory"], rows, "No process has reported resources yet."
    )
    if not view.get("replicas"):
        return [
            table,
            html.P(
                'No serving replica reported resources: send a "resources" '
                "object with predictions (the SDK client does it).",
                className="muted",
            ),
        ]
    return table


def _figures(view: Mapping[str, Any]) -> dict[str, Any]:
    series = view.get("series") or {}
    th = view.get("thresholds") or {}
    rev = f"{view.get('model')}|{view.get('version')}|{view.get('range_key')}"
    perf_src = series.get("perf") or {}
    perf, names, colors, dashed = {}, {}, {}, []
    metrics = card_metrics(view.get("task"))
    for i, (metric, label) in enumerate(metrics):
        for kind in ("", "estimated_"):
            key = f"model_{kind}{metric}"
            if key in perf_src:
                perf[key] = perf_src[key]
                names[key] = f"{label} ({'estimated' if kind else 'realized'})"
                colors[key] = PALETTE[i]
                if kind:
                    dashed.append(key)
    acc_lines = [
        (name, th[key], COLORS[level])
        for key, name, level in (
            ("accuracy_warning", "accuracy warning", "warning"),
            ("accuracy_critical", "accuracy critical", "critical"),
        )
        if th.get(key) is not None
    ]
    ops = series.get("ops") or {}
    drift_src = series.get("drift") or {}
    ranked = [d["feature"] for d in view.get("drift", []) if d["feature"] in drift_src]
    drift = {f: drift_src[f] for f in ranked[:DRIFT_TOP]}
    if "model_prediction_drift" in drift_src:
        drift["model_prediction_drift"] = drift_src["model_prediction_drift"]
    res = series.get("resources") or {}
    psi_line = (
        [("PSI threshold", th["drift_psi"], COLORS["critical"])]
        if th.get("drift_psi") is not None
        else []
    )
    lat_line = (
        [("p95 threshold", th["latency_p95_seconds"], COLORS["warning"])]
        if th.get("latency_p95_seconds") is not None
        else []
    )
    return {
        "perf-graph": line_figure(
            perf,
            rev,
            "No performance figures yet: they need labels (realized) or scores or a "
            "regression loss model (estimated) and at least min_samples predictions in the "
            "window.",
            names=names,
            colors=colors,
            dashed=dashed,
            y_range=None if metrics is REGRESSION_METRICS else (0, 1.02),
            thresholds=acc_lines,
        ),
        "throughput-graph": line_figure(
            {k: ops[k] for k in ("predictions_rate", "errors_rate") if k in ops},
            rev,
            "No predictions in this range.",
            "per second",
            names={"predictions_rate": "predictions/s", "errors_rate": "errors/s"},
            colors={"predictions_rate": COLORS["accent"], "errors_rate": COLORS["critical"]},
        ),
        "latency-graph": line_figure(
            {k: ops[k] for k in ("latency_p50", "latency_p95", "latency_p99") if k in ops},
            rev,
            "No latency reported: send latency_seconds with predictions.",
            "ms",
            names={"latency_p50": "p50", "latency_p95": "p95", "latency_p99": "p99"},
            scale=1000.0,
            thresholds=lat_line,
        ),
        "drift-graph": line_figure(
            drift,
            rev,
            "No drift history yet: the window needs min_samples predictions.",
            "PSI",
            names={"model_prediction_drift": "prediction (output)"},
            dashed=["model_prediction_drift"],
            thresholds=psi_line,
        ),
        "cpu-graph": line_figure(
            {k.split("|", 1)[1]: v for k, v in res.items() if k.startswith("cpu|")},
            rev,
            "No CPU figures: no serving replica or collector reported them.",
            "cores",
            thresholds=[("cpu threshold", th["cpu_ratio"], COLORS["warning"])]
            if th.get("cpu_ratio") is not None
            else [],
        ),
        "memory-graph": line_figure(
            {k.split("|", 1)[1]: v for k, v in res.items() if k.startswith("memory|")},
            rev,
            "No memory figures: no serving replica or collector reported them.",
            "MiB",
            scale=1 / 2**20,
            thresholds=[("memory threshold", th["memory_bytes"], COLORS["warning"])]
            if th.get("memory_bytes") is not None
            else [],
        ),
    }


def _status(view: Mapping[str, Any]) -> str:
    when = iso(view["time"]).replace("T", " ")
    errors = view.get("errors") or {}
    warn = f" · {len(errors)} query error(s)" if errors else ""
    return f"live · updated {when} UTC · {view.get('calls', 0)} Prometheus calls{warn}"


def render_view(view: Mapping[str, Any]) -> dict[str, Any]:
    """Every panel's content for one view: children, figures, and what to hide."""
    out: dict[str, Any] = {"status": _status(view)}
    if view.get("model") is None:
        errors = view.get("errors") or {}
        detail = (
            [html.P(f"Prometheus said: {errors['catalog']}", className="muted")]
            if ("catalog" in errors)
            else []
        )
        out.update(
            {
                "empty": [html.H2("Nothing to show yet"), html.P(NO_MODEL), *detail],
                "empty_hidden": False,
                "main_hidden": True,
            }
        )
        return out
    out.update(
        {
            "empty": [],
            "empty_hidden": True,
            "main_hidden": False,
            "cards": [_card(c, view) for c in view.get("cards", [])],
            "alerts": _alerts(view),
            "ops": _ops(view),
            "drift_table": _drift_table(view),
            "quality": _quality_table(view),
            "labels": _labels(view),
            "resources": _resources(view),
            "figures": _figures(view),
        }
    )
    return out
