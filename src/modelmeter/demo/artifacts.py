"""The demo model's spec and reference data on disk, and its registration with the collector.

``reference.csv`` and ``spec.yaml`` are written into the data directory on the first run and
reused afterwards (edit ``spec.yaml`` to change thresholds; delete both to regenerate).

>>> spec = build_spec(["a"], {"a": (0.0, 1.0)}, window="2m", bucket="5s", min_samples=50)
>>> spec["window"], spec["features"][0]
({'length': '2m', 'bucket': '5s'}, {'name': 'a', 'type': 'numeric', 'range': [-0.25, 1.25]})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import yaml

__all__ = ["DemoArtifacts", "build_spec", "ensure_artifacts", "register"]


def demo_thresholds(reference_accuracy: float) -> dict[str, float]:
    """Accuracy thresholds below the model's accuracy on its reference rows.

    Warning 0.07 and critical 0.13 below it: the day-to-day spread of a 2-minute window of
    healthy data stays above the first; the concept drift of the rainfall data falls below
    the second.

    >>> demo_thresholds(0.80)
    {'accuracy_warning': 0.73, 'accuracy_critical': 0.67, 'estimated_accuracy': 0.73}
    """
    warning = round(reference_accuracy - 0.07, 2)
    return {
        "accuracy_warning": warning,
        "accuracy_critical": round(reference_accuracy - 0.13, 2),
        "estimated_accuracy": warning,
    }


class DemoArtifacts:
    """Paths of the spec and reference files of one demo model."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.spec_path = directory / "spec.yaml"
        self.reference_path = directory / "reference.csv"

    def exist(self) -> bool:
        return self.spec_path.is_file() and self.reference_path.is_file()

    def __repr__(self) -> str:
        return f"DemoArtifacts({str(self.directory)!r})"


def build_spec(
    features: Sequence[str],
    ranges: Mapping[str, tuple[float, float]],
    window: str,
    bucket: str,
    min_samples: int,
    reference_accuracy: float | None = None,
) -> dict[str, Any]:
    """The demo spec (docs/contract.md "Spec"): binary, numeric features with a widened range.

    With ``reference_accuracy``, the accuracy thresholds are set below it (``demo_thresholds``).
    The expected range of each feature is its training range widened by a quarter of its
    span on each side, so that only clearly new values count as out of range.
    """
    specs = []
    for name in features:
        low, high = ranges[name]
        pad = 0.25 * (high - low)
        specs.append(
            {"name": name, "type": "numeric", "range": [round(low - pad, 4), round(high + pad, 4)]}
        )
    spec: dict[str, Any] = {
        "task": "binary",
        "classes": ["0", "1"],
        "positive_class": "1",
        "features": specs,
        "reference": {
            "path": "reference.csv",
            "prediction": "prediction",
            "label": "label",
            "score": "score",
        },
        "window": {"length": window, "bucket": bucket},
        "min_samples": int(min_samples),
    }
    if reference_accuracy is not None:
        spec["thresholds"] = demo_thresholds(reference_accuracy)
    return spec


def ensure_artifacts(
    directory: Path,
    reference: pd.DataFrame,
    training: pd.DataFrame,
    window: str,
    bucket: str,
    min_samples: int,
    reference_accuracy: float | None = None,
) -> tuple[DemoArtifacts, bool]:
    """Write reference.csv and spec.yaml unless both exist; return (paths, written)."""
    artifacts = DemoArtifacts(directory)
    if artifacts.exist():
        return artifacts, False
    directory.mkdir(parents=True, exist_ok=True)
    features = [str(c) for c in training.columns]
    ranges = {c: (float(training[c].min()), float(training[c].max())) for c in features}
    spec = build_spec(features, ranges, window, bucket, min_samples, reference_accuracy)
    reference.to_csv(artifacts.reference_path, index=False)
    header = "# modelmeter demo model spec (written by `modelmeter demo`; edit freely)\n"
    artifacts.spec_path.write_text(header + yaml.safe_dump(spec, sort_keys=False))
    return artifacts, True


def register(
    collector_url: str, model: str, artifacts: DemoArtifacts, token: str | None = None
) -> dict[str, Any]:
    """PUT the spec with its reference data (multipart upload) to the collector.

    Raises ``RuntimeError`` with the collector's message when it refuses the spec.
    """
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with artifacts.spec_path.open("rb") as spec, artifacts.reference_path.open("rb") as ref:
        response = httpx.put(
            f"{collector_url.rstrip('/')}/v1/models/{model}",
            files={
                "spec": ("spec.yaml", spec, "application/yaml"),
                "reference": ("reference.csv", ref, "text/csv"),
            },
            headers=headers,
            timeout=60.0,
        )
    if response.status_code >= 300:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise RuntimeError(
            f"the collector refused the demo spec {artifacts.spec_path} "
            f"(HTTP {response.status_code}): {detail}"
        )
    body: dict[str, Any] = response.json()
    return body
