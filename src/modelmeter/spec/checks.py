"""The checks of a spec that span fields: task and classes, reference columns, window and
performance window, segments, threshold order, duplicates.

Each function raises pydantic errors with our messages (a
:class:`~pydantic_core.PydanticCustomError`, or several at once through
:class:`~modelmeter.spec.errors.Problems`); the document models call them from their field
and model validators (:mod:`modelmeter.spec.schema`), so that a field that depends on
another is checked whenever that other one is valid, and every problem is still reported
at once.

>>> window(65.0, 10.0)
Traceback (most recent call last):
...
pydantic_core._pydantic_core.PydanticCustomError: length 1m5s must be a whole multiple of bucket 10s
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from modelmeter.spec.errors import Problems, got, problem, show
from modelmeter.spec.fields import (
    MAX_BUCKETS,
    MAX_CLASSES,
    MAX_SEGMENT_VALUES,
    MAX_SEGMENTS,
    scalar_text,
)
from modelmeter.units import format_duration

if TYPE_CHECKING:
    from modelmeter.spec.schema import FeatureDocument, PerformanceDocument, ReferenceDocument

__all__ = [
    "class_list",
    "class_values",
    "duplicates",
    "performance",
    "performance_window",
    "positive_class",
    "reference",
    "segment_list",
    "segments",
    "texts",
    "threshold_order",
    "window",
]


def class_list(value: Any, task: str | None) -> None:
    """Before the items are read: a regression model has none, the others a list of 2+."""
    if task == "regression":
        if value not in (None, []):
            raise problem("a regression model has no classes; remove this field")
        return
    if task is None:
        return
    if not isinstance(value, list) or len(value) < 2:
        raise problem(
            f"expected a list of at least 2 class values for a {task} model, got {got(value)}"
        )
    if len(value) > MAX_CLASSES:
        raise problem(f"at most {MAX_CLASSES} classes, got {len(value)}")


def class_values(value: list[Any], task: str | None) -> Problems:
    """On the raw list: no duplicate class, and exactly 2 for a binary model."""
    problems = duplicates(texts(value), "class")
    if task == "binary" and len(value) != 2:
        problems.add((), f"a binary model has exactly 2 classes, got {len(value)}")
    return problems


def positive_class(
    value: str | None, raw: Any, task: str | None, classes: Sequence[str] | None
) -> None:
    """A binary model's positive class is one of its 2 classes; the others have none."""
    if value is None:
        return
    if task == "regression":
        raise problem("a regression model has no positive class; remove it")
    if task == "multiclass":
        raise problem("only binary models have a positive class; remove it")
    if task == "binary" and classes is not None and len(classes) == 2 and value not in classes:
        raise problem(f"expected one of the classes {list(classes)}, got {show(raw)}")


def texts(value: Any) -> list[str | None]:
    """The items of a raw list as class or category text (``None``: no such value)."""
    return [scalar_text(v) for v in value] if isinstance(value, list) else []


def duplicates(values: Sequence[str | None], what: str, *, key: str | None = None) -> Problems:
    """Each value once (``None`` is skipped; ``key``: the problems are at ``[i].key``)."""
    problems = Problems()
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value is None:
            continue
        if value in seen:
            problems.add((i, key) if key else (i,), f"duplicate {what} {value!r}")
        seen.add(value)
    return problems


def reference(ref: ReferenceDocument, task: str | None, classes: Sequence[str] | None) -> None:
    """The probability and score columns the task has (one probability per class)."""
    problems = Problems()
    if ref.probabilities is not None:
        if task == "regression":
            problems.add(
                ("probabilities",), "a regression model has no probabilities; remove this field"
            )
        elif classes and len(ref.probabilities) != len(classes):
            problems.add(
                ("probabilities",),
                f"expected {len(classes)} column names (one per class, in classes order), "
                f"got {len(ref.probabilities)}",
            )
    if ref.score is not None and task in ("regression", "multiclass"):
        problems.add(("score",), f"a {task} model has no score column; remove this field")
    problems.raise_if_any(ref)


def window(length: float, bucket: float) -> None:
    """The window is a whole number of buckets, at most :data:`MAX_BUCKETS`."""
    if length < bucket or length % bucket:
        raise problem(
            f"length {format_duration(length)} must be a whole multiple of bucket "
            f"{format_duration(bucket)}"
        )
    if length / bucket > MAX_BUCKETS:
        raise problem(
            f"length {format_duration(length)} / bucket {format_duration(bucket)} gives "
            f"{int(length // bucket)} buckets; at most {MAX_BUCKETS}: use a longer bucket"
        )


#: The default bucket of a performance window cuts it into at most this many buckets.
PERFORMANCE_BUCKETS = 48


