"""Counting all features of a batch at once: one matrix per kind, one bincount per statistic.

The numeric features of a batch form a (features, events) matrix; binning, quality codes and
tail sums run on the whole matrix, and each statistic is counted with a single ``bincount``
(per-feature offsets into a (features, bins) table). So the cost of a batch is a few dozen
numpy calls whatever the number of features, which keeps single-event batches fast, and
large batches run at the speed of ``searchsorted``.

>>> import numpy as np
>>> from modelmeter.engine.config import FeatureSpec
>>> from modelmeter.engine.drift import NumericBinning
>>> from modelmeter.engine.windows import BucketRing
>>> block = NumericBlock([FeatureSpec("x", "numeric")], [NumericBinning(np.arange(10.0), 2)])
>>> ring = BucketRing(1, 10.0, block.shapes())
>>> ring.advance(0.0)
>>> _ = block.count(ring, np.array([[0.0, 5.0, 9.0, 12.0, np.nan]]), None, np.zeros(5, np.int64))
>>> counts, sums = block.window_rows(ring)
>>> counts.tolist(), sums.tolist()  # bins: under, [0, 4.5), [4.5, 9], over
([[0.0, 1.0, 2.0, 1.0]], [[0.0, 0.0, 14.0, 12.0]])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from modelmeter.engine.batch import PredictionBatch
from modelmeter.engine.columns import chunk_mask, numeric_values, object_values
from modelmeter.engine.config import FeatureSpec, MonitorConfig, ReferenceData
from modelmeter.engine.drift import (
    CategoricalBinning,
    DriftRow,
    NumericBinning,
    categorical_drift,
    numeric_drift,
    reference_ratios,
)
from modelmeter.engine.quality import (
    N_CODES,
    categorical_issue_codes,
    issue_counts,
    numeric_issue_codes,
)
from modelmeter.engine.snapshot import BinCounts
from modelmeter.engine.windows import BucketRing

__all__ = ["CHUNK", "CategoricalBlock", "Features", "NumericBlock"]

SMALL_BATCH = 16  # fewer events than this: bin with one broadcast comparison (fewer calls)
CHUNK = 4096  # events per feature matrix: keeps the (features, events) temporaries in cache

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Binning = NumericBinning | CategoricalBinning


class NumericBlock:
    """The numeric features: binning, quality codes and tail sums on a matrix of values."""

    def __init__(self, specs: Sequence[FeatureSpec], binnings: Sequence[NumericBinning]) -> None:
        self.specs = tuple(specs)
        self.binnings = tuple(binnings)
        self.m = len(self.specs)
        self.width = max((b.n_bins for b in self.binnings), default=1) + 1
        self.junk = self.width - 1  # non-finite and wrong-type values
        length = max((b.n_bins - 1 for b in self.binnings), default=0)
        self._search = np.full((self.m, length), np.inf)
        for j, binning in enumerate(self.binnings):
            self._search[j, : binning.n_bins - 1] = binning.search_edges
        # bin = number of search edges <= value, accumulated edge by edge on the whole matrix
        # (several times faster than one searchsorted per feature for a dozen edges)
        self._bin_dtype = np.int8 if self.width < 127 else np.int16
        self._range_low = np.array([-np.inf if s.low is None else s.low for s in self.specs])
        self._range_high = np.array([np.inf if s.high is None else s.high for s in self.specs])
        self._range_low = self._range_low[:, None]
        self._range_high = self._range_high[:, None]
        self._bin_offsets = (np.arange(self.m, dtype=np.int64) * self.width)[:, None]
        self._code_offsets = (np.arange(self.m, dtype=np.int64) * N_CODES)[:, None]
        # The reference as (features, width - 1) matrices laid out like the window's: each
        # feature's bins first, then zero padding up to the widest feature (see window_rows).
        self.reference_counts: FloatArray = np.zeros((self.m, self.width - 1))
        self.reference_sums: FloatArray = np.zeros((self.m, self.width - 1))
        for j, binning in enumerate(self.binnings):
            self.reference_counts[j, : binning.n_bins] = binning.reference_counts
            self.reference_sums[j, : binning.n_bins] = binning.reference_sums
        self.scales: FloatArray = np.array([b.scale for b in self.binnings], dtype=np.float64)
        # Padding columns (None if every feature has all the columns): never counted, but a
        # checkpoint only has to match the shapes, so window_rows clears them anyway.
        columns = np.arange(self.width - 1)
        n_bins = np.array([b.n_bins for b in self.binnings], dtype=np.int64)
        padding = columns >= n_bins[:, None]
        self._padding: BoolArray | None = padding if padding.any() else None

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The ring statistics of the block."""
        return {
            "numeric_bins": (self.m, self.width),
            "numeric_sums": (self.m, self.width),
            "numeric_quality": (self.m, N_CODES),
        }

    def count(
        self, ring: BucketRing, values: FloatArray, wrong: BoolArray | None, slots: IntArray
    ) -> tuple[FloatArray, FloatArray]:
        """Count a (features, events) matrix; return what it adds over all time to the quality
        code counts and to the bin counts (flat, as the ring statistics)."""
        codes = numeric_issue_codes(values, self._range_low, self._range_high, wrong)
        finite = np.isfinite(values)
        if wrong is not None:
            finite &= ~wrong
        quality = ring.add("numeric_quality", slots, codes + self._code_offsets)
        if values.shape[1] < SMALL_BATCH:
            bins = (values[:, :, None] >= self._search[:, None, :]).sum(axis=2, dtype=np.int16)
        else:
            bins = np.zeros(values.shape, dtype=self._bin_dtype)
            hit = np.empty(values.shape, dtype=bool)
            for k in range(self._search.shape[1]):
                np.greater_equal(values, self._search[:, k : k + 1], out=hit)
                bins += hit
        if not finite.all():
            bins[~finite] = self.junk
        index = bins + self._bin_offsets
        counted = ring.add("numeric_bins", slots, index)
        ring.add(
            "numeric_sums", slots, index, values if finite.all() else np.where(finite, values, 0.0)
        )
        return quality, counted

    def window_rows(self, ring: BucketRing) -> tuple[FloatArray, FloatArray]:
        """Window bin counts and per-bin value sums as (features, width - 1) matrices.

        Row ``j`` holds the ``n_bins`` bins of feature ``j``, then zeros (padding up to the
        widest feature); the junk column is left out. ``reference_counts`` and
        ``reference_sums`` have the same layout.
        """
        bins = ring.window("numeric_bins").reshape(self.m, self.width)[:, :-1]
        sums = ring.window("numeric_sums").reshape(self.m, self.width)[:, :-1]
        if self._padding is not None:
            bins = np.where(self._padding, 0.0, bins)
            sums = np.where(self._padding, 0.0, sums)
        return bins, sums


