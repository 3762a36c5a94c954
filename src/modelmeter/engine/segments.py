"""Per-segment statistics: performance, volume and label coverage per value of a few
categorical features (``MonitorConfig.segments``).

Each segment feature has the values of its vocabulary (spec categories or the reference's
values) plus ``other``: a value outside the vocabulary, or a missing one, counts under
``other``. So the number of segment values is fixed by the configuration, never by traffic.
The statistics are rings of additive counts indexed by ``(segment, code)``, like every other
window statistic: ``segment_ops`` (predictions, labeled by prediction time, labels by
arrival), ``segment_expected`` (classification) and ``segment_loss`` (regression) in the
window ring; ``segment_confusion`` (classification) and ``segment_regression`` (regression),
realized performance by label arrival, in the performance ring (the performance window, see
:mod:`modelmeter.engine.state`). The segments' estimates have no confidence band (the
window's has one): :func:`~modelmeter.engine.bands.classification_bands` per segment value
would cost about 0.5-1.5 ms each in every snapshot.

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
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from modelmeter.engine.drift import CategoricalBinning
from modelmeter.engine.performance import classification_figures, regression_figures
from modelmeter.engine.snapshot import SegmentFigures
from modelmeter.engine.windows import BucketRing

__all__ = ["MAX_SEGMENTS", "MAX_SEGMENT_VALUES", "OTHER", "Expected", "Segments"]

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
NAN = float("nan")


class Expected(NamedTuple):
    """Expected outcomes of scored predictions (see
    :meth:`modelmeter.engine.output.ModelOutput.observe`)."""

    #: the rows scored (r of them)
    rows: BoolArray
    #: (k, r) flat cells ``predicted * k + a`` of the (k, k) expected counts
    cells: IntArray
    #: (k, r) calibrated class probabilities, ``P_a``
    probabilities: FloatArray


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

    def shapes(
        self, k: int | None, expected: bool = False, loss: bool = False
    ) -> dict[str, tuple[int, ...]]:
        """Window ring shapes: ``k`` classes (None: regression); ``expected``: with estimated
        performance (scores); ``loss``: with the regression loss estimate."""
        m, w = self.m, self.width
        shapes: dict[str, tuple[int, ...]] = {"segment_ops": (m, w, 3)}
        if k is not None and expected:
            shapes["segment_expected"] = (m, w, k, k)
        if loss:
            shapes["segment_loss"] = (m, w, 3)
        return shapes

    def performance_shapes(self, k: int | None) -> dict[str, tuple[int, ...]]:
        """Performance ring shapes (realized performance): ``k`` classes (None: regression).

        >>> from modelmeter.engine.drift import CategoricalBinning
        >>> Segments([("country", CategoricalBinning(("de", "fr")))]).performance_shapes(2)
        {'segment_confusion': (1, 3, 2, 2)}
        """
        m, w = self.m, self.width
        if k is None:
            return {"segment_regression": (m, w, 3)}
        return {"segment_confusion": (m, w, k, k)}

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
        of its value of every segment feature; rows with an unknown code are skipped.

        ``offset`` and ``weights`` may have leading axes (``(j, 1, n)``: ``j`` positions of
        each event in one call)."""
        if self.m == 0 or slots.shape[0] == 0:
            return
        known = codes >= 0
        if not known.all():
            rows = known.all(axis=1)
            slots, codes = slots[rows], codes[rows]
            if not isinstance(offset, int):
                offset = offset[..., rows]
            if weights is not None:
                weights = weights[..., rows]
        index = self._flat(codes, inner, offset)
        w = None if weights is None else np.broadcast_to(weights, index.shape).copy()
        ring.add(name, slots, index, w)

    def observe(
        self,
        ring: BucketRing,
        features: Mapping[str, npt.NDArray[np.generic]],
        slots: IntArray,
        valid: BoolArray,
        losses: FloatArray | None = None,
        expected: Expected | None = None,
    ) -> None:
        """Count predictions per segment value, and their predicted losses (regression, rows
        with a prediction: ``valid``) or expected outcomes (classification with scores)."""
        codes = self.codes(features)
        self.add(ring, "segment_ops", slots, codes, 3, PREDICTIONS)
        if losses is not None:
            valid_slots, valid_codes = slots[valid], codes[valid]
            self.add(ring, "segment_loss", valid_slots, valid_codes, 3, 0)
            for position in (1, 2):
                self.add(
                    ring,
                    "segment_loss",
                    valid_slots,
                    valid_codes,
                    3,
                    position,
                    losses[:, position - 1],
                )
        if expected is None:
            return
        rows, cells, probabilities = expected
        k = probabilities.shape[0]
        # (k, 1, n) positions and weights: the k cells of an event in one call
        self.add(
            ring,
            "segment_expected",
            slots[rows],
            codes[rows],
            k * k,
            cells[:, None],
            probabilities[:, None],
        )

    def label(
        self,
        ring: BucketRing,
        performance: BucketRing,
        codes: IntArray,
        label_slots: IntArray,
        performance_slots: IntArray,
        made_slots: IntArray,
        valid: BoolArray,
        confusion: tuple[IntArray, int] | None = None,
        terms: FloatArray | None = None,
    ) -> None:
        """Count labels per segment value (``codes`` from :meth:`check`): in the window ring
        by arrival (``label_slots``) and by prediction time (``made_slots``), and, for rows
        with a prediction (``valid``), their ``confusion`` (flat index ``predicted * k +
        actual`` of those rows, ``k``) or regression ``terms`` in the performance ring by
        arrival (``performance_slots``)."""
        self.add(ring, "segment_ops", label_slots, codes, 3, LABELS)
        self.add(ring, "segment_ops", made_slots, codes, 3, LABELED)
        slots, codes = performance_slots[valid], codes[valid]
        if confusion is not None:
            index, k = confusion
            self.add(performance, "segment_confusion", slots, codes, k * k, index)
        elif terms is not None:
            for position in range(3):
                self.add(
                    performance, "segment_regression", slots, codes, 3, position, terms[:, position]
                )

    def figures(
        self,
        ring: BucketRing,
        performance: BucketRing,
        classes: tuple[str, ...],
        positive: int | None,
        min_samples: int,
    ) -> dict[str, dict[str, SegmentFigures]]:
        """Segment feature -> value -> figures: realized of the performance ring's window,
        the others of the window ring's."""
        ops = ring.window("segment_ops")
        windows = {
            name: source.window(name)
            for source, name in (
                (performance, "segment_confusion"),
                (ring, "segment_expected"),
                (performance, "segment_regression"),
            )
            if name in source.shapes
        }
        loss = ring.window("segment_loss") if "segment_loss" in ring.shapes else None
        out: dict[str, dict[str, SegmentFigures]] = {}
        for s, (name, values) in enumerate(zip(self.names, self.values, strict=True)):
            figures: dict[str, SegmentFigures] = {}
            for v, value in enumerate(values):
                predictions = int(ops[s, v, PREDICTIONS])
                labeled = float(ops[s, v, LABELED])
                realized = estimated = regression = estimated_regression = None
                performance_labels = 0
                if "segment_confusion" in windows:
                    confusion = windows["segment_confusion"][s, v]
                    performance_labels = int(confusion.sum())
                    realized = classification_figures(confusion, classes, positive, min_samples)
                if "segment_expected" in windows:
                    estimated = classification_figures(
                        windows["segment_expected"][s, v], classes, positive, min_samples
                    )
                if "segment_regression" in windows:
                    sums = windows["segment_regression"][s, v]
                    performance_labels = int(sums[0])
                    regression = regression_figures(sums, min_samples)
                if loss is not None:
                    estimated_regression = regression_figures(loss[s, v], min_samples)
                figures[value] = SegmentFigures(
                    predictions=predictions,
                    labeled=int(ops[s, v, LABELS]),
                    label_coverage=min(labeled / predictions, 1.0) if predictions else NAN,
                    realized=realized,
                    estimated=estimated,
                    regression=regression,
                    estimated_regression=estimated_regression,
                    performance_labels=performance_labels,
                )
            out[name] = figures
        return out