def performance_window(
    length: float, bucket: float, given_window: float | None, given_bucket: float | None
) -> tuple[float, float]:
    """The performance window and its bucket, in seconds, of a window of ``length`` in
    buckets of ``bucket`` and the spec's ``performance.window`` / ``performance.bucket``
    (``given_window`` / ``given_bucket``, None: not given).

    The window defaults to the window's length; the bucket to the window's bucket when
    ``performance.window`` is not given, otherwise to the smallest whole number of seconds that
    divides ``performance.window`` and is at least the larger of the window's bucket and
    ``performance.window / 48`` (so the default always fits: ``10m`` gets buckets of 15 s).

    >>> performance_window(300.0, 10.0, None, None)
    (300.0, 10.0)
    >>> performance_window(300.0, 10.0, 2 * 86400.0, None)  # 2d in buckets of 1h
    (172800.0, 3600.0)
    >>> performance_window(300.0, 10.0, 3600.0, None), performance_window(300.0, 10.0, None, 60.0)
    ((3600.0, 75.0), (300.0, 60.0))
    >>> performance_window(300.0, 10.0, 600.0, None)  # 600 / 48 = 12.5: 15 s divides 10m
    (600.0, 15.0)
    """
    if given_window is None:
        return float(length), float(bucket if given_bucket is None else given_bucket)
    if given_bucket is None:
        least = max(float(bucket), float(math.ceil(given_window / PERFORMANCE_BUCKETS)))
        given_bucket = _divisor_at_least(given_window, least)
    return float(given_window), float(given_bucket)


def _divisor_at_least(window: float, least: float) -> float:
    """The smallest whole-second divisor of ``window`` that is at least ``least`` (``least``
    itself when ``window`` is not whole seconds or ``least`` is above it)."""
    if window != int(window) or least >= window:
        return least
    whole = int(window)
    found = whole
    for small in range(1, math.isqrt(whole) + 1):  # divisors in pairs: small and whole // small
        if whole % small == 0:
            if small >= least:
                return float(min(found, small))
            if whole // small >= least:
                found = min(found, whole // small)
    return float(found)


def performance(value: PerformanceDocument, length: float, bucket: float) -> None:
    """The performance window (with its defaults, :func:`performance_window`) is a whole
    number of its buckets, at most :data:`MAX_BUCKETS`; a problem is reported at
    ``bucket`` when the spec gives it, else at ``window``."""
    window, width = performance_window(length, bucket, value.window, value.bucket)
    given = value.bucket is not None
    named = f"bucket {format_duration(width)}"
    if not given:
        named = (
            f"its default bucket {format_duration(width)} (window.bucket)"
            if value.window is None or width == bucket
            else f"its default bucket {format_duration(width)} (performance.window / "
            f"{PERFORMANCE_BUCKETS}, in whole seconds)"
        )
    what = f"the performance window {format_duration(window)}"
    if value.window is None:
        what += " (window.length)"
    message = None
    if window < width:
        message = f"{what} is shorter than {named}"
    elif window % width:
        message = f"{what} must be a whole multiple of {named}"
    elif window / width > MAX_BUCKETS:
        message = (
            f"{what} / {named} gives {int(window // width)} buckets; at most {MAX_BUCKETS}: "
            "use a longer bucket"
        )
    if message is not None:
        if not given:
            message += "; set performance.bucket"
        problems = Problems()
        problems.add(("bucket",) if given else ("window",), message)
        problems.raise_if_any(value)


def segments(names: Sequence[Any], features: Sequence[FeatureDocument]) -> None:
    """Distinct categorical features, each with at most :data:`MAX_SEGMENT_VALUES` categories
    (a feature without categories is checked against the reference data)."""
    by_name = {f.name: f for f in features}
    categorical = [f.name for f in features if f.type == "categorical"]
    problems = Problems()
    seen: set[str] = set()
    for i, name in enumerate(names):
        feature = by_name.get(name) if isinstance(name, str) else None
        if feature is None or feature.type != "categorical":
            problems.add(
                (i,), f"expected the name of a categorical feature {categorical}, got {show(name)}"
            )
        elif name in seen:
            problems.add((i,), f"duplicate segment {name!r}")
        elif feature.categories is not None and len(feature.categories) > MAX_SEGMENT_VALUES:
            problems.add(
                (i,),
                f"feature {name!r} has {len(feature.categories)} categories; a segment may have "
                f"at most {MAX_SEGMENT_VALUES}",
            )
        if isinstance(name, str):
            seen.add(name)
    problems.raise_if_any(list(names))


def segment_list(value: Any) -> str:
    """The message for a ``segments`` value that is no list of 1 to 3 names."""
    return f"expected a list of 1 to {MAX_SEGMENTS} categorical feature names, got {got(value)}"


def threshold_order(critical: float, warning: float) -> None:
    """``accuracy_critical`` fires at the lower accuracy."""
    if critical > warning:
        raise problem(
            f"{critical:g} is above accuracy_warning {warning:g}; critical fires at the lower "
            "accuracy"
        )
