"""Support for the dashboard tests and bench: a real sklearn model, its spec, and the stack.

The model is a LogisticRegression fitted on scikit-learn's bundled breast-cancer data (the ten
``mean *`` features). Its reference data (features, prediction, label, score) is the held-out
half; production traffic is rows of that half replayed through the model, optionally with a
shifted feature (drift) or with labels that no longer match (concept drift: an accuracy drop).
Every figure the dashboard shows is then computed by the real collector from these events.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from helpers import DEPLOY, ManagedProcess, collector_process, free_port, prometheus_process

FEATURES = 10


@dataclass
class CancerModel:
    """A fitted model, its feature names and the held-out rows used as reference and traffic."""

    features: list[str]
    pipeline: Any
    x: np.ndarray
    y: np.ndarray

    def scores(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.pipeline.predict_proba(x)[:, 1])


def cancer_model(seed: int = 0, c: float = 1.0, n_features: int = FEATURES) -> CancerModel:
    """Fit the model on half the data (its first ``n_features`` of 30 features); keep the
    other half (reference and traffic)."""
    data = load_breast_cancer()
    names = [re.sub(r"\W+", "_", n).strip("_") for n in data.feature_names[:n_features]]
    x, y = data.data[:, :n_features], data.target
    x_fit, x_rest, y_fit, y_rest = train_test_split(
        x, y, test_size=0.5, random_state=seed, stratify=y
    )
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000))
    pipeline.fit(x_fit, y_fit)
    return CancerModel(names, pipeline, x_rest, y_rest)


def write_reference(model: CancerModel, path: Path) -> Path:
    """The reference CSV of docs/contract.md "Spec": features, prediction, label, score."""
    score = model.scores(model.x)
    lines = [",".join([*model.features, "prediction", "label", "score"])]
    for row, label, s in zip(model.x, model.y, score, strict=True):
        values = [f"{v:.6g}" for v in row]
        lines.append(",".join([*values, str(int(s > 0.5)), str(int(label)), f"{s:.6f}"]))
    path.write_text("\n".join(lines) + "\n")
    return path


def spec(model: CancerModel, reference: Path, min_samples: int = 30) -> dict[str, Any]:
    """A binary spec (JSON) for ``model``, ranges from the reference rows."""
    features = []
    for i, name in enumerate(model.features):
        low, high = float(model.x[:, i].min()), float(model.x[:, i].max())
        span = high - low
        features.append({"name": name, "type": "numeric", "range": [low - span, high + span]})
    return {
        "task": "binary",
        "classes": ["0", "1"],
        "positive_class": "1",
        "features": features,
        "reference": {"path": str(reference), "score": "score"},
        "window": {"length": "5m", "bucket": "10s"},
        "min_samples": min_samples,
    }


def register(collector_url: str, name: str, body: dict[str, Any]) -> None:
    response = httpx.put(f"{collector_url}/v1/models/{name}", json=body, timeout=30)
    assert response.status_code in (200, 201), response.text


def events(
    model: CancerModel,
    prefix: str,
    n: int,
    seed: int,
    version: str = "v1",
    shift_feature: int | None = None,
    shift_sd: float = 0.0,
    flip_labels: bool = False,
) -> list[dict[str, Any]]:
    """``n`` prediction events replaying held-out rows through the model, labels inline.

    ``shift_feature``/``shift_sd`` move one feature by that many standard deviations (drift);
    ``flip_labels`` sends the opposite label (the world changed: realized accuracy drops).
    """
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(model.x), size=n)
    x = model.x[rows].copy()
    if shift_feature is not None:
        x[:, shift_feature] += shift_sd * model.x[:, shift_feature].std()
    y = model.y[rows]
    if flip_labels:
        y = 1 - y
    score = model.scores(x)
    latency = rng.gamma(2.0, 0.01, size=n)
    now = time.time()
    return [
        {
            "id": f"{prefix}-{i}",
            "timestamp": now,
            "version": version,
            "features": {f: float(v) for f, v in zip(model.features, x[i], strict=True)},
            "prediction": int(score[i] > 0.5),
            "score": float(score[i]),
            "latency_seconds": float(latency[i]),
            "label": int(y[i]),
        }
        for i in range(n)
    ]


def send(collector_url: str, name: str, batch: list[dict[str, Any]], replica: str = "r1") -> None:
    """POST a batch with the real resources of this test process (psutil) as the replica's."""
    import psutil

    me = psutil.Process()
    body = {
        "predictions": batch,
        "resources": {
            "replica": replica,
            "cpu_ratio": min(1.0, me.cpu_percent(interval=None) / 100.0),
            "memory_bytes": int(me.memory_info().rss),
        },
    }
    response = httpx.post(f"{collector_url}/v1/models/{name}/predictions", json=body, timeout=30)
    assert response.status_code == 200, response.text
    assert not response.json()["rejected"], response.json()


