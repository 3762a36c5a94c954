"""The validated spec the rest of modelmeter reads: frozen :class:`ModelSpec`,
:class:`Feature` and :class:`ReferenceColumns` (built by :func:`~modelmeter.spec.load_spec`
from a :class:`~modelmeter.spec.schema.SpecDocument`).

>>> spec = ModelSpec(task="regression", features=(Feature("x", "numeric"),))
>>> spec.feature_names, spec.window_seconds, spec.thresholds["drift_psi"]
(('x',), 300.0, 0.2)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelmeter.spec.checks import performance_window
from modelmeter.spec.fields import Kind, Task
from modelmeter.spec.schema import DEFAULT_THRESHOLDS
from modelmeter.units import format_duration

if TYPE_CHECKING:
    from modelmeter.engine import MonitorConfig

__all__ = ["Feature", "ModelSpec", "ReferenceColumns"]


@dataclass(frozen=True)
class Feature:
    """One model input: a name, a kind and its expected values.

    ``low``/``high`` bound a numeric feature (inclusive, ``None`` = open);
    ``categories`` is the expected vocabulary of a categorical one (``None`` = any).
    """

    name: str
    kind: Kind
    low: float | None = None
    high: float | None = None
    categories: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The spec form, ``{"name", "type", "range"?, "categories"?}``."""
        out: dict[str, Any] = {"name": self.name, "type": self.kind}
        if self.low is not None or self.high is not None:
            out["range"] = [self.low, self.high]
        if self.categories is not None:
            out["categories"] = list(self.categories)
        return out


