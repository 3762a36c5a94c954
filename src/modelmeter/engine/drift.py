"""Drift of a window against the reference, computed from binned counts.

Binning is fitted once on the reference:

* numeric: edges at the reference quantiles ``0, 1/B, ..., 1`` (``B = drift_bins``, ties
  merged) plus an underflow bin (below the reference minimum) and an overflow bin (above its
  maximum). Bins are ``[e0, e1), ..., [e(B-1), eB]``. Missing and infinite values are not
  binned (they are data quality). Beside the counts the window keeps the sum of the values
  in each bin, so each bin's mean is known.
* categorical: the vocabulary (spec ``categories``, else the reference's values) plus
  ``other``; missing values are not binned.

Statistics, with reference proportions ``p`` and window proportions ``q`` over the bins:

* PSI ``sum((q - p) * ln(q / p))`` with both proportions floored at ``PSI_EPSILON`` = 1e-4 (a
  bin empty on one side would make it infinite).
* Jensen-Shannon distance, base 2 (in [0, 1]), as ``scipy.spatial.distance.jensenshannon``.
* KS: the largest CDF gap at the bin edges. It is a lower bound of the two-sample KS
  statistic of the raw values, and exceeds it by at most the largest bin mass of either side.
* Wasserstein-1 between the two distributions with each bin's mass put at the bin's mean
  (computed exactly for those point masses), divided by the reference inter-quartile range
  (the standard deviation if the IQR is 0, 1 if both are 0). By the triangle inequality the
  error against the raw values is at most ``sum_i p_i * MAD_i(ref) + q_i * MAD_i(window)``,
  MAD_i being the mean absolute deviation from the mean inside bin ``i`` (at most its width
  for the interior bins); a pure shift of a smooth distribution comes out within a few %.
* chi-square p-value: test of homogeneity of the reference and window counts (2 x bins
  contingency table, bins empty on both sides dropped, no continuity correction), which
  allows for the reference being a sample too.

Each statistic also has a row-wise form (``psi_rows``, ``jensen_shannon_rows``, ``ks_rows``,
``wasserstein_rows``, ``chi2_pvalue_rows``) taking (features, bins) matrices, so a snapshot
computes the drift of all numeric (and all categorical) features in a few numpy calls
whatever their number. On every row they give the one-vector functions' figures (to
rounding; the tests check it), also when rows are padded at the end with bins empty on both
sides, which is how features with fewer bins than others share a matrix.

The Benjamini-Hochberg step-up procedure over the features' (and output's) p-values decides
which ones drifted at false discovery rate ``drift_fdr``.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> binning = NumericBinning(rng.normal(size=5000), bins=10)
>>> same = binning.counts(rng.normal(size=5000))
>>> shifted = binning.counts(rng.normal(1.0, 1.0, size=5000))
>>> binning.psi(same) < 0.02 < 0.5 < binning.psi(shifted)
True
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import repeat

import numpy as np
import numpy.typing as npt
from scipy import special

__all__ = [
    "PSI_EPSILON",
    "CategoricalBinning",
    "NumericBinning",
    "benjamini_hochberg",
    "chi2_pvalue",
    "chi2_pvalue_rows",
    "jensen_shannon",
    "jensen_shannon_rows",
    "ks_rows",
    "pool_sparse_bins",
    "psi",
    "psi_rows",
    "wasserstein_rows",
]

PSI_EPSILON = 1e-4
NAN = float("nan")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _proportions(counts: FloatArray) -> FloatArray:
    total = float(counts.sum())
    if total <= 0:
        return np.full(counts.shape, np.nan)
    proportions: FloatArray = counts / total
    return proportions


def psi(reference: FloatArray, current: FloatArray) -> float:
    """Population stability index of two count (or proportion) vectors over the same bins.

    >>> round(psi(np.array([50.0, 50.0]), np.array([80.0, 20.0])), 4)
    0.4159
    """
    p = np.maximum(_proportions(reference), PSI_EPSILON)
    q = np.maximum(_proportions(current), PSI_EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(reference: FloatArray, current: FloatArray) -> float:
    """Jensen-Shannon distance (base 2) of two count vectors over the same bins.

    >>> jensen_shannon(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    1.0
    """
    p = _proportions(reference)
    q = _proportions(current)
    m = (p + q) / 2.0

    def kl(a: FloatArray) -> float:
        nonzero = a > 0
        return float(np.sum(a[nonzero] * np.log2(a[nonzero] / m[nonzero])))

    divergence = (kl(p) + kl(q)) / 2.0
    return math.sqrt(max(divergence, 0.0))


def chi2_pvalue(reference: FloatArray, current: FloatArray) -> float:
    """Chi-square test of homogeneity of the reference and window counts (a 2 x bins table;
    ``scipy.stats.chi2_contingency`` without correction on the table after
    :func:`pool_sparse_bins`).

    Both samples are random, so this is the right test even when the window is as large as
    the reference (a goodness-of-fit test against fixed reference proportions would ignore
    the reference's own noise and flag drift too often).

    >>> round(chi2_pvalue(np.array([50.0, 50.0]), np.array([60.0, 40.0])), 4)
    0.1552
    """
    return float(chi2_pvalue_rows(reference[None, :], current[None, :])[0])


#: Smallest expected count of a bin for the chi-square approximation (Cochran's rule).
MIN_EXPECTED = 5.0


def pool_sparse_bins(reference: FloatArray, current: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The (m, bins + 1) tables of a chi-square test of two (m, bins) count matrices, with
    every bin whose expected count on the smaller side is below :data:`MIN_EXPECTED` pooled
    into one last bin, itself added to the fullest bin when it is still below it.

    Why: the under- and overflow bins of a numeric feature (and ``other`` of a categorical
    one) hold no reference mass, so a window of 2,000 against a reference of 20,000 with one
    value beyond the reference's range adds about 10 to the statistic: p < 0.05 in 15 % of
    windows from the very distribution of the reference instead of 5 %.

    >>> ref, cur = pool_sparse_bins(np.array([[0.0, 500.0, 500.0, 0.0]]),
    ...                             np.array([[1.0, 50.0, 49.0, 0.0]]))
    >>> ref.tolist(), cur.tolist()
    ([[0.0, 500.0, 500.0, 0.0, 0.0]], [[0.0, 51.0, 49.0, 0.0, 0.0]])
    """
    reference, current = _rows(reference, current)
    columns = reference + current
    sides = np.stack([reference.sum(axis=1), current.sum(axis=1)], axis=1)
    total = np.where(sides.sum(axis=1) > 0, sides.sum(axis=1), 1.0)
    smaller = sides.min(axis=1)
    sparse = (columns > 0) & (smaller[:, None] * columns / total[:, None] < MIN_EXPECTED)
    sparse &= (smaller > 0)[:, None]  # an empty side: nothing to test, nothing to pool
    rest_reference = np.where(sparse, reference, 0.0).sum(axis=1)
    rest_current = np.where(sparse, current, 0.0).sum(axis=1)
    reference = np.where(sparse, 0.0, reference)
    current = np.where(sparse, 0.0, current)
    still = smaller * (rest_reference + rest_current) / total < MIN_EXPECTED
    fullest = np.argmax(np.where(sparse, -1.0, columns), axis=1)
    into = still & ~sparse[np.arange(sparse.shape[0]), fullest]  # a dense bin to take it
    rows = np.flatnonzero(into)
    reference[rows, fullest[rows]] += rest_reference[rows]
    current[rows, fullest[rows]] += rest_current[rows]
    keep = ~into
    pooled_reference = np.column_stack([reference, np.where(keep, rest_reference, 0.0)])
    pooled_current = np.column_stack([current, np.where(keep, rest_current, 0.0)])
    return pooled_reference, pooled_current


# ---------------------------------------------------------------------- row-wise forms


def _row_proportions(counts: FloatArray) -> FloatArray:
    """Each row of ``counts`` divided by its total (all NaN where the total is not positive)."""
    totals = np.add.reduce(counts, axis=1, keepdims=True)
    proportions: FloatArray = counts / np.where(totals > 0, totals, np.nan)  # NaN: no warning
    return proportions


def _rows(reference: FloatArray, current: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Two (m, bins) float arrays of the same shape; ValueError otherwise."""
    reference = np.asarray(reference, dtype=np.float64)
    current = np.asarray(current, dtype=np.float64)
    if reference.ndim != 2 or reference.shape != current.shape:
        raise ValueError(
            "expected two (rows, bins) arrays of the same shape, "
            f"got {reference.shape} and {current.shape}"
        )
    return reference, current


def psi_rows(reference: FloatArray, current: FloatArray) -> FloatArray:
    """:func:`psi` of each row of two (m, bins) count matrices: an (m,) array.

    A row whose total is 0 (on either side) gives NaN. Rows may end with padding columns
    that are 0 on both sides: they add nothing.

    >>> reference = np.array([[50.0, 50.0], [10.0, 30.0]])
    >>> current = np.array([[80.0, 20.0], [10.0, 30.0]])
    >>> np.round(psi_rows(reference, current), 4).tolist()
    [0.4159, 0.0]
    """
    reference, current = _rows(reference, current)
    p = np.maximum(_row_proportions(reference), PSI_EPSILON)
    q = np.maximum(_row_proportions(current), PSI_EPSILON)
    values: FloatArray = np.add.reduce((q - p) * np.log(q / p), axis=1)
    return values


def jensen_shannon_rows(reference: FloatArray, current: FloatArray) -> FloatArray:
    """:func:`jensen_shannon` of each row of two (m, bins) count matrices: an (m,) array.

    A row whose total is 0 on one side gives NaN (0 when both sides are 0); bins empty on
    both sides (padding included) add nothing.

    >>> reference = np.array([[1.0, 0.0], [2.0, 2.0]])
    >>> current = np.array([[0.0, 1.0], [5.0, 5.0]])
    >>> jensen_shannon_rows(reference, current).tolist()
    [1.0, 0.0]
    """
    reference, current = _rows(reference, current)
    p = _row_proportions(reference)
    q = _row_proportions(current)
    m = (p + q) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):  # 0 * log(0): dropped below
        terms_p = p * np.log2(p / m)
        terms_q = q * np.log2(q / m)
    # Only positive proportions count (NaN, a row without counts, adds nothing either).
    kl_p = np.add.reduce(np.where(p > 0, terms_p, 0.0), axis=1)
    kl_q = np.add.reduce(np.where(q > 0, terms_q, 0.0), axis=1)
    divergence = (kl_p + kl_q) / 2.0
    distance: FloatArray = np.sqrt(np.maximum(divergence, 0.0))
    return distance


def ks_rows(reference: FloatArray, current: FloatArray) -> FloatArray:
    """Binned KS statistic of each row of two (m, bins) count matrices: an (m,) array.

    The largest gap between the two CDFs at the inner bin edges (after each bin but the
    last), as :meth:`NumericBinning.ks`; NaN for a row whose total is 0 on either side.
    Rows may end with padding columns that are 0 on both sides: the edges they add have the
    gap of the whole CDFs, 1 - 1 (0 up to rounding), which changes nothing.

    >>> reference = np.array([[10.0, 10.0, 10.0, 10.0], [5.0, 5.0, 0.0, 0.0]])
    >>> current = np.array([[0.0, 10.0, 10.0, 20.0], [2.0, 8.0, 0.0, 0.0]])
    >>> ks_rows(reference, current).tolist()
    [0.25, 0.3]
    """
    reference, current = _rows(reference, current)
    p = _row_proportions(reference)
    q = _row_proportions(current)
    gaps = np.abs(np.cumsum(p - q, axis=1)[:, :-1])
    values: FloatArray = np.maximum.reduce(gaps, axis=1, initial=0.0)
    return values


def wasserstein_rows(
    reference_counts: FloatArray,
    reference_sums: FloatArray,
    counts: FloatArray,
    sums: FloatArray,
    scale: FloatArray | float = 1.0,
) -> FloatArray:
    """Binned Wasserstein-1 distance of each row, divided by ``scale``: an (m,) array.

    Rows are features: bin counts and per-bin value sums of the reference and of the window,
    all (m, bins). Each non-empty bin's mass is put at its mean and the distance between
    the two sets of point masses is computed exactly, as :meth:`NumericBinning.wasserstein`.
    ``scale`` is one number or one per row. NaN for a row whose total is 0 on either side;
    bins empty on both sides (padding included) add nothing.

    >>> counts = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0]])
    >>> sums = np.array([[0.0, 1.0, 0.0], [0.0, 2.0, 6.0]])
    >>> current = np.array([[0.0, 1.0, 1.0], [0.0, 4.0, 0.0]])
    >>> current_sums = np.array([[0.0, 1.0, 2.0], [0.0, 4.0, 0.0]])
    >>> wasserstein_rows(counts, sums, current, current_sums, np.array([1.0, 2.0])).tolist()
    [1.0, 0.5]
    """
    reference_counts, counts = _rows(reference_counts, counts)
    reference_sums, sums = _rows(reference_sums, sums)
    if reference_sums.shape != counts.shape:
        raise ValueError("counts and sums must have the same shape")
    a, a_weights, a_filled = _row_bin_masses(reference_counts, reference_sums)
    b, b_weights, b_filled = _row_bin_masses(counts, sums)
    # Exact Wasserstein-1 of the weighted points: integral of |CDF_a - CDF_b|. Empty bins are
    # NaN points, which sort after every other; a stable sort keeps the order of equal points.
    points = np.concatenate([a, b], axis=1)
    rows, width = points.shape
    order = np.argsort(points, axis=1, kind="stable")
    order += np.arange(0, rows * width, width)[:, None]  # flat positions, row by row
    nothing = np.zeros(a.shape)
    weights_a = np.concatenate([a_weights, nothing], axis=1).ravel()[order]
    weights_b = np.concatenate([nothing, b_weights], axis=1).ravel()[order]
    filled = np.concatenate([a_filled, b_filled], axis=1).ravel()[order]
    gaps = np.abs(np.cumsum(weights_a, axis=1) - np.cumsum(weights_b, axis=1))[:, :-1]
    steps = np.diff(points.ravel()[order], axis=1)  # NaN up to the next filled point: dropped
    areas = np.where(filled[:, 1:], gaps * steps, 0.0)
    distance: FloatArray = np.add.reduce(areas, axis=1) / scale
    present = (np.add.reduce(reference_counts, axis=1) > 0) & (np.add.reduce(counts, axis=1) > 0)
    if not present.all():
        distance = np.where(present, distance, np.nan)
    return distance


def _row_bin_masses(
    counts: FloatArray, sums: FloatArray
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    """Per row: the mean of each bin (NaN if empty), its proportion, and which are filled."""
    filled = counts > 0
    means = sums / np.where(filled, counts, np.nan)  # NaN: no warning
    totals = np.add.reduce(counts, axis=1, keepdims=True)
    weights = np.where(filled, counts, 0.0) / np.where(totals > 0, totals, np.inf)
    return means, weights, filled


def chi2_pvalue_rows(reference: FloatArray, current: FloatArray) -> FloatArray:
    """:func:`chi2_pvalue` of each row of two (m, bins) count matrices: an (m,) array.

    Sparse bins are pooled first (:func:`pool_sparse_bins`); then each row drops its own bins
    empty on both sides (padding included), so the degrees of
    freedom differ by row: (bins non-empty on either side) - 1. With fewer than two such
    bins the p-value is 1 if the window has counts (NaN if not); a row whose total is 0 on
    either side otherwise gives NaN.

    >>> reference = np.array([[50.0, 50.0, 0.0], [10.0, 0.0, 0.0]])
    >>> current = np.array([[60.0, 40.0, 0.0], [30.0, 0.0, 0.0]])
    >>> np.round(chi2_pvalue_rows(reference, current), 4).tolist()
    [0.1552, 1.0]
    """
    reference, current = pool_sparse_bins(reference, current)
    table = np.stack([reference, current], axis=1)  # (m, 2, bins)
    columns = reference + current
    filled = columns > 0
    dof = filled.sum(axis=1) - 1
    sides = table.sum(axis=2)  # (m, 2): reference and window totals
    total = sides.sum(axis=1)
    tested = (sides.min(axis=1) > 0) & (dof >= 1)
    expected = sides[:, :, None] * columns[:, None, :] / np.where(tested, total, 1.0)[:, None, None]
    terms = np.divide(
        (table - expected) ** 2,
        expected,
        out=np.zeros(table.shape),
        where=(filled & tested[:, None])[:, None, :],
    )
    statistic = terms.reshape(terms.shape[0], -1).sum(axis=1)
    pvalues: FloatArray = special.chdtrc(np.maximum(dof, 1), statistic)  # = stats.chi2.sf
    if not tested.all():
        single = np.where((total > 0) & (sides[:, 1] > 0), 1.0, np.nan)
        pvalues = np.where(tested, pvalues, np.where(dof < 1, single, np.nan))
    return pvalues


def benjamini_hochberg(pvalues: Sequence[float], fdr: float) -> list[bool]:
    """Which hypotheses the Benjamini-Hochberg step-up procedure rejects at level ``fdr``.

    NaN p-values are not tested (never rejected) and do not count in the family size.

    >>> benjamini_hochberg([0.01, 0.02, 0.03, float("nan"), 0.5], fdr=0.05)
    [True, True, True, False, False]
    """
    values = np.asarray(pvalues, dtype=np.float64)
    tested = np.flatnonzero(~np.isnan(values))
    rejected = [False] * len(values)
    m = tested.size
    if m == 0:
        return rejected
    order = tested[np.argsort(values[tested], kind="stable")]
    thresholds = fdr * np.arange(1, m + 1) / m
    passing = np.flatnonzero(values[order] <= thresholds)
    if passing.size:
        for index in order[: passing[-1] + 1]:
            rejected[int(index)] = True
    return rejected


class NumericBinning:
    """Quantile bins of a numeric reference, with under- and overflow bins.

    ``index(values)`` gives each value's bin (missing values land in the overflow bin and
    must be subtracted by the caller, which counts them anyway); ``n_bins`` bins in all.
    """

    def __init__(self, reference: FloatArray, bins: int) -> None:
        values = np.asarray(reference, dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise ValueError("a numeric feature needs at least one finite reference value")
        edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))
        self.edges: FloatArray = edges
        # Search edges: e0 .. e(B-1) then just above eB, so that eB itself is in the last bin.
        self.search_edges: FloatArray = np.append(edges[:-1], np.nextafter(edges[-1], np.inf))
        self.low = float(edges[0])
        self.high = float(edges[-1])
        self.n_bins = int(self.search_edges.size + 1)
        self.reference_counts: FloatArray = self.counts(values)
        self.reference_sums: FloatArray = self.sums(values)
        q25, q75 = np.quantile(values, [0.25, 0.75])
        iqr = float(q75 - q25)
        std = float(values.std())
        self.scale = iqr if iqr > 0 else std if std > 0 else 1.0

    def index(self, values: FloatArray) -> IntArray:
        """Bin of each value: 0 underflow, 1..B quantile bins, B+1 overflow (and NaN)."""
        found: IntArray = np.searchsorted(self.search_edges, values, side="right").astype(np.int64)
        return found

    def counts(self, values: FloatArray) -> FloatArray:
        """Bin counts of finite values (for references and tests)."""
        finite = values[np.isfinite(values)]
        return np.bincount(self.index(finite), minlength=self.n_bins).astype(np.float64)

    def sums(self, values: FloatArray) -> FloatArray:
        """Per-bin sums of finite values (for references and tests)."""
        finite = values[np.isfinite(values)]
        sums = np.bincount(self.index(finite), weights=finite, minlength=self.n_bins)
        return sums.astype(np.float64)

    def psi(self, counts: FloatArray) -> float:
        """PSI of window ``counts`` against the reference."""
        return psi(self.reference_counts, counts)

    def ks(self, counts: FloatArray) -> float:
        """Largest gap of the two CDFs at the bin edges."""
        p = _proportions(self.reference_counts)
        q = _proportions(counts)
        return float(np.max(np.abs(np.cumsum(p - q)[:-1]))) if counts.sum() > 0 else NAN

    def wasserstein(self, counts: FloatArray, sums: FloatArray) -> float:
        """Normalised Wasserstein-1 distance of the window (bin ``counts`` and value ``sums``)
        to the reference, each bin's mass placed at its mean."""
        if counts.sum() <= 0:
            return NAN
        reference = _bin_masses(self.reference_counts, self.reference_sums)
        current = _bin_masses(counts, sums)
        return _discrete_wasserstein(*reference, *current) / self.scale


