"""Request bodies, the shared part: JSON parsing, the model's schema, envelope checks.

Two kinds of problems, two treatments (docs/contract.md, "HTTP API"):

* **Envelope problems** (missing or bad ``id``, bad timestamp, unknown class, bad
  probabilities, bad version...) reject *that event alone*; the response lists its index and
  the reason, and the other events are kept.
* **Feature-value problems** (wrong type, missing, out of range, unseen category, unknown
  feature) are *data quality*: the event is accepted and the problem is counted by the engine.

Each kind of body has its module: :mod:`~modelmeter.service.predictions` (prediction events,
their columnar payload and ``PredictionBatch``), :mod:`~modelmeter.service.labels` (labels and
``LabelBatch``) and :mod:`~modelmeter.service.resources` (a replica's resource report). This
module holds what they share: :class:`IngestError`, :class:`Schema`, and the checks of ids,
timestamps and classes (:class:`Reject` rejects one event).

>>> timestamp("2024-05-01T12:00:00Z", now=2e9)
1714564800.0
>>> event_id({"id": ""})
Traceback (most recent call last):
...
modelmeter.service.ingest.Reject: 'id' must be a string of 1-128 characters, got ''
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

import numpy as np
import orjson

from modelmeter.engine.config import MonitorConfig

__all__ = [
    "DEFAULT_VERSION",
    "MAX_ID_LENGTH",
    "IngestError",
    "Reject",
    "Schema",
    "check_target",
    "event_id",
    "floats",
    "is_number",
    "parse_json",
    "show",
    "targets",
    "timestamp",
    "to_target",
    "unique",
    "validate_each",
]

MAX_ID_LENGTH = 128
MAX_FUTURE_SECONDS = 3600.0
DEFAULT_VERSION = "default"
_MIN_TIMESTAMP = 0.0
_MAX_TIMESTAMP = 1e11


class IngestError(Exception):
    """A whole request is unusable: ``status`` (4xx) and ``detail`` (what and where)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail

    def __repr__(self) -> str:
        return f"IngestError({self.status}, {self.detail!r})"


def parse_json(body: bytes) -> Any:
    """Parse a JSON body; NaN / Infinity tokens and other syntax errors are 400 with position.

    >>> parse_json(b'{"a": NaN}')
    Traceback (most recent call last):
    ...
    modelmeter.service.ingest.IngestError: malformed JSON at line 1, column 7 (byte 6): ...
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        reason = str(exc.msg).split(": line")[0]
        raise IngestError(
            400,
            f"malformed JSON at line {exc.lineno}, column {exc.colno} (byte {exc.pos}): {reason}"
            " (NaN and Infinity are not JSON; send null for a missing value)",
        ) from None


@dataclass(frozen=True)
class Schema:
    """What the validation needs from a model's ``MonitorConfig``."""

    task: str
    classes: tuple[str, ...]
    positive_class: str | None
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    @classmethod
    def from_config(cls, config: MonitorConfig) -> Schema:
        return cls(
            task=config.task,
            classes=tuple(config.classes),
            positive_class=config.positive_class,
            numeric=tuple(f.name for f in config.features if f.kind == "numeric"),
            categorical=tuple(f.name for f in config.features if f.kind == "categorical"),
        )

    @property
    def is_classification(self) -> bool:
        return self.task != "regression"

    @functools.cached_property
    def lookup(self) -> dict[Any, str]:
        """Fast path of ``_to_class``: class strings and the ints that spell them."""
        out: dict[Any, str] = {c: c for c in self.classes}
        for c in self.classes:
            if c.lstrip("-").isdigit() and str(int(c)) == c:
                out[int(c)] = c
        return out

    @property
    def feature_names(self) -> frozenset[str]:
        return frozenset(self.numeric) | frozenset(self.categorical)


class Reject(Exception):
    """One event is rejected; the message says why (its index is added by the caller)."""


def is_number(value: Any) -> bool:
    return type(value) is int or type(value) is float


