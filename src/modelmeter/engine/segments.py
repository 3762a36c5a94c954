"""Per-segment statistics: performance, volume and label coverage per value of a few
categorical features (``MonitorConfig.segments``).

Each segment feature has the values of its vocabulary (spec categories or the reference's
values) plus ``other``: a value outside the vocabulary, or a missing one, counts under
``other``. So the number of segment values is fixed by the configuration, never by traffic.
The statistics are rings of additive counts indexed by ``(segment, code)``, like every other
window statistic: ``segment_ops`` (predictions, labeled by prediction time, labels by
arrival), ``segment_confusion`` / ``segment_expected`` (classification) and
``segment_regression`` / ``segment_loss`` (regression).

>>> import numpy as np
>>> from modelmeter.engine.drift import CategoricalBinning
>>> segments = Segments([("country", CategoricalBinning(("de", "fr")))])
>>> segments.codes({"country": np.array(["fr", "xx", None, "de"], dtype=object)}).tolist()
[[1], [2], [2], [0]]
>>> segments.values
(('de', 'fr', 'other'),)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from modelmeter.engine.drift import CategoricalBinning
from modelmeter.engine.windows import BucketRing

__all__ = ["MAX_SEGMENTS", "MAX_SEGMENT_VALUES", "OTHER", "Segments"]

MAX_SEGMENTS = 3
MAX_SEGMENT_VALUES = 20
OTHER = "other"
#: a label row whose prediction's segment codes are unknown (stored before segments)
UNKNOWN = -1

# segment_ops positions
PREDICTIONS, LABELED, LABELS = 0, 1, 2

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class Segments:
    """The segment features of a monitor and their ring statistics.

    Parameters
    ----------
    features
        ``(name, binning)`` of each segment feature, in configuration order; a binning's
        vocabulary must hold at most :data:`MAX_SEGMENT_VALUES` values.
    """

    def __init__(self, features: Sequence[tuple[str, CategoricalBinning]]) -> None:
        if len(features) > MAX_SEGMENTS:
            raise ValueError(f"at most {MAX_SEGMENTS} segment features, got {len(features)}")
        for name, binning in features:
            if len(binning.vocabulary) > MAX_SEGMENT_VALUES:
                raise ValueError(
                    f"segment feature {name!r} has {len(binning.vocabulary)} values; a segment "
                    f"feature may have at most {MAX_SEGMENT_VALUES} (set its categories)"
                )
        self.names = tuple(name for name, _ in features)
        self._binnings = [binning for _, binning in features]
        #: the values of each segment feature: its vocabulary, then ``other``
        self.values = tuple((*b.vocabulary, OTHER) for b in self._binnings)
        self.m = len(features)
        self.width = max((len(v) for v in self.values), default=1)
        self._others = np.array([b.other for b in self._binnings], dtype=np.int64)

    def shapes(self, k: int | None) -> dict[str, tuple[int, ...]]:
        """Ring shapes: ``k`` classes (None: regression)."""
        m, w = self.m, self.width
        shapes: dict[str, tuple[int, ...]] = {"segment_ops": (m, w, 3)}
        if k is None:
            shapes["segment_regression"] = (m, w, 3)
        else:
            shapes["segment_confusion"] = (m, w, k, k)
        return shapes

    def codes(self, features: Mapping[str, npt.NDArray[np.generic]]) -> IntArray:
        """(n, m) value codes of each event: its vocabulary index or ``other``."""
        columns = []
        for name, binning in zip(self.names, self._binnings, strict=True):
            column = np.asarray(features[name])
            if column.dtype != object:
                column = column.astype(object)
            codes = binning.index(column)
            np.minimum(codes, binning.other, out=codes)  # missing -> other
            columns.append(codes)
        if not columns:
            return np.zeros((0, 0), dtype=np.int64)
        return np.stack(columns, axis=1)

    def check(self, codes: npt.NDArray[np.generic] | None, n: int) -> IntArray | None:
        """Codes of a label batch as int64 (n, m); ValueError on a wrong shape. A code
        outside a feature's values counts as ``other``; :data:`UNKNOWN` (-1) leaves the row
        out of the segment figures."""
        if codes is None:
            return None
        array = np.asarray(codes)
        if array.shape != (n, self.m) or (array.size and array.dtype.kind not in "iu"):
            raise ValueError(
                f"column 'segments': expected integer codes of shape ({n}, {self.m}), got "
                f"{array.dtype} {array.shape}"
            )
        array = array.astype(np.int64)
        if array.size:
            array = np.where(
                array < 0, UNKNOWN, np.where(array > self._others, self._others, array)
            )
        return array

    def _flat(self, codes: IntArray, inner: int, offset: IntArray | int) -> IntArray:
        """(m, n) flat positions in a statistic shaped (m, width, inner)."""
        rows = np.arange(self.m, dtype=np.int64)[:, None] * self.width
        return (rows + codes.T) * inner + offset

    def add(
        self,
        ring: BucketRing,
        name: str,
        slots: IntArray,
        codes: IntArray,
        inner: int,
        offset: IntArray | int,
        weights: FloatArray | None = None,
    ) -> None:
        """Count each event at ``offset`` (per event, or one position) of the ``inner`` cells
        of its value of every segment feature; rows with an unknown code are skipped."""
        if self.m == 0 or slots.shape[0] == 0:
            return
        known = codes >= 0
        if not known.all():
            rows = known.all(axis=1)
            slots, codes = slots[rows], codes[rows]
            if not isinstance(offset, int):
                offset = offset[rows]
            if weights is not None:
                weights = weights[rows]
        index = self._flat(codes, inner, offset)
        w = None if weights is None else np.broadcast_to(weights, index.shape).copy()
        ring.add(name, slots, index, w)
