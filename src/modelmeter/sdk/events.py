"""What the caller's thread queues, and the JSON events the sender makes of it.

A single prediction is queued as a plain tuple (the cheapest thing to build on the caller's
thread); a batch of rows as a ``Block``, expanded into events by the sender thread. numpy and
pandas are never imported: their objects are recognised when the caller passes them
(``sys.modules``), and plain Python lists and mappings work without them.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MISSING: Any = object()  # no label given (None is a label value)

# (id, timestamp, features, prediction, probabilities, score, latency, error, label, version)
Single = tuple[str, float, Any, Any, Any, Any, Any, Any, Any, str]


def _is_array(value: Any) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and isinstance(value, np.ndarray)


def plain(value: Any) -> Any:
    """A JSON-friendly Python scalar for numpy scalars (``np.int64(1)`` -> ``1``).

    >>> plain(3), plain("a")
    (3, 'a')
    """
    np = sys.modules.get("numpy")
    return value.item() if np is not None and isinstance(value, np.generic) else value


def argmax(values: Any) -> int:
    """The index of the first largest value (numpy's ``argmax`` for an array).

    >>> argmax([0.2, 0.5, 0.3, 0.5])
    1
    """
    if _is_array(values):
        return int(sys.modules["numpy"].argmax(values))
    return max(range(len(values)), key=values.__getitem__)


def single_event(item: Single) -> dict[str, Any]:
    """The JSON event of one ``log_prediction`` call.

    >>> single_event(("p", 1.0, {"x": 1}, 0, [0.9, 0.1], None, 0.01, None, MISSING, "v1"))
    ... # doctest: +NORMALIZE_WHITESPACE
    {'id': 'p', 'timestamp': 1.0, 'features': {'x': 1}, 'prediction': 0, 'version': 'v1',
     'probabilities': [0.9, 0.1], 'latency_seconds': 0.01}
    """
    pid, ts, features, prediction, probabilities, score, latency, error, label, version = item
    event: dict[str, Any] = {
        "id": pid,
        "timestamp": ts,
        "features": dict(features),
        "prediction": plain(prediction),
        "version": version,
    }
    if probabilities is not None:
        if isinstance(probabilities, Mapping):
            event["probabilities"] = {str(plain(k)): float(v) for k, v in probabilities.items()}
        else:
            event["probabilities"] = [float(p) for p in probabilities]
    if score is not None:
        event["score"] = float(score)
    if latency is not None:
        event["latency_seconds"] = float(latency)
    if error is not None and error is not False:
        event["error"] = error
    if label is not MISSING:
        event["label"] = plain(label)
    return event


@dataclass
class Block:
    """Predictions queued by one call: rows of features plus outputs, expanded off-thread.

    >>> block = Block(["a", "b"], 5.0, ["x"], [[1.0], [2.0]], [0, 1], None, None, None,
    ...               0.25, None, None, "v1")
    >>> first, rest = block.split(1)
    >>> [e["id"] for e in first.events()], [e["features"] for e in rest.events()]
    (['a'], [{'x': 2.0}])
    """

    ids: list[str]
    timestamp: float
    feature_names: Sequence[str] | None  # None: ``rows`` holds mappings
    rows: Any  # 2-D array / list of sequences, or a sequence of mappings
    predictions: Any  # sequence, or None for error events
    probabilities: Any  # (n, k) array with ``classes``, sequence of mappings/lists, or None
    classes: Sequence[Any] | None
    scores: Any
    latency_seconds: float | Sequence[float] | None
    error: str | None
    labels: Any
    version: str
    index: list[int] | None = None  # the rows of the per-row values it holds (None: all)

    @property
    def argmax(self) -> bool:
        """No predictions but probabilities and classes: predict the most probable class."""
        return (
            self.predictions is None
            and self.error is None
            and self.classes is not None
            and self.probabilities is not None
        )

    def split(self, k: int) -> tuple[Block, Block]:
        """The first ``k`` rows and the rest (so no request outgrows ``batch_size``)."""
        if self.index is not None:  # a selection: its rows are positions in shared values
            ids, index = self.ids, self.index
            return (
                dataclasses.replace(self, ids=ids[:k], index=index[:k]),
                dataclasses.replace(self, ids=ids[k:], index=index[k:]),
            )
        latency = self.latency_seconds
        per_row = latency is not None and not isinstance(latency, int | float)

        def part(value: Any, head: bool) -> Any:
            return None if value is None else value[:k] if head else value[k:]

        first, rest = (
            dataclasses.replace(
                self,
                ids=part(self.ids, head),
                rows=part(self.rows, head),
                predictions=part(self.predictions, head),
                probabilities=part(self.probabilities, head),
                scores=part(self.scores, head),
                latency_seconds=part(latency, head) if per_row else latency,
                labels=part(self.labels, head),
            )
            for head in (True, False)
        )
        return first, rest

    def select(self, positions: list[int]) -> Block:
        """The rows at ``positions`` (those routed to one collector), sharing the values.

        >>> block = Block(["a", "b", "c"], 5.0, ["x"], [[1.0], [2.0], [3.0]], [0, 1, 0],
        ...               None, None, None, [0.1, 0.2, 0.3], None, None, "v1")
        >>> part = block.select([0, 2])
        >>> [(e["id"], e["features"], e["latency_seconds"]) for e in part.events()]
        [('a', {'x': 1.0}, 0.1), ('c', {'x': 3.0}, 0.3)]
        >>> [e["id"] for half in part.split(1) for e in half.events()]
        ['a', 'c']
        """
        return dataclasses.replace(self, ids=[self.ids[p] for p in positions], index=positions)

    def events(self) -> list[dict[str, Any]]:
        latencies = self.latency_seconds
        argmax_classes = self.classes if self.argmax else None
        out: list[dict[str, Any]] = []
        index = self.index
        for j, pid in enumerate(self.ids):
            i = j if index is None else index[j]
            row = self.rows[i]
            if self.feature_names is None:
                features = dict(row)
            else:
                values = row.tolist() if _is_array(row) else list(row)
                features = dict(zip(self.feature_names, values, strict=True))
            event: dict[str, Any] = {
                "id": pid,
                "timestamp": self.timestamp,
                "features": features,
                "prediction": None if self.predictions is None else plain(self.predictions[i]),
                "version": self.version,
            }
            if argmax_classes is not None:
                event["prediction"] = plain(argmax_classes[argmax(self.probabilities[i])])
            if self.probabilities is not None:
                probs = self.probabilities[i]
                if self.classes is not None:
                    event["probabilities"] = {
                        str(plain(c)): float(p) for c, p in zip(self.classes, probs, strict=True)
                    }
                else:
                    event["probabilities"] = probs.tolist() if _is_array(probs) else probs
            if self.scores is not None:
                event["score"] = float(self.scores[i])
            if latencies is not None:
                event["latency_seconds"] = float(
                    latencies if isinstance(latencies, int | float) else latencies[i]
                )
            if self.error is not None:
                event["error"] = self.error
            if self.labels is not None:
                event["label"] = plain(self.labels[i])
            out.append(event)
        return out


_columns_cache: tuple[Any, list[str]] | None = None


def feature_rows(features: Any, feature_names: Sequence[str] | None) -> tuple[Any, Any]:
    """(names, rows) for a DataFrame, a 2-D array or plain rows (with names), or mappings.

    Arrays and frames are copied (the caller may reuse its buffer); of plain rows only the
    outer list is.

    >>> feature_rows([[1, 2]], ["a", "b"])
    (['a', 'b'], [[1, 2]])
    >>> feature_rows([{"a": 1}], None)
    (None, [{'a': 1}])
    """
    global _columns_cache
    columns = getattr(features, "columns", None)
    if columns is not None and hasattr(features, "to_numpy"):  # pandas DataFrame
        if feature_names is not None:
            return list(feature_names), features.to_numpy(copy=True)
        cached = _columns_cache  # one-row frames sliced from one frame share their columns
        if cached is None or cached[0] is not columns:
            cached = _columns_cache = (columns, [str(c) for c in columns])
        return cached[1], features.to_numpy(copy=True)
    if _is_array(features):
        array = sys.modules["numpy"].array(
            features if features.ndim == 2 else features.reshape(1, -1)
        )
        if feature_names is not None:
            return list(feature_names), array
        return [f"x{i}" for i in range(array.shape[1])], array
    rows = list(features)
    if rows and isinstance(rows[0], Mapping):
        return None, rows
    if feature_names is None:
        raise ValueError("feature_names are needed when features are plain rows")
    return list(feature_names), rows