def _to_class(value: Any, schema: Schema, field: str) -> str:
    if isinstance(value, bool) or type(value) is int or isinstance(value, str):
        text = str(value)
    elif type(value) is float and value.is_integer():
        text = str(int(value))
    else:
        raise Reject(f"{field!r} must be a class name (string or integer), got {show(value)}")
    if text not in schema.classes:
        raise Reject(
            f"{field!r} {text!r} is not one of the model's classes {list(schema.classes)}; "
            "register the class in the spec or fix the value"
        )
    return text


def to_target(value: Any, schema: Schema, field: str) -> str | float:
    if schema.is_classification:
        return _to_class(value, schema, field)
    if not is_number(value):
        raise Reject(f"{field!r} must be a number for a regression model, got {show(value)}")
    return float(value)


def check_target(value: Any, schema: Schema, field: str) -> str | float:
    """``value`` as a class (classification) or number (regression) of ``schema``;
    ValueError saying why not (for values stored under an earlier spec)."""
    try:
        return to_target(value, schema, field)
    except Reject as exc:
        raise ValueError(str(exc)) from None


def show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def timestamp(value: Any, now: float, field: str = "timestamp") -> float:
    if value is None:
        return now
    if is_number(value):
        ts = float(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise Reject(
                f"{field!r} {show(value)} is not an RFC 3339 time (e.g. 2024-05-01T12:00:00Z) "
                "or Unix seconds"
            ) from None
        if parsed.tzinfo is None:
            raise Reject(f"{field!r} {show(value)} has no time zone; add Z or +00:00")
        ts = parsed.timestamp()
    else:
        raise Reject(f"{field!r} must be Unix seconds or an RFC 3339 string, got {show(value)}")
    if not _MIN_TIMESTAMP < ts < _MAX_TIMESTAMP:
        raise Reject(f"{field!r} {show(value)} is not a plausible Unix time in seconds")
    if ts > now + MAX_FUTURE_SECONDS:
        raise Reject(f"{field!r} {show(value)} is more than 1 h in the future; check the clock")
    return ts


def event_id(event: Mapping[str, Any]) -> str:
    if "id" not in event:
        raise Reject("'id' is missing; give each event a unique string id (1-128 characters)")
    value = event["id"]
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID_LENGTH:
        raise Reject(f"'id' must be a string of 1-128 characters, got {show(value)}")
    return value


def _batch_list(doc: Any, key: str, max_events: int) -> list[Any]:
    if not isinstance(doc, dict):
        raise IngestError(422, f"the body must be a JSON object with a {key!r} list")
    if key not in doc:
        raise IngestError(422, f"the body has no {key!r} field; send {{{key!r}: [...]}}")
    items = doc[key]
    if not isinstance(items, list):
        raise IngestError(422, f"{key!r} must be a list, got {type(items).__name__}")
    if not items:
        raise IngestError(422, f"{key!r} is empty; send at least one event")
    if len(items) > max_events:
        raise IngestError(
            413,
            f"{len(items)} events in one request; the limit is {max_events} "
            "(MODELMETER_MAX_EVENTS); split the batch",
        )
    return items


class _Event(Protocol):
    @property
    def id(self) -> str: ...


_E = TypeVar("_E", bound=_Event)


def validate_each(
    doc: Any, key: str, max_events: int, parse: Callable[[int, Any, Mapping[str, int]], _E]
) -> tuple[list[_E], list[tuple[int, str]]]:
    """The events of ``doc[key]`` (a list, else 4xx) split into the valid ones and
    ``(index, reason)`` rejections. ``parse(index, item, seen)`` returns one event or raises
    :class:`Reject`; ``seen`` maps the ids of the valid events before it to their index."""
    items = _batch_list(doc, key, max_events)
    events: list[_E] = []
    rejected: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        try:
            event = parse(index, item, seen)
        except Reject as exc:
            rejected.append((index, str(exc)))
            continue
        seen[event.id] = index
        events.append(event)
    return events, rejected


def unique(event_id: str, seen: Mapping[str, int]) -> str:
    """``event_id``, unless an earlier event of the request has it (then :class:`Reject`)."""
    if event_id in seen:
        raise Reject(f"duplicate id {event_id!r} (first at index {seen[event_id]})")
    return event_id


def floats(values: Sequence[Any]) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def targets(values: Sequence[Any], schema: Schema) -> np.ndarray:
    if schema.is_classification:
        return np.array(values, dtype=object)
    return floats(values)
