"""Turn one refresh's Prometheus answers into the plain, JSON-able view the panels draw.

The view goes into a ``dcc.Store``; the render callbacks read only the view. Values the
collector did not export stay ``None`` (drawn as "—"), never 0. Every figure drawn against a
threshold carries its sample size and a ``guarded`` flag (see :mod:`.guards`): below
``min_samples`` it is drawn greyed, never in a threshold colour.

>>> v = build_view(RawRefresh(Selection(None, None), 0.0, [], {"alerts": {"alerts": []}}, {}, 2))
>>> v["model"] is None, v["calls"]
(True, 2)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from modelmeter.dashboard.answers import first, index, matrix, num, one, vector
from modelmeter.dashboard.guards import below_min_samples, card_texts
from modelmeter.dashboard.queries import MERGED_OUTCOMES, RawRefresh, Selection
from modelmeter.dashboard.spread import (
    instances,
    merged_drift_index,
    merged_or_sum,
    merged_realized,
    outcome_labels,
    sum_of,
)

__all__ = [
    "DRIFT_STATISTICS",
    "METRICS",
    "QUALITY_ISSUES",
    "build_view",
    "calibration_text",
    "iso",
]

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
DRIFT_STATISTICS = ("psi", "jensen_shannon", "ks_binned", "wasserstein_binned", "chi2_pvalue")
LEGACY_STATISTICS = {"ks": "ks_binned", "wasserstein": "wasserstein_binned"}
"""Drift statistic label values of collectors from before the rename."""
SEVERITY_ORDER = {"critical": 0, "warning": 1}
RULE_WINDOWS = {"_rate5m": 300.0, "_rate1h": 3600.0}
"""Window of a recording rule by the end of its name (the performance-window rules aside)."""


def iso(ts: float) -> str:
    """Unix seconds as an ISO-8601 UTC string without zone (what Plotly's date axis reads).

    >>> iso(0)
    '1970-01-01T00:00:00'
    """
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _rule(by_name: Mapping[str, list[Any]], metric: str) -> tuple[str, float] | None:
    """(name, value) of a recording rule ``model:<metric>:...`` when one exists (the
    5-minute rule first), else ``None``."""
    names = sorted(by_name, key=lambda n: (not n.endswith("_rate5m"), n))
    for name in names:
        if name.startswith(f"model:{metric}:"):
            value = one(by_name, name)
            if value is not None:
                return name, value
    return None


def _samples(by_name: Mapping[str, list[Any]], labeled_5m: float | None) -> dict[str, Any]:
    """The sample sizes and windows behind the cards' figures.

    The realized figures' sample is the labels of the performance window
    (``model_performance_window_labels``; a collector without a performance window of its own
    exports the window's, ``model_window_labeled_predictions``). ``labeled_5m``, the labels of
    the last 5 minutes (outcome counts of the derived query), is the 5-minute rules' sample.

    >>> ctx = _samples({"model_window_labeled_predictions": [({}, 40.0)],
    ...                 "model_window_seconds": [({}, 300.0)]}, 12.0)
    >>> ctx["performance_labels"], ctx["performance_window"], ctx["rule_labels"]["_rate5m"]
    (40.0, 300.0, 12.0)
    """
    labels = one(by_name, "model_performance_window_labels")
    if labels is None:
        labels = one(by_name, "model_window_labeled_predictions")
    window = one(by_name, "model_performance_window_seconds")
    if window is None:
        window = one(by_name, "model_window_seconds")
    summed = one(by_name, "model:performance_window_labels:sum")
    return {
        "min_samples": one(by_name, "model_min_samples"),
        "performance_window": window,
        "performance_labels": labels,
        "rule_labels": {
            "_rate5m": labeled_5m,
            "_performance_window": labels if summed is None else summed,
        },
        "predictions": one(by_name, "model_window_predictions"),
    }


def _rule_window(name: str, ctx: Mapping[str, Any]) -> tuple[float | None, bool, float | None]:
    """(window seconds, whether it is the performance window, labels behind it) of a rule."""
    if name.endswith("_performance_window"):
        return ctx["performance_window"], True, ctx["rule_labels"]["_performance_window"]
    for suffix, seconds in RULE_WINDOWS.items():
        if name.endswith(suffix):
            return seconds, False, ctx["rule_labels"].get(suffix)
    return None, False, None


def calibration_text(by_name: Mapping[str, list[Any]]) -> str | None:
    """Which calibration the estimate uses, from ``model_estimation_shift_aware`` (one row per
    collector) and ``model_estimation_shift_auc``; ``None`` when no collector says.

    >>> calibration_text({"model_estimation_shift_aware": [({}, 1.0)],
    ...                   "model_estimation_shift_auc": [({}, 0.8123)]})
    'shift-aware (AUC 0.81)'
    >>> calibration_text({"model_estimation_shift_aware": [({}, 0.0)]}), calibration_text({})
    ('plain CBPE', None)
    >>> calibration_text({"model_estimation_shift_aware": [({}, 1.0), ({}, 0.0)]})
    'shift-aware on 1 of 2 collectors'
    """
    flags = [v for _, v in by_name.get("model_estimation_shift_aware", []) if v is not None]
    if not flags:
        return None
    aware = sum(v >= 0.5 for v in flags)
    if aware == 0:
        return "plain CBPE"
    if len(flags) > 1:  # several collectors, each with its own refit and AUC
        return f"shift-aware on {aware} of {len(flags)} collectors"
    auc = one(by_name, "model_estimation_shift_auc")
    return "shift-aware" if auc is None else f"shift-aware (AUC {auc:.2f})"


def _cards(
    by_name: Mapping[str, list[Any]],
    perf: Mapping[str, Any],
    task: str | None,
    ctx: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """One card per figure of the task: the collector's gauge, else a recording rule (which
    has no sample guard of its own), each with the sample behind it (see :func:`_samples`)."""
    cards = []
    calibration = calibration_text(by_name)
    for metric, label in card_metrics(task):
        realized = one(by_name, f"model_{metric}")
        card: dict[str, Any] = {
            "origin": "collector",
            "source": "collector",
            "rule": None,
            "window_seconds": ctx["performance_window"],
            "performance_window": True,
            "samples": ctx["performance_labels"],
            "trusted": True,
        }
        rule = _rule(by_name, metric) if realized is None else None
        if rule is not None:
            name, realized = rule
            window, is_performance, samples = _rule_window(name, ctx)
            card.update(
                {
                    "origin": "rule",
                    "source": "recording rule",
                    "rule": name,
                    "window_seconds": window,
                    "performance_window": is_performance,
                    "samples": samples,
                    "trusted": False,
                }
            )
        card.update(
            {
                "metric": metric,
                "label": label,
                "family": f"model_{metric}",
                "realized": realized,
                "estimated": one(by_name, f"model_estimated_{metric}"),
                # the estimate's 95 % band (classification with scores), and its calibration
                "estimated_lower": one(by_name, f"model_estimated_{metric}_lower"),
                "estimated_upper": one(by_name, f"model_estimated_{metric}_upper"),
                "calibration": calibration if metric not in dict(REGRESSION_METRICS) else None,
                "reference": one(by_name, f"model_reference_{metric}"),
                "labeled": ctx["performance_labels"],
                "predictions": ctx["predictions"],
                "start": first(perf.get(f"model_{metric}", {}).get("v", [])),
                "start_estimated": first(perf.get(f"model_estimated_{metric}", {}).get("v", [])),
                "min_samples": ctx["min_samples"],
                "estimated_samples": ctx["predictions"],
                "estimated_trusted": True,
            }
        )
        cards.append(card_texts(card))
    return cards


def _statistics(rows: Iterable[tuple[dict[str, str], float | None]]) -> dict[str, dict[str, Any]]:
    """Feature -> statistic -> value. A collector's label values from before the rename
    (``ks``, ``wasserstein``) read as the binned ones, unless those are there too.

    >>> _statistics([({"feature": "x", "statistic": "ks"}, 0.2)])
    {'x': {'ks_binned': 0.2}}
    """
    out: dict[str, dict[str, Any]] = {}
    for labels, value in rows:
        row = out.setdefault(labels.get("feature", "?"), {})
        statistic = labels.get("statistic", "?")
        if statistic in LEGACY_STATISTICS:
            row.setdefault(LEGACY_STATISTICS[statistic], value)
        else:
            row[statistic] = value
    return out


def _drift(
    by_name: Mapping[str, list[Any]],
    threshold: float | None,
    min_samples: float | None = None,
    samples: Mapping[str, float | None] | float | None = None,
) -> list[dict[str, Any]]:
    """One row per feature, most drifted first. ``samples`` (the window's predictions, or a
    count per feature) against ``min_samples`` sets each row's ``guarded``: the collector
    exports the statistics at any sample (only the flag is guarded), so a row whose sample is
    unknown or below ``min_samples`` is drawn greyed, not against the PSI threshold."""
    rows = _statistics(by_name.get("model_feature_drift", []))
    for labels, value in by_name.get("model_feature_drift_detected", []):
        rows.setdefault(labels.get("feature", "?"), {})["detected"] = bool(value)
    out = []
    for feature, row in rows.items():
        psi = row.get("psi")
        ratio = psi / threshold if psi is not None and threshold else None
        n = samples.get(feature) if isinstance(samples, Mapping) else samples
        item = {
            "feature": feature,
            "detected": bool(row.get("detected")),
            "ratio": ratio,
            "samples": n,
            "guarded": below_min_samples(n, min_samples, guarded_by_collector=False),
        }
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
        "error": one(by_name, "model_multivariate_drift"),
        "lower": bounds.get("lower"),
        "upper": bounds.get("upper"),
        "detected": one(by_name, "model_multivariate_drift_detected"),
        "samples": None,  # the collector exports the figure from min_samples rows on
        "guarded": False,
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


def _guard_segments(
    segments: Mapping[str, list[dict[str, Any]]], min_samples: float | None
) -> None:
    """Each segment row's sample (its labels in the performance window, else in the window)
    and whether its realized figures are below ``min_samples`` (the collector omits them
    there; its own count says so when it is known).

    >>> rows = {"c": [{"value": "it", "accuracy": 0.6, "window_labeled_predictions": 37.0}]}
    >>> _guard_segments(rows, 100.0)
    >>> rows["c"][0]["samples"], rows["c"][0]["guarded"]
    (37.0, True)
    """
    for rows in segments.values():
        for row in rows:
            samples = row.get("performance_window_labels")
            if samples is None:
                samples = row.get("window_labeled_predictions")
            row["samples"] = samples
            row["guarded"] = below_min_samples(samples, min_samples, guarded_by_collector=True)


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
                "value": num(a.get("value")),
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
    for labels, times, values in matrix(raw):
        kind = labels.get("mm_series", "?")
        who = labels.get("replica") or labels.get("instance") or "?"
        prefix = "replica" if kind.startswith("serving") else "collector"
        resource = "cpu" if kind.endswith("cpu") else "memory"
        out[f"{resource}|{prefix} {who}"] = {"t": times, "v": values}
    return out


def _spread(
    view: dict[str, Any],
    by_name: Mapping[str, list[Any]],
    outcomes: list[tuple[dict[str, str], float | None]],
    n: int,
) -> None:
    """Replace the per-collector gauges of ``view`` by the figures merged over the ``n``
    collectors a model is spread over: exact window counts summed over collectors (the
    collectors' performance-window outcomes, else the 5-minute outcomes of the ``derived``
    query, and merged.yml's rules), never one collector's share, nor a sum or maximum of the
    shares' ratios. A figure that cannot be merged (KS, Wasserstein, chi-square p-value,
    MAE/RMSE without a merged rule) is ``None``. Nothing guarded the merged figures: each is
    greyed unless its summed sample reaches ``min_samples``."""
    note = f"merged over {n} collectors"
    min_samples = view["min_samples"]
    positive = next(
        (labels.get("class") for labels, _ in by_name.get("model_positive_class_info", [])), None
    )
    window_outcomes = list(by_name.get("model_performance_window_outcomes", []))
    if window_outcomes:  # the collectors' performance windows, as their alerts take them
        realized = merged_realized(window_outcomes, positive)
        window, is_performance = view["performance_window"], True
        realized_samples = outcome_labels(window_outcomes)
    else:  # collectors without a performance window of their own: the last 5 minutes
        realized = merged_realized(outcomes, positive)
        window, is_performance = 300.0, False
        realized_samples = outcome_labels(outcomes)
    labeled_5m = outcome_labels(outcomes)
    predictions = merged_or_sum(by_name, "model:window_predictions:sum", "model_window_predictions")
    labeled = merged_or_sum(
        by_name, "model:window_labeled_predictions:sum", "model_window_labeled_predictions"
    )
    predictions_5m = one(by_name, "model:predictions:window5m")
    for card in view["cards"]:
        metric = card["metric"]
        value, card_window, performance, samples = (
            realized.get(metric),
            window,
            is_performance,
            realized_samples,
        )
        if value is None:
            value = one(by_name, f"model:{metric}:ratio_rate5m")
            card_window, performance, samples = 300.0, False, labeled_5m
        card.update(
            {
                "origin": "merged",
                "realized": value,
                "estimated": one(by_name, f"model:estimated_{metric}:ratio_rate5m"),
                # no merged band: each collector's band is of its own share's estimate
                "estimated_lower": None,
                "estimated_upper": None,
                "labeled": labeled,
                "predictions": predictions,
                "start": None,  # the performance history is each collector's own share
                "start_estimated": None,
                "source": note,
                "window_seconds": card_window,
                "performance_window": performance,
                "samples": samples,
                "trusted": False,
                "estimated_samples": predictions_5m if predictions_5m is not None else predictions,
                "estimated_trusted": False,
            }
        )
        card_texts(card)
    view["window"] = {
        "predictions": predictions,
        "errors": sum_of(by_name, "model_window_errors"),
        "labeled": labeled,
    }
    view["labels"].update(
        {
            "coverage": one(by_name, "model:label_coverage:ratio"),
            "pending": sum_of(by_name, "model_pending_labels"),
            "coverage_samples": predictions,
            "coverage_guarded": below_min_samples(predictions, min_samples, False),
        }
    )
    observations = {
        labels.get("feature", "?"): value
        for labels, value in by_name.get("model_feature:observations:window5m", [])
    }
    drift = _drift(
        merged_drift_index(by_name),
        view["thresholds"].get("drift_psi"),
        min_samples,
        observations if observations else predictions,
    )
    view["drift"] = drift
    view["drift_detected"] = float(any(d["detected"] for d in drift)) if drift else None
    multivariate = view["multivariate"]
    error = one(by_name, "model:multivariate_reconstruction_error:mean5m")
    rows = one(by_name, "model:multivariate_reconstruction_rows:window5m")
    lower, upper = multivariate.get("lower"), multivariate.get("upper")
    detected = None
    if error is not None and upper is not None:
        detected = float(error > upper or (lower is not None and error < lower))
    multivariate.update(
        {
            "error": error,
            "detected": detected,
            "samples": rows,
            "guarded": error is not None and below_min_samples(rows, min_samples, False),
        }
    )
    view["prediction_drift"] = {
        statistic: value
        for statistic, value in (
            ("psi", one(by_name, "model:prediction_psi:window5m")),
            ("jensen_shannon", one(by_name, "model:prediction_jensen_shannon:window5m")),
        )
        if value is not None
    }
    quality: dict[str, list[Any]] = {
        "model_feature_quality_ratio": list(
            by_name.get("model_feature_issue:quality_issues:ratio_rate5m", [])
        )
    }
    view["quality"] = _quality(quality)
    quality_samples = predictions_5m if predictions_5m is not None else predictions
    view["quality_guard"] = {
        "samples": quality_samples,
        "guarded": below_min_samples(quality_samples, min_samples, False),
    }
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
    by_name = index(vector(raw.data.get("instant")))
    derived: dict[str, float | None] = {}
    outcomes: list[tuple[dict[str, str], float | None]] = []
    for labels, value in vector(raw.data.get("derived")):
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
    perf = _series(matrix(raw.data.get("perf")), "__name__")
    replicas: dict[str, dict[str, Any]] = {}
    for labels, value in by_name.get("model_serving_cpu_ratio", []):
        replicas.setdefault(labels.get("replica", "?"), {})["cpu"] = value
    for labels, value in by_name.get("model_serving_memory_bytes", []):
        replicas.setdefault(labels.get("replica", "?"), {})["memory"] = value
    # The 5-minute labels behind the 5-minute rules: only when the derived query answered.
    labeled_5m = outcome_labels(outcomes) if raw.data.get("derived") else None
    ctx = _samples(by_name, labeled_5m)
    min_samples = ctx["min_samples"]
    predictions = ctx["predictions"]
    latency_samples = derived.get("latency_samples")
    segments = _segments(by_name)
    _guard_segments(segments, min_samples)
    view.update(
        {
            "has_data": bool(by_name),
            "thresholds": thresholds,
            "min_samples": min_samples,
            "window_seconds": one(by_name, "model_window_seconds"),
            "performance_window": ctx["performance_window"],
            "cards": _cards(by_name, perf, task, ctx),
            "ops": {
                **{
                    k: derived.get(k)
                    for k in (
                        "predictions_rate",
                        "errors_rate",
                        "latency_p50",
                        "latency_p95",
                        "latency_p99",
                    )
                },
                "latency_samples": latency_samples,
                "latency_guarded": below_min_samples(latency_samples, min_samples, False),
            },
            "window": {
                "predictions": predictions,
                "errors": one(by_name, "model_window_errors"),
                "labeled": one(by_name, "model_window_labeled_predictions"),
            },
            "labels": {
                "coverage": one(by_name, "model_label_coverage_ratio"),
                "pending": one(by_name, "model_pending_labels"),
                "delay_p50": derived.get("label_delay_p50"),
                "delay_p95": derived.get("label_delay_p95"),
                "coverage_samples": predictions,
                "coverage_guarded": below_min_samples(predictions, min_samples, False),
            },
            "drift": _drift(by_name, thresholds.get("drift_psi"), min_samples, predictions),
            "drift_detected": one(by_name, "model_drift_detected"),
            "multivariate": _multivariate(by_name),
            "prediction_drift": _statistics(
                ({**labels, "feature": ""}, value)
                for labels, value in by_name.get("model_prediction_drift", [])
            ).get("", {}),
            "quality": _quality(by_name),
            "quality_guard": {
                "samples": predictions,
                "guarded": below_min_samples(predictions, min_samples, False),
            },
            "segments": segments,
            "replicas": [{"replica": k, **v} for k, v in sorted(replicas.items())],
            "collector": {
                "cpu": derived.get("collector_cpu"),
                "memory": derived.get("collector_memory"),
            },
            "series": {
                "perf": perf,
                "ops": _series(matrix(raw.data.get("ops")), "mm_series"),
                "drift": _series(matrix(raw.data.get("drift")), "feature"),
                "resources": _resources(raw.data.get("resources")),
            },
        }
    )
    n = instances(by_name)
    view.update({"collectors": n, "merged": False, "merged_note": None})
    if n > 1:
        _spread(view, by_name, outcomes, n)
    return view
