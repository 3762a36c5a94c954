"""Model specs: what a monitored model looks like, loaded from YAML or JSON.

A spec names the task, the classes, each feature with its type and expected range or
categories, the reference data (CSV or Parquet), the window and the alert thresholds.
:func:`load_spec` parses and validates it into a frozen :class:`ModelSpec`;
:func:`load_reference` reads and validates the reference data into the engine's
``ReferenceData``. Every problem is reported at once in one :class:`SpecError` whose
message names the field path (``features[3].type``) and what was expected.

Example:

>>> spec = load_spec('''
... task: binary
... classes: [0, 1]
... positive_class: 1
... features:
...   - {name: age, type: numeric, range: [0, 120]}
...   - {name: station, type: categorical, categories: [a, b]}
... window: {length: 5m, bucket: 10s}
... thresholds: {accuracy_warning: 0.9}
... ''')
>>> spec.classes, spec.positive_class, spec.window_seconds, spec.bucket_seconds
(('0', '1'), '1', 300.0, 10.0)
>>> spec.thresholds["accuracy_warning"], spec.thresholds["accuracy_critical"]
(0.9, 0.7)
>>> load_spec("task: binary\\nclasses: [0, 1]\\nfeatures: [{name: x, type: float}]")
Traceback (most recent call last):
...
modelmeter.spec.SpecError: features[0].type: expected 'numeric' or 'categorical', got 'float'
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import yaml

if TYPE_CHECKING:
    import pandas as pd

    from modelmeter.engine import MonitorConfig, ReferenceData

__all__ = [
    "DEFAULT_THRESHOLDS",
    "MAX_BUCKETS",
    "MAX_CLASSES",
    "MAX_FEATURES",
    "MIN_REFERENCE_ROWS",
    "Feature",
    "ModelSpec",
    "ReferenceColumns",
    "SpecError",
    "format_duration",
    "load_reference",
    "load_spec",
    "parse_duration",
    "read_reference_frame",
]

Task = Literal["binary", "multiclass", "regression"]
Kind = Literal["numeric", "categorical"]

TASKS: tuple[Task, ...] = ("binary", "multiclass", "regression")
KINDS: tuple[Kind, ...] = ("numeric", "categorical")

#: Alert thresholds exported as ``model_alert_threshold{threshold=...}``, with defaults.
DEFAULT_THRESHOLDS: Mapping[str, float] = MappingProxyType(
    {
        "accuracy_warning": 0.80,
        "accuracy_critical": 0.70,
        "error_rate": 0.1,
        "latency_p95_seconds": 0.5,
        "cpu_ratio": 0.85,
        "memory_bytes": 786432000.0,
        "drift_psi": 0.2,
        "prediction_drift_psi": 0.2,
        "quality_ratio": 0.05,
        "estimated_accuracy": 0.80,
        "label_coverage": 0.5,
        "rejected_ratio": 0.05,
        "silence_seconds": 900.0,
    }
)
#: Thresholds that are fractions and must lie in [0, 1].
_RATIO_THRESHOLDS = frozenset(
    {
        "accuracy_warning",
        "accuracy_critical",
        "quality_ratio",
        "estimated_accuracy",
        "label_coverage",
        "rejected_ratio",
    }
)

FEATURE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
MAX_FEATURES = 200
MAX_CLASSES = 100
MAX_CLASS_LENGTH = 128
MAX_CATEGORIES = 1000
MAX_BUCKETS = 1000
#: ``segments``: at most this many categorical features, of at most this many values each
#: (as :mod:`modelmeter.engine.segments`; each also has ``other``)
MAX_SEGMENTS = 3
MAX_SEGMENT_VALUES = 20
#: A reference with fewer rows cannot fit drift bins and a calibrator.
MIN_REFERENCE_ROWS = 50
_PROBABILITY_SUM_TOLERANCE = 0.01

_TOP_KEYS = (
    "task",
    "classes",
    "positive_class",
    "features",
    "reference",
    "window",
    "min_samples",
    "drift",
    "thresholds",
    "segments",
)
_FEATURE_KEYS = ("name", "type", "range", "categories")
_REFERENCE_KEYS = ("path", "prediction", "label", "score", "probabilities")
_WINDOW_KEYS = ("length", "bucket")
_DRIFT_KEYS = ("bins", "fdr", "multivariate")
_MULTIVARIATE_KEYS = ("method", "variance", "z")


class SpecError(ValueError):
    """A model spec or its reference data is invalid.

    ``problems`` lists every ``(path, message)`` found; ``path`` is the first field path
    (``features[3].type``, ``reference.label``, ``window``). ``str(error)`` joins them all,
    one line, ready to be a 4xx ``detail``.

    >>> error = SpecError([("window.bucket", "expected a duration like '10s', got 'x'")])
    >>> error.path, str(error)
    ('window.bucket', "window.bucket: expected a duration like '10s', got 'x'")
    """

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        if not problems:
            raise ValueError("SpecError needs at least one problem")
        self.problems: tuple[tuple[str, str], ...] = tuple(problems)
        self.path: str = self.problems[0][0]
        text = "; ".join(f"{path}: {message}" for path, message in self.problems)
        if len(self.problems) > 1:
            text = f"{len(self.problems)} problems: {text}"
        super().__init__(text)


# --------------------------------------------------------------------------- durations

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(value: str | float) -> float:
    """Seconds in a duration: ``30s``, ``5m``, ``1h``, ``7d``, ``1w``, ``250ms``, ``1h30m``.

    A bare number is seconds. Raises ``ValueError`` on anything else or a negative value.

    >>> parse_duration("5m"), parse_duration("1h30m"), parse_duration("250ms"), parse_duration(7)
    (300.0, 5400.0, 0.25, 7.0)
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '30s', '5m', '1h' or '7d', got {_show(value)}")
    if isinstance(value, int | float):
        seconds = _as_float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            parts = _DURATION_PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(
                    f"expected a duration like '30s', '5m', '1h' or '7d', got {_show(value)}"
                ) from None
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    else:
        raise ValueError(f"expected a duration like '30s', '5m', '1h' or '7d', got {_show(value)}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"expected a finite, non-negative duration, got {_show(value)}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest duration text for ``seconds``; :func:`parse_duration` reads it back.

    >>> format_duration(300), format_duration(5400), format_duration(604800), format_duration(0.25)
    ('5m', '1h30m', '7d', '250ms')
    """
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


# --------------------------------------------------------------------------- the spec


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

    >>> spec = ModelSpec(task="regression", features=(Feature("x", "numeric"),))
    >>> load_spec(json.dumps(spec.to_dict())) == spec
    True
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


# --------------------------------------------------------------------------- parsing


def _short(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def _show(value: Any) -> str:
    """A short, safe rendering of a bad value for an error message."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return "a number too large"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_float(value: int | float) -> float:
    """``float(value)``; ints too large for a float become infinity instead of raising."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _finite(value: Any) -> bool:
    """A real number (not bool) that is finite as a float."""
    return _is_number(value) and math.isfinite(_as_float(value))


def _class_str(value: Any) -> str:
    """A reference value as a class or category string: whole floats (from a column that
    pandas widened to float) lose their ``.0``; everything else is ``str(value)``, as the
    collector does for JSON values."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class _Problems:
    """Collects ``(path, message)`` pairs while a spec is checked."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.items.append((path, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise SpecError(self.items)

    def mapping(self, value: Any, path: str, allowed: Sequence[str]) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.add(path, f"expected a mapping with keys {', '.join(allowed)}; got {_show(value)}")
            return None
        for key in value:
            if key not in allowed:
                self.add(
                    f"{path}.{key}" if path else str(key),
                    f"unknown field; expected one of {', '.join(allowed)}",
                )
        return value

    def string(self, value: Any, path: str, *, max_length: int = 256) -> str | None:
        if not isinstance(value, str) or not value:
            self.add(path, f"expected a non-empty string, got {_show(value)}")
            return None
        if len(value) > max_length:
            self.add(path, f"expected at most {max_length} characters, got {len(value)}")
            return None
        return value

    def integer(self, value: Any, path: str, low: int, high: int) -> int | None:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            self.add(path, f"expected a whole number from {low} to {high}, got {_show(value)}")
            return None
        return value

    def number(self, value: Any, path: str, low: float, high: float) -> float | None:
        if not _finite(value) or not low <= value <= high:
            self.add(path, f"expected a number from {low:g} to {high:g}, got {_show(value)}")
            return None
        return float(value)


def _parse_document(source: str | bytes) -> Any:
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SpecError(
                [("spec", f"not UTF-8 text (byte {exc.start}); save it as UTF-8")]
            ) from None
    text = source.lstrip("\ufeff")
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(
                [("spec", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")]
            ) from None
        except (ValueError, RecursionError) as exc:  # e.g. a 5,000-digit number, deep nesting
            raise SpecError([("spec", f"not a usable JSON document: {_short(exc)}")]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1} column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "syntax error"
        raise SpecError([("spec", f"not valid YAML or JSON: {problem}{where}")]) from None
    except (ValueError, RecursionError) as exc:
        raise SpecError([("spec", f"not a usable YAML document: {_short(exc)}")]) from None


def load_spec(
    source: str | bytes | os.PathLike[str] | Mapping[str, Any],
    *,
    base_dir: str | os.PathLike[str] | None = None,
) -> ModelSpec:
    """Parse and validate a model spec.

    Parameters
    ----------
    source
        The spec: YAML or JSON text (``str`` or ``bytes``), a path to a spec file
        (``pathlib.Path``; ``str`` is always text), or an already parsed mapping.
    base_dir
        The folder a relative ``reference.path`` is resolved against; defaults to the
        spec file's folder when ``source`` is a path.

    Raises :class:`SpecError` naming every bad field. The reference data is not read
    here: see :func:`load_reference`.

    >>> load_spec('{"task": "regression", "features": [{"name": "x", "type": "numeric"}]}').task
    'regression'
    """
    if isinstance(source, os.PathLike):
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SpecError([("spec", f"cannot read {str(path)!r}: {exc.strerror}")]) from None
        document = _parse_document(data)
        if base_dir is None:
            base_dir = path.parent
    elif isinstance(source, Mapping):
        document = source
    else:
        document = _parse_document(source)
    spec = _build_spec(document)
    if base_dir is not None:
        object.__setattr__(spec, "base_dir", Path(base_dir))
    return spec


def _build_spec(document: Any) -> ModelSpec:
    problems = _Problems()
    if document is None:
        raise SpecError([("spec", "empty document; expected a mapping with task and features")])
    top = problems.mapping(document, "", _TOP_KEYS)
    if top is None:
        raise SpecError(
            [("spec", f"expected a mapping with task and features; got {_show(document)}")]
        )

    task: Task | None = None
    raw_task = top.get("task")
    if raw_task in TASKS:
        task = raw_task
    else:
        got = "nothing" if raw_task is None else _show(raw_task)
        problems.add("task", f"expected 'binary', 'multiclass' or 'regression', got {got}")

    classes, positive = _parse_classes(top, task, problems)
    features = _parse_features(top.get("features"), problems)
    reference = _parse_reference(top.get("reference"), task, classes, problems)
    window, bucket = _parse_window(top.get("window"), problems)
    min_samples = 100
    if "min_samples" in top:
        min_samples = problems.integer(top["min_samples"], "min_samples", 1, 10**9) or 100
    bins, fdr = _parse_drift(top.get("drift"), problems)
    multivariate = _parse_multivariate(top.get("drift"), problems)
    thresholds = _parse_thresholds(top.get("thresholds"), problems)
    segments = _parse_segments(top.get("segments"), features, problems)
    problems.raise_if_any()
    assert task is not None
    return ModelSpec(
        task=task,
        features=features,
        classes=classes,
        positive_class=positive,
        reference=reference,
        window_seconds=window,
        bucket_seconds=bucket,
        min_samples=min_samples,
        drift_bins=bins,
        drift_fdr=fdr,
        multivariate=multivariate[0],
        multivariate_variance=multivariate[1],
        multivariate_z=multivariate[2],
        thresholds=thresholds,
        segments=segments,
    )


def _parse_segments(
    raw: Any, features: tuple[Feature, ...], problems: _Problems
) -> tuple[str, ...]:
    """``segments``: a list of up to 3 distinct categorical feature names (each with at most
    20 categories; without categories, the reference is checked in :func:`load_reference`)."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_SEGMENTS:
        problems.add(
            "segments",
            f"expected a list of 1 to {MAX_SEGMENTS} categorical feature names, got {_show(raw)}",
        )
        return ()
    by_name = {f.name: f for f in features}
    out: list[str] = []
    for i, name in enumerate(raw):
        path = f"segments[{i}]"
        feature = by_name.get(name) if isinstance(name, str) else None
        if feature is None or feature.kind != "categorical":
            names = [f.name for f in features if f.kind == "categorical"]
            problems.add(
                path, f"expected the name of a categorical feature {names}, got {_show(name)}"
            )
        elif name in out:
            problems.add(path, f"duplicate segment {name!r}")
        elif feature.categories is not None and len(feature.categories) > MAX_SEGMENT_VALUES:
            problems.add(
                path,
                f"feature {name!r} has {len(feature.categories)} categories; a segment may have "
                f"at most {MAX_SEGMENT_VALUES}",
            )
        else:
            out.append(name)
    return tuple(out)


def _parse_classes(
    top: Mapping[str, Any], task: Task | None, problems: _Problems
) -> tuple[tuple[str, ...], str | None]:
    raw = top.get("classes")
    raw_positive = top.get("positive_class")
    if task == "regression" or task is None:
        if task == "regression" and raw not in (None, []):
            problems.add("classes", "a regression model has no classes; remove this field")
        if task == "regression" and raw_positive is not None:
            problems.add("positive_class", "a regression model has no positive class; remove it")
        return (), None
    if not isinstance(raw, list) or len(raw) < 2:
        problems.add(
            "classes",
            f"expected a list of at least 2 class values for a {task} model, got "
            + ("nothing" if raw is None else _show(raw)),
        )
        return (), None
    if len(raw) > MAX_CLASSES:
        problems.add("classes", f"at most {MAX_CLASSES} classes, got {len(raw)}")
        return (), None
    classes: list[str] = []
    for i, value in enumerate(raw):
        if isinstance(value, Mapping | list) or value is None:
            problems.add(f"classes[{i}]", f"expected a string or number, got {_show(value)}")
            continue
        name = str(value)
        if not name or len(name) > MAX_CLASS_LENGTH or not name.isprintable():
            problems.add(
                f"classes[{i}]",
                f"expected 1 to {MAX_CLASS_LENGTH} printable characters, got {_show(value)}",
            )
        elif name in classes:
            problems.add(f"classes[{i}]", f"duplicate class {name!r}")
        else:
            classes.append(name)
    if task == "binary" and len(raw) != 2:
        problems.add("classes", f"a binary model has exactly 2 classes, got {len(raw)}")
    positive: str | None = None
    if task == "binary" and len(classes) == 2:
        if raw_positive is None:
            positive = classes[1]
        elif str(raw_positive) in classes:
            positive = str(raw_positive)
        else:
            problems.add(
                "positive_class",
                f"expected one of the classes {classes}, got {_show(raw_positive)}",
            )
    elif task == "multiclass" and raw_positive is not None:
        problems.add("positive_class", "only binary models have a positive class; remove it")
    return tuple(classes), positive


def _parse_features(raw: Any, problems: _Problems) -> tuple[Feature, ...]:
    if not isinstance(raw, list) or not raw:
        problems.add(
            "features",
            "expected a non-empty list of {name, type} entries, got "
            + ("nothing" if raw is None else _show(raw)),
        )
        return ()
    if len(raw) > MAX_FEATURES:
        problems.add("features", f"at most {MAX_FEATURES} features, got {len(raw)}")
        return ()
    features: list[Feature] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        path = f"features[{i}]"
        entry = problems.mapping(item, path, _FEATURE_KEYS)
        if entry is None:
            continue
        name = entry.get("name")
        if not isinstance(name, str) or not FEATURE_NAME.fullmatch(name):
            problems.add(
                f"{path}.name",
                "expected a name of 1-64 letters, digits, '_', '.' or '-' starting with a "
                f"letter or '_', got {'nothing' if name is None else _show(name)}",
            )
            name = None
        elif name in seen:
            problems.add(f"{path}.name", f"duplicate feature name {name!r}")
        else:
            seen.add(name)
        kind = entry.get("type")
        if kind not in KINDS:
            got = "nothing" if kind is None else _show(kind)
            problems.add(f"{path}.type", f"expected 'numeric' or 'categorical', got {got}")
            continue
        low = high = None
        categories = None
        if kind == "numeric":
            if "categories" in entry:
                problems.add(f"{path}.categories", "only categorical features have categories")
            if "range" in entry:
                low, high = _parse_range(entry["range"], f"{path}.range", problems)
        else:
            if "range" in entry:
                problems.add(f"{path}.range", "only numeric features have a range")
            if "categories" in entry:
                categories = _parse_categories(entry["categories"], f"{path}.categories", problems)
        if name is not None:
            features.append(Feature(name, kind, low, high, categories))
    return tuple(features)


def _parse_range(raw: Any, path: str, problems: _Problems) -> tuple[float | None, float | None]:
    ok = isinstance(raw, list) and len(raw) == 2
    ok = ok and all(v is None or _finite(v) for v in raw)
    if not ok:
        problems.add(path, f"expected [low, high] (numbers, null = open), got {_show(raw)}")
        return None, None
    low, high = (None if v is None else float(v) for v in raw)
    if low is not None and high is not None and low > high:
        problems.add(path, f"low {low:g} is above high {high:g}")
        return None, None
    return low, high


def _parse_categories(raw: Any, path: str, problems: _Problems) -> tuple[str, ...] | None:
    if not isinstance(raw, list) or not raw or len(raw) > MAX_CATEGORIES:
        problems.add(path, f"expected a list of 1 to {MAX_CATEGORIES} values, got {_show(raw)}")
        return None
    out: list[str] = []
    for i, value in enumerate(raw):
        if value is None or isinstance(value, Mapping | list):
            problems.add(f"{path}[{i}]", f"expected a string or number, got {_show(value)}")
            continue
        text = str(value)
        if text in out:
            problems.add(f"{path}[{i}]", f"duplicate category {text!r}")
        else:
            out.append(text)
    return tuple(out)


def _parse_reference(
    raw: Any, task: Task | None, classes: tuple[str, ...], problems: _Problems
) -> ReferenceColumns:
    if raw is None:
        return ReferenceColumns()
    entry = problems.mapping(raw, "reference", _REFERENCE_KEYS)
    if entry is None:
        return ReferenceColumns()
    values: dict[str, Any] = {}
    for key in ("path", "prediction", "label", "score"):
        if key in entry:
            values[key] = problems.string(entry[key], f"reference.{key}", max_length=4096)
    if "probabilities" in entry:
        raw_probs = entry["probabilities"]
        path = "reference.probabilities"
        if task == "regression":
            problems.add(path, "a regression model has no probabilities; remove this field")
        elif not isinstance(raw_probs, list) or not all(
            isinstance(c, str) and c for c in raw_probs
        ):
            problems.add(path, f"expected a list of column names, got {_show(raw_probs)}")
        elif classes and len(raw_probs) != len(classes):
            problems.add(
                path,
                f"expected {len(classes)} column names (one per class, in classes order), "
                f"got {len(raw_probs)}",
            )
        else:
            values["probabilities"] = tuple(raw_probs)
    if "score" in entry and task in ("regression", "multiclass"):
        problems.add("reference.score", f"a {task} model has no score column; remove this field")
    return ReferenceColumns(**{k: v for k, v in values.items() if v is not None})


def _parse_window(raw: Any, problems: _Problems) -> tuple[float, float]:
    window, bucket = 300.0, 10.0
    if raw is None:
        return window, bucket
    if isinstance(raw, str | int | float) and not isinstance(raw, bool):
        raw = {"length": raw}
    entry = problems.mapping(raw, "window", _WINDOW_KEYS)
    if entry is None:
        return window, bucket
    parsed: dict[str, float] = {}
    for key in _WINDOW_KEYS:
        if key not in entry:
            continue
        try:
            seconds = parse_duration(entry[key])
        except ValueError as exc:
            problems.add(f"window.{key}", str(exc))
            continue
        if seconds < 1 or not float(seconds).is_integer():
            problems.add(
                f"window.{key}", f"expected whole seconds, at least 1s, got {_show(entry[key])}"
            )
            continue
        parsed[key] = seconds
    if len(parsed) != sum(key in entry for key in _WINDOW_KEYS):
        return window, bucket
    window = parsed.get("length", window)
    bucket = parsed.get("bucket", bucket)
    if window < bucket or window % bucket:
        problems.add(
            "window",
            f"length {format_duration(window)} must be a whole multiple of bucket "
            f"{format_duration(bucket)}",
        )
    elif window / bucket > MAX_BUCKETS:
        problems.add(
            "window",
            f"length {format_duration(window)} / bucket {format_duration(bucket)} gives "
            f"{int(window // bucket)} buckets; at most {MAX_BUCKETS}: use a longer bucket",
        )
    return window, bucket


def _parse_drift(raw: Any, problems: _Problems) -> tuple[int, float]:
    bins, fdr = 10, 0.05
    if raw is None:
        return bins, fdr
    entry = problems.mapping(raw, "drift", _DRIFT_KEYS)
    if entry is None:
        return bins, fdr
    if "bins" in entry:
        bins = problems.integer(entry["bins"], "drift.bins", 2, 100) or bins
    if "fdr" in entry:
        value = problems.number(entry["fdr"], "drift.fdr", 0.0, 1.0)
        if value is not None and value in (0.0, 1.0):
            problems.add("drift.fdr", f"expected a level strictly between 0 and 1, got {value:g}")
        elif value is not None:
            fdr = value
    return bins, fdr


def _parse_multivariate(raw: Any, problems: _Problems) -> tuple[bool, float, float]:
    """``drift.multivariate``: ``false`` (off), ``true`` or a mapping (method, variance, z)."""
    on, variance, z = True, 0.65, 3.0
    if not isinstance(raw, Mapping) or raw.get("multivariate") in (None, True):
        return on, variance, z
    value = raw["multivariate"]
    if value is False:
        return False, variance, z
    entry = problems.mapping(value, "drift.multivariate", _MULTIVARIATE_KEYS)
    if entry is None:
        return on, variance, z
    if "method" in entry and entry["method"] != "pca":
        problems.add("drift.multivariate.method", f"expected 'pca', got {_show(entry['method'])}")
    if "variance" in entry:
        share = problems.number(entry["variance"], "drift.multivariate.variance", 0.0, 1.0)
        if share is not None and share in (0.0, 1.0):
            problems.add(
                "drift.multivariate.variance",
                f"expected a share of variance strictly between 0 and 1, got {share:g}",
            )
        elif share is not None:
            variance = share
    if "z" in entry:
        z = problems.number(entry["z"], "drift.multivariate.z", 0.5, 10.0) or z
    return on, variance, z


def _parse_thresholds(raw: Any, problems: _Problems) -> Mapping[str, float]:
    values = dict(DEFAULT_THRESHOLDS)
    if raw is None:
        return MappingProxyType(values)
    entry = problems.mapping(raw, "thresholds", tuple(DEFAULT_THRESHOLDS))
    if entry is None:
        return MappingProxyType(values)
    for name, value in entry.items():
        if name not in DEFAULT_THRESHOLDS:
            continue  # reported by mapping()
        high = 1.0 if name in _RATIO_THRESHOLDS else math.inf
        number = problems.number(value, f"thresholds.{name}", 0.0, high)
        if number is not None:
            values[name] = number
    if values["accuracy_critical"] > values["accuracy_warning"]:
        problems.add(
            "thresholds.accuracy_critical",
            f"{values['accuracy_critical']:g} is above accuracy_warning "
            f"{values['accuracy_warning']:g}; critical fires at the lower accuracy",
        )
    return MappingProxyType(values)


# --------------------------------------------------------------------------- reference data


def _resolve_reference_path(
    spec: ModelSpec, base_dir: str | os.PathLike[str] | None, confine: bool
) -> Path:
    if spec.reference.path is None:
        raise SpecError(
            [("reference.path", "no reference data: set reference.path or upload the file")]
        )
    base = Path(base_dir) if base_dir is not None else spec.base_dir
    path = Path(spec.reference.path)
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    if confine:  # the collector's confinement rule
        from modelmeter.paths import confine as confined

        root = (base or Path.cwd()).resolve()
        inside = confined(root, path)
        if inside is None:
            raise SpecError(
                [
                    (
                        "reference.path",
                        f"must be inside {str(root)!r} and exist; upload the file instead",
                    )
                ]
            )
        return inside
    return path


def read_reference_frame(
    spec: ModelSpec,
    *,
    base_dir: str | os.PathLike[str] | None = None,
    data: bytes | None = None,
    confine: bool = False,
) -> tuple[pd.DataFrame, str]:
    """Read the reference file into a DataFrame of the columns the spec needs.

    Returns ``(frame, name)`` where ``name`` is what error messages call the file.
    The format is detected from the content: Parquet (``PAR1`` magic), else CSV (gzip
    allowed). Columns are read as text (CSV) so that values are checked, not guessed.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    if data is None:
        path = _resolve_reference_path(spec, base_dir, confine)
        name = spec.reference.path or str(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SpecError(
                [("reference.path", f"cannot read {str(path)!r}: {exc.strerror}")]
            ) from None
    else:
        name = spec.reference.path or "the uploaded reference"
    wanted = set(_reference_columns(spec))
    if data[:4] == b"PAR1":
        try:
            parquet = pq.ParquetFile(pa.BufferReader(data))
            present = [c for c in parquet.schema_arrow.names if c in wanted]
            frame = parquet.read(columns=present).to_pandas()
        except (pa.ArrowException, OSError) as exc:
            raise SpecError(
                [("reference.path", f"{name}: not a readable Parquet file: {exc}")]
            ) from None
    else:
        compression: Literal["gzip"] | None = "gzip" if data[:2] == b"\x1f\x8b" else None
        try:
            frame = pd.read_csv(
                io.BytesIO(data),
                dtype=str,
                keep_default_na=False,
                na_values=[""],
                usecols=lambda c: c in wanted,
                compression=compression,
            )
        except pd.errors.EmptyDataError:
            raise SpecError(
                [("reference.path", f"{name} is empty; expected a CSV with a header row")]
            ) from None
        except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as exc:
            raise SpecError(
                [("reference.path", f"{name}: not a readable CSV file: {exc}")]
            ) from None
    return frame, name


def _reference_columns(spec: ModelSpec) -> Iterator[str]:
    yield from spec.feature_names
    ref = spec.reference
    yield ref.prediction
    yield ref.label
    if spec.task == "binary":
        yield ref.score or "score"
    if spec.task != "regression":
        yield from ref.probabilities or [f"p_{c}" for c in spec.classes]


def load_reference(
    spec: ModelSpec,
    *,
    base_dir: str | os.PathLike[str] | None = None,
    data: bytes | None = None,
    confine: bool = False,
) -> ReferenceData:
    """Read and validate the spec's reference data into the engine's ``ReferenceData``.

    Parameters
    ----------
    spec
        A spec from :func:`load_spec`.
    base_dir
        Folder for a relative ``reference.path`` (default: ``spec.base_dir``, else the
        working directory).
    data
        The bytes of an uploaded CSV or Parquet file; ``reference.path`` is then ignored.
    confine
        Refuse a ``reference.path`` outside ``base_dir`` (use it for paths from a request).

    Raises :class:`SpecError` naming each missing column, non-numeric value, unknown class,
    bad probability row, and an empty or too short reference.
    """
    from modelmeter.engine import ReferenceData

    frame, name = read_reference_frame(spec, base_dir=base_dir, data=data, confine=confine)
    arrays = _validate_reference(spec, frame, name)
    return ReferenceData(
        features=arrays.features,
        predictions=arrays.predictions,
        labels=arrays.labels,
        scores=arrays.scores,
    )


@dataclass(frozen=True)
class _ReferenceArrays:
    features: Mapping[str, np.ndarray]
    predictions: np.ndarray
    labels: np.ndarray
    scores: np.ndarray | None


def _rows(mask: np.ndarray) -> str:
    """'row 5' / '3 rows, first row 5' for a boolean mask (1-based data rows)."""
    bad = np.flatnonzero(mask)
    first = int(bad[0]) + 1
    return f"row {first}" if len(bad) == 1 else f"{len(bad)} rows, first row {first}"


def _numeric(series: pd.Series, what: str, path: str, problems: _Problems) -> np.ndarray:
    """float64 values of a column; NaN for missing. Non-numbers and infinities are problems."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series.dtype):
        problems.add(path, f"{what}: expected numbers, got true/false values")
        return np.full(len(series), np.nan)
    if pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        missing = series.isna().to_numpy()
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        text = series.astype(object)
        nan_words = text.map(lambda v: isinstance(v, str) and v.strip().lower() == "nan")
        bad = np.isnan(values) & ~missing & ~nan_words.to_numpy(dtype=bool)
        if bad.any():
            first = text.iloc[int(np.flatnonzero(bad)[0])]
            problems.add(path, f"{what}: expected numbers; {_rows(bad)} is {_show(first)}")
    infinite = np.isinf(values)
    if infinite.any():
        problems.add(path, f"{what}: {_rows(infinite)} is infinite; use a finite number or empty")
    return values


def _strings(series: pd.Series) -> np.ndarray:
    """An object array of str (ints and whole floats without '.0'), None for missing."""
    missing = series.isna().to_numpy(dtype=bool)
    out = np.empty(len(series), dtype=object)
    for i, value in enumerate(series.astype(object).tolist()):
        if missing[i]:
            out[i] = None
        elif isinstance(value, np.generic):
            out[i] = _class_str(value.item())
        else:
            out[i] = _class_str(value)
    return out


def _validate_reference(spec: ModelSpec, frame: pd.DataFrame, name: str) -> _ReferenceArrays:
    problems = _Problems()
    ref = spec.reference
    columns = set(frame.columns)
    named = [(f"features[{i}]", f.name) for i, f in enumerate(spec.features)]
    named += [("reference.prediction", ref.prediction), ("reference.label", ref.label)]
    if ref.score is not None:
        named.append(("reference.score", ref.score))
    named += [(f"reference.probabilities[{i}]", c) for i, c in enumerate(ref.probabilities or ())]
    for path, column in named:
        if column not in columns:
            problems.add(path, f"column {column!r} not found in {name}")
    problems.raise_if_any()
    n = len(frame)
    if n == 0:
        raise SpecError(
            [("reference", f"{name} has no rows; it needs at least {MIN_REFERENCE_ROWS}")]
        )
    if n < MIN_REFERENCE_ROWS:
        raise SpecError(
            [
                (
                    "reference",
                    f"{name} has {n} rows; at least {MIN_REFERENCE_ROWS} are needed to fit "
                    "drift bins and the calibrator",
                )
            ]
        )

    features: dict[str, np.ndarray] = {}
    for i, feature in enumerate(spec.features):
        series = frame[feature.name]
        path = f"features[{i}]"
        what = f"{name} column {feature.name!r}"
        if feature.kind == "numeric":
            values = _numeric(series, what, path, problems)
            if np.isnan(values).all():
                problems.add(path, f"{what} has no values; drift bins need some")
        else:
            values = _strings(series)
            if feature.name in spec.segments and feature.categories is None:
                seen = {v for v in values.tolist() if v is not None}
                if len(seen) > MAX_SEGMENT_VALUES:
                    problems.add(
                        f"segments[{spec.segments.index(feature.name)}]",
                        f"{what} has {len(seen)} distinct values; a segment may have at most "
                        f"{MAX_SEGMENT_VALUES}: set the feature's categories (other values "
                        "count under 'other') or choose another feature",
                    )
        features[feature.name] = values

    outputs = {}
    for key in ("prediction", "label"):
        column = getattr(ref, key)
        what = f"{name} column {column!r}"
        path = f"reference.{key}"
        if spec.task == "regression":
            values = _numeric(frame[column], what, path, problems)
            empty = frame[column].isna().to_numpy(dtype=bool)
            if empty.any():
                problems.add(path, f"{what}: {_rows(empty)} is empty")
        else:
            values = _strings(frame[column])
            empty = np.array([v is None for v in values], dtype=bool)
            known = set(spec.classes)
            unknown = np.array([v is not None and v not in known for v in values], dtype=bool)
            if empty.any():
                problems.add(path, f"{what}: {_rows(empty)} is empty")
            if unknown.any():
                first = values[int(np.flatnonzero(unknown)[0])]
                problems.add(
                    path,
                    f"{what}: {_rows(unknown)} is {_show(first)}, not one of the classes "
                    f"{list(spec.classes)}",
                )
        outputs[key] = values

    scores = _reference_scores(spec, frame, name, problems)
    problems.raise_if_any()
    return _ReferenceArrays(features, outputs["prediction"], outputs["label"], scores)


def _reference_scores(
    spec: ModelSpec, frame: pd.DataFrame, name: str, problems: _Problems
) -> np.ndarray | None:
    """Binary: P(positive) from the score column (or the positive class's probability
    column); multiclass: the (n, k) probability matrix. ``None`` when the spec names no
    such columns and the default ones are absent (estimation is then off)."""
    ref = spec.reference
    if spec.task == "regression":
        return None
    columns = set(frame.columns)
    if spec.task == "binary":
        score_column = ref.score or "score"
        if ref.score is not None or (ref.probabilities is None and score_column in columns):
            what = f"{name} column {score_column!r}"
            return _probability(frame[score_column], what, "reference.score", problems)
    prob_columns = ref.probabilities or tuple(f"p_{c}" for c in spec.classes)
    if not all(c in columns for c in prob_columns):
        return None
    matrix = np.column_stack(
        [
            _probability(
                frame[c], f"{name} column {c!r}", f"reference.probabilities[{i}]", problems
            )
            for i, c in enumerate(prob_columns)
        ]
    )
    sums = matrix.sum(axis=1)
    off = np.abs(sums - 1.0) > _PROBABILITY_SUM_TOLERANCE
    if off.any():
        row = int(np.flatnonzero(off)[0])
        problems.add(
            "reference.probabilities",
            f"{name}: probabilities must sum to 1 per row; {_rows(off)} sums to {sums[row]:.4g}",
        )
    if spec.task == "binary":
        assert spec.positive_class is not None
        return np.ascontiguousarray(matrix[:, spec.classes.index(spec.positive_class)])
    return matrix


def _probability(series: pd.Series, what: str, path: str, problems: _Problems) -> np.ndarray:
    values = _numeric(series, what, path, problems)
    empty = series.isna().to_numpy(dtype=bool)
    if empty.any():
        problems.add(path, f"{what}: {_rows(empty)} is empty; every reference row needs a score")
    outside = (values < 0) | (values > 1)
    if outside.any():
        problems.add(path, f"{what}: {_rows(outside)} is outside [0, 1]")
    return values
