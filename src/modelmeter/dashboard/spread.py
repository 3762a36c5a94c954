"""A model spread over several collectors: the figures merged over all of them.

The collectors' window gauges describe each one's share of the model; the merged figures come
from the recording rules of ``merged.yml`` (exact window counts summed over collectors) and from
realized outcome counts summed over collectors (the collectors' performance-window outcomes,
``model_performance_window_outcomes``, else the 5-minute counts of the ``derived`` query), never
from one share, nor a sum or maximum of the shares' ratios. Nothing guarded the sums: the view
greys a merged figure unless its summed sample (:func:`outcome_labels`) reaches min_samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from modelmeter.dashboard.answers import one

__all__ = [
    "MERGED_DRIFT",
    "instances",
    "merged_drift_index",
    "merged_or_sum",
    "merged_realized",
    "outcome_labels",
    "sum_of",
]


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
    rule = one(by_name, "model:collector_instances:count") or 0.0
    return max(1, len(seen), int(rule))


def sum_of(by_name: Mapping[str, list[Any]], name: str) -> float | None:
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


def outcome_labels(outcomes: Iterable[tuple[dict[str, str], float | None]]) -> float | None:
    """Labels behind one-vs-rest outcome counts: the sum over classes of tp + fn (each labeled
    prediction is a tp or an fn of its label's class); ``None`` without any count.

    >>> outcome_labels([({"class": "1", "outcome": "tp"}, 3.0),
    ...                 ({"class": "1", "outcome": "fp"}, 1.0),
    ...                 ({"class": "0", "outcome": "fn"}, 1.0)]), outcome_labels([])
    (4.0, None)
    """
    values = [
        value
        for labels, value in outcomes
        if value is not None and labels.get("outcome") in ("tp", "fn")
    ]
    return math.fsum(values) if values else None


MERGED_DRIFT = {
    "psi": "model_feature:psi:window5m",
    "jensen_shannon": "model_feature:jensen_shannon:window5m",
}


def merged_drift_index(by_name: Mapping[str, list[Any]]) -> dict[str, list[Any]]:
    """The merged drift rules in the shape of the collector's gauges, so the view's drift
    table reads them: PSI and Jensen-Shannon per feature (the other statistics cannot be
    merged) and the merged flag (PSI over drift_psi with the sample guard)."""
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


def merged_or_sum(by_name: Mapping[str, list[Any]], rule: str, gauge: str) -> float | None:
    """The merged rule's value, else the sum of the collectors' count gauges."""
    value = one(by_name, rule)
    return value if value is not None else sum_of(by_name, gauge)
