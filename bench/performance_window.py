"""What the performance window costs the engine: label() and snapshot() time, state bytes.

Realized figures have their own ring (spec ``performance.window``, issue 14): every label batch
is counted in it as well as in the window's ring, and a snapshot sums both. Measured on one
binary monitor with 10 numeric features and 3 segment values, per call, median of
``REPEATS`` calls:

* ``label``: a batch of 1,000 joined labels;
* ``snapshot``: all figures of the monitor;
* ``state bytes``: the window rings and totals (``ModelMonitor.state_bytes``);

for the default configuration (the performance window is the window: 5m in 10 s buckets), for
``performance: 2d`` (1-hour buckets) and for ``performance: {window: 2d, bucket: 10m}``. Run
``python bench/performance_window.py``; to compare with a checkout from before the performance
window, run it with ``PYTHONPATH=<that checkout>/src`` (the configurations it does not know are
skipped). The table is printed; bench/RESULTS.md has the numbers of one sitting.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from modelmeter.engine import (
    FeatureSpec,
    LabelBatch,
    ModelMonitor,
    MonitorConfig,
    PredictionBatch,
    ReferenceData,
)

REPEATS = 200
FEATURES = 10
ROWS = 1_000
NOW = 1_000_000.0


def monitor(**performance: float) -> ModelMonitor | None:
    """A binary monitor with ``performance`` fields of MonitorConfig; None if unknown."""
    rng = np.random.default_rng(3)
    features = tuple(FeatureSpec(f"x{i}", "numeric") for i in range(FEATURES))
    names = [f.name for f in features]
    x = rng.normal(size=(5_000, FEATURES))
    score = 1 / (1 + np.exp(-x[:, 0]))
    label = np.where(rng.random(5_000) < score, "1", "0").astype(object)
    predicted = np.where(score > 0.5, "1", "0").astype(object)
    reference = ReferenceData(dict(zip(names, x.T, strict=True)), predicted, label, score)
    try:
        config = MonitorConfig(
            task="binary",
            classes=("0", "1"),
            positive_class="1",
            features=features,
            min_samples=100,
            **performance,  # type: ignore[arg-type]
        )
    except TypeError:  # a checkout from before the performance window
        return None
    return ModelMonitor(config, reference)


def batches(seed: int) -> tuple[PredictionBatch, LabelBatch]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(ROWS, FEATURES))
    score = 1 / (1 + np.exp(-x[:, 0]))
    predicted = np.where(score > 0.5, "1", "0").astype(object)
    actual = np.where(rng.random(ROWS) < score, "1", "0").astype(object)
    t = np.full(ROWS, NOW)
    features = {f"x{i}": x[:, i] for i in range(FEATURES)}
    return (
        PredictionBatch(t, features, predicted, scores=score),
        LabelBatch(t + 1.0, t, predicted, actual),
    )


def median_us(call: Callable[[], Any]) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def main() -> None:
    configurations = {
        "default (= window 5m/10s)": {},
        "performance 2d / 1h": {
            "performance_window_seconds": 172_800.0,
            "performance_bucket_seconds": 3_600.0,
        },
        "performance 2d / 10m": {
            "performance_window_seconds": 172_800.0,
            "performance_bucket_seconds": 600.0,
        },
    }
    predictions, labels = batches(1)
    print(f"{'configuration':<28} {'label() µs':>11} {'snapshot() µs':>14} {'state bytes':>12}")
    for name, fields in configurations.items():
        m = monitor(**fields)
        if m is None:
            print(f"{name:<28} {'(not in this checkout)':>39}")
            continue
        m.observe(predictions, now=NOW)
        label_us = median_us(lambda m=m: m.label(labels, now=NOW + 2.0))
        snapshot_us = median_us(lambda m=m: m.snapshot(NOW + 2.0))
        print(f"{name:<28} {label_us:>11,.0f} {snapshot_us:>14,.0f} {m.state_bytes:>12,}")


if __name__ == "__main__":
    main()
