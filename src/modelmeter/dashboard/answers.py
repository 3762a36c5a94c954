"""Prometheus HTTP API answers as plain rows: ``(labels, value)`` pairs indexed by metric name.

Values that are not finite numbers become ``None`` (drawn as "—"), never 0.

>>> by_name = index(vector({"result": [{"metric": {"__name__": "up"}, "value": [0, "1"]}]}))
>>> one(by_name, "up"), one(by_name, "down")
(1.0, None)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["first", "index", "matrix", "num", "one", "vector"]


def num(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) or math.isinf(value) else value


def vector(data: Any) -> list[tuple[dict[str, str], float | None]]:
    if not data:
        return []
    return [(r["metric"], num(r["value"][1])) for r in data.get("result", [])]


def matrix(data: Any) -> list[tuple[dict[str, str], list[int], list[float | None]]]:
    if not data:
        return []
    out = []
    for r in data.get("result", []):
        times = [int(1000 * t) for t, _ in r["values"]]  # Plotly date axis: epoch ms
        values = [num(v) for _, v in r["values"]]
        out.append((r["metric"], times, values))
    return out


def index(rows: Iterable[tuple[dict[str, str], float | None]]) -> dict[str, list[Any]]:
    by_name: dict[str, list[Any]] = {}
    for labels, value in rows:
        by_name.setdefault(labels.get("__name__", ""), []).append((labels, value))
    return by_name


def one(by_name: Mapping[str, list[Any]], name: str) -> float | None:
    rows = by_name.get(name) or []
    values = [v for _, v in rows if v is not None]
    return values[0] if values else None


def first(values: list[float | None]) -> float | None:
    return next((v for v in values if v is not None), None)
