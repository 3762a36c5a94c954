"""Prediction events: envelope validation, the columnar payload, the ``PredictionBatch``.

Accepted prediction events become a columnar *payload* (plain JSON-able dict); the same
payload is written to the store's operation log and turned into a ``PredictionBatch`` by
:func:`observe_batch`, live and on replay, so both paths feed the engine identical numbers.

>>> from modelmeter.engine.config import FeatureSpec, MonitorConfig
>>> from modelmeter.service.ingest import parse_json
>>> schema = Schema.from_config(MonitorConfig(
...     task="binary", classes=("0", "1"), features=(FeatureSpec("x", "numeric"),)))
>>> doc = parse_json(b'{"predictions": [{"id": "a", "features": {"x": 1.5}, "prediction": 1},'
...                  b' {"features": {}}]}')
>>> events, rejected = validate_predictions(doc, schema, now=1000.0, max_events=10)
>>> [e.id for e in events], rejected
(['a'], [(1, "'id' is missing; give each event a unique string id (1-128 characters)")])
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelmeter.engine.batch import PredictionBatch
from modelmeter.names import NAME_PATTERNS, is_name
from modelmeter.service.ingest import (
    DEFAULT_VERSION,
    MAX_ID_LENGTH,
    Reject,
    Schema,
    event_id,
    floats,
    is_number,
    show,
    targets,
    timestamp,
    to_target,
    unique,
    validate_each,
)

__all__ = [
    "PredictionEvent",
    "observe_batch",
    "observe_payload",
    "validate_predictions",
]

_NUMBER_TYPES = frozenset({float, int, type(None)})
_KEY_TYPES = frozenset({str, int})  # never bool: True == 1 would find class "1"
_VERSION = NAME_PATTERNS["version"].pattern  # in messages


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


def _probability(value: Any, where: str) -> float:
    if not is_number(value) or not 0.0 <= float(value) <= 1.0:
        raise Reject(f"{where} must be a probability in [0, 1], got {show(value)}")
    return float(value)


def _scores(event: Mapping[str, Any], schema: Schema) -> float | tuple[float, ...] | None:
    probs = event.get("probabilities")
    score = event.get("score")
    if probs is None and score is None:
        return None
    if not schema.is_classification:
        raise Reject("'probabilities' and 'score' apply to classification models only")
    if probs is not None and score is not None:
        raise Reject("give either 'probabilities' or 'score', not both")
    if score is not None:
        if schema.task != "binary":
            raise Reject(
                "'score' (P(positive class)) applies to binary models; send "
                "'probabilities' for a multiclass model"
            )
        return _probability(score, "'score'")
    k = len(schema.classes)
    if isinstance(probs, list):
        if len(probs) != k:
            raise Reject(
                f"'probabilities' has {len(probs)} values; the model has {k} classes "
                f"{list(schema.classes)} (in this order)"
            )
        values = [_probability(p, f"'probabilities'[{j}]") for j, p in enumerate(probs)]
    elif isinstance(probs, dict):
        unknown = sorted(set(probs) - set(schema.classes))
        if unknown:
            raise Reject(
                f"'probabilities' has unknown classes {unknown[:5]}; "
                f"the model's classes are {list(schema.classes)}"
            )
        missing = [c for c in schema.classes if c not in probs]
        if missing:
            raise Reject(f"'probabilities' lacks classes {missing[:5]}")
        values = [_probability(probs[c], f"'probabilities'[{c!r}]") for c in schema.classes]
    else:
        raise Reject(f"'probabilities' must be a list or an object, got {show(probs)}")
    total = math.fsum(values)
    if abs(total - 1.0) > 1e-3:
        raise Reject(f"'probabilities' sum to {total:.6g}, not 1")
    if schema.task == "binary":
        assert schema.positive_class is not None
        return values[schema.classes.index(schema.positive_class)]
    return tuple(values)


def _prediction_event(index: int, event: Any, schema: Schema, now: float) -> PredictionEvent:
    if type(event) is not dict:
        raise Reject(f"an event must be a JSON object, got {show(event)}")
    get = event.get
    id_ = get("id")
    if type(id_) is not str or not 0 < len(id_) <= MAX_ID_LENGTH:
        id_ = event_id(event)  # raises with the precise reason
    version = get("version")
    if version is None:
        version = DEFAULT_VERSION
    elif not is_name("version", version):
        raise Reject(f"'version' must match {_VERSION}, got {show(version)}")
    raw_ts = get("timestamp")
    ts = now if raw_ts is None else timestamp(raw_ts, now)
    features = get("features")
    if features is None:
        features = {}
    elif type(features) is not dict:
        raise Reject(f"'features' must be an object {{name: value}}, got {show(features)}")
    raw_error = get("error")
    if raw_error is None or raw_error is False:
        error = False
    elif raw_error is True or isinstance(raw_error, str):
        error = True
    else:
        raise Reject(f"'error' must be a boolean or a message string, got {show(raw_error)}")
    raw_prediction = get("prediction")
    if raw_prediction is None:
        if not error:
            raise Reject("'prediction' is missing; only an event with 'error' may omit it")
        prediction: str | float = "" if schema.is_classification else math.nan
    else:
        found = schema.lookup.get(raw_prediction) if type(raw_prediction) in _KEY_TYPES else None
        prediction = to_target(raw_prediction, schema, "prediction") if found is None else found
    score = get("score")
    if type(score) is float and schema.task == "binary" and get("probabilities") is None:
        if not 0.0 <= score <= 1.0:
            raise Reject(f"'score' must be a probability in [0, 1], got {show(score)}")
        scores: float | tuple[float, ...] | None = score
    else:
        scores = _scores(event, schema)
    latency_raw = get("latency_seconds")
    if latency_raw is None:
        latency = math.nan
    elif is_number(latency_raw) and 0.0 <= float(latency_raw) < 1e9:
        latency = float(latency_raw)
    else:
        raise Reject(f"'latency_seconds' must be a number >= 0, got {show(latency_raw)}")
    label_raw = get("label")
    label = None if label_raw is None else to_target(label_raw, schema, "label")
    return PredictionEvent(
        index, id_, version, ts, features, prediction, scores, latency, error, label
    )


def validate_predictions(
    doc: Any, schema: Schema, now: float, max_events: int
) -> tuple[list[PredictionEvent], list[tuple[int, str]]]:
    """Split a predictions body into valid events and ``(index, reason)`` rejections.

    A repeated ``id`` inside the batch rejects the later occurrences.
    """

    def parse(index: int, item: Any, seen: Mapping[str, int]) -> PredictionEvent:
        event = _prediction_event(index, item, schema, now)
        unique(event.id, seen)
        return event

    return validate_each(doc, "predictions", max_events, parse)


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


def observe_batch(payload: Mapping[str, Any], schema: Schema) -> PredictionBatch:
    """The ``PredictionBatch`` of a payload from :func:`observe_payload` (or its JSON)."""
    n = len(payload["ts"])
    features: dict[str, np.ndarray] = {}
    for name in schema.numeric:
        features[name] = floats(payload["features"][name])
    for name in schema.categorical:
        features[name] = np.array(payload["features"][name], dtype=object)
    wrong: dict[str, np.ndarray] = {}
    for name, idx in payload["wrong_type"].items():
        mask = np.zeros(n, dtype=bool)
        mask[np.asarray(idx, dtype=np.int64)] = True
        wrong[name] = mask
    scores = payload.get("scores")
    return PredictionBatch(
        timestamps=floats(payload["ts"]),
        features=features,
        predictions=targets(payload["predictions"], schema),
        scores=None if scores is None else floats(scores),
        latency_seconds=floats(payload["latency"]),
        errors=np.array(payload["errors"], dtype=bool),
        wrong_type=wrong,
        unknown_features=int(payload["unknown"]),
    )
