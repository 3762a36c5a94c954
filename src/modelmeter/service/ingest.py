"""Request bodies to engine batches: JSON parsing, envelope validation, feature columns.

Two kinds of problems, two treatments (docs/contract.md, "HTTP API"):

* **Envelope problems** (missing or bad ``id``, bad timestamp, unknown class, bad
  probabilities, bad version...) reject *that event alone*; the response lists its index and
  the reason, and the other events are kept.
* **Feature-value problems** (wrong type, missing, out of range, unseen category, unknown
  feature) are *data quality*: the event is accepted and the problem is counted by the engine.

Accepted prediction events become a columnar *payload* (plain JSON-able dict); the same
payload is written to the store's operation log and turned into a ``PredictionBatch`` by
:func:`observe_batch`, live and on replay, so both paths feed the engine identical numbers.

>>> from modelmeter.engine.config import FeatureSpec, MonitorConfig
>>> schema = Schema.from_config(MonitorConfig(
...     task="binary", classes=("0", "1"), features=(FeatureSpec("x", "numeric"),)))
>>> doc = parse_json(b'{"predictions": [{"id": "a", "features": {"x": 1.5}, "prediction": 1},'
...                  b' {"features": {}}]}')
>>> events, rejected = validate_predictions(doc, schema, now=1000.0, max_events=10)
>>> [e.id for e in events], rejected
(['a'], [(1, "'id' is missing; give each event a unique string id (1-128 characters)")])
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson

from modelmeter.engine.batch import LabelBatch, PredictionBatch
from modelmeter.engine.config import MonitorConfig

__all__ = [
    "MODEL_NAME",
    "VERSION_NAME",
    "IngestError",
    "LabelEvent",
    "PredictionEvent",
    "Resources",
    "Schema",
    "check_target",
    "label_batch",
    "label_payload",
    "observe_batch",
    "observe_payload",
    "parse_json",
    "validate_labels",
    "validate_predictions",
    "validate_resources",
]

MODEL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # use .fullmatch: "m\n" is no name
VERSION_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
REPLICA_NAME = VERSION_NAME
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


@dataclass(slots=True)
class PredictionEvent:
    """One valid prediction event (envelope checked; feature values not yet)."""

    index: int
    id: str
    version: str
    ts: float
    features: Mapping[str, Any]
    prediction: str | float  # "" / NaN when the event is an error without prediction
    scores: float | tuple[float, ...] | None
    latency: float
    error: bool
    label: str | float | None


@dataclass(frozen=True)
class LabelEvent:
    """One valid label."""

    index: int
    id: str
    label: str | float
    ts: float


@dataclass(frozen=True)
class Resources:
    """Per-request resource report of the serving replica."""

    replica: str
    cpu_ratio: float | None
    memory_bytes: float | None
    version: str | None
    #: events the SDK of this replica dropped since it started, ``kind -> count`` (cumulative)
    dropped: Mapping[str, int] = dataclasses.field(default_factory=dict)


class _Reject(Exception):
    pass


def _is_number(value: Any) -> bool:
    return type(value) is int or type(value) is float


def _to_class(value: Any, schema: Schema, field: str) -> str:
    if isinstance(value, bool) or type(value) is int or isinstance(value, str):
        text = str(value)
    elif type(value) is float and value.is_integer():
        text = str(int(value))
    else:
        raise _Reject(f"{field!r} must be a class name (string or integer), got {_show(value)}")
    if text not in schema.classes:
        raise _Reject(
            f"{field!r} {text!r} is not one of the model's classes {list(schema.classes)}; "
            "register the class in the spec or fix the value"
        )
    return text


def _to_target(value: Any, schema: Schema, field: str) -> str | float:
    if schema.is_classification:
        return _to_class(value, schema, field)
    if not _is_number(value):
        raise _Reject(f"{field!r} must be a number for a regression model, got {_show(value)}")
    return float(value)


def check_target(value: Any, schema: Schema, field: str) -> str | float:
    """``value`` as a class (classification) or number (regression) of ``schema``;
    ValueError saying why not (for values stored under an earlier spec)."""
    try:
        return _to_target(value, schema, field)
    except _Reject as exc:
        raise ValueError(str(exc)) from None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _timestamp(value: Any, now: float, field: str = "timestamp") -> float:
    if value is None:
        return now
    if _is_number(value):
        ts = float(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _Reject(
                f"{field!r} {_show(value)} is not an RFC 3339 time (e.g. 2024-05-01T12:00:00Z) "
                "or Unix seconds"
            ) from None
        if parsed.tzinfo is None:
            raise _Reject(f"{field!r} {_show(value)} has no time zone; add Z or +00:00")
        ts = parsed.timestamp()
    else:
        raise _Reject(f"{field!r} must be Unix seconds or an RFC 3339 string, got {_show(value)}")
    if not _MIN_TIMESTAMP < ts < _MAX_TIMESTAMP:
        raise _Reject(f"{field!r} {_show(value)} is not a plausible Unix time in seconds")
    if ts > now + MAX_FUTURE_SECONDS:
        raise _Reject(f"{field!r} {_show(value)} is more than 1 h in the future; check the clock")
    return ts


def _event_id(event: Mapping[str, Any]) -> str:
    if "id" not in event:
        raise _Reject("'id' is missing; give each event a unique string id (1-128 characters)")
    value = event["id"]
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID_LENGTH:
        raise _Reject(f"'id' must be a string of 1-128 characters, got {_show(value)}")
    return value


def _probability(value: Any, where: str) -> float:
    if not _is_number(value) or not 0.0 <= float(value) <= 1.0:
        raise _Reject(f"{where} must be a probability in [0, 1], got {_show(value)}")
    return float(value)


def _scores(event: Mapping[str, Any], schema: Schema) -> float | tuple[float, ...] | None:
    probs = event.get("probabilities")
    score = event.get("score")
    if probs is None and score is None:
        return None
    if not schema.is_classification:
        raise _Reject("'probabilities' and 'score' apply to classification models only")
    if probs is not None and score is not None:
        raise _Reject("give either 'probabilities' or 'score', not both")
    if score is not None:
        if schema.task != "binary":
            raise _Reject(
                "'score' (P(positive class)) applies to binary models; send "
                "'probabilities' for a multiclass model"
            )
        return _probability(score, "'score'")
    k = len(schema.classes)
    if isinstance(probs, list):
        if len(probs) != k:
            raise _Reject(
                f"'probabilities' has {len(probs)} values; the model has {k} classes "
                f"{list(schema.classes)} (in this order)"
            )
        values = [_probability(p, f"'probabilities'[{j}]") for j, p in enumerate(probs)]
    elif isinstance(probs, dict):
        unknown = sorted(set(probs) - set(schema.classes))
        if unknown:
            raise _Reject(
                f"'probabilities' has unknown classes {unknown[:5]}; "
                f"the model's classes are {list(schema.classes)}"
            )
        missing = [c for c in schema.classes if c not in probs]
        if missing:
            raise _Reject(f"'probabilities' lacks classes {missing[:5]}")
        values = [_probability(probs[c], f"'probabilities'[{c!r}]") for c in schema.classes]
    else:
        raise _Reject(f"'probabilities' must be a list or an object, got {_show(probs)}")
    total = math.fsum(values)
    if abs(total - 1.0) > 1e-3:
        raise _Reject(f"'probabilities' sum to {total:.6g}, not 1")
    if schema.task == "binary":
        assert schema.positive_class is not None
        return values[schema.classes.index(schema.positive_class)]
    return tuple(values)


def _prediction_event(index: int, event: Any, schema: Schema, now: float) -> PredictionEvent:
    if type(event) is not dict:
        raise _Reject(f"an event must be a JSON object, got {_show(event)}")
    get = event.get
    event_id = get("id")
    if type(event_id) is not str or not 0 < len(event_id) <= MAX_ID_LENGTH:
        event_id = _event_id(event)  # raises with the precise reason
    version = get("version")
    if version is None:
        version = DEFAULT_VERSION
    elif not isinstance(version, str) or not VERSION_NAME.fullmatch(version):
        raise _Reject(f"'version' must match [A-Za-z0-9_.:-]{{1,64}}, got {_show(version)}")
    raw_ts = get("timestamp")
    ts = now if raw_ts is None else _timestamp(raw_ts, now)
    features = get("features")
    if features is None:
        features = {}
    elif type(features) is not dict:
        raise _Reject(f"'features' must be an object {{name: value}}, got {_show(features)}")
    raw_error = get("error")
    if raw_error is None or raw_error is False:
        error = False
    elif raw_error is True or isinstance(raw_error, str):
        error = True
    else:
        raise _Reject(f"'error' must be a boolean or a message string, got {_show(raw_error)}")
    raw_prediction = get("prediction")
    if raw_prediction is None:
        if not error:
            raise _Reject("'prediction' is missing; only an event with 'error' may omit it")
        prediction: str | float = "" if schema.is_classification else math.nan
    else:
        found = schema.lookup.get(raw_prediction) if type(raw_prediction) in _KEY_TYPES else None
        prediction = _to_target(raw_prediction, schema, "prediction") if found is None else found
    score = get("score")
    if type(score) is float and schema.task == "binary" and get("probabilities") is None:
        if not 0.0 <= score <= 1.0:
            raise _Reject(f"'score' must be a probability in [0, 1], got {_show(score)}")
        scores: float | tuple[float, ...] | None = score
    else:
        scores = _scores(event, schema)
    latency_raw = get("latency_seconds")
    if latency_raw is None:
        latency = math.nan
    elif _is_number(latency_raw) and 0.0 <= float(latency_raw) < 1e9:
        latency = float(latency_raw)
    else:
        raise _Reject(f"'latency_seconds' must be a number >= 0, got {_show(latency_raw)}")
    label_raw = get("label")
    label = None if label_raw is None else _to_target(label_raw, schema, "label")
    return PredictionEvent(
        index, event_id, version, ts, features, prediction, scores, latency, error, label
    )


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


def validate_predictions(
    doc: Any, schema: Schema, now: float, max_events: int
) -> tuple[list[PredictionEvent], list[tuple[int, str]]]:
    """Split a predictions body into valid events and ``(index, reason)`` rejections.

    A repeated ``id`` inside the batch rejects the later occurrences.
    """
    items = _batch_list(doc, "predictions", max_events)
    events: list[PredictionEvent] = []
    rejected: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        try:
            event = _prediction_event(index, item, schema, now)
            if event.id in seen:
                raise _Reject(f"duplicate id {event.id!r} (first at index {seen[event.id]})")
        except _Reject as exc:
            rejected.append((index, str(exc)))
            continue
        seen[event.id] = index
        events.append(event)
    return events, rejected


def validate_labels(
    doc: Any, schema: Schema, now: float, max_events: int
) -> tuple[list[LabelEvent], list[tuple[int, str]]]:
    """Split a labels body into valid labels and ``(index, reason)`` rejections."""
    items = _batch_list(doc, "labels", max_events)
    labels: list[LabelEvent] = []
    rejected: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise _Reject(f"a label must be a JSON object, got {_show(item)}")
            label_id = _event_id(item)
            if label_id in seen:
                raise _Reject(f"duplicate id {label_id!r} (first at index {seen[label_id]})")
            if item.get("label") is None:
                raise _Reject("'label' is missing")
            value = _to_target(item["label"], schema, "label")
            ts = _timestamp(item.get("timestamp"), now)
        except _Reject as exc:
            rejected.append((index, str(exc)))
            continue
        seen[label_id] = index
        labels.append(LabelEvent(index, label_id, value, ts))
    return labels, rejected


def validate_resources(doc: Any) -> Resources | None:
    """The optional ``resources`` object of a predictions body (422 if malformed)."""
    if not isinstance(doc, dict) or doc.get("resources") is None:
        return None
    res = doc["resources"]
    if not isinstance(res, dict):
        raise IngestError(422, "'resources' must be an object {replica, cpu_ratio, memory_bytes}")
    replica = res.get("replica")
    if not isinstance(replica, str) or not REPLICA_NAME.fullmatch(replica):
        raise IngestError(
            422, f"'resources.replica' must match [A-Za-z0-9_.:-]{{1,64}}, got {_show(replica)}"
        )
    cpu = res.get("cpu_ratio")
    if cpu is not None and not (_is_number(cpu) and 0.0 <= float(cpu) <= 4096.0):
        raise IngestError(422, f"'resources.cpu_ratio' must be a number >= 0, got {_show(cpu)}")
    mem = res.get("memory_bytes")
    if mem is not None and not (_is_number(mem) and 0.0 <= float(mem) <= 2.0**60):
        raise IngestError(422, f"'resources.memory_bytes' must be a number >= 0, got {_show(mem)}")
    version = res.get("version")
    if version is not None and not (isinstance(version, str) and VERSION_NAME.fullmatch(version)):
        raise IngestError(422, "'resources.version' must match [A-Za-z0-9_.:-]{1,64}")
    dropped_raw = res.get("dropped")
    dropped: dict[str, int] = {}
    if dropped_raw is not None:
        if not isinstance(dropped_raw, dict) or not set(dropped_raw) <= {"predictions", "labels"}:
            raise IngestError(
                422, "'resources.dropped' must be an object {predictions: n, labels: n}"
            )
        for kind, count in dropped_raw.items():
            if type(count) is not int or not 0 <= count < 2**53:
                raise IngestError(
                    422, f"'resources.dropped.{kind}' must be an integer >= 0, got {_show(count)}"
                )
            dropped[kind] = count
    return Resources(
        replica,
        None if cpu is None else float(cpu),
        None if mem is None else float(mem),
        version,
        dropped,
    )


# --- columnar payloads (logged, then turned into engine batches) -----------------------------


def _numeric_matrix(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> np.ndarray | None:
    """``(len(names), n)`` float64 (one contiguous row per feature) when every row has every
    name with a number or null; else None (the per-column path handles the rest)."""
    if not names:
        return None
    getter = operator.itemgetter(*names)
    try:
        values = [getter(row) for row in rows]
    except KeyError:
        return None
    if len(names) == 1:
        values = [(v,) for v in values]
    if not set(map(type, itertools.chain.from_iterable(values))) <= _NUMBER_TYPES:
        return None
    matrix = np.array(values, dtype=np.float64).reshape(len(rows), len(names))
    return np.ascontiguousarray(matrix.T)


def observe_payload(events: Sequence[PredictionEvent], schema: Schema) -> dict[str, Any]:
    """The columns of ``PredictionBatch`` for ``events`` (one version), as a plain dict.

    Numeric features: float or None (missing); ints and floats are numbers, anything else
    (bool, string, list, object) is a wrong type. Categorical features: strings; integers are
    converted with ``str()``; other types are wrong. Unknown feature names are counted.
    """
    features: dict[str, Any] = {}
    wrong: dict[str, list[int]] = {}
    rows = [e.features for e in events]
    numeric = _numeric_matrix(rows, schema.numeric)
    for j, name in enumerate(schema.numeric):
        if numeric is not None:  # the usual case: every row has every numeric feature
            features[name] = numeric[j]
            continue
        values = [row.get(name) for row in rows]
        if set(map(type, values)) <= _NUMBER_TYPES:
            features[name] = np.array(values, dtype=np.float64)
            continue
        column: list[float | None] = []
        bad: list[int] = []
        for i, v in enumerate(values):
            t = type(v)
            if t is float or t is int:
                column.append(float(v))  # type: ignore[arg-type]
            else:
                column.append(None)
                if v is not None:
                    bad.append(i)
        features[name] = np.array(column, dtype=np.float64)
        if bad:
            wrong[name] = bad
    for name in schema.categorical:
        cats: list[str | None] = []
        bad = []
        for i, row in enumerate(rows):
            v = row.get(name)
            if v is None or isinstance(v, str):
                cats.append(v)
            elif type(v) is int:
                cats.append(str(v))
            else:
                cats.append(None)
                bad.append(i)
        features[name] = cats
        if bad:
            wrong[name] = bad
    known = schema.feature_names
    n_known = len(known)
    unknown = 0
    for row in rows:
        if len(row) != n_known or not known.issuperset(row):
            unknown += len(row.keys() - known)
    payload: dict[str, Any] = {
        "ts": np.array([e.ts for e in events], dtype=np.float64),
        "features": features,
        "wrong_type": wrong,
        "predictions": [e.prediction for e in events],
        "latency": np.array([e.latency for e in events], dtype=np.float64),
        "errors": [e.error for e in events],
        "unknown": unknown,
    }
    if any(e.scores is not None for e in events):
        if schema.task == "multiclass":
            k = len(schema.classes)
            payload["scores"] = [
                list(e.scores) if isinstance(e.scores, tuple) else [None] * k for e in events
            ]
        else:
            payload["scores"] = [e.scores for e in events]
    return payload


_NUMBER_TYPES = frozenset({float, int, type(None)})
_KEY_TYPES = frozenset({str, int})  # never bool: True == 1 would find class "1"


def _floats(values: Sequence[Any]) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def _targets(values: Sequence[Any], schema: Schema) -> np.ndarray:
    if schema.is_classification:
        return np.array(values, dtype=object)
    return _floats(values)


def observe_batch(payload: Mapping[str, Any], schema: Schema) -> PredictionBatch:
    """The ``PredictionBatch`` of a payload from :func:`observe_payload` (or its JSON)."""
    n = len(payload["ts"])
    features: dict[str, np.ndarray] = {}
    for name in schema.numeric:
        features[name] = _floats(payload["features"][name])
    for name in schema.categorical:
        features[name] = np.array(payload["features"][name], dtype=object)
    wrong: dict[str, np.ndarray] = {}
    for name, idx in payload["wrong_type"].items():
        mask = np.zeros(n, dtype=bool)
        mask[np.asarray(idx, dtype=np.int64)] = True
        wrong[name] = mask
    scores = payload.get("scores")
    return PredictionBatch(
        timestamps=_floats(payload["ts"]),
        features=features,
        predictions=_targets(payload["predictions"], schema),
        scores=None if scores is None else _floats(scores),
        latency_seconds=_floats(payload["latency"]),
        errors=np.array(payload["errors"], dtype=bool),
        wrong_type=wrong,
        unknown_features=int(payload["unknown"]),
    )


def label_payload(rows: Sequence[tuple[Any, ...]], schema: Schema) -> dict[str, Any]:
    """Columns of a ``LabelBatch`` from ``(label_ts, prediction_ts, prediction, label, scores)``
    rows, each optionally with a sixth item: the prediction's segment value codes (a list, or
    None: unknown). The ``segments`` column is there only when some row has codes (a payload
    without it, as every payload written before segments, has no segments)."""
    payload: dict[str, Any] = {
        "label_ts": [r[0] for r in rows],
        "prediction_ts": [r[1] for r in rows],
        "predictions": [r[2] for r in rows],
        "labels": [r[3] for r in rows],
    }
    if any(r[4] is not None for r in rows):
        if schema.task == "multiclass":
            k = len(schema.classes)
            payload["scores"] = [list(r[4]) if r[4] is not None else [None] * k for r in rows]
        else:
            payload["scores"] = [r[4] for r in rows]
    codes = [r[5] if len(r) > 5 else None for r in rows]
    width = next((len(c) for c in codes if c is not None), None)
    if width is not None:
        payload["segments"] = [list(c) if c is not None else [-1] * width for c in codes]
    return payload


def label_batch(payload: Mapping[str, Any], schema: Schema) -> LabelBatch:
    """The ``LabelBatch`` of a payload from :func:`label_payload` (or its JSON)."""
    scores = payload.get("scores")
    segments = payload.get("segments")
    return LabelBatch(
        label_timestamps=_floats(payload["label_ts"]),
        prediction_timestamps=_floats(payload["prediction_ts"]),
        predictions=_targets(payload["predictions"], schema),
        labels=_targets(payload["labels"], schema),
        scores=None if scores is None else _floats(scores),
        segments=None if segments is None else np.array(segments, dtype=np.int64),
    )
