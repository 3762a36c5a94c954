"""The spec document as pydantic models: what :func:`~modelmeter.spec.load_spec` accepts and
what ``PUT /v1/models/{model}`` documents (:mod:`modelmeter.service.schemas`).

The models are strict (no type guessing: ``"100"`` is no number), forbid unknown keys and
are frozen. A field whose check depends on another (``classes`` on ``task``, ``segments``
on ``features``) reads the other's validated value, so each problem is found whenever it
can be, all in one pass (:mod:`modelmeter.spec.checks`).

>>> feature = {"name": "x", "type": "numeric"}
>>> doc = SpecDocument.model_validate({"task": "regression", "features": [feature], "window": "1h"})
>>> doc.features[0].type, doc.window.length if doc.window else None, doc.thresholds
('numeric', 3600.0, None)
>>> daily = SpecDocument.model_validate({"task": "regression", "features": [feature],
...                                      "performance": "2d"})
>>> daily.performance
PerformanceDocument(window=172800.0, bucket=None)
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from modelmeter.names import is_name
from modelmeter.spec import checks
from modelmeter.spec.errors import along, expect, got, problem
from modelmeter.spec.fields import (
    MAX_FEATURES,
    MAX_SEGMENTS,
    Categories,
    ClassName,
    Column,
    Duration,
    FeatureName,
    Kind,
    Number,
    Range,
    Share,
    Task,
    Whole,
)

__all__ = [
    "DEFAULT_THRESHOLDS",
    "DriftDocument",
    "FeatureDocument",
    "MultivariateDocument",
    "PerformanceDocument",
    "ReferenceDocument",
    "SpecDocument",
    "Thresholds",
    "WindowDocument",
]


class _Document(BaseModel):
    """A part of the spec document: strict, no unknown keys, read-only."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, json_schema_mode_override="validation"
    )


