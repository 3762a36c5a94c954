"""What a monitor watches: the features, the task, the windows and the reference data.

Every value is checked when it is built, so a bad configuration fails at once with a message
that names the field and says what to use instead.

>>> spec = FeatureSpec("temperature", "numeric", low=-40.0, high=50.0)
>>> config = MonitorConfig(task="binary", features=(spec,), classes=("0", "1"))
>>> config.positive_class, config.n_buckets
('1', 30)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_MAX_CATEGORIES",
    "FeatureSpec",
    "MonitorConfig",
    "MultivariateConfig",
    "ReferenceData",
]

TASKS = ("binary", "multiclass", "regression")
KINDS = ("numeric", "categorical")
MULTIVARIATE_METHODS = ("pca",)
#: Most categories a categorical feature without spec categories takes from the reference.
DEFAULT_MAX_CATEGORIES = 100
#: Most buckets in a window (and in the performance window).
_MAX_BUCKETS = 100_000


@dataclass(frozen=True)
class FeatureSpec:
    """One input feature: its name, its kind and what values are expected.

    ``low`` and ``high`` (numeric, inclusive) bound the expected range; ``categories``
    (categorical) fixes the vocabulary, otherwise the reference data's values are used.

    >>> FeatureSpec("station", "categorical", categories=("a", "b")).categories
    ('a', 'b')
    """

    name: str
    kind: Literal["numeric", "categorical"]
    low: float | None = None
    high: float | None = None
    categories: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"FeatureSpec.name must be a non-empty string, got {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(
                f"feature {self.name!r}: invalid kind {self.kind!r}; valid kinds are {KINDS}"
            )
        if self.kind == "categorical" and (self.low is not None or self.high is not None):
            raise ValueError(f"feature {self.name!r}: low/high apply to numeric features only")
        if self.kind == "numeric" and self.categories is not None:
            raise ValueError(f"feature {self.name!r}: categories apply to categorical features")
        for bound in (self.low, self.high):
            if bound is not None and math.isnan(bound):
                raise ValueError(f"feature {self.name!r}: low/high must be numbers, not NaN")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"feature {self.name!r}: low {self.low} is above high {self.high}")
        if self.categories is not None:
            if not all(isinstance(c, str) for c in self.categories):
                raise ValueError(f"feature {self.name!r}: categories must be strings")
            if len(set(self.categories)) != len(self.categories) or not self.categories:
                raise ValueError(f"feature {self.name!r}: categories must be distinct, non-empty")


@dataclass(frozen=True)
class MultivariateConfig:
    """Multivariate drift (see :mod:`modelmeter.engine.multivariate`): the method, the share
    of the reference's variance the PCA keeps, and the band half-width ``z`` in standard
    deviations of the window's mean error (``z = 3``: 0.27 % false alarms per evaluation).

    >>> MultivariateConfig(variance=0.8).method
    'pca'
    """

    method: Literal["pca"] = "pca"
    variance: float = 0.65
    z: float = 3.0

    def __post_init__(self) -> None:
        if self.method not in MULTIVARIATE_METHODS:
            raise ValueError(
                f"invalid multivariate method {self.method!r}; valid methods are "
                f"{MULTIVARIATE_METHODS}"
            )
        if not 0 < self.variance < 1:
            raise ValueError(f"multivariate variance must be in (0, 1), got {self.variance}")
        if not (self.z > 0 and math.isfinite(self.z)):
            raise ValueError(f"multivariate z must be a finite number > 0, got {self.z}")


@dataclass(frozen=True)
class MonitorConfig:
    """The task, the features and the window of one monitored model version.

    The window is a ring of ``ceil(window_seconds / bucket_seconds)`` buckets. Drift and
    performance figures are NaN while their window holds fewer than ``min_samples`` values.
    ``positive_class`` (binary only) defaults to the last class. A categorical feature without
    spec ``categories`` takes the ``max_categories`` most frequent reference values as its
    vocabulary; other values count as its ``other`` bin. ``multivariate`` (None: off) is used
    when the model has at least 2 features. ``segments`` names up to 3 categorical features
    whose values (at most 20 each, plus ``other``) also get performance, volume and label
    coverage of their own (see :mod:`modelmeter.engine.segments`).

    Realized performance (labels, counted in the bucket of their arrival) has a window of its
    own, the *performance window*: ``performance_window_seconds`` in buckets of
    ``performance_bucket_seconds`` (None: the window's length, the window's bucket), so that
    labels that come in a daily batch give figures all day. Its ``min_samples`` counts the
    labels in that window. :attr:`performance_window`, :attr:`performance_bucket` and
    :attr:`performance_n_buckets` are the values in use.

    >>> MonitorConfig(task="regression", features=(), window_seconds=60, bucket_seconds=5).n_buckets
    12
    >>> daily = MonitorConfig(task="regression", features=(), performance_window_seconds=90_000,
    ...                       performance_bucket_seconds=1_800)
    >>> daily.performance_window, daily.performance_bucket, daily.performance_n_buckets
    (90000.0, 1800.0, 50)
    >>> MonitorConfig(task="regression", features=()).performance_n_buckets  # the window's
    30
    """

    task: Literal["binary", "multiclass", "regression"]
    features: tuple[FeatureSpec, ...]
    classes: tuple[str, ...] = ()
    positive_class: str | None = None
    window_seconds: float = 300.0
    bucket_seconds: float = 10.0
    min_samples: int = 100
    drift_bins: int = 10
    drift_fdr: float = 0.05
    max_categories: int = DEFAULT_MAX_CATEGORIES
    multivariate: MultivariateConfig | None = MultivariateConfig()
    segments: tuple[str, ...] = ()
    performance_window_seconds: float | None = None
    performance_bucket_seconds: float | None = None
    n_buckets: int = field(init=False, repr=False, compare=False)
    performance_n_buckets: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"invalid task {self.task!r}; valid tasks are {TASKS}")
        names = [f.name for f in self.features]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"feature names must be unique; repeated: {duplicated}")
        self._check_classes()
        if not (self.bucket_seconds > 0 and math.isfinite(self.bucket_seconds)):
            raise ValueError(f"bucket_seconds must be > 0, got {self.bucket_seconds}")
        if not (self.window_seconds >= self.bucket_seconds and math.isfinite(self.window_seconds)):
            raise ValueError(
                f"window_seconds ({self.window_seconds}) must be >= bucket_seconds "
                f"({self.bucket_seconds})"
            )
        n_buckets = math.ceil(self.window_seconds / self.bucket_seconds - 1e-9)
        if n_buckets > _MAX_BUCKETS:
            raise ValueError(
                f"window_seconds / bucket_seconds = {n_buckets} buckets; use larger buckets "
                "(at most 100,000 per window)"
            )
        object.__setattr__(self, "n_buckets", n_buckets)
        object.__setattr__(self, "performance_n_buckets", self._check_performance_window())
        if int(self.min_samples) != self.min_samples or self.min_samples < 1:
            raise ValueError(f"min_samples must be an integer >= 1, got {self.min_samples}")
        if int(self.drift_bins) != self.drift_bins or not 1 <= self.drift_bins <= 1000:
            raise ValueError(f"drift_bins must be an integer in 1..1000, got {self.drift_bins}")
        if int(self.max_categories) != self.max_categories or self.max_categories < 1:
            raise ValueError(f"max_categories must be an integer >= 1, got {self.max_categories}")
        if not 0 < self.drift_fdr < 1:
            raise ValueError(f"drift_fdr must be in (0, 1), got {self.drift_fdr}")
        self._check_segments()

    def _check_performance_window(self) -> int:
        """The performance window's bucket count (ValueError naming the field if it is bad)."""
        bucket = self.performance_bucket_seconds
        if bucket is not None and not (bucket > 0 and math.isfinite(bucket)):
            raise ValueError(f"performance_bucket_seconds must be > 0, got {bucket}")
        length, width = self.performance_window, self.performance_bucket
        if not (length >= width and math.isfinite(length)):
            which = "" if bucket is not None else ", the window's bucket"
            raise ValueError(
                f"performance_window_seconds ({length}) must be >= performance_bucket_seconds "
                f"({width}{which})"
            )
        n_buckets = math.ceil(length / width - 1e-9)
        if n_buckets > _MAX_BUCKETS:
            raise ValueError(
                f"performance_window_seconds / performance_bucket_seconds = {n_buckets} "
                "buckets; use larger buckets (at most 100,000 per window)"
            )
        return n_buckets

    @property
    def performance_window(self) -> float:
        """Length in seconds of the performance window: ``performance_window_seconds``, or
        the window's length."""
        value = self.performance_window_seconds
        return float(self.window_seconds if value is None else value)

    @property
    def performance_bucket(self) -> float:
        """Bucket in seconds of the performance window: ``performance_bucket_seconds``, or
        the window's bucket."""
        value = self.performance_bucket_seconds
        return float(self.bucket_seconds if value is None else value)

    def _check_segments(self) -> None:
        kinds = {f.name: f.kind for f in self.features}
        if len(self.segments) > 3:
            raise ValueError(f"at most 3 segments, got {len(self.segments)}")
        if len(set(self.segments)) != len(self.segments):
            raise ValueError(f"segments must be distinct, got {self.segments}")
        for name in self.segments:
            if kinds.get(name) != "categorical":
                raise ValueError(
                    f"segment {name!r} must name a categorical feature; categorical features "
                    f"are {[n for n, k in kinds.items() if k == 'categorical']}"
                )

    def _check_classes(self) -> None:
        if self.task == "regression":
            if self.classes or self.positive_class is not None:
                raise ValueError("classes and positive_class apply to classification tasks only")
            return
        if not all(isinstance(c, str) and c for c in self.classes):
            raise ValueError(
                f"classes must be non-empty strings (convert ints with str()), got {self.classes}"
            )
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be distinct, got {self.classes}")
        if self.task == "binary":
            if len(self.classes) != 2:
                raise ValueError(f"a binary task needs exactly 2 classes, got {self.classes}")
            if self.positive_class is None:
                object.__setattr__(self, "positive_class", self.classes[-1])
            elif self.positive_class not in self.classes:
                raise ValueError(
                    f"positive_class {self.positive_class!r} is not one of {self.classes}"
                )
        else:
            if len(self.classes) < 2:
                raise ValueError(f"a multiclass task needs at least 2 classes, got {self.classes}")
            if self.positive_class is not None:
                raise ValueError("positive_class applies to binary tasks only")

    @property
    def is_classification(self) -> bool:
        """True for binary and multiclass tasks."""
        return self.task != "regression"


@dataclass(frozen=True)
class ReferenceData:
    """The data the model is compared against: features, predictions, labels, scores.

    Numeric features are float64 (NaN = missing), categorical ones object arrays of str or
    None. Predictions and labels are class strings (classification) or float64 (regression).
    ``scores`` is P(positive) with shape (n,) for binary tasks, (n, k) in ``classes`` order for
    multiclass ones; without scores there is no estimated performance.
    """

    features: Mapping[str, npt.NDArray[np.generic]]
    predictions: npt.NDArray[np.generic]
    labels: npt.NDArray[np.generic]
    scores: npt.NDArray[np.float64] | None = None
