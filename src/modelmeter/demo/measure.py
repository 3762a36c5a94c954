"""Where the demo data drifts, measured: per chunk, the model's accuracy and per-feature KS.

Each chunk of rows after the reference is compared with the reference rows by the exact
two-sample Kolmogorov-Smirnov statistic of the raw values (``scipy.stats.ks_2samp``), feature
by feature; the accuracy is the model's on that chunk. ``modelmeter demo --measure`` prints
this table. The collector exports a binned approximation instead, ``ks_binned``: for the
same reference and window, never above the exact figure (see
:func:`modelmeter.engine.rowwise.ks_rows` for the bounds).

>>> from modelmeter.demo.data import load
>>> from modelmeter.demo.model import train
>>> data = load("rainfall")
>>> table = drift_table(data, train(data), chunk=1000)
>>> bool(table.loc[12000, "dew_point"] > 0.3 > table.loc[11000, "dew_point"])
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from modelmeter.demo.data import DemoData

__all__ = ["drift_table", "format_table"]


def drift_table(data: DemoData, model: Any, chunk: int = 1000) -> pd.DataFrame:
    """One row per chunk after the reference: ``accuracy`` and the exact KS statistic
    (scipy, not the collector's ``ks_binned``) per feature."""
    lo, hi = data.reference_rows
    reference = data.frame.iloc[lo:hi]
    predictions = np.asarray(model.predict(data.frame))
    rows = []
    for start in range(hi, len(data), chunk):
        part = slice(start, min(start + chunk, len(data)))
        row: dict[str, float] = {"accuracy": float(np.mean(predictions[part] == data.labels[part]))}
        for column in data.frame.columns:
            result = ks_2samp(reference[column], data.frame[column].iloc[part])
            row[str(column)] = float(result.statistic)
        rows.append(pd.Series(row, name=start))
    table = pd.DataFrame(rows)
    table.index.name = "first_row"
    return table


def format_table(table: pd.DataFrame) -> str:
    """The table as aligned text, two decimals."""
    return table.to_string(float_format=lambda v: f"{v:.2f}")
