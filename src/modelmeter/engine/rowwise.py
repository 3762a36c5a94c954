"""Drift statistics of binned counts, row-wise: one row per feature, a few numpy calls.

Every function takes (features, bins) count matrices of the reference and of the window (and,
for Wasserstein, per-bin value sums) and returns one figure per row. With reference
proportions ``p`` and window proportions ``q`` over the bins:

* PSI ``sum((q - p) * ln(q / p))`` with both proportions floored at ``PSI_EPSILON`` = 1e-4 (a
  bin empty on one side would make it infinite).
* Jensen-Shannon distance, base 2 (in [0, 1]), as ``scipy.spatial.distance.jensenshannon``.
* KS, binned (exported as ``ks_binned``): the largest CDF gap at the inner bin edges. It is a
  lower bound of the two-sample KS statistic of the raw (finite) values, and
  ``ks_binned <= ks_exact <= ks_rows_upper <= ks_binned + max_i max(p_i, q_i)``
  (:func:`ks_rows`, :func:`ks_rows_upper`).
* Wasserstein-1, binned (exported as ``wasserstein_binned``): the distance between the two
  distributions with each bin's mass put at the bin's mean (computed exactly for those point
  masses), divided by the feature's scale (the reference inter-quartile range; its standard
  deviation if the IQR is 0; 1 if both are 0). Its error against the raw values is at most
  ``(sum_i p_i MAD_i(reference) + sum_i q_i MAD_i(window)) / scale``, MAD_i being the mean
  absolute deviation from the mean of the values inside bin ``i`` (at most half the width of
  an inner bin; not known for the window's under- and overflow bins, see
  :func:`wasserstein_rows`).
* chi-square p-value: test of homogeneity of the reference and window counts (2 x bins
  contingency table, bins empty on both sides dropped, no continuity correction), which
  allows for the reference being a sample too.

Rows may end with padding: bins empty on both sides, which add nothing. That is how features
with fewer bins than others share a matrix (:mod:`modelmeter.engine.features`); the one-vector
forms of :mod:`modelmeter.engine.drift` are these functions on a single row.

>>> import numpy as np
>>> np.round(psi_rows(np.array([[50.0, 50.0]]), np.array([[80.0, 20.0]])), 4).tolist()
[0.4159]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import special

__all__ = [
    "MIN_EXPECTED",
    "PSI_EPSILON",
    "chi2_pvalue_rows",
    "jensen_shannon_rows",
    "ks_rows",
    "ks_rows_upper",
    "pool_sparse_bins",
    "psi_rows",
    "wasserstein_rows",
]

PSI_EPSILON = 1e-4

FloatArray = npt.NDArray[np.float64]

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
    """Population stability index of each row of two (m, bins) count matrices: an (m,) array.

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
    """Jensen-Shannon distance (base 2) of each row of two (m, bins) count matrices: an (m,)
    array.

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
    """Binned KS statistic (``ks_binned``) of each row of two (m, bins) count matrices: an
    (m,) array.

    The largest gap between the two CDFs at the inner bin edges (after each bin but the
    last); NaN for a row whose total is 0 on either side.
    Rows may end with padding columns that are 0 on both sides: the edges they add have the
    gap of the whole CDFs, 1 - 1 (0 up to rounding), which changes nothing.

    Error bound. Let ``F`` and ``G`` be the empirical CDFs of the reference and window values
    (right-continuous, as in ``scipy.stats.ks_2samp``), ``p_i`` and ``q_i`` the proportions of
    bin ``i`` and ``c_i = sum_{j <= i} (p_j - q_j)`` (``c_{-1} = 0``). Each ``c_i`` but the
    last is ``F - G`` just below the lower edge of bin ``i + 1``, a limit of values of
    ``F - G``, so ``ks_binned = max_i |c_i| <= ks_exact = sup_x |F(x) - G(x)|``. Inside bin
    ``i``, ``F`` rises by ``p_i`` and ``G`` by ``q_i``, so ``F - G`` stays in
    ``[c_{i-1} - q_i, c_{i-1} + p_i]``: ``ks_exact`` is at most :func:`ks_rows_upper`,
    ``max_i max(c_{i-1} + p_i, q_i - c_{i-1})``, itself at most
    ``ks_binned + max_i max(p_i, q_i)``.

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