@dataclass(frozen=True)
class ReferenceColumns:
    """Where the reference data lives and which columns hold the model outputs.

    ``path`` is relative to the spec file (``None`` when the file is uploaded with the
    spec). ``score`` (binary, P(positive)) and ``probabilities`` (one column per class)
    are ``None`` when the spec does not name them; the columns ``score`` and ``p_<class>``
    are then used if present, and estimation is off if they are not.
    """

    path: str | None = None
    prediction: str = "prediction"
    label: str = "label"
    score: str | None = None
    probabilities: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The spec form; unnamed optional columns are left out."""
        out: dict[str, Any] = {}
        if self.path is not None:
            out["path"] = self.path
        out["prediction"] = self.prediction
        out["label"] = self.label
        if self.score is not None:
            out["score"] = self.score
        if self.probabilities is not None:
            out["probabilities"] = list(self.probabilities)
        return out


def _default_thresholds() -> Mapping[str, float]:
    return DEFAULT_THRESHOLDS


@dataclass(frozen=True)
class ModelSpec:
    """A validated model spec (see :func:`load_spec`).

    ``thresholds`` holds every threshold name of :data:`DEFAULT_THRESHOLDS`, with the
    spec's values over the defaults. ``base_dir`` is where a relative reference path is
    resolved (the spec file's folder); it is not part of the spec's value.

    ``performance_window`` and ``performance_bucket`` are the spec's ``performance.window``
    and ``performance.bucket`` (None: the default, see
    :func:`~modelmeter.spec.checks.performance_window`); both are None when the performance
    window is the window itself, so that such a spec has one form (and one ``to_dict``).
    :attr:`performance_window_seconds` and :attr:`performance_bucket_seconds` are the values
    in use.

    >>> import json
    >>> from modelmeter.spec import load_spec
    >>> spec = ModelSpec(task="regression", features=(Feature("x", "numeric"),))
    >>> load_spec(json.dumps(spec.to_dict())) == spec
    True
    >>> spec.performance_window_seconds, spec.performance_bucket_seconds, spec.performance_window
    (300.0, 10.0, None)
    >>> daily = ModelSpec(task="regression", features=spec.features, performance_window=86400.0)
    >>> daily.performance_window_seconds, daily.performance_bucket_seconds
    (86400.0, 1800.0)
    >>> daily.to_dict()["performance"], load_spec(daily.to_dict()) == daily
    ({'window': '1d', 'bucket': '30m'}, True)
    """

    task: Task
    features: tuple[Feature, ...]
    classes: tuple[str, ...] = ()
    positive_class: str | None = None
    reference: ReferenceColumns = field(default_factory=ReferenceColumns)
    window_seconds: float = 300.0
    bucket_seconds: float = 10.0
    min_samples: int = 100
    drift_bins: int = 10
    drift_fdr: float = 0.05
    #: multivariate drift (``drift.multivariate``): on unless ``false``; used with >= 2 features
    multivariate: bool = True
    multivariate_variance: float = 0.65
    multivariate_z: float = 3.0
    #: categorical features whose values get figures of their own (``segments``)
    segments: tuple[str, ...] = ()
    thresholds: Mapping[str, float] = field(default_factory=_default_thresholds)
    base_dir: Path | None = field(default=None, compare=False, repr=False)
    #: ``performance.window`` / ``performance.bucket``: None, or both set (see above)
    performance_window: float | None = None
    performance_bucket: float | None = None

    def __post_init__(self) -> None:
        window, bucket = performance_window(
            self.window_seconds,
            self.bucket_seconds,
            self.performance_window,
            self.performance_bucket,
        )
        same = (window, bucket) == (self.window_seconds, self.bucket_seconds)
        object.__setattr__(self, "performance_window", None if same else window)
        object.__setattr__(self, "performance_bucket", None if same else bucket)

    @property
    def performance_window_seconds(self) -> float:
        """Length of the performance window (realized performance) in seconds."""
        return self.performance_window or float(self.window_seconds)

    @property
    def performance_bucket_seconds(self) -> float:
        """Bucket of the performance window in seconds."""
        return self.performance_bucket or float(self.bucket_seconds)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Feature names in spec order."""
        return tuple(f.name for f in self.features)

    @property
    def has_multivariate(self) -> bool:
        """True when the model exports multivariate drift (on, and at least 2 features)."""
        return self.multivariate and len(self.features) >= 2

    def monitor_config(self) -> MonitorConfig:
        """The engine configuration for this spec."""
        from modelmeter.engine import FeatureSpec, MonitorConfig, MultivariateConfig

        return MonitorConfig(
            task=self.task,
            features=tuple(
                FeatureSpec(
                    name=f.name, kind=f.kind, low=f.low, high=f.high, categories=f.categories
                )
                for f in self.features
            ),
            classes=self.classes,
            positive_class=self.positive_class,
            window_seconds=self.window_seconds,
            bucket_seconds=self.bucket_seconds,
            min_samples=self.min_samples,
            drift_bins=self.drift_bins,
            drift_fdr=self.drift_fdr,
            multivariate=MultivariateConfig("pca", self.multivariate_variance, self.multivariate_z)
            if self.multivariate
            else None,
            segments=self.segments,
            performance_window_seconds=self.performance_window_seconds,
            performance_bucket_seconds=self.performance_bucket_seconds,
        )

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON-able data; ``load_spec(json.dumps(...))`` gives it back."""
        out: dict[str, Any] = {"task": self.task}
        if self.task != "regression":
            out["classes"] = list(self.classes)
        if self.positive_class is not None:
            out["positive_class"] = self.positive_class
        out["features"] = [f.to_dict() for f in self.features]
        out["reference"] = self.reference.to_dict()
        out["window"] = {
            "length": format_duration(self.window_seconds),
            "bucket": format_duration(self.bucket_seconds),
        }
        if self.performance_window is not None and self.performance_bucket is not None:
            out["performance"] = {
                "window": format_duration(self.performance_window),
                "bucket": format_duration(self.performance_bucket),
            }
        out["min_samples"] = self.min_samples
        out["drift"] = {"bins": self.drift_bins, "fdr": self.drift_fdr}
        out["drift"]["multivariate"] = (
            {"method": "pca", "variance": self.multivariate_variance, "z": self.multivariate_z}
            if self.multivariate
            else False
        )
        out["thresholds"] = dict(self.thresholds)
        if self.segments:
            out["segments"] = list(self.segments)
        return out