def _bin_masses(counts: FloatArray, sums: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(positions, weights): the mean and the proportion of each non-empty bin."""
    filled = counts > 0
    return sums[filled] / counts[filled], counts[filled] / counts.sum()


def _discrete_wasserstein(
    a: FloatArray, a_weights: FloatArray, b: FloatArray, b_weights: FloatArray
) -> float:
    """Exact Wasserstein-1 distance of two weighted point sets: integral of |CDF_a - CDF_b|."""
    points = np.concatenate([a, b])
    order = np.argsort(points, kind="stable")
    weights_a = np.concatenate([a_weights, np.zeros(b.size)])[order]
    weights_b = np.concatenate([np.zeros(a.size), b_weights])[order]
    gaps = np.abs(np.cumsum(weights_a) - np.cumsum(weights_b))[:-1]
    return float(np.sum(gaps * np.diff(points[order])))


class CategoricalBinning:
    """Vocabulary bins plus ``other`` (an extra code marks missing values, not a bin).

    >>> binning = CategoricalBinning(("a", "b"))
    >>> binning.index(np.array(["b", None, "z", "a"], dtype=object)).tolist()
    [1, 3, 2, 0]
    """

    def __init__(self, vocabulary: Sequence[str], reference: FloatArray | None = None) -> None:
        self.vocabulary = tuple(vocabulary)
        self.other = len(self.vocabulary)
        self.missing = self.other + 1
        self.n_bins = self.other + 1
        self._codes: dict[object, int] = {value: i for i, value in enumerate(self.vocabulary)}
        self._codes[None] = self.missing
        self.reference_counts: FloatArray = (
            np.zeros(self.n_bins) if reference is None else np.asarray(reference, np.float64)
        )

    @classmethod
    def fit(
        cls,
        values: npt.NDArray[np.generic],
        categories: Sequence[str] | None = None,
        max_categories: int | None = None,
    ) -> CategoricalBinning:
        """Bins from spec ``categories`` or, without them, the reference values' vocabulary:
        its ``max_categories`` most frequent values (ties by value), the rest in ``other``.

        >>> ref = np.array(["a", "b", "b", "c", "c", "c"], dtype=object)
        >>> b = CategoricalBinning.fit(ref, max_categories=2)
        >>> b.vocabulary, b.reference_counts.tolist()
        (('b', 'c'), [2.0, 3.0, 1.0])
        """
        if categories is None:
            seen = Counter(v for v in values.tolist() if v is not None and isinstance(v, str))
            if max_categories is not None and len(seen) > max_categories:
                ranked = sorted(seen.items(), key=lambda item: (-item[1], item[0]))
                seen = Counter(dict(ranked[:max_categories]))
            categories = sorted(seen)
        binning = cls(categories)
        codes = binning.index(values)
        binning.reference_counts = np.bincount(
            codes[codes < binning.n_bins], minlength=binning.n_bins
        ).astype(np.float64)
        return binning

    def index(self, values: npt.NDArray[np.generic]) -> IntArray:
        """Code of each value: its vocabulary index, ``other``, or ``missing`` (None).

        A value that cannot be looked up (unhashable) is ``other``.
        """
        codes = self._codes
        try:
            return np.fromiter(map(codes.get, values, repeat(self.other)), np.int64, len(values))
        except TypeError:
            return np.fromiter(
                (codes.get(v, self.other) if _hashable(v) else self.other for v in values),
                np.int64,
                len(values),
            )

    def psi(self, counts: FloatArray) -> float:
        """PSI of window ``counts`` against the reference."""
        return psi(self.reference_counts, counts)


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def reference_mapping(
    features: Mapping[str, npt.NDArray[np.generic]], name: str
) -> npt.NDArray[np.generic]:
    """The reference column of feature ``name``; ValueError if the reference lacks it."""
    if name not in features:
        raise ValueError(f"reference data has no column for feature {name!r}")
    return features[name]
