"""The value types of a spec document, each with its limits and its own error message.

Every type is an ``Annotated`` pydantic type: the constraints are declared (so the JSON
Schema shows them) and :func:`~modelmeter.spec.errors.expect` words what is expected.

>>> from pydantic import TypeAdapter
>>> TypeAdapter(Duration).validate_python("1h30m"), TypeAdapter(ClassName).validate_python(1)
(5400.0, '1')
>>> TypeAdapter(Annotated[int, Whole(1, 10)]).validate_python(0)
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for ...
  expected a whole number from 1 to 10, got 0 ...
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, GetCoreSchemaHandler, PlainValidator
from pydantic_core import PydanticCustomError, core_schema

from modelmeter.names import NAME_PATTERNS, is_name, name_rule
from modelmeter.spec.errors import expect, got, problem, show
from modelmeter.units import parse_duration

__all__ = [
    "MAX_BUCKETS",
    "MAX_CATEGORIES",
    "MAX_CLASSES",
    "MAX_CLASS_LENGTH",
    "MAX_FEATURES",
    "MAX_SEGMENTS",
    "MAX_SEGMENT_VALUES",
    "MIN_REFERENCE_ROWS",
    "Categories",
    "ClassName",
    "Column",
    "Duration",
    "FeatureName",
    "Kind",
    "Number",
    "Range",
    "Share",
    "Task",
    "Whole",
    "scalar_text",
]

Task = Literal["binary", "multiclass", "regression"]
Kind = Literal["numeric", "categorical"]

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
_MAX_PATH = 4096


def _whole_float(value: Any) -> Any:
    """``100.0`` is the whole number 100 (JSON and YAML writers may add the ``.0``)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


class _Constrained:
    """A marker for ``Annotated[<type>, marker]`` that stands for some pydantic metadata."""

    def metadata(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return handler.generate_schema(Annotated[(source, *self.metadata())])


@dataclass(frozen=True)
class Whole(_Constrained):
    """``Annotated[int, Whole(low, high)]``: a whole number from ``low`` to ``high``."""

    low: int
    high: int

    def metadata(self) -> tuple[Any, ...]:
        return (
            Field(ge=self.low, le=self.high),
            BeforeValidator(_whole_float),
            expect(f"expected a whole number from {self.low} to {self.high}"),
        )


@dataclass(frozen=True)
class Number(_Constrained):
    """``Annotated[float, Number(low, high)]``: a finite number from ``low`` to ``high``."""

    low: float
    high: float = math.inf

    def metadata(self) -> tuple[Any, ...]:
        high = None if math.isinf(self.high) else self.high
        return (
            Field(ge=self.low, le=high, allow_inf_nan=False),
            expect(f"expected a number from {self.low:g} to {self.high:g}"),
        )


@dataclass(frozen=True)
class Share(_Constrained):
    """``Annotated[float, Share("a level")]``: a number strictly between 0 and 1."""

    what: str

    def metadata(self) -> tuple[Any, ...]:
        return (
            Field(gt=0, lt=1, allow_inf_nan=False),
            expect(f"expected {self.what} strictly between 0 and 1"),
        )


# --------------------------------------------------------------------------- text values


def scalar_text(value: Any) -> str | None:
    """A class or category value as text: any scalar as its ``str`` (as the collector reads
    JSON values); ``None`` for no scalar (null, a list, a mapping) or a number too long."""
    if value is None or isinstance(value, Mapping | list | tuple):
        return None
    try:
        return str(value)
    except ValueError:  # an int beyond Python's int-to-str digit limit
        return None


def _no_text(value: Any) -> PydanticCustomError:
    if isinstance(value, int):  # beyond Python's int-to-str digit limit
        return problem(f"expected a string or a number of at most 128 digits, got {show(value)}")
    return problem(f"expected a string or number, got {show(value)}")


def _class_name(value: Any) -> str:
    name = scalar_text(value)
    if name is None:
        raise _no_text(value)
    if not name or len(name) > MAX_CLASS_LENGTH or not name.isprintable():
        raise problem(f"expected 1 to {MAX_CLASS_LENGTH} printable characters, got {show(value)}")
    return name


def _category(value: Any) -> str:
    text = scalar_text(value)
    if text is None:
        raise _no_text(value)
    return text


_SCALAR = str | float | bool  # JSON Schema "number" takes the integers too

#: A class (``classes``, ``positive_class``): a string or number, kept as its text.
ClassName = Annotated[
    str,
    PlainValidator(_class_name, json_schema_input_type=_SCALAR),
    Field(description=f"a class value: 1 to {MAX_CLASS_LENGTH} printable characters"),
]
_Category = Annotated[str, PlainValidator(_category, json_schema_input_type=_SCALAR)]

#: A feature's expected vocabulary: 1 to 1000 distinct strings or numbers.
Categories = Annotated[
    list[_Category],
    Field(min_length=1, max_length=MAX_CATEGORIES),
    expect(f"expected a list of 1 to {MAX_CATEGORIES} values"),
]


def _feature_name(value: str) -> str:
    if not is_name("feature", value):
        raise ValueError("not a feature name")
    return value


FeatureName = Annotated[
    str,
    AfterValidator(_feature_name),
    Field(
        json_schema_extra={"pattern": f"^{NAME_PATTERNS['feature'].pattern}$"},
        description=name_rule("feature"),
    ),
    expect(f"expected a feature name ({name_rule('feature')})"),
]


def _column_message(value: Any) -> str:
    if isinstance(value, str) and len(value) > _MAX_PATH:
        return f"expected at most {_MAX_PATH} characters, got {len(value)}"
    return f"expected a non-empty string, got {got(value)}"


#: A column name or a file path: a non-empty string.
Column = Annotated[str, Field(min_length=1, max_length=_MAX_PATH), expect(_column_message)]


# --------------------------------------------------------------------------- numbers


def _range_order(value: list[float | None]) -> list[float | None]:
    low, high = value
    if low is not None and high is not None and low > high:
        raise problem(f"low {low:g} is above high {high:g}")
    return value


#: ``[low, high]`` of a numeric feature; ``null`` leaves that side open.
Range = Annotated[
    list[Annotated[float, Field(allow_inf_nan=False)] | None],
    Field(min_length=2, max_length=2),
    expect("expected [low, high] (numbers, null = open)", whole=True),
    AfterValidator(_range_order),
]


_DURATION = "expected a duration like '30s', '5m', '1h' or '7d'"


def _duration(value: Any) -> float:
    """Whole seconds, at least 1, from a duration text or a number of seconds."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise problem(f"{_DURATION}, got {got(value)}")
    if isinstance(value, int) and abs(value) > 10**30:
        raise problem(f"{_DURATION}, got {show(value)}")
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise problem(str(exc)) from None
    if seconds < 1 or not seconds.is_integer():
        raise problem(f"expected whole seconds, at least 1s, got {show(value)}")
    return seconds


#: A duration of whole seconds, at least 1: ``30s``, ``5m``, ``1h30m``, ``7d``, or seconds.
Duration = Annotated[
    float,
    PlainValidator(_duration, json_schema_input_type=str | Annotated[int, Field(ge=1)]),
    Field(description="a duration like '30s', '5m', '1h30m' or '7d', or whole seconds"),
]