def ks_rows_upper(reference: FloatArray, current: FloatArray) -> FloatArray:
    """Upper bound of the exact two-sample KS statistic of the raw values behind each row of
    two (m, bins) count matrices: an (m,) array, ``>=`` :func:`ks_rows` on the same rows.

    With ``p_i``, ``q_i`` the reference and window proportions of bin ``i`` and ``c_i`` the
    CDF gap after it (``c_{-1} = 0``): ``max_i max(c_{i-1} + p_i, q_i - c_{i-1})``, because
    inside bin ``i`` the reference CDF rises by ``p_i`` and the window's by ``q_i`` (see
    :func:`ks_rows`). Hence ``ks_binned <= ks_exact <= ks_rows_upper <= ks_binned +
    max_i max(p_i, q_i)``. It is the best bound the counts allow: values with these counts
    reach it when, inside one bin, all the reference values lie below all the window values
    (or the reverse). A bin without reference mass (the under- and overflow bins of a
    numeric binning) or empty on both sides (padding included) adds nothing beyond the gap
    at its edge; quantile edges merged by ties make fewer, heavier bins, so a wider bound.
    NaN for a row whose total is 0 on either side.

    >>> reference = np.array([[10.0, 10.0, 10.0, 10.0], [5.0, 5.0, 0.0, 0.0]])
    >>> current = np.array([[0.0, 10.0, 10.0, 20.0], [2.0, 8.0, 0.0, 0.0]])
    >>> ks_rows_upper(reference, current).tolist()
    [0.5, 0.8]
    """
    reference, current = _rows(reference, current)
    p = _row_proportions(reference)
    q = _row_proportions(current)
    after = np.cumsum(p - q, axis=1)
    before = np.concatenate([np.zeros((after.shape[0], 1)), after[:, :-1]], axis=1)
    bounds = np.maximum(before + p, q - before)
    values: FloatArray = np.maximum.reduce(bounds, axis=1, initial=0.0)
    return values


def wasserstein_rows(
    reference_counts: FloatArray,
    reference_sums: FloatArray,
    counts: FloatArray,
    sums: FloatArray,
    scale: FloatArray | float = 1.0,
) -> FloatArray:
    """Binned Wasserstein-1 distance (``wasserstein_binned``) of each row, divided by
    ``scale``: an (m,) array.

    Rows are features: bin counts and per-bin value sums of the reference and of the window,
    all (m, bins). Each non-empty bin's mass is put at its mean and the distance between
    the two sets of point masses is computed exactly (the integral of |CDF_a - CDF_b|).
    ``scale`` is one number or one per row. NaN for a row whose total is 0 on either side;
    bins empty on both sides (padding included) add nothing.

    Error bound. Moving every value to the mean of its bin is a non-decreasing map (each
    mean lies inside its bin), so it costs exactly ``sum_i p_i MAD_i`` in Wasserstein-1,
    ``MAD_i`` being the mean absolute deviation of the values of bin ``i`` from their mean.
    By the triangle inequality, against the exact distance of the raw values
    (``scipy.stats.wasserstein_distance(reference, window) / scale``)::

        |wasserstein_binned - wasserstein_exact|
            <= (sum_i p_i MAD_i(reference) + sum_i q_i MAD_i(window)) / scale

    An inner bin ``[e_k, e_(k+1)]`` has ``MAD_i <= (e_(k+1) - e_k) / 2`` (the mean absolute
    deviation is at most the standard deviation, at most half the range). A reference of two
    distinct values or more has none outside its inner bins, so its term is at most
    ``sum_i p_i width_i / 2`` (a constant one has none at all). The
    window's under- and overflow bins are unbounded: their MAD needs the spread of the values
    inside them, which is not kept (only counts and sums are), so the error of a window with
    values beyond the reference's range cannot be bounded from the kept state. The bound is
    a worst case; a shift of a smooth distribution comes out within a few %.

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
    """Chi-square test of homogeneity of each row of two (m, bins) count matrices: an
    (m,) array of p-values (``scipy.stats.chi2_contingency`` without correction on each row's
    2 x bins table after :func:`pool_sparse_bins`).

    Both samples are random, so this is the right test even when the window is as large as
    the reference (a goodness-of-fit test against fixed reference proportions would ignore
    the reference's own noise and flag drift too often).

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
