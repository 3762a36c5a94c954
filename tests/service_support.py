"""Test data for the collector tests: a seeded binary model, its spec and reference, events.

Used by tests/test_service_*.py, tests/test_durability.py, tests/test_schemathesis.py and
bench/ingest.py. Everything is generated from a fixed seed; nothing is invented at random
at run time without one.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

CLASSES = ("0", "1")
NUMERIC = ("x1", "x2", "x3")
CATEGORIES = ("a", "b", "c")


def spec_dict(
    reference_path: str | None = None, n_numeric: int = 3, min_samples: int = 20
) -> dict[str, Any]:
    """A binary spec with ``n_numeric`` numeric features in [-5, 5] and one categorical."""
    spec: dict[str, Any] = {
        "task": "binary",
        "classes": list(CLASSES),
        "positive_class": "1",
        "features": [
            {"name": f"x{i + 1}", "type": "numeric", "range": [-5, 5]} for i in range(n_numeric)
        ]
        + [{"name": "station", "type": "categorical", "categories": list(CATEGORIES)}],
        "window": {"length": "5m", "bucket": "10s"},
        "min_samples": min_samples,
    }
    if reference_path is not None:
        spec["reference"] = {"path": reference_path, "score": "score"}
    else:
        spec["reference"] = {"score": "score"}
    return spec


def reference_csv(n: int = 400, n_numeric: int = 3, seed: int = 1) -> bytes:
    """Reference rows: features, prediction, label and score of a logistic model."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_numeric))
    score = 1 / (1 + np.exp(-(x[:, 0] + 0.5 * x[:, 1 % n_numeric])))
    label = (rng.random(n) < score).astype(int)
    prediction = (score > 0.5).astype(int)
    station = rng.choice(CATEGORIES, size=n)
    out = io.StringIO()
    names = [f"x{i + 1}" for i in range(n_numeric)]
    out.write(",".join([*names, "station", "prediction", "label", "score"]) + "\n")
    for i in range(n):
        values = [f"{v:.6f}" for v in x[i]]
        out.write(
            ",".join([*values, station[i], str(prediction[i]), str(label[i]), f"{score[i]:.6f}"])
            + "\n"
        )
    return out.getvalue().encode()


def register_upload(url: str, model: str, min_samples: int = 20) -> None:
    """Register this module's spec and reference on the collector at ``url`` (multipart upload,
    so no reference directory is needed); 200 or 201, else the test fails."""
    import httpx
    import yaml

    spec = yaml.safe_dump(spec_dict(min_samples=min_samples), sort_keys=False)
    response = httpx.put(
        f"{url}/v1/models/{model}",
        files={
            "spec": ("spec.yaml", spec, "application/yaml"),
            "reference": ("reference.csv", reference_csv(), "text/csv"),
        },
        timeout=30.0,
    )
    assert response.status_code in (200, 201), response.text


def write_reference(directory: Path, n_numeric: int = 3) -> Path:
    path = directory / "reference.csv"
    path.write_bytes(reference_csv(n_numeric=n_numeric))
    return path


def events(
    start: int, n: int, seed: int, n_numeric: int = 3, ts: float | None = None
) -> list[dict[str, Any]]:
    """``n`` valid prediction events with ids ``e{start}..``; each carries its true label
    under the key ``_label`` (strip it before sending, or send it as a later label)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_numeric))
    score = 1 / (1 + np.exp(-(x[:, 0] + 0.5 * x[:, 1 % n_numeric])))
    label = (rng.random(n) < score).astype(int)
    station = rng.choice(CATEGORIES, size=n)
    out = []
    for i in range(n):
        event: dict[str, Any] = {
            "id": f"e{start + i}",
            "features": {f"x{j + 1}": float(x[i, j]) for j in range(n_numeric)}
            | {"station": str(station[i])},
            "prediction": int(score[i] > 0.5),
            "score": float(score[i]),
            "latency_seconds": float(rng.gamma(2.0, 0.01)),
            "_label": str(label[i]),
        }
        if ts is not None:
            event["timestamp"] = ts
        out.append(event)
    return out


def without_labels(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "_label"} for e in batch]


def collector(
    tmp: Path,
    env: dict[str, str] | None = None,
    data_dir: Path | None = None,
    port: int | None = None,
) -> Any:
    """The real collector process (tests/helpers.py), not yet started."""
    from helpers import collector_process

    return collector_process(tmp, port=port, data_dir=data_dir, env=env)


def metric_series(text: str) -> set[str]:
    """The series (name and labels) of a /metrics text, without values; process_* and
    python_* left out (their values, not their set, change)."""
    out = set()
    for line in text.splitlines():
        if not line or line.startswith("#") or line.startswith(("process_", "python_")):
            continue
        out.add(line.rsplit(" ", 1)[0])
    return out


def sample(text: str, series: str) -> float | None:
    """The value of one exact series line in a /metrics text."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None
