"""The panels' graphs: performance, throughput, latency, drift, CPU and memory over the
selected range, each with its threshold lines and a sentence for when it has no data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelmeter.dashboard.figures import COLORS, PALETTE, line_figure
from modelmeter.dashboard.queries import DRIFT_TOP
from modelmeter.dashboard.view import REGRESSION_METRICS, card_metrics

__all__ = ["graphs"]


def graphs(view: Mapping[str, Any]) -> dict[str, Any]:
    series = view.get("series") or {}
    th = view.get("thresholds") or {}
    rev = f"{view.get('model')}|{view.get('version')}|{view.get('range_key')}"
    perf_src = series.get("perf") or {}
    perf, names, colors, dashed = {}, {}, {}, []
    bands: dict[str, tuple[Any, Any]] = {}
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
                lower, upper = perf_src.get(f"{key}_lower"), perf_src.get(f"{key}_upper")
                # the estimate's band; none merged over collectors (the history is one share's)
                if kind and lower and upper and not view.get("merged"):
                    bands[key] = (lower, upper)
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
            bands=bands,
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
