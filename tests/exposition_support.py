"""The exposition tests' scenario: the breast-cancer example model, monitored with real data
and real labels (tests/test_exposition*.py)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
from prometheus_client import CollectorRegistry
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelmeter.engine import LabelBatch, ModelMonitor, PredictionBatch
from modelmeter.exposition import (
    CollectorState,
    ModelState,
)
from modelmeter.service.state import ServingResources, StoreState
from modelmeter.spec import ModelSpec, load_reference, load_spec

__all__ = [
    "EXAMPLES",
    "LABELED",
    "NOW",
    "T0",
    "Scenario",
    "breast_cancer_model",
    "lines",
    "make_scenario",
    "sample_value",
]

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
T0 = 1_700_000_000.0
NOW = T0 + 200.0
LABELED = 400  # the first 400 predictions get their label


@dataclasses.dataclass
class Scenario:
    """The breast-cancer example model, monitored with real data and real labels."""

    spec: ModelSpec
    monitor: ModelMonitor
    empty: ModelMonitor  # a second version that has seen no traffic yet
    predictions: np.ndarray
    labels: np.ndarray
    latency: np.ndarray
    resources: ServingResources

    def state(self, **changes: Any) -> CollectorState:
        model = ModelState(
            name="cancer",
            spec=self.spec,
            snapshots={"v1": self.monitor.snapshot(NOW), "v2": self.empty.snapshot(NOW)},
            pending_labels=len(self.predictions) - LABELED,
            resources={("v1", "replica-1"): self.resources},
            waiting_labels=3,
            last_prediction=NOW,
            dropped={("replica-1", "predictions"): 5},
        )
        model = dataclasses.replace(model, **changes)
        return CollectorState(
            models=[model],
            ingest={
                ("cancer", "predictions", "accepted"): len(self.predictions),
                ("cancer", "labels", "accepted"): LABELED,
            },
            expired={("cancer", "predictions", "ttl"): 2, ("gone", "labels", "ttl"): 1},
            retired={("cancer", "capacity"): 1},
            store=StoreState(4096, 1024, budget_bytes=10**9),
        )


def breast_cancer_model(spec: ModelSpec) -> tuple[pd.DataFrame, np.ndarray, Any]:
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns=lambda c: c.replace(" ", "_"))
    x = frame[list(spec.feature_names)]
    y = np.asarray(data.target_names, dtype=object)[frame["target"]]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=0))
    model.fit(x.iloc[::2], y[::2])  # seeded and deterministic (lbfgs)
    return x, y, model


def make_scenario() -> Scenario:
    spec = load_spec(EXAMPLES / "binary-spec.yaml")
    reference = load_reference(spec)
    x, y, model = breast_cancer_model(spec)
    positive = list(model.classes_).index("malignant")
    latency = np.empty(len(x))
    scores = np.empty(len(x))
    for i in range(len(x)):  # one real prediction per event, timed
        start = time.perf_counter()
        scores[i] = model.predict_proba(x.iloc[i : i + 1])[0, positive]
        latency[i] = time.perf_counter() - start
    predictions = np.where(scores >= 0.5, "malignant", "benign").astype(object)
    timestamps = (T0 + np.arange(len(x)) * 0.25).astype(np.float64)
    monitor = ModelMonitor(spec.monitor_config(), reference)
    monitor.observe(
        PredictionBatch(
            timestamps=timestamps,
            features={name: x[name].to_numpy(np.float64) for name in spec.feature_names},
            predictions=predictions,
            scores=scores,
            latency_seconds=latency,
        )
    )
    monitor.label(
        LabelBatch(
            label_timestamps=(T0 + 150 + np.arange(LABELED) * 0.125).astype(np.float64),
            prediction_timestamps=timestamps[:LABELED],
            predictions=predictions[:LABELED],
            labels=y[:LABELED],
        )
    )
    process = psutil.Process()
    cpu = process.cpu_times()
    resources = ServingResources(
        cpu_ratio=(cpu.user + cpu.system) / max(time.time() - process.create_time(), 1e-3),
        memory_bytes=float(process.memory_info().rss),
    )
    empty = ModelMonitor(spec.monitor_config(), reference)
    return Scenario(spec, monitor, empty, predictions, y, latency, resources)


def sample_value(registry: CollectorRegistry, name: str, labels: dict[str, str]) -> float:
    """A sample value that must be there."""
    value = registry.get_sample_value(name, labels)
    assert value is not None, (name, labels)
    return value


def lines(body: str, family: str) -> list[str]:
    return [line for line in body.splitlines() if line.split("{")[0].split(" ")[0] == family]
