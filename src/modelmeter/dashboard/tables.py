"""The data panels: the drift table with its multivariate card, data quality, segments.

>>> segment_options({"segments": {"country": [{"value": "de"}, {"value": "other"}]}})
[{'label': 'country (2 values)', 'value': 'country'}]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dash import html

from modelmeter.dashboard import format as fmt
from modelmeter.dashboard.glossary import link
from modelmeter.dashboard.guards import sample_note
from modelmeter.dashboard.view import QUALITY_ISSUES
from modelmeter.dashboard.widgets import html_table, level_of

__all__ = [
    "drift_status",
    "drift_table",
    "multivariate_card",
    "quality_table",
    "segment_options",
    "segment_table",
]


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


def _drift_header(merged: bool) -> list[Any]:
    """The drift table's header, each figure linking to its glossary entry (a spread model's
    PSI and Jensen-Shannon are merged.yml's rules)."""
    psi = "model_feature:psi:window5m" if merged else "model_feature_drift"
    js = "model_feature:jensen_shannon:window5m" if merged else "model_feature_drift"
    flag = "model_feature:drift_detected:window5m" if merged else "model_feature_drift_detected"
    return [
        "feature",
        link("PSI", psi),
        link("threshold", "model_alert_threshold"),
        link("JS", js),
        link("KS (binned) / χ² p", "model_feature_drift"),
        link("status", flag),
    ]


def drift_table(view: Mapping[str, Any]) -> Any:
    """One row per feature, coloured by the FeatureDrift rule; a row whose sample is below
    min_samples is greyed with "n = 37 < 100" instead."""
    threshold = (view.get("thresholds") or {}).get("drift_psi")
    min_samples = view.get("min_samples")
    rows = []
    for d in view.get("drift", []):
        if d.get("guarded"):
            level, status = "none", sample_note(d.get("samples"), min_samples)
        else:
            level, status = drift_status(d["ratio"], d["detected"])
        ks = d.get("ks_binned")
        rows.append(
            html.Tr(
                [
                    html.Td(d["feature"]),
                    html.Td(fmt.ratio(d["psi"])),
                    html.Td(fmt.ratio(threshold, 2)),
                    html.Td(fmt.ratio(d["jensen_shannon"])),
                    html.Td(fmt.ratio(ks if ks is not None else d.get("chi2_pvalue"))),
                    html.Td(html.Span(status, className=f"pill pill-{level}")),
                ],
                className=f"drift-row drift-{level}",
                **{"data-feature": d["feature"]},
            )
        )
    table = html_table(
        _drift_header(bool(view.get("merged"))),
        rows,
        "No drift figures yet: the window holds fewer predictions than the model's "
        f"min_samples ({fmt.count(min_samples)}); keep sending predictions.",
    )
    return html.Div([multivariate_card(view.get("multivariate") or {}, min_samples), table])


def multivariate_card(mv: Mapping[str, Any], min_samples: float | None = None) -> Any:
    """The window's mean PCA reconstruction error against its calibrated band."""
    if mv.get("error") is None:
        text = "Multivariate drift: no figure (off, fewer than 2 features, or below min_samples)."
        return html.Div(text, id="multivariate-card", className="multivariate-card muted")
    if mv.get("guarded"):
        level, status = "none", sample_note(mv.get("samples"), min_samples)
    else:
        level, status = ("critical", "drifted") if mv.get("detected") else ("ok", "ok")
    return html.Div(
        [
            link(
                f"Multivariate drift ({mv.get('method') or 'pca'} reconstruction error)",
                "model_multivariate_drift",
            ),
            html.Span(": "),
            html.Strong(f"{mv['error']:.3f}"),
            html.Span(f" band {fmt.ratio(mv.get('lower'), 3)} – {fmt.ratio(mv.get('upper'), 3)} "),
            html.Span(status, className=f"pill pill-{level}"),
        ],
        id="multivariate-card",
        className=f"multivariate-card drift-{level}",
    )


def quality_table(view: Mapping[str, Any]) -> Any:
    """Share of the window's predictions with each issue, coloured against quality_ratio
    only when the window holds min_samples predictions."""
    limit = (view.get("thresholds") or {}).get("quality_ratio")
    guard = view.get("quality_guard") or {}
    guarded = bool(guard.get("guarded"))
    rows = []
    for q in view.get("quality", []):
        cells = [html.Td(q["feature"])]
        for issue in QUALITY_ISSUES:
            value = q.get(issue)
            level = level_of(value, limit, None) if value and not guarded else "none"
            cells.append(html.Td(fmt.percent(value, 2), className=f"cell-{level}"))
        rows.append(html.Tr(cells))
    family = "model_feature_quality_ratio"
    if view.get("merged"):
        family = "model_feature_issue:quality_issues:ratio_rate5m"
    table = html_table(
        [
            "feature",
            link("missing", family),
            link("out of range", family),
            link("unseen category", family),
            link("wrong type", family),
        ],
        rows,
        "No data-quality figures yet: they appear with the first predictions in the window.",
    )
    if not (guarded and rows):
        return table
    note = html.P(
        f"{sample_note(guard.get('samples'), view.get('min_samples'))} predictions in the "
        "window: not compared with the quality threshold yet.",
        className="muted",
        id="quality-guard",
    )
    return html.Div([note, table])


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
        guarded = bool(r.get("guarded"))
        for key, _ in figures:
            value = r.get(key)
            level = "none"
            if key == "accuracy" and not guarded:
                level = level_of(
                    value, th.get("accuracy_warning"), th.get("accuracy_critical"), True
                )
            text = fmt.ratio(value)
            if guarded and value is not None:  # below min_samples: greyed, with its n
                text = f"{text} ({sample_note(r.get('samples'), view.get('min_samples'))})"
            cells.append(html.Td(text, className="cell-guarded" if guarded else f"cell-{level}"))
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
    return html.Div([html_table(header, rows, ""), note])
