"""Labels: validation of a labels body, the columnar payload, the ``LabelBatch``.

A label joins its prediction by id, in this request or later (see
:mod:`modelmeter.service.ingestion`); :func:`label_payload` is what the operation log keeps.

>>> from modelmeter.engine.config import FeatureSpec, MonitorConfig
>>> schema = Schema.from_config(MonitorConfig(
...     task="binary", classes=("0", "1"), features=(FeatureSpec("x", "numeric"),)))
>>> labels, rejected = validate_labels({"labels": [{"id": "a", "label": 1}, {"id": "a"}]},
...                                    schema, now=1000.0, max_events=10)
>>> [(lab.id, lab.label) for lab in labels], rejected
([('a', '1')], [(1, "duplicate id 'a' (first at index 0)")])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelmeter.engine.batch import LabelBatch
from modelmeter.service.ingest import (
    Reject,
    Schema,
    event_id,
    floats,
    show,
    targets,
    timestamp,
    to_target,
    unique,
    validate_each,
)

__all__ = ["LabelEvent", "label_batch", "label_payload", "validate_labels"]


@dataclass(frozen=True)
class LabelEvent:
    """One valid label."""

    index: int
    id: str
    label: str | float
    ts: float


def validate_labels(
    doc: Any, schema: Schema, now: float, max_events: int
) -> tuple[list[LabelEvent], list[tuple[int, str]]]:
    """Split a labels body into valid labels and ``(index, reason)`` rejections."""

    def parse(index: int, item: Any, seen: Mapping[str, int]) -> LabelEvent:
        if not isinstance(item, dict):
            raise Reject(f"a label must be a JSON object, got {show(item)}")
        label_id = unique(event_id(item), seen)
        if item.get("label") is None:
            raise Reject("'label' is missing")
        value = to_target(item["label"], schema, "label")
        return LabelEvent(index, label_id, value, timestamp(item.get("timestamp"), now))

    return validate_each(doc, "labels", max_events, parse)


def label_payload(rows: Sequence[tuple[Any, ...]], schema: Schema) -> dict[str, Any]:
    """Columns of a ``LabelBatch`` from ``(label_ts, prediction_ts, prediction, label, scores)``
    rows, each optionally with a sixth item: the prediction's segment value codes (a list, or
    None: unknown). The scores are not kept: the engine counts the expected outcomes of a
    prediction when it is made (payloads written before that have a ``scores`` column, which
    :func:`label_batch` ignores). The ``segments`` column is there only when some row has
    codes (a payload without it, as every payload written before segments, has no segments)."""
    payload: dict[str, Any] = {
        "label_ts": [r[0] for r in rows],
        "prediction_ts": [r[1] for r in rows],
        "predictions": [r[2] for r in rows],
        "labels": [r[3] for r in rows],
    }
    codes = [r[5] if len(r) > 5 else None for r in rows]
    width = next((len(c) for c in codes if c is not None), None)
    if width is not None:
        payload["segments"] = [list(c) if c is not None else [-1] * width for c in codes]
    return payload


def label_batch(payload: Mapping[str, Any], schema: Schema) -> LabelBatch:
    """The ``LabelBatch`` of a payload from :func:`label_payload` (or its JSON)."""
    segments = payload.get("segments")
    return LabelBatch(
        label_timestamps=floats(payload["label_ts"]),
        prediction_timestamps=floats(payload["prediction_ts"]),
        predictions=targets(payload["predictions"], schema),
        labels=targets(payload["labels"], schema),
        segments=None if segments is None else np.array(segments, dtype=np.int64),
    )
