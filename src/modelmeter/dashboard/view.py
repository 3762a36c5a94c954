"""Turn one refresh's Prometheus answers into the plain, JSON-able view the panels draw.

The view goes into a ``dcc.Store``; the render callbacks read only the view. Values the
collector did not export stay ``None`` (drawn as "—"), never 0.

>>> v = build_view(RawRefresh(Selection(None, None), 0.0, [], {"alerts": {"alerts": []}}, {}, 2))
>>> v["model"] is None, v["calls"]
(True, 2)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from modelmeter.dashboard.queries import MERGED_OUTCOMES, RawRefresh, Selection

__all__ = ["METRICS", "QUALITY_ISSUES", "build_view", "iso"]

METRICS: tuple[tuple[str, str], ...] = (
    ("accuracy", "Accuracy"),
    ("precision", "Precision"),
    ("recall", "Recall"),
    ("f1_score", "F1"),
)
REGRESSION_METRICS: tuple[tuple[str, str], ...] = (
    ("mean_absolute_error", "MAE"),
    ("root_mean_squared_error", "RMSE"),
)


def card_metrics(task: str | None) -> tuple[tuple[str, str], ...]:
    """The (metric, label) pairs of the cards and the performance graph for a task."""
    return REGRESSION_METRICS if task == "regression" else METRICS


QUALITY_ISSUES = ("missing", "out_of_range", "unseen_category", "wrong_type")
DRIFT_STATISTICS = ("psi", "jensen_shannon", "ks", "wasserstein", "chi2_pvalue")
SEVERITY_ORDER = {"critical": 0, "warning": 1}


def iso(ts: float) -> str:
    """Unix seconds as an ISO-8601 UTC string without zone (what Plotly's date axis reads).

    >>> iso(0)
    '1970-01-01T00:00:00'
    """
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _num(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) or math.isinf(value) else value


def _vector(data: Any) -> list[tuple[dict[str, str], float | None]]:
    if not data:
        return []
    return [(r["metric"], _num(r["value"][1])) for r in data.get("result", [])]


def _matrix(data: Any) -> list[tuple[dict[str, str], list[int], list[float | None]]]:
    if not data:
        return []
    out = []
    for r in data.get("result", []):
        times = [int(1000 * t) for t, _ in r["values"]]  # Plotly date axis: epoch ms
        values = [_num(v) for _, v in r["values"]]
        out.append((r["metric"], times, values))
    return out


def _index(rows: Iterable[tuple[dict[str, str], float | None]]) -> dict[str, list[Any]]:
    by_name: dict[str, list[Any]] = {}
    for labels, value in rows:
        by_name.setdefault(labels.get("__name__", ""), []).append((labels, value))
    return by_name


def _one(by_name: Mapping[str, list[Any]], name: str) -> float | None:
    rows = by_name.get(name) or []
    values = [v for _, v in rows if v is not None]
    return values[0] if values else None


def _rule(by_name: Mapping[str, list[Any]], metric: str) -> float | None:
    """A recording-rule value ``model:<metric>:...`` when the rule exists, else ``None``."""
    names = sorted(by_name, key=lambda n: (not n.endswith("_rate5m"), n))
    for name in names:
        if name.startswith(f"model:{metric}:"):
            value = _one(by_name, name)
            if value is not None:
                return value
    return None


def _first(values: list[float | None]) -> float | None:
    return next((v for v in values if v is not None), None)


def _cards(
    by_name: Mapping[str, list[Any]], perf: Mapping[str, Any], task: str | None
) -> list[dict[str, Any]]:
    cards = []
    for metric, label in card_metrics(task):
        realized = _one(by_name, f"model_{metric}")
        source = "collector"
        if realized is None:
            realized = _rule(by_name, metric)
            source = "recording rule" if realized is not None else "collector"
        cards.append(
            {
                "metric": metric,
                "label": label,
                "realized": realized,
                "estimated": _one(by_name, f"model_estimated_{metric}"),
                "reference": _one(by_name, f"model_reference_{metric}"),
                "labeled": _one(by_name, "model_window_labeled_predictions"),
                "predictions": _one(by_name, "model_window_predictions"),
                "start": _first(perf.get(f"model_{metric}", {}).get("v", [])),
                "start_estimated": _first(perf.get(f"model_estimated_{metric}", {}).get("v", [])),
                "source": source,
            }
        )
    return cards


def instances(by_name: Mapping[str, list[Any]]) -> int:
    """Collector instances the model's series come from: ``model:collector_instances:count``
    (merged.yml) or the distinct (job, instance) of ``model_info``, whichever is larger.

    >>> instances({"model_info": [({"job": "j", "instance": "a:1"}, 1.0),
    ...                           ({"job": "j", "instance": "b:1"}, 1.0)]})
    2
    >>> instances({"model:collector_instances:count": [({}, 3.0)]}), instances({})
    (3, 1)
    """
    seen = {
        (labels.get("job", ""), labels.get("instance", ""))
        for labels, _ in by_name.get("model_info", [])
    }
    rule = _one(by_name, "model:collector_instances:count") or 0.0
    return max(1, len(seen), int(rule))


def _sum(by_name: Mapping[str, list[Any]], name: str) -> float | None:
    """The sum over collectors of a count gauge (``None`` when no collector exports it)."""
    values = [v for _, v in by_name.get(name) or [] if v is not None]
    return math.fsum(values) if values else None


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def merged_realized(
    outcomes: Iterable[tuple[dict[str, str], float | None]], positive: str | None
) -> dict[str, float | None]:
    """Accuracy, precision, recall and F1 from window outcome counts per (class, outcome)
    summed over collectors, as recording.yml defines them (binary: the positive class;
    multiclass: macro average over the classes where the figure is defined).

    >>> rows = [({"class": "1", "outcome": "tp"}, 3.0), ({"class": "1", "outcome": "fp"}, 1.0),
    ...         ({"class": "1", "outcome": "fn"}, 1.0), ({"class": "0", "outcome": "tp"}, 5.0),
    ...         ({"class": "0", "outcome": "fn"}, 1.0), ({"class": "0", "outcome": "fp"}, 1.0)]
    >>> figures = merged_realized(rows, "1")
    >>> figures["accuracy"], figures["precision"], figures["f1_score"]
    (0.8, 0.75, 0.75)
    """
    counts: dict[str, dict[str, float]] = {}
    for labels, value in outcomes:
        if value is not None and labels.get("class") is not None:
            row = counts.setdefault(labels["class"], {})
            outcome = labels.get("outcome", "?")
            row[outcome] = row.get(outcome, 0.0) + value
    if not counts:
        return dict.fromkeys(("accuracy", "precision", "recall", "f1_score"))

    def per_class(c: dict[str, float]) -> dict[str, float | None]:
        tp, fp, fn = c.get("tp", 0.0), c.get("fp", 0.0), c.get("fn", 0.0)
        return {
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn),
            "f1_score": _ratio(2 * tp, 2 * tp + fp + fn),
        }

    tp = math.fsum(c.get("tp", 0.0) for c in counts.values())
    labeled = math.fsum(c.get("tp", 0.0) + c.get("fn", 0.0) for c in counts.values())
    out: dict[str, float | None] = {"accuracy": _ratio(tp, labeled)}
    figures = [per_class(c) for k, c in counts.items() if positive in (None, k)]
    for metric in ("precision", "recall", "f1_score"):
        values = [f[metric] for f in figures if f[metric] is not None]
        out[metric] = (
            math.fsum(v for v in values if v is not None) / len(values) if values else None
        )
    return out


MERGED_DRIFT = {
    "psi": "model_feature:psi:window5m",
    "jensen_shannon": "model_feature:jensen_shannon:window5m",
}


def _merged_drift_index(by_name: Mapping[str, list[Any]]) -> dict[str, list[Any]]:
    """The merged drift rules in the shape of the collector's gauges, so :func:`_drift` reads
    them: PSI and Jensen-Shannon per feature (the other statistics cannot be merged) and the
    merged flag (PSI over drift_psi with the sample guard)."""
    rows = [
        ({**labels, "statistic": statistic}, value)
        for statistic, name in MERGED_DRIFT.items()
        for labels, value in by_name.get(name, [])
    ]
    return {
        "model_feature_drift": rows,
        "model_feature_drift_detected": list(
            by_name.get("model_feature:drift_detected:window5m", [])
        ),
    }


def _drift(by_name: Mapping[str, list[Any]], threshold: float | None) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for labels, value in by_name.get("model_feature_drift", []):
        row = rows.setdefault(labels.get("feature", "?"), {})
        row[labels.get("statistic", "?")] = value
    for labels, value in by_name.get("model_feature_drift_detected", []):
        rows.setdefault(labels.get("feature", "?"), {})["detected"] = bool(value)
    out = []
    for feature, row in rows.items():
        psi = row.get("psi")
        ratio = psi / threshold if psi is not None and threshold else None
        item = {"feature": feature, "detected": bool(row.get("detected")), "ratio": ratio}
        item.update({s: row.get(s) for s in DRIFT_STATISTICS})
        out.append(item)

    def severity(item: dict[str, Any]) -> tuple[bool, float, str]:
        # Drifted as FeatureDrift sees it first (PSI over threshold and test), then by PSI.
        drifted = item["detected"] and (item["ratio"] or 0.0) >= 1
        return (not drifted, -(item["ratio"] or -1.0), item["feature"])

    return sorted(out, key=severity)


def _multivariate(by_name: Mapping[str, list[Any]]) -> dict[str, Any]:
    """Multivariate drift of the window (from the instant query): error, band, flag.

    >>> _multivariate({"model_multivariate_drift": [({"method": "pca"}, 1.5)]})["error"]
    1.5
    """
    bounds = {
        labels.get("bound", "?"): value
        for labels, value in by_name.get("model_multivariate_drift_threshold", [])
    }
    rows = by_name.get("model_multivariate_drift") or [({}, None)]
    return {
        "method": rows[0][0].get("method"),
        "error": _one(by_name, "model_multivariate_drift"),
        "lower": bounds.get("lower"),
        "upper": bounds.get("upper"),
        "detected": _one(by_name, "model_multivariate_drift_detected"),
    }


def _segments(by_name: Mapping[str, list[Any]]) -> dict[str, list[dict[str, Any]]]:
    """Segment feature -> one row per value (``model_segment_*`` of the instant query, which
    already brings every ``model_.+`` series of the model: no extra Prometheus call). Values
    in name order, ``other`` last; a figure the collector did not export stays absent.

    >>> rows = _segments({"model_segment_accuracy": [({"segment": "country", "value": "it"}, 0.6)],
    ...                   "model_segment_window_predictions": [
    ...                       ({"segment": "country", "value": "other"}, 3.0),
    ...                       ({"segment": "country", "value": "it"}, 40.0)]})
    >>> [(r["value"], r.get("accuracy")) for r in rows["country"]]
    [('it', 0.6), ('other', None)]
    """
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for name, entries in by_name.items():
        if not name.startswith("model_segment_"):
            continue
        figure = name.removeprefix("model_segment_")
        for labels, value in entries:
            segment, label = labels.get("segment"), labels.get("value")
            if segment and label is not None:
                found.setdefault(segment, {}).setdefault(label, {"value": label})[figure] = value
    return {
        segment: sorted(values.values(), key=lambda r: (r["value"] == "other", r["value"]))
        for segment, values in sorted(found.items())
    }


def _quality(by_name: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for labels, value in by_name.get("model_feature_quality_ratio", []):
        rows.setdefault(labels.get("feature", "?"), {})[labels.get("issue", "?")] = value
    out = [{"feature": f, **{i: r.get(i) for i in QUALITY_ISSUES}} for f, r in rows.items()]
    return sorted(
        out, key=lambda r: (-max(v or 0.0 for k, v in r.items() if k != "feature"), r["feature"])
    )


def _alerts(data: Any, model: str | None) -> tuple[list[dict[str, Any]], int]:
    alerts, others = [], 0
    for a in (data or {}).get("alerts", []):
        labels, notes = a.get("labels", {}), a.get("annotations", {})
        if labels.get("model") not in (None, model):
            others += 1
            continue
        alerts.append(
            {
                "name": labels.get("alertname", "?"),
                "severity": labels.get("severity", "warning"),
                "state": a.get("state", "firing"),
                "summary": notes.get("summary", ""),
                "description": notes.get("description", ""),
                "value": _num(a.get("value")),
                "active_at": a.get("activeAt"),
                "labels": {k: v for k, v in labels.items() if k not in ("alertname", "severity")},
            }
        )
    alerts.sort(
        key=lambda a: (a["state"] != "firing", SEVERITY_ORDER.get(a["severity"], 2), a["name"])
    )
    return alerts, others


def _series(
    rows: Iterable[tuple[dict[str, str], list[int], list[float | None]]],
    key: str,
) -> dict[str, dict[str, list[Any]]]:
    out: dict[str, dict[str, list[Any]]] = {}
    for labels, times, values in rows:
        out[labels.get(key) or labels.get("__name__", "?")] = {"t": times, "v": values}
    return out


def _resources(raw: Any) -> dict[str, dict[str, list[Any]]]:
    out: dict[str, dict[str, list[Any]]] = {}
    for labels, times, values in _matrix(raw):
        kind = labels.get("mm_series", "?")
        who = labels.get("replica") or labels.get("instance") or "?"
        prefix = "replica" if kind.startswith("serving") else "collector"
        resource = "cpu" if kind.endswith("cpu") else "memory"
        out[f"{resource}|{prefix} {who}"] = {"t": times, "v": values}
    return out


def _merged_or_sum(by_name: Mapping[str, list[Any]], rule: str, gauge: str) -> float | None:
    value = _one(by_name, rule)
    return value if value is not None else _sum(by_name, gauge)


def _spread(
    view: dict[str, Any],
    by_name: Mapping[str, list[Any]],
    outcomes: list[tuple[dict[str, str], float | None]],
    n: int,
) -> None:
    """Replace the per-collector gauges of ``view`` by the figures merged over the ``n``
    collectors a model is spread over: exact window counts summed over collectors
    (merged.yml's rules, and the realized outcomes of the ``derived`` query), never one
    collector's share, nor a sum or maximum of the shares' ratios. A figure that cannot be
    merged (KS, Wasserstein, chi-square p-value, MAE/RMSE without a merged rule) is ``None``."""
    note = f"merged over {n} collectors"
    positive = next(
        (labels.get("class") for labels, _ in by_name.get("model_positive_class_info", [])), None
    )
    realized = merged_realized(outcomes, positive)
    predictions = _merged_or_sum(
        by_name, "model:window_predictions:sum", "model_window_predictions"
    )
    labeled = _merged_or_sum(
        by_name, "model:window_labeled_predictions:sum", "model_window_labeled_predictions"
    )
    for card in view["cards"]:
        metric = card["metric"]
        value = realized.get(metric)
        if value is None:
            value = _one(by_name, f"model:{metric}:ratio_rate5m")
        card.update(
            {
                "realized": value,
                "estimated": _one(by_name, f"model:estimated_{metric}:ratio_rate5m"),
                "labeled": labeled,
                "predictions": predictions,
                "start": None,  # the performance history is each collector's own share
                "start_estimated": None,
                "source": note,
            }
        )
    view["window"] = {
        "predictions": predictions,
        "errors": _sum(by_name, "model_window_errors"),
        "labeled": labeled,
    }
    view["labels"].update(
        {
            "coverage": _one(by_name, "model:label_coverage:ratio"),
            "pending": _sum(by_name, "model_pending_labels"),
        }
    )
    drift = _drift(_merged_drift_index(by_name), view["thresholds"].get("drift_psi"))
    view["drift"] = drift
    view["drift_detected"] = float(any(d["detected"] for d in drift)) if drift else None
    multivariate = view["multivariate"]
    error = _one(by_name, "model:multivariate_reconstruction_error:mean5m")
    lower, upper = multivariate.get("lower"), multivariate.get("upper")
    detected = None
    if error is not None and upper is not None:
        detected = float(error > upper or (lower is not None and error < lower))
    multivariate.update({"error": error, "detected": detected})
    view["prediction_drift"] = {
        statistic: value
        for statistic, value in (
            ("psi", _one(by_name, "model:prediction_psi:window5m")),
            ("jensen_shannon", _one(by_name, "model:prediction_jensen_shannon:window5m")),
        )
        if value is not None
    }
    quality: dict[str, list[Any]] = {
        "model_feature_quality_ratio": list(
            by_name.get("model_feature_issue:quality_issues:ratio_rate5m", [])
        )
    }
    view["quality"] = _quality(quality)
    view["merged"] = True
    view["merged_note"] = f"Figures {note} (the model's events are split by prediction id)."


def build_view(raw: RawRefresh) -> dict[str, Any]:
    """The JSON-able view of one refresh (see the module docstring)."""
    sel: Selection = raw.selection
    task = next(
        (r["task"] for r in raw.catalog if (r["model"], r["version"]) == (sel.model, sel.version)),
        "",
    )
    alerts, others = _alerts(raw.data.get("alerts"), sel.model)
    view: dict[str, Any] = {
        "time": raw.now,
        "range_key": sel.range_key,
        "model": sel.model,
        "version": sel.version,
        "task": task,
        "catalog": raw.catalog,
        "calls": raw.calls,
        "errors": raw.errors,
        "alerts": alerts,
        "other_alerts": others,
        "alerts_available": "alerts" not in raw.errors,
    }
    if sel.model is None:
        return view
    by_name = _index(_vector(raw.data.get("instant")))
    derived: dict[str, float | None] = {}
    outcomes: list[tuple[dict[str, str], float | None]] = []
    for labels, value in _vector(raw.data.get("derived")):
        key = labels.get("mm_series", "?")
        if key == MERGED_OUTCOMES:
            outcomes.append((labels, value))
            continue
        if key.startswith("collector_") and derived.get(key) is not None and value is not None:
            derived[key] = (derived[key] or 0.0) + value  # several collector shards: their sum
        else:
            derived[key] = value
    thresholds = {
        labels.get("threshold", "?"): value
        for labels, value in by_name.get("model_alert_threshold", [])
    }
    perf = _series(_matrix(raw.data.get("perf")), "__name__")
    replicas: dict[str, dict[str, Any]] = {}
    for labels, value in by_name.get("model_serving_cpu_ratio", []):
        replicas.setdefault(labels.get("replica", "?"), {})["cpu"] = value
    for labels, value in by_name.get("model_serving_memory_bytes", []):
        replicas.setdefault(labels.get("replica", "?"), {})["memory"] = value
    view.update(
        {
            "has_data": bool(by_name),
            "thresholds": thresholds,
            "min_samples": _one(by_name, "model_min_samples"),
            "window_seconds": _one(by_name, "model_window_seconds"),
            "cards": _cards(by_name, perf, task),
            "ops": {
                k: derived.get(k)
                for k in (
                    "predictions_rate",
                    "errors_rate",
                    "latency_p50",
                    "latency_p95",
                    "latency_p99",
                )
            },
            "window": {
                "predictions": _one(by_name, "model_window_predictions"),
                "errors": _one(by_name, "model_window_errors"),
                "labeled": _one(by_name, "model_window_labeled_predictions"),
            },
            "labels": {
                "coverage": _one(by_name, "model_label_coverage_ratio"),
                "pending": _one(by_name, "model_pending_labels"),
                "delay_p50": derived.get("label_delay_p50"),
                "delay_p95": derived.get("label_delay_p95"),
            },
            "drift": _drift(by_name, thresholds.get("drift_psi")),
            "drift_detected": _one(by_name, "model_drift_detected"),
            "multivariate": _multivariate(by_name),
            "prediction_drift": {
                labels.get("statistic", "?"): value
                for labels, value in by_name.get("model_prediction_drift", [])
            },
            "quality": _quality(by_name),
            "segments": _segments(by_name),
            "replicas": [{"replica": k, **v} for k, v in sorted(replicas.items())],
            "collector": {
                "cpu": derived.get("collector_cpu"),
                "memory": derived.get("collector_memory"),
            },
            "series": {
                "perf": perf,
                "ops": _series(_matrix(raw.data.get("ops")), "mm_series"),
                "drift": _series(_matrix(raw.data.get("drift")), "feature"),
                "resources": _resources(raw.data.get("resources")),
            },
        }
    )
    n = instances(by_name)
    view.update({"collectors": n, "merged": False, "merged_note": None})
    if n > 1:
        _spread(view, by_name, outcomes, n)
    return view
