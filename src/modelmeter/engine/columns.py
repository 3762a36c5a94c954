"""Batch columns as the statistics take them: float64 or object arrays, chunk masks.

Each helper raises a ValueError naming the column when it has the wrong shape or type.

>>> import numpy as np
>>> values, wrong = numeric_values(np.array([1, "a", None, 2.5], dtype=object), "x", 4)
>>> values.tolist(), wrong.tolist()
([1.0, nan, nan, 2.5], [False, True, False, False])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["chunk_mask", "float_column", "numeric_values", "object_values"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def chunk_mask(masks: list[BoolArray | None], start: int, stop: int) -> BoolArray | None:
    """(features, stop - start) matrix of the given per-feature masks, None if there are none."""
    if all(mask is None for mask in masks):
        return None
    matrix = np.zeros((len(masks), stop - start), dtype=bool)
    for j, mask in enumerate(masks):
        if mask is not None:
            matrix[j] = mask[start:stop]
    return matrix


def float_column(values: Any, column: str, n: int | None) -> FloatArray:
    """A 1-d float64 array (of ``n`` values if given)."""
    array = np.asarray(values)
    if array.ndim != 1 or (n is not None and array.shape[0] != n):
        expected = "a 1-d array" if n is None else f"shape ({n},)"
        raise ValueError(f"column {column!r}: expected {expected}, got shape {array.shape}")
    if array.dtype.kind not in "fiub":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"column {column!r}: expected numbers, got {array.dtype}") from None
    return array.astype(np.float64, copy=False)


def object_values(values: Any, column: str, n: int) -> npt.NDArray[np.object_]:
    """A 1-d object array of ``n`` values."""
    array = np.asarray(values)
    if array.ndim != 1 or array.shape[0] != n:
        raise ValueError(f"column {column!r}: expected shape ({n},), got {array.shape}")
    if array.dtype != object:
        array = array.astype(object)
    return array


def numeric_values(
    values: npt.NDArray[Any], column: str, n: int
) -> tuple[FloatArray, BoolArray | None]:
    """Float64 values and a wrong-type mask (None if every value had a numeric type).

    Numeric dtypes convert directly; an object array goes value by value (slow path: a
    string or other non-number is NaN and marked wrong type); text arrays are all wrong type.
    """
    if values.ndim != 1 or values.shape[0] != n:
        raise ValueError(f"feature {column!r}: expected shape ({n},), got {values.shape}")
    kind = values.dtype.kind
    if kind in "fiub":
        return values.astype(np.float64, copy=False), None
    if kind == "O":
        converted = np.full(n, np.nan)
        wrong = np.zeros(n, dtype=bool)
        for i, value in enumerate(values.tolist()):
            if value is None:
                continue
            if isinstance(value, int | float) and not isinstance(value, bool):
                converted[i] = float(value)
            else:
                wrong[i] = True
        return converted, wrong if wrong.any() else None
    return np.full(n, np.nan), np.ones(n, dtype=bool)
