"""Data quality: one issue code per value, counted per feature like any other statistic.

The issues of a value exclude one another, so each value gets one code:

* ``wrong_type``: the caller marked the value as having the wrong type (a string in a
  numeric field, a number in a categorical one...); it wins over every other issue;
* ``missing``: NaN (numeric) or None (categorical);
* ``out_of_range``: numeric and infinite, or outside ``[low, high]`` of the spec;
* ``unseen_category``: categorical and outside the vocabulary.

>>> import numpy as np
>>> values = np.array([0.5, np.nan, 3.0, np.inf, 0.2])
>>> numeric_issue_codes(values, 0.0, 1.0, wrong_type=np.array([0, 0, 0, 0, 1], bool)).tolist()
[0, 1, 2, 2, 4]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["ISSUES", "categorical_issue_codes", "numeric_issue_codes"]

ISSUES = ("missing", "out_of_range", "unseen_category", "wrong_type")
"""Issue names; issue ``ISSUES[i]`` has code ``i + 1`` (code 0: no issue)."""

N_CODES = len(ISSUES) + 1
MISSING, OUT_OF_RANGE, UNSEEN, WRONG_TYPE = 1, 2, 3, 4

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Int8Array = npt.NDArray[np.int8]


def numeric_issue_codes(
    values: FloatArray,
    low: float | FloatArray,
    high: float | FloatArray,
    wrong_type: BoolArray | None,
) -> Int8Array:
    """Issue code of each numeric value (0 none, else ``ISSUES`` index + 1).

    ``values`` may be a matrix (features, events) with ``low``/``high`` columns (features, 1);
    a missing bound is -inf/+inf.
    """
    missing = np.isnan(values)
    out = ~(np.isfinite(values) | missing)
    out |= values < low
    out |= values > high
    codes = missing.astype(np.int8)
    codes += out
    codes += out  # OUT_OF_RANGE = 2
    if wrong_type is not None:
        codes[wrong_type] = WRONG_TYPE
    return codes


def categorical_issue_codes(
    codes: IntArray,
    other: int | IntArray,
    missing: int | IntArray,
    wrong_type: BoolArray | None,
) -> Int8Array:
    """Issue code of each categorical value from its vocabulary code (see CategoricalBinning).

    ``codes`` may be a matrix (features, events) with ``other``/``missing`` columns.
    """
    issues: Int8Array = (codes == missing).astype(np.int8)
    issues += UNSEEN * (codes == other).astype(np.int8)
    if wrong_type is not None:
        issues[wrong_type] = WRONG_TYPE
    return issues


def issue_counts(counts: npt.NDArray[np.float64]) -> dict[str, int]:
    """Name -> count from a vector of ``N_CODES`` code counts."""
    return {name: int(counts[i + 1]) for i, name in enumerate(ISSUES)}
