"""Multivariate drift: the PCA reconstruction error of each event, averaged over the window.

NannyML's ``DataReconstructionDriftCalculator`` method, streamed. At registration the
reference is encoded (numeric: missing values imputed with the reference mean; categorical:
frequency encoding, the share of reference rows with that value), standardised with the
reference mean and standard deviation, and a PCA keeps the fewest components that explain
``variance`` of it. An event's error is the Euclidean distance between its encoded row and
the row's reconstruction from those components: a change in how features relate moves rows
off the reference's principal subspace even when every marginal stays the same.

Encoding, standardisation and reconstruction are one affine map ``r = x @ A - b`` (A is
(d, d)), so a batch costs one matrix product (in blocks of 256 rows, see :data:`BLOCK`).
Each event adds ``(1, e, e**2)`` to a ring statistic of shape (3,): the window's mean error
and its count slide and checkpoint as additive sums like every other statistic.

The threshold is calibrated on the reference: with per-row error mean ``mu`` and standard
deviation ``sigma`` on the reference, the mean of ``n`` rows from the reference distribution
is approximately normal with standard deviation ``sigma * sqrt(1/n + 1/N)`` (``N`` reference
rows: the reference mean is itself an estimate), so the band is
``mu +- z * sigma * sqrt(1/n + 1/N)`` for the live window's own ``n``. With the default
``z = 3`` a window of rows drawn from the reference distribution falls outside it with
probability 2 * (1 - Phi(3)) = 0.27 % (0.13 % above): the false-alarm rate of one
evaluation. Below ``min_samples`` rows every figure is NaN.

>>> import numpy as np
>>> rng = np.random.default_rng(3)
>>> x = rng.normal(size=5_000)
>>> correlated = np.stack([x, x + 0.3 * rng.normal(size=5_000)])  # (features, rows)
>>> drift = ReconstructionDrift.fit(correlated, np.zeros((0, 5_000), np.int64), np.zeros(0))
>>> drift.n_components, drift.n_features
(1, 2)
>>> same = drift.errors(correlated[:, :1000], np.zeros((0, 1000), np.int64))
>>> flipped = drift.errors(correlated[:, :1000] * [[1.0], [-1.0]], np.zeros((0, 1000), np.int64))
>>> low, high = drift.band(1000)
>>> bool(low < same.mean() < high), bool(flipped.mean() > high)
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from modelmeter.engine.batch import PredictionBatch
from modelmeter.engine.columns import numeric_values, object_values
from modelmeter.engine.config import MultivariateConfig
from modelmeter.engine.drift import CategoricalBinning
from modelmeter.engine.features import CHUNK, Features
from modelmeter.engine.snapshot import MultivariateFigures
from modelmeter.engine.windows import BucketRing

__all__ = ["METHOD", "STATISTIC", "ReconstructionDrift", "block_tables", "frequency_table"]

#: Name of the ring statistic: (count, sum of errors, sum of squared errors).
STATISTIC = "multivariate"
METHOD = "pca"

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_SUM_INDEX = np.arange(3, dtype=np.int64)[:, None]
#: Rows per matrix product. OpenBLAS runs a product of fewer than 2**18 multiply-adds on the
#: calling thread; a larger one wakes its thread pool, which on a busy machine (the collector
#: serving requests) cost 3x the product's own time in our measurements (see bench/RESULTS.md).
BLOCK = 256


def frequency_table(codes: IntArray, n_codes: int, missing: Sequence[int]) -> FloatArray:
    """Frequency encoding of one categorical feature: code -> share of reference rows.

    ``codes`` are the reference rows' codes in ``0 .. n_codes - 1``; a code in ``missing``
    is a missing value, imputed with the most frequent other code (as NannyML's
    ``SimpleImputer(strategy="most_frequent")`` before its ``CountEncoder``): those rows
    count for that code and every missing code maps to its frequency. A code never seen in
    the reference (an unseen category) has frequency 0.

    >>> frequency_table(np.array([0, 0, 1, 3]), 4, missing=[3]).tolist()
    [0.75, 0.25, 0.0, 0.75]
    """
    counts = np.bincount(codes, minlength=n_codes).astype(np.float64)
    absent = np.zeros(n_codes, dtype=bool)
    absent[list(missing)] = True
    present = np.where(absent, -1.0, counts)
    mode = int(np.argmax(present))  # ties: the lowest code (sorted vocabulary)
    counts[mode] += counts[absent].sum()
    counts[absent] = 0.0
    table: FloatArray = counts / max(codes.shape[0], 1)
    table[absent] = table[mode]
    return table


class ReconstructionDrift:
    """PCA reconstruction error of events against a reference, counted into a window ring.

    Build it with :meth:`fit`. Rows come as a (numeric features, events) float matrix (NaN,
    infinities: missing, imputed with the reference mean) and a (categorical features,
    events) matrix of flat indices into the concatenated frequency tables.

    Parameters
    ----------
    transform
        ``A`` (d, d): encoded row -> reconstruction residual (standardisation folded in).
    offset
        ``b`` (d,): the residual is ``x @ A - b``.
    means
        Reference means of the numeric features (the imputed value), shape (p,).
    frequencies
        Concatenated frequency tables of the categorical features (see
        :func:`frequency_table`), indexed by the flat indices of :meth:`errors`.
    n_components
        Principal components kept.
    error_mean, error_std, reference_rows
        Mean and standard deviation (ddof 0) of the per-row error on the reference, and its
        number of rows: the calibration of :meth:`band`.
    z
        Half-width of the band in standard deviations of the window mean.
    """

    def __init__(
        self,
        transform: FloatArray,
        offset: FloatArray,
        means: FloatArray,
        frequencies: FloatArray,
        n_components: int,
        error_mean: float,
        error_std: float,
        reference_rows: int,
        z: float = 3.0,
    ) -> None:
        if not (z > 0 and math.isfinite(z)):
            raise ValueError(f"z must be a finite number > 0, got {z}")
        self.transform = transform
        self.offset = offset
        self.means = means
        self.frequencies = frequencies
        self.n_components = n_components
        self.n_features = int(transform.shape[0])
        self.error_mean = error_mean
        self.error_std = error_std
        self.reference_rows = reference_rows
        self.z = z
        self._p = int(means.shape[0])
        self._means_column = means[:, None]

    @classmethod
    def fit(
        cls,
        numeric: FloatArray,
        categorical: IntArray,
        frequencies: FloatArray,
        variance: float = 0.65,
        z: float = 3.0,
    ) -> ReconstructionDrift:
        """Fit encoding, PCA and calibration on the reference.

        ``numeric`` is (p, rows); ``categorical`` (q, rows) holds flat indices into
        ``frequencies`` (the categorical features' frequency tables, concatenated).
        The kept components are the fewest whose explained variance ratio reaches
        ``variance`` (scikit-learn's rule for a float ``n_components``).
        """
        if not 0 < variance < 1:
            raise ValueError(f"variance must be strictly between 0 and 1, got {variance}")
        p, rows = numeric.shape
        q = categorical.shape[0]
        if p + q < 2:
            raise ValueError(f"multivariate drift needs at least 2 features, got {p + q}")
        if rows < 2:
            raise ValueError(f"multivariate drift needs at least 2 reference rows, got {rows}")
        finite = np.isfinite(numeric)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(finite, numeric, 0.0).sum(axis=1) / finite.sum(axis=1)
        means = np.where(np.isfinite(means), means, 0.0)  # an all-missing column: 0
        matrix = np.empty((p + q, rows))
        matrix[:p] = np.where(finite, numeric, means[:, None])
        matrix[p:] = frequencies[categorical]
        centre = matrix.mean(axis=1)
        scale = matrix.std(axis=1)
        scale = np.where(scale > 0, scale, 1.0)  # a constant column: as StandardScaler
        standard = (matrix - centre[:, None]) / scale[:, None]
        pca_mean = standard.mean(axis=1)
        _, singular, vt = np.linalg.svd((standard - pca_mean[:, None]).T, full_matrices=False)
        explained = singular**2
        total = explained.sum()
        ratio = np.cumsum(explained) / total if total > 0 else np.ones_like(explained)
        k = min(int(np.searchsorted(ratio, variance, side="right")) + 1, p + q)
        components = vt[:k]
        projection = np.eye(p + q) - components.T @ components
        transform: FloatArray = projection / scale[:, None]
        offset: FloatArray = (centre / scale + pca_mean) @ projection
        uncalibrated = cls(transform, offset, means, frequencies, k, 0.0, 0.0, rows, z)
        errors = uncalibrated.errors(numeric, categorical)
        return cls(
            transform,
            offset,
            means,
            frequencies,
            k,
            float(errors.mean()),
            float(errors.std()),
            rows,
            z,
        )

    @classmethod
    def fit_reference(
        cls,
        features: Features,
        columns: Mapping[str, npt.NDArray[np.generic]],
        settings: MultivariateConfig,
    ) -> ReconstructionDrift:
        """Fit on the reference ``columns`` of a monitor's features, encoded as the stream
        will be (numeric values; categorical values by their drift vocabulary's codes)."""
        numeric, categorical = features.numeric, features.categorical
        rows = [np.asarray(columns[s.name]) for s in numeric.specs]
        n = rows[0].shape[0] if rows else np.shape(columns[categorical.specs[0].name])[0]
        values = np.empty((numeric.m, n))
        for j, (spec, column) in enumerate(zip(numeric.specs, rows, strict=True)):
            values[j] = numeric_values(column, spec.name, n)[0]
        codes = [
            binning.index(object_values(np.asarray(columns[spec.name]), spec.name, n))
            for spec, binning in zip(categorical.specs, categorical.binnings, strict=True)
        ]
        tables, index = block_tables(categorical.binnings, categorical.width, codes)
        if not categorical.m:
            index = np.zeros((0, n), dtype=np.int64)
        try:
            return cls.fit(values, index, tables, settings.variance, settings.z)
        except ValueError as error:
            raise ValueError(f"reference data, multivariate drift: {error}") from None

    def observe(
        self,
        ring: BucketRing,
        features: Features,
        batch: PredictionBatch,
        slots: IntArray,
        index: IntArray | None,
        total: FloatArray,
    ) -> None:
        """Reconstruction error of each event of a checked batch into the ring, and into
        ``total`` (the ring statistic's sums over all time); missing, non-finite and
        wrong-type numeric values: the reference mean; categorical: the flat bin ``index`` of
        :meth:`Features.count`, missing ones as missing."""
        specs = features.numeric.specs
        n = slots.shape[0]
        raw = [batch.features[spec.name] for spec in specs]
        if batch.wrong_type or not all(c.dtype.kind in "fiub" for c in raw):
            columns = []
            for spec, column in zip(specs, raw, strict=True):
                converted, bad = numeric_values(np.asarray(column), spec.name, n)
                marked = batch.wrong_type.get(spec.name)
                if marked is not None:
                    bad = np.asarray(marked, dtype=bool) if bad is None else bad | marked
                columns.append(converted if bad is None else np.where(bad, np.nan, converted))
            raw = columns
        codes = np.zeros((0, n), dtype=np.int64) if index is None else index
        for start in range(0, n, CHUNK):
            stop = min(start + CHUNK, n)
            values = np.empty((len(raw), stop - start))
            for j, column in enumerate(raw):
                values[j] = column[start:stop]
            total += self.count(ring, slots[start:stop], self.errors(values, codes[:, start:stop]))

    @staticmethod
    def shapes() -> dict[str, tuple[int, ...]]:
        """The ring statistic: count, sum and sum of squares of the error."""
        return {STATISTIC: (3,)}

    def errors(self, numeric: FloatArray, categorical: IntArray) -> FloatArray:
        """Reconstruction error of each event: (p, n) values and (q, n) flat table indices."""
        n = numeric.shape[1] if numeric.shape[0] else categorical.shape[1]
        rows = np.empty((self.n_features, n))
        p = self._p
        if p:
            values = rows[:p]
            values[...] = numeric
            bad = ~np.isfinite(values)
            if bad.any():
                np.copyto(values, np.broadcast_to(self._means_column, values.shape), where=bad)
        if self.n_features > p:
            np.take(self.frequencies, categorical, out=rows[p:])
        residual = np.empty((n, self.n_features))
        transposed = rows.T
        for start in range(0, n, BLOCK):  # small products: BLAS stays on this thread
            np.matmul(
                transposed[start : start + BLOCK],
                self.transform,
                out=residual[start : start + BLOCK],
            )
        residual -= self.offset
        squared = np.einsum("ij,ij->i", residual, residual)
        result: FloatArray = np.sqrt(squared, out=squared)
        return result

    def count(self, ring: BucketRing, slots: IntArray, errors: FloatArray) -> FloatArray:
        """Add ``(1, e, e**2)`` of each event to the ring statistic (one bincount); return
        what they add over all time."""
        weights = np.stack([np.ones_like(errors), errors, errors * errors])
        return ring.add(STATISTIC, slots, np.broadcast_to(_SUM_INDEX, weights.shape), weights)

    def band(self, n: int) -> tuple[float, float]:
        """(lower, upper) threshold of the mean error of a window of ``n`` rows."""
        if n < 1:
            return math.nan, math.nan
        half = self.z * self.error_std * math.sqrt(1.0 / n + 1.0 / self.reference_rows)
        return self.error_mean - half, self.error_mean + half

    def figures(self, sums: FloatArray, min_samples: int) -> tuple[int, float, float, float, bool]:
        """``(samples, mean error, lower, upper, drifted)`` of the window sums; NaN figures and
        not drifted below ``min_samples`` rows."""
        n = round(float(sums[0]))
        if n < max(min_samples, 1):
            return n, math.nan, math.nan, math.nan, False
        mean = float(sums[1]) / n
        lower, upper = self.band(n)
        return n, mean, lower, upper, not lower <= mean <= upper

    def window_figures(
        self, ring: BucketRing, min_samples: int, total: FloatArray
    ) -> MultivariateFigures:
        """The figures of the ring's window (see :meth:`figures`), with the rows and error
        sum of ``total`` (the statistic over all time)."""
        figures = self.figures(ring.window(STATISTIC), min_samples)
        return MultivariateFigures(METHOD, *figures, round(float(total[0])), float(total[1]))


def block_tables(
    binnings: Sequence[CategoricalBinning], width: int, reference: Sequence[IntArray]
) -> tuple[FloatArray, IntArray]:
    """Frequency tables laid out as a :class:`~modelmeter.engine.features.CategoricalBlock`'s
    (features, width) bins (flat index ``code + j * width``; the junk column ``width - 1``
    holds missing and wrong-type values), and the reference rows' flat indices (q, rows).

    >>> from modelmeter.engine.drift import CategoricalBinning
    >>> b = CategoricalBinning(("a", "b"))
    >>> tables, index = block_tables([b], 4, [b.index(np.array(["a", "a", None, "b"]))])
    >>> tables.tolist(), index.tolist()
    ([0.75, 0.25, 0.0, 0.75], [[0, 0, 3, 1]])
    """
    tables = np.zeros(len(binnings) * width)
    rows = reference[0].shape[0] if reference else 0
    index = np.empty((len(binnings), rows), dtype=np.int64)
    for j, (binning, codes) in enumerate(zip(binnings, reference, strict=True)):
        codes = np.where(codes == binning.missing, width - 1, codes)
        tables[j * width : (j + 1) * width] = frequency_table(codes, width, [width - 1])
        index[j] = codes + j * width
    return tables, index