def fast_alert_rules(tmp: Path) -> Path:
    """A copy of deploy/prometheus/rules/alerts.yml with every ``for:`` set to 0s (for tests)."""
    source = DEPLOY / "prometheus" / "rules" / "alerts.yml"
    path = tmp / "alerts.yml"
    path.write_text(re.sub(r"(?m)^(\s*)for:\s*\S+", r"\1for: 0s", source.read_text()))
    return path


def prometheus_config(target: str) -> str:
    """1 s scrape and evaluation of one collector (job ``modelmeter``), rules in rules/."""
    return (
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "rule_files:\n  - rules/*.yml\n"
        f"scrape_configs:\n  - job_name: modelmeter\n    static_configs:\n"
        f"      - targets: ['{target}']\n"
    )


def prometheus_for(tmp: Path, target: str, with_rules: bool = True) -> ManagedProcess:
    """A real Prometheus scraping ``target`` every second, with fast alert rules and the
    recording rules from deploy/ when they exist."""
    rules: list[Path] = []
    if with_rules:
        alerts = DEPLOY / "prometheus" / "rules" / "alerts.yml"
        recording = DEPLOY / "prometheus" / "rules" / "recording.yml"
        if alerts.exists():
            rules.append(fast_alert_rules(tmp))
        if recording.exists():
            rules.append(recording)
    return prometheus_process(tmp, prometheus_config(target), rules)


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """A Dash app served by werkzeug on a free loopback port; yields its URL."""
    from werkzeug.serving import make_server

    port = free_port()
    server = make_server("127.0.0.1", port, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@contextmanager
def dashboard_server(
    prom_url: str, refresh_seconds: float = 1.0, glossary: list[Path] | None = None
) -> Iterator[str]:
    """The real dashboard app served by werkzeug on a free loopback port; yields its URL.
    ``glossary``: where the app reads the glossary (default: docs/metrics.md)."""
    from modelmeter.dashboard import create_app

    app = create_app(prom_url, refresh_seconds=refresh_seconds, glossary=glossary)
    with serve_app(app) as url:
        yield url


GLOSSARY = DEPLOY.parent / "docs" / "metrics.md"
PLACEHOLDER_FAMILIES = (
    "model_accuracy",
    "model_precision",
    "model_recall",
    "model_f1_score",
    "model:accuracy:ratio_rate5m",
    "model_feature_drift",
)


def glossary_for_tests(tmp: Path) -> list[Path]:
    """docs/metrics.md when the checkout has it, else a minimal placeholder in ``tmp`` with
    the same anchor convention (``<a id="model_accuracy"></a>``; colons become hyphens)."""
    if GLOSSARY.is_file():
        return [GLOSSARY]
    sections = []
    for family in PLACEHOLDER_FAMILIES:
        anchor = family.replace(":", "-")
        sections.append(f'<a id="{anchor}"></a>\n\n## `{family}`\n\nPlaceholder entry.\n')
    path = tmp / "metrics.md"
    path.write_text("# Metric glossary (test placeholder)\n\n" + "\n".join(sections))
    return [path]


def collector(tmp: Path) -> ManagedProcess:
    """The real collector (``python -m modelmeter collector``) on a free port, not started."""
    return collector_process(tmp)


def empty_answers() -> dict[str, Any]:
    """Prometheus answers of a fetch with no data at all (for ``build_view`` without a server)."""
    empty_vector = {"resultType": "vector", "result": []}
    empty_matrix = {"resultType": "matrix", "result": []}
    return {
        "alerts": {"alerts": []},
        "instant": empty_vector,
        "derived": empty_vector,
        "perf": empty_matrix,
        "ops": empty_matrix,
        "drift": empty_matrix,
        "resources": empty_matrix,
    }


def find_component(tree: Any, component_id: str) -> Any:
    """The Dash component with ``component_id`` inside ``tree`` (lists and children)."""
    if isinstance(tree, list | tuple):
        return next((c for c in (find_component(t, component_id) for t in tree) if c), None)
    if getattr(tree, "id", None) == component_id:
        return tree
    children = getattr(tree, "children", None)
    return find_component(children, component_id) if children is not None else None


def component_text(component: Any) -> str:
    """The text a Dash component tree shows (its string children, joined)."""
    if isinstance(component, str):
        return component
    if isinstance(component, list | tuple):
        return "".join(map(component_text, component))
    children = getattr(component, "children", None)
    return "" if children is None else component_text(children)