class CategoricalBlock:
    """The categorical features: vocabulary codes and quality codes on a matrix."""

    def __init__(
        self, specs: Sequence[FeatureSpec], binnings: Sequence[CategoricalBinning]
    ) -> None:
        self.specs = tuple(specs)
        self.binnings = tuple(binnings)
        self.m = len(self.specs)
        self.width = max((b.n_bins for b in self.binnings), default=1) + 1
        self.junk = self.width - 1  # missing and wrong-type values
        self._other = np.array([b.other for b in self.binnings], dtype=np.int64)[:, None]
        self._missing = np.array([b.missing for b in self.binnings], dtype=np.int64)[:, None]
        self._bin_offsets = (np.arange(self.m, dtype=np.int64) * self.width)[:, None]
        self._code_offsets = (np.arange(self.m, dtype=np.int64) * N_CODES)[:, None]
        # Reference counts padded with zeros to the widest vocabulary (see window_rows).
        self.reference_counts: FloatArray = np.zeros((self.m, self.width - 1))
        for j, binning in enumerate(self.binnings):
            self.reference_counts[j, : binning.n_bins] = binning.reference_counts

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The ring statistics of the block."""
        return {
            "categorical_bins": (self.m, self.width),
            "categorical_quality": (self.m, N_CODES),
        }

    def count(
        self,
        ring: BucketRing,
        columns: Sequence[npt.NDArray[np.object_]],
        wrong: BoolArray | None,
        slots: IntArray,
        index_out: IntArray | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        """Count one object column per feature; return what it adds over all time to the
        quality code counts and to the bin counts (flat).

        ``index_out`` ((features, events)), if given, receives each value's flat index into
        the (features, width) bins table (missing and wrong-type values: the junk column).
        """
        codes = np.empty((self.m, slots.shape[0]), dtype=np.int64)
        for j, binning in enumerate(self.binnings):
            codes[j] = binning.index(columns[j])
        issues = categorical_issue_codes(codes, self._other, self._missing, wrong)
        missing = codes == self._missing
        if wrong is not None:
            missing |= wrong
        quality = ring.add("categorical_quality", slots, issues + self._code_offsets)
        if missing.any():
            codes[missing] = self.junk
        index = codes + self._bin_offsets
        counted = ring.add("categorical_bins", slots, index)
        if index_out is not None:
            index_out[...] = index
        return quality, counted

    def window_rows(self, ring: BucketRing) -> FloatArray:
        """Window bin counts as a (features, width - 1) matrix laid out as ``reference_counts``:
        row ``j`` holds the ``n_bins`` bins of feature ``j``, then zeros (no code ever lands in
        the padding); the junk column is left out."""
        bins: FloatArray = ring.window("categorical_bins").reshape(self.m, self.width)[:, :-1]
        return bins


class Features:
    """All features of a monitor: the numeric and the categorical block, fitted on the
    reference, counted per batch, read as drift and quality figures."""

    def __init__(self, numeric: NumericBlock, categorical: CategoricalBlock) -> None:
        self.numeric = numeric
        self.categorical = categorical
        binnings: list[tuple[FeatureSpec, Binning]] = [
            *zip(numeric.specs, numeric.binnings, strict=True),
            *zip(categorical.specs, categorical.binnings, strict=True),
        ]
        #: feature -> the reference's fraction in each of its bins
        self._reference = {spec.name: reference_ratios(b.reference_counts) for spec, b in binnings}

    @classmethod
    def fit(cls, config: MonitorConfig, reference: ReferenceData) -> Features:
        """Bins of every configured feature from its reference column; ValueError naming the
        feature when the column is missing or has no usable value."""
        numeric: list[tuple[FeatureSpec, NumericBinning]] = []
        categorical: list[tuple[FeatureSpec, CategoricalBinning]] = []
        for spec in config.features:
            if spec.name not in reference.features:
                raise ValueError(f"reference data has no column for feature {spec.name!r}")
            column = np.asarray(reference.features[spec.name])
            if spec.kind == "numeric":
                values, _ = numeric_values(column, spec.name, column.shape[0])
                try:
                    numeric.append((spec, NumericBinning(values, config.drift_bins)))
                except ValueError as error:
                    raise ValueError(f"reference feature {spec.name!r}: {error}") from None
            else:
                objects = object_values(column, spec.name, column.shape[0])
                binning = CategoricalBinning.fit(objects, spec.categories, config.max_categories)
                categorical.append((spec, binning))
        return cls(
            NumericBlock([s for s, _ in numeric], [b for _, b in numeric]),
            CategoricalBlock([s for s, _ in categorical], [b for _, b in categorical]),
        )

    def categorical_binnings(self) -> dict[str, CategoricalBinning]:
        """Name -> binning of each categorical feature."""
        block = self.categorical
        return {spec.name: b for spec, b in zip(block.specs, block.binnings, strict=True)}

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The ring statistics of both blocks."""
        return {**self.numeric.shapes(), **self.categorical.shapes()}

    def total_shapes(self) -> dict[str, tuple[int, ...]]:
        """The statistics counted over all time: quality codes and bins of both blocks
        (shaped as the ring's)."""
        numeric, categorical = self.numeric, self.categorical
        return {
            "numeric_quality": (numeric.m, N_CODES),
            "categorical_quality": (categorical.m, N_CODES),
            "numeric_bins": (numeric.m, numeric.width),
            "categorical_bins": (categorical.m, categorical.width),
        }

    def bins(self, totals: Mapping[str, FloatArray], names: Sequence[str]) -> dict[str, BinCounts]:
        """Feature -> its drift bins (labels, counts since the start from ``totals``, reference
        fractions), in the order of ``names``.

        The counts are those of the drift figures' bins: a value that is missing, non-finite
        or of the wrong type is in no bin; one outside the reference's range (or the spec's
        ``low``/``high``) is in the under- or overflow bin, an unseen category in ``other``.
        """
        numeric, categorical = self.numeric, self.categorical
        blocks: list[tuple[FloatArray, int, Sequence[FeatureSpec], Sequence[Binning]]] = [
            (totals["numeric_bins"], numeric.width, numeric.specs, numeric.binnings),
            (
                totals["categorical_bins"],
                categorical.width,
                categorical.specs,
                categorical.binnings,
            ),
        ]
        by_name: dict[str, BinCounts] = {}
        for total, width, specs, binnings in blocks:
            rows = total.reshape(len(specs), width).tolist()
            for row, spec, binning in zip(rows, specs, binnings, strict=True):
                counts = tuple(row[: binning.n_bins])
                by_name[spec.name] = BinCounts(binning.labels, counts, self._reference[spec.name])
        return {name: by_name[name] for name in names}

    def count(
        self,
        ring: BucketRing,
        batch: PredictionBatch,
        slots: IntArray,
        n: int,
        totals: Mapping[str, FloatArray],
        index: bool,
    ) -> IntArray | None:
        """Count every feature of a checked batch; add what it adds over all time to the
        ``totals`` of :meth:`total_shapes` (quality codes and bins of each block); return, if
        ``index``, the categorical values' flat bin indices (for the multivariate drift)."""
        numeric, categorical = self.numeric, self.categorical
        numeric_quality, categorical_quality = (
            totals["numeric_quality"],
            totals["categorical_quality"],
        )
        numeric_bins, categorical_bins = totals["numeric_bins"], totals["categorical_bins"]
        flat = np.empty((categorical.m, n), dtype=np.int64) if index else None
        if numeric.m:
            raw = [batch.features[spec.name] for spec in numeric.specs]
            if n <= CHUNK:
                try:
                    joined = None if batch.wrong_type else np.concatenate(raw)
                except (TypeError, ValueError):  # e.g. a text column among float ones
                    joined = None
                simple = joined is not None and joined.dtype.kind in "fiub"
            else:
                joined = None
                simple = not batch.wrong_type and all(c.dtype.kind in "fiub" for c in raw)
            if simple:
                # Common case: numeric columns and no type problems.
                for start in range(0, n, CHUNK):
                    stop = min(start + CHUNK, n)
                    if joined is None:
                        joined = np.concatenate([c[start:stop] for c in raw])
                    values = joined.astype(np.float64, copy=False).reshape(numeric.m, stop - start)
                    joined = None
                    quality, counted = numeric.count(ring, values, None, slots[start:stop])
                    numeric_quality += quality.reshape(numeric.m, N_CODES)
                    numeric_bins += counted.reshape(numeric.m, numeric.width)
            else:
                self._count_numeric_slow(ring, raw, batch, slots, n, numeric_quality, numeric_bins)
        if categorical.m:
            objects: list[npt.NDArray[Any]] = [
                batch.features[spec.name] for spec in categorical.specs
            ]
            objects = [c if c.dtype == object else c.astype(object) for c in objects]
            marks: list[BoolArray | None] = [None] * categorical.m
            if batch.wrong_type:
                for j, spec in enumerate(categorical.specs):
                    marked = batch.wrong_type.get(spec.name)
                    marks[j] = None if marked is None else np.asarray(marked, dtype=bool)
            for start in range(0, n, CHUNK):
                stop = min(start + CHUNK, n)
                quality, counted = categorical.count(
                    ring,
                    [column[start:stop] for column in objects],
                    chunk_mask(marks, start, stop),
                    slots[start:stop],
                    None if flat is None else flat[:, start:stop],
                )
                categorical_quality += quality.reshape(categorical.m, N_CODES)
                categorical_bins += counted.reshape(categorical.m, categorical.width)
        return flat

    def _count_numeric_slow(
        self,
        ring: BucketRing,
        raw: list[npt.NDArray[Any]],
        batch: PredictionBatch,
        slots: IntArray,
        n: int,
        total: FloatArray,
        bins_total: FloatArray,
    ) -> None:
        """Numeric features with wrong-type masks or non-numeric (object) columns."""
        numeric = self.numeric
        columns: list[FloatArray] = []
        wrong: list[BoolArray | None] = []
        for spec, column in zip(numeric.specs, raw, strict=True):
            converted, bad = numeric_values(np.asarray(column), spec.name, n)
            marked = batch.wrong_type.get(spec.name)
            if marked is not None:
                marked = np.asarray(marked, dtype=bool)
                bad = marked if bad is None else bad | marked
            columns.append(converted)
            wrong.append(bad)
        for start in range(0, n, CHUNK):
            stop = min(start + CHUNK, n)
            values = np.empty((numeric.m, stop - start))
            for j, column in enumerate(columns):
                values[j] = column[start:stop]
            quality, counted = numeric.count(
                ring, values, chunk_mask(wrong, start, stop), slots[start:stop]
            )
            total += quality.reshape(numeric.m, N_CODES)
            bins_total += counted.reshape(numeric.m, numeric.width)

    def drift(self, ring: BucketRing, min_samples: int) -> dict[str, DriftRow]:
        """Feature name -> drift figures of the window (numeric features, then categorical)."""
        out: dict[str, DriftRow] = {}
        numeric = self.numeric
        if numeric.m:
            counts, sums = numeric.window_rows(ring)
            rows = numeric_drift(
                numeric.reference_counts,
                numeric.reference_sums,
                counts,
                sums,
                numeric.scales,
                min_samples,
            )
            out.update(zip((spec.name for spec in numeric.specs), rows, strict=True))
        categorical = self.categorical
        if categorical.m:
            counts = categorical.window_rows(ring)
            rows = categorical_drift(categorical.reference_counts, counts, min_samples)
            out.update(zip((spec.name for spec in categorical.specs), rows, strict=True))
        return out

    def quality(
        self, numeric: FloatArray, categorical: FloatArray, names: Sequence[str]
    ) -> dict[str, dict[str, int]]:
        """Feature -> issue -> count, in the order of ``names``, from the blocks' code counts."""
        by_name: dict[str, dict[str, int]] = {}
        for block, counts in ((self.numeric, numeric), (self.categorical, categorical)):
            table = counts.reshape(block.m, N_CODES)
            for j, spec in enumerate(block.specs):
                by_name[spec.name] = issue_counts(table[j])
        return {name: by_name[name] for name in names}
