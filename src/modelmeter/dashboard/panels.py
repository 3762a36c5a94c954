"""Render the view (from the store) into the dashboard's panels: pure functions, no I/O.

Every panel says what to do when it has nothing to show, instead of staying blank.

>>> out = render_view({"model": None, "time": 0.0, "catalog": [], "errors": {}})
>>> out["empty_hidden"], "Quick start" in str(out["empty"])
(False, True)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dash import html

from modelmeter.dashboard import format as fmt
from modelmeter.dashboard.glossary import link
from modelmeter.dashboard.graphs import graphs
from modelmeter.dashboard.guards import sample_note
from modelmeter.dashboard.tables import (
    drift_status,
    drift_table,
    multivariate_card,
    quality_table,
    segment_options,
    segment_table,
)
from modelmeter.dashboard.view import REGRESSION_METRICS, iso
from modelmeter.dashboard.widgets import html_table, level_of, stat_tile

__all__ = ["NO_MODEL", "drift_status", "render_view", "segment_options", "segment_table"]

#: The drift panel's card (imported under this name by tests).
_multivariate_card = multivariate_card

NO_MODEL = (
    "No model has sent predictions yet: see README, Quick start "
    "(register a spec with PUT /v1/models/{model}, then send predictions; "
    "Prometheus must scrape the collector's /metrics)."
)


def _card(card: Mapping[str, Any], view: Mapping[str, Any]) -> html.Div:
    """One figure: its value (coloured against the thresholds only when its sample reaches
    ``min_samples``, else greyed with "n = 37 < 100"), the estimate, the line saying which
    source it shows, and the change against the reference. The title links to the glossary."""
    metric = card["metric"]
    thresholds = view.get("thresholds") or {}
    guarded = bool(card.get("guarded"))
    level = "none"  # below min_samples (guarded): no ok/warning/critical, whatever the value
    if not guarded and metric == "accuracy":
        level = level_of(
            card["realized"],
            thresholds.get("accuracy_warning"),
            thresholds.get("accuracy_critical"),
            lower_is_bad=True,
        )
    elif not guarded and card["realized"] is not None:
        level = "ok"
    change, against, why = _change(card, view)
    regression = metric in dict(REGRESSION_METRICS)  # errors: lower is better
    estimated_guarded = bool(card.get("estimated_guarded"))
    estimated: list[Any] = [  # the estimate before labels: calibrated scores, or the DLE model
        html.Span("estimated "),
        html.Strong(
            fmt.ratio(card["estimated"]),
            id=f"card-{metric}-estimated",
            className="figure-guarded" if estimated_guarded else None,
        ),
    ]
    band = _band_text(card)
    if band is not None:  # greyed with the estimate: the same sample guard
        estimated.append(
            html.Span(
                f" {band}",
                id=f"card-{metric}-band",
                className="figure-guarded" if estimated_guarded else "card-muted",
                title="95 % band of the window's realized figure if the calibration holds.",
            )
        )
    if estimated_guarded:
        estimated.append(html.Span(f" ({card.get('estimated_note')})", className="card-muted"))
    estimated += [html.Span(" · "), html.Span(f"{fmt.count(card['predictions'])} predictions")]
    source: Any = card.get("source_text") or ""
    if card.get("rule"):  # the recording rule's own glossary entry
        source = link(source, card["rule"], "glossary-link card-muted")
    children: list[Any] = [
        link(card["label"], card.get("family") or f"model_{metric}", "card-title glossary-link"),
        html.Div(
            fmt.ratio(card["realized"]),
            className="card-value card-value-guarded" if guarded else "card-value",
            id=f"card-{metric}-realized",
            title=(
                "Below min_samples: not compared with the thresholds (too few labels)."
                if guarded
                else None
            ),
        ),
    ]
    if guarded:
        children.append(
            html.Div(card.get("guard_text"), className="card-guard", id=f"card-{metric}-guard")
        )
    children += [
        html.Div(estimated, className="card-line"),
        *(
            [
                html.Div(
                    card["calibration"],
                    className="card-line card-muted",
                    id=f"card-{metric}-calibration",
                    title="Calibration of the estimate: refitted for the live inputs "
                    "(shift-aware, with the domain classifier's AUC), or the reference's "
                    "(plain CBPE).",
                )
            ]
            if card.get("calibration")
            else []
        ),
        html.Div(source, className="card-line card-muted card-source", id=f"card-{metric}-source"),
        html.Div(
            [
                html.Strong(  # greyed too below min_samples: no better/worse colour
                    fmt.delta(change),
                    className=f"delta delta-{'flat' if guarded else _better(change, regression)}",
                ),
                html.Span(f" vs {against}"),
            ],
            className="card-line",
            title=why,
            id=f"card-{metric}-change",
        ),
    ]
    classes = f"card card-{level}" + (" card-guarded" if guarded else "")
    return html.Div(children, className=classes, id=f"card-{metric}")


def _band_text(card: Mapping[str, Any]) -> str | None:
    """The estimate's 95 % band, "(0.774–0.850)", when the estimate and both bounds exist.

    >>> _band_text({"estimated": 0.812, "estimated_lower": 0.774, "estimated_upper": 0.85})
    '(0.774–0.850)'
    >>> _band_text({"estimated": 0.812, "estimated_lower": None, "estimated_upper": 0.85})
    """
    lower, upper = card.get("estimated_lower"), card.get("estimated_upper")
    if card.get("estimated") is None or lower is None or upper is None:
        return None
    return f"({fmt.ratio(lower)}–{fmt.ratio(upper)})"


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


def _ops(view: Mapping[str, Any]) -> list[Any]:
    ops, th = view.get("ops") or {}, view.get("thresholds") or {}
    return [
        stat_tile("predictions", fmt.rate(ops.get("predictions_rate")), stat_id="ops-predictions"),
        stat_tile(
            "errors",
            fmt.rate(ops.get("errors_rate")),
            level_of(ops.get("errors_rate"), th.get("error_rate"), None),
            "ops-errors",
        ),
        stat_tile("p50", fmt.seconds(ops.get("latency_p50")), stat_id="ops-p50"),
        stat_tile(
            "p95",
            fmt.seconds(ops.get("latency_p95")),
            "none"
            if ops.get("latency_guarded")
            else level_of(ops.get("latency_p95"), th.get("latency_p95_seconds"), None),
            "ops-p95",
            note=_guard_note(ops.get("latency_p95"), ops, "latency", view),
        ),
        stat_tile("p99", fmt.seconds(ops.get("latency_p99")), stat_id="ops-p99"),
    ]


def _guard_note(
    value: float | None, figures: Mapping[str, Any], key: str, view: Mapping[str, Any]
) -> str | None:
    """ "n = 37 < 100" under a tile whose figure is below min_samples (so drawn uncoloured)."""
    if value is None or not figures.get(f"{key}_guarded"):
        return None
    return sample_note(figures.get(f"{key}_samples"), view.get("min_samples"))


def _labels(view: Mapping[str, Any]) -> list[Any]:
    labels, th = view.get("labels") or {}, view.get("thresholds") or {}
    coverage = labels.get("coverage")
    children: list[Any] = [
        html.Div(
            [
                stat_tile(
                    "label coverage",
                    fmt.percent(coverage),
                    "none"
                    if labels.get("coverage_guarded")
                    else level_of(coverage, th.get("label_coverage"), None, lower_is_bad=True),
                    "labels-coverage",
                    note=_guard_note(coverage, labels, "coverage", view),
                ),
                stat_tile(
                    "pending labels", fmt.count(labels.get("pending")), stat_id="labels-pending"
                ),
                stat_tile("delay p50", fmt.seconds(labels.get("delay_p50")), stat_id="labels-p50"),
                stat_tile("delay p95", fmt.seconds(labels.get("delay_p95")), stat_id="labels-p95"),
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
                        className=f"cell-{level_of(r.get('cpu'), th.get('cpu_ratio'), None)}",
                    ),
                    html.Td(
                        fmt.bytes_(r.get("memory")),
                        className=f"cell-{level_of(r.get('memory'), th.get('memory_bytes'), None)}",
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
    table = html_table(
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
            "drift_table": drift_table(view),
            "quality": quality_table(view),
            "labels": _labels(view),
            "resources": _resources(view),
            "figures": graphs(view),
        }
    )
    return out