class FeatureDocument(_Document):
    """One model input: a name, a type and its expected range or categories."""

    name: FeatureName
    type: Annotated[Kind, expect("expected 'numeric' or 'categorical'")]
    range: Range | None = Field(default=None, description="numeric only: [low, high], null = open")
    categories: Categories | None = Field(default=None, description="categorical only")

    @field_validator("range", mode="before")
    @classmethod
    def _range_is_numeric(cls, value: Any, info: ValidationInfo) -> Any:
        if info.data.get("type") == "categorical":
            raise problem("only numeric features have a range")
        return value

    @field_validator("categories", mode="wrap")
    @classmethod
    def _categories(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> list[str] | None:
        if info.data.get("type") == "numeric":
            raise problem("only categorical features have categories")
        categories: list[str] | None = along(
            handler, value, checks.duplicates(checks.texts(value), "category")
        )
        return categories


class ReferenceDocument(_Document):
    """Where the reference data is and which columns hold the model outputs."""

    path: Column | None = Field(
        default=None, description="CSV or Parquet, relative to the spec file; or upload it"
    )
    prediction: Column = "prediction"
    label: Column = "label"
    score: Column | None = Field(
        default=None, description="binary: P(positive class); default 'score'"
    )
    probabilities: (
        Annotated[
            list[Annotated[str, Field(min_length=1)]],
            expect("expected a list of column names", whole=True),
        ]
        | None
    ) = Field(default=None, description="one column per class, in classes order; default p_<class>")


class WindowDocument(_Document):
    """The sliding window and the bucket it moves by."""

    length: Duration = Field(default="5m", validate_default=True)
    bucket: Duration = Field(default="10s", validate_default=True)

    @model_validator(mode="after")
    def _whole_buckets(self) -> WindowDocument:
        checks.window(self.length, self.bucket)
        return self


def _window_shorthand(value: Any) -> Any:
    """``window: 1h`` is ``window: {length: 1h}``."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return {"length": value}
    return value


class PerformanceDocument(_Document):
    """The performance window: realized performance (accuracy, MAE...) is computed on the
    labels received in it, counted by arrival. Longer than the window, it keeps figures
    between the batches of a model labeled once a day; drift, quality, operations, estimated
    performance and label coverage keep the window.

    Both fields default: ``window`` to ``window.length``; ``bucket`` to ``window.bucket``
    without ``window``, otherwise to the larger of ``window.bucket`` and ``window / 48``,
    rounded up to whole seconds.
    """

    window: Duration | None = Field(default=None, description="default: window.length")
    bucket: Duration | None = Field(
        default=None,
        description="default: window.bucket without performance.window, otherwise the larger "
        "of window.bucket and performance.window / 48 (rounded up to whole seconds)",
    )


def _performance_shorthand(value: Any) -> Any:
    """``performance: 2d`` is ``performance: {window: 2d}``."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return {"window": value}
    return value


class MultivariateDocument(_Document):
    """Multivariate drift: PCA reconstruction error of the features together."""

    method: Annotated[Literal["pca"], expect("expected 'pca'")] = "pca"
    variance: Annotated[float, Share("a share of variance")] = 0.65
    z: Annotated[float, Number(0.5, 10.0)] = 3.0


def _multivariate_switch(value: Any) -> Any:
    """``true`` or nothing: on with the defaults; ``false``: off (``None`` once validated)."""
    if value is None or value is True:
        return {}
    return None if value is False else value


class DriftDocument(_Document):
    """Drift tests: bins per feature, the false discovery rate, multivariate drift."""

    bins: Annotated[int, Whole(2, 100)] = 10
    fdr: Annotated[float, Share("a level")] = 0.05
    multivariate: Annotated[
        MultivariateDocument | None,
        BeforeValidator(
            _multivariate_switch, json_schema_input_type=bool | MultivariateDocument | None
        ),
    ] = Field(
        default_factory=MultivariateDocument,
        description="on (true or a mapping) unless false; used with 2 or more features",
    )


_Ratio = Annotated[float, Number(0.0, 1.0)]
_Positive = Annotated[float, Number(0.0)]


class Thresholds(_Document):
    """Alert thresholds, exported as ``model_alert_threshold{threshold=...}``."""

    accuracy_warning: _Ratio = 0.80
    accuracy_critical: _Ratio = Field(default=0.70, validate_default=True)
    error_rate: _Positive = 0.1
    latency_p95_seconds: _Positive = 0.5
    cpu_ratio: _Positive = 0.85
    memory_bytes: _Positive = 786432000.0
    drift_psi: _Positive = 0.2
    prediction_drift_psi: _Positive = 0.2
    quality_ratio: _Ratio = 0.05
    estimated_accuracy: _Ratio = 0.80
    label_coverage: _Ratio = 0.5
    rejected_ratio: _Ratio = 0.05
    silence_seconds: _Positive = 900.0

    @field_validator("accuracy_critical")
    @classmethod
    def _below_warning(cls, value: float, info: ValidationInfo) -> float:
        warning = info.data.get("accuracy_warning")
        if warning is not None:
            checks.threshold_order(value, warning)
        return value


#: Alert thresholds exported as ``model_alert_threshold{threshold=...}``, with defaults.
DEFAULT_THRESHOLDS = MappingProxyType(
    {name: float(field.default) for name, field in Thresholds.model_fields.items()}
)


def _features_message(value: Any) -> str:
    if isinstance(value, list) and len(value) > MAX_FEATURES:
        return f"at most {MAX_FEATURES} features, got {len(value)}"
    return f"expected a non-empty list of {{name, type}} entries, got {got(value)}"


_Segment = Annotated[str, expect("expected the name of a categorical feature")]


class SpecDocument(_Document):
    """A model spec (YAML or JSON): what is monitored and how."""

    task: Annotated[Task, expect("expected 'binary', 'multiclass' or 'regression'")]
    classes: Annotated[list[ClassName] | None, expect("expected a list of class values")] = Field(
        default=None, validate_default=True, description="binary: 2 values; multiclass: 2 or more"
    )
    positive_class: ClassName | None = Field(
        default=None, description="binary only; default: the last class"
    )
    features: Annotated[
        list[FeatureDocument],
        Field(min_length=1, max_length=MAX_FEATURES),
        expect(_features_message),
    ]
    reference: ReferenceDocument | None = None
    window: Annotated[
        WindowDocument | None,
        BeforeValidator(_window_shorthand, json_schema_input_type=WindowDocument | Duration | None),
    ] = None
    performance: Annotated[
        PerformanceDocument | None,
        BeforeValidator(
            _performance_shorthand,
            json_schema_input_type=PerformanceDocument | Duration | None,
        ),
    ] = Field(default=None, description="the window of realized performance; default: window")
    min_samples: Annotated[int, Whole(1, 10**9)] = 100
    drift: DriftDocument | None = None
    thresholds: Thresholds | None = None
    segments: (
        Annotated[
            list[_Segment],
            Field(min_length=1, max_length=MAX_SEGMENTS),
            expect(checks.segment_list),
        ]
        | None
    ) = Field(default=None, description="categorical features with figures per value")

    @field_validator("classes", mode="wrap")
    @classmethod
    def _classes(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> list[str] | None:
        task = info.data.get("task")
        checks.class_list(value, task)
        classes: list[str] | None
        if task == "regression" or not isinstance(value, list):
            classes = handler(value)
        else:
            classes = along(handler, value, checks.class_values(value, task))
        return classes

    @field_validator("positive_class", mode="wrap")
    @classmethod
    def _positive_class(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> str | None:
        positive: str | None = handler(value)
        checks.positive_class(positive, value, info.data.get("task"), info.data.get("classes"))
        return positive

    @field_validator("features", mode="wrap")
    @classmethod
    def _features(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> list[FeatureDocument]:
        names = [
            item.get("name")
            if isinstance(item, Mapping) and is_name("feature", item.get("name"))
            else None
            for item in (value if isinstance(value, list) else [])
        ]
        features: list[FeatureDocument] = along(
            handler, value, checks.duplicates(names, "feature name", key="name")
        )
        return features

    @field_validator("reference")
    @classmethod
    def _reference(
        cls, value: ReferenceDocument | None, info: ValidationInfo
    ) -> ReferenceDocument | None:
        if value is not None:
            checks.reference(value, info.data.get("task"), info.data.get("classes"))
        return value

    @field_validator("performance")
    @classmethod
    def _performance(
        cls, value: PerformanceDocument | None, info: ValidationInfo
    ) -> PerformanceDocument | None:
        if value is not None and "window" in info.data:  # else the window is invalid
            window = info.data["window"] or WindowDocument()
            checks.performance(value, window.length, window.bucket)
        return value

    @field_validator("segments", mode="wrap")
    @classmethod
    def _segments(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> list[str] | None:
        features = info.data.get("features")
        if features is not None and isinstance(value, list) and 1 <= len(value) <= MAX_SEGMENTS:
            checks.segments(value, features)
        segments: list[str] | None = handler(value)
        return segments
