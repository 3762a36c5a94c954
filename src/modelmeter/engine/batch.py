"""The column batches a monitor consumes: predictions, and labels that arrive later.

A batch is a set of equally long numpy columns (one row per event). The monitor checks them
all before it changes any state, and a ValueError names the column that is wrong.

>>> import numpy as np
>>> batch = PredictionBatch(
...     timestamps=np.array([0.0, 1.0]),
...     features={"x": np.array([0.5, np.nan])},
...     predictions=np.array(["a", "b"], dtype=object),
... )
>>> len(batch)
2
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["LabelBatch", "PredictionBatch"]


def _empty_masks() -> Mapping[str, npt.NDArray[np.bool_]]:
    return {}


@dataclass(frozen=True)
class PredictionBatch:
    """Prediction events as columns.

    ``timestamps``: float64 Unix seconds. ``features``: every configured feature; numeric
    float64 with NaN = missing, categorical object arrays with None = missing.
    ``predictions``: class strings or float64; an errored event has "" (or NaN) and is left
    out of performance and output drift. ``scores``: as in ReferenceData, NaN rows = not given.
    ``latency_seconds``: NaN = not given. ``errors``: bool. ``wrong_type``: per feature, a mask
    of values that had the wrong type (counted as data quality). ``unknown_features``: number
    of feature names outside the spec seen in this batch.
    """

    timestamps: npt.NDArray[np.float64]
    features: Mapping[str, npt.NDArray[np.generic]]
    predictions: npt.NDArray[np.generic]
    scores: npt.NDArray[np.float64] | None = None
    latency_seconds: npt.NDArray[np.float64] | None = None
    errors: npt.NDArray[np.bool_] | None = None
    wrong_type: Mapping[str, npt.NDArray[np.bool_]] = field(default_factory=_empty_masks)
    unknown_features: int = 0

    def __len__(self) -> int:
        return int(np.shape(self.timestamps)[0]) if np.ndim(self.timestamps) else 0


@dataclass(frozen=True)
class LabelBatch:
    """Labels joined to their predictions.

    ``label_timestamps`` (arrival) place the label in the window of realized performance;
    ``prediction_timestamps`` give label coverage and label delay. ``predictions`` is the
    stored prediction of each labeled event, ``labels`` the actual value. ``segments``
    (models with segments) holds the segment value codes of each labeled prediction, shape
    (n, segments), as :meth:`ModelMonitor.segment_codes` gave them when it was made; -1 (or
    None for the whole batch) leaves a row out of the segment figures. Estimated performance
    comes from the prediction batch's scores, so a label batch has none.

    >>> import numpy as np
    >>> len(LabelBatch(np.array([5.0]), np.array([1.0]), np.array(["a"]), np.array(["b"])))
    1
    """

    label_timestamps: npt.NDArray[np.float64]
    prediction_timestamps: npt.NDArray[np.float64]
    predictions: npt.NDArray[np.generic]
    labels: npt.NDArray[np.generic]
    segments: npt.NDArray[np.int64] | None = None

    def __len__(self) -> int:
        return int(np.shape(self.label_timestamps)[0]) if np.ndim(self.label_timestamps) else 0
