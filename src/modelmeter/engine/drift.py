"""Drift of a window against the reference, computed from binned counts.

Binning is fitted once on the reference:

* numeric: edges at the reference quantiles ``0, 1/B, ..., 1`` (``B = drift_bins``, ties
  merged) plus an underflow bin (below the reference minimum) and an overflow bin (above its
  maximum). Bins are ``[e0, e1), ..., [e(B-1), eB]``. Missing and infinite values are not
  binned (they are data quality). Beside the counts the window keeps the sum of the values
  in each bin, so each bin's mean is known.
* categorical: the vocabulary (spec ``categories``, else the reference's values) plus
  ``other``; missing values are not binned.

The statistics (defined in :mod:`modelmeter.engine.rowwise`) are computed row-wise on
(features, bins) matrices, so a snapshot gets the drift of all numeric (and all categorical)
features, and of the model's output, in a few numpy calls whatever their number:
:func:`numeric_drift` and :func:`categorical_drift`. The one-vector forms here (:func:`psi`,
:func:`jensen_shannon`, :func:`chi2_pvalue`, :meth:`NumericBinning.ks`, ...) are the same
functions on one row. PSI, Jensen-Shannon and the chi-square p-value are statistics of the
bins themselves; KS and Wasserstein are binned approximations of the statistics of the raw
values (exported as ``ks_binned`` and ``wasserstein_binned``; the Python names stay ``ks``
and ``wasserstein``), with these bounds (``p_i``, ``q_i``: reference and window proportions
of bin ``i``; ``c_i``: the CDF gap after bin ``i``, ``c_{-1} = 0``; exact: scipy's
``ks_2samp`` statistic and ``wasserstein_distance / scale`` of the finite raw values):

* ``ks_binned <= ks_exact <= ks_upper <= ks_binned + max_i max(p_i, q_i)``, with
  ``ks_upper = max_i max(c_{i-1} + p_i, q_i - c_{i-1})`` (:func:`ks_rows_upper`,
  :meth:`NumericBinning.ks_upper`; the best bound the counts allow). The under- and
  overflow bins, which hold no reference mass, and empty bins add nothing to it. With the
  default 10 quantile bins ``ks_upper - ks_binned`` is about 0.1 (one reference bin), while
  the measured ``ks_exact - ks_binned`` is typically below 0.01 for windows of thousands of
  values and a few hundredths for windows of tens (``tests/test_drift_bounds.py``).
* ``|wasserstein_binned - wasserstein_exact| <= (sum_i p_i MAD_i(reference) +
  sum_i q_i MAD_i(window)) / scale``, ``MAD_i`` the mean absolute deviation from their mean
  of the values inside bin ``i``; ``MAD_i <= width_i / 2`` for an inner bin. The window's
  under- and overflow bins are unbounded and their spread is not kept, so for a window with
  values beyond the reference's range the bound needs the raw values.

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

from collections import Counter
from collections.abc import Sequence
from itertools import repeat

import numpy as np
import numpy.typing as npt

from modelmeter.engine.rowwise import (
    PSI_EPSILON,
    chi2_pvalue_rows,
    jensen_shannon_rows,
    ks_rows,
    ks_rows_upper,
    pool_sparse_bins,
    psi_rows,
    wasserstein_rows,
)

__all__ = [
    "OTHER_BIN",
    "PSI_EPSILON",
    "CategoricalBinning",
    "DriftRow",
    "NumericBinning",
    "benjamini_hochberg",
    "categorical_drift",
    "chi2_pvalue",
    "chi2_pvalue_rows",
    "jensen_shannon",
    "jensen_shannon_rows",
    "ks_rows",
    "ks_rows_upper",
    "numeric_drift",
    "pool_sparse_bins",
    "psi",
    "psi_rows",
    "reference_ratios",
    "wasserstein_rows",
]

NAN = float("nan")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Label of a categorical binning's ``other`` bin (``_other``, ``__other`` ... when the
#: vocabulary itself has a value of that name).
OTHER_BIN = "other"

#: ``(samples, psi, jensen_shannon, ks, wasserstein, chi2_pvalue)`` of one feature (or of the
#: output), as :class:`~modelmeter.engine.snapshot.DriftFigures` takes them; ``ks`` and
#: ``wasserstein`` are the binned figures (exported as ``ks_binned``, ``wasserstein_binned``).
DriftRow = tuple[int, float, float, float, float, float]


def _one_row(reference: FloatArray, current: FloatArray) -> tuple[FloatArray, FloatArray]:
    return np.asarray(reference, np.float64)[None, :], np.asarray(current, np.float64)[None, :]


def psi(reference: FloatArray, current: FloatArray) -> float:
    """Population stability index of two count (or proportion) vectors over the same bins.

    >>> round(psi(np.array([50.0, 50.0]), np.array([80.0, 20.0])), 4)
    0.4159
    """
    return float(psi_rows(*_one_row(reference, current))[0])


def jensen_shannon(reference: FloatArray, current: FloatArray) -> float:
    """Jensen-Shannon distance (base 2) of two count vectors over the same bins.

    >>> jensen_shannon(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    1.0
    """
    return float(jensen_shannon_rows(*_one_row(reference, current))[0])


def chi2_pvalue(reference: FloatArray, current: FloatArray) -> float:
    """Chi-square test of homogeneity of the reference and window counts (a 2 x bins table;
    see :func:`~modelmeter.engine.rowwise.chi2_pvalue_rows`).

    >>> round(chi2_pvalue(np.array([50.0, 50.0]), np.array([60.0, 40.0])), 4)
    0.1552
    """
    return float(chi2_pvalue_rows(*_one_row(reference, current))[0])


def reference_ratios(counts: FloatArray) -> tuple[float, ...]:
    """Each bin's fraction of the reference counts (the ``p`` of PSI; all NaN without counts).

    >>> reference_ratios(np.array([0.0, 3.0, 1.0]))
    (0.0, 0.75, 0.25)
    """
    values = np.asarray(counts, dtype=np.float64)
    total = float(np.add.reduce(values))
    ratios = values / total if total > 0 else np.full(values.shape, NAN)
    return tuple(ratios.tolist())


def _other_label(vocabulary: Sequence[str]) -> str:
    label = OTHER_BIN
    while label in vocabulary:
        label = "_" + label
    return label


def numeric_drift(
    reference_counts: FloatArray,
    reference_sums: FloatArray,
    counts: FloatArray,
    sums: FloatArray,
    scales: FloatArray,
    min_samples: int,
) -> list[DriftRow]:
    """The drift figures of each row of (features, bins) counts and per-bin sums (reference
    and window) and the features' Wasserstein ``scales``; NaN figures where the window holds
    fewer than ``min_samples`` values.

    >>> b = NumericBinning(np.arange(100.0), bins=4)
    >>> rows = [r[None, :] for r in (b.reference_counts, b.reference_sums)]
    >>> numeric_drift(*rows, *rows, np.array([b.scale]), 10)
    [(100, 0.0, 0.0, 0.0, 0.0, 1.0)]
    """
    statistics = np.stack(
        [
            psi_rows(reference_counts, counts),
            jensen_shannon_rows(reference_counts, counts),
            ks_rows(reference_counts, counts),
            wasserstein_rows(reference_counts, reference_sums, counts, sums, scales),
            chi2_pvalue_rows(reference_counts, counts),
        ],
        axis=1,
    )
    return _guarded(counts.sum(axis=1), statistics, min_samples)


def categorical_drift(
    reference_counts: FloatArray, counts: FloatArray, min_samples: int
) -> list[DriftRow]:
    """The drift figures of each row of (features, bins) counts (KS and Wasserstein: NaN);
    NaN figures where the window holds fewer than ``min_samples`` values. Padding columns,
    0 on both sides, add nothing to PSI, Jensen-Shannon or chi-square."""
    nan = np.full(counts.shape[0], NAN)
    statistics = np.stack(
        [
            psi_rows(reference_counts, counts),
            jensen_shannon_rows(reference_counts, counts),
            nan,
            nan,
            chi2_pvalue_rows(reference_counts, counts),
        ],
        axis=1,
    )
    return _guarded(counts.sum(axis=1), statistics, min_samples)


def _guarded(samples: FloatArray, statistics: FloatArray, min_samples: int) -> list[DriftRow]:
    enough = (samples >= min_samples) & (samples > 0)
    if not enough.all():
        statistics[~enough] = NAN
    return [
        (int(n), *values) for n, values in zip(samples.tolist(), statistics.tolist(), strict=True)
    ]


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

    ``scale`` divides the Wasserstein distance: the reference inter-quartile range, else its
    standard deviation, else 1.

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
        #: bin labels as exported: "0" (underflow) .. str(n_bins - 1) (overflow)
        self.labels = tuple(str(i) for i in range(self.n_bins))
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
        """Binned KS (``ks_binned``): largest gap of the two CDFs at the bin edges, a lower
        bound of the exact KS statistic (NaN for an empty window; see
        :func:`~modelmeter.engine.rowwise.ks_rows`)."""
        return float(ks_rows(*_one_row(self.reference_counts, counts))[0])

    def ks_upper(self, counts: FloatArray) -> float:
        """Upper bound of the exact KS statistic of the window (bin ``counts``) against the
        reference values (NaN for an empty window; see
        :func:`~modelmeter.engine.rowwise.ks_rows_upper`)."""
        return float(ks_rows_upper(*_one_row(self.reference_counts, counts))[0])

    def wasserstein(self, counts: FloatArray, sums: FloatArray) -> float:
        """Binned Wasserstein-1 (``wasserstein_binned``) of the window (bin ``counts`` and
        value ``sums``) to the reference, each bin's mass placed at its mean, divided by
        :attr:`scale` (NaN for an empty window; error bound in
        :func:`~modelmeter.engine.rowwise.wasserstein_rows`)."""
        reference, current = _one_row(self.reference_counts, counts)
        reference_sums, current_sums = _one_row(self.reference_sums, sums)
        return float(
            wasserstein_rows(reference, reference_sums, current, current_sums, self.scale)[0]
        )


class CategoricalBinning:
    """Vocabulary bins plus ``other`` (an extra code marks missing values, not a bin).

    >>> binning = CategoricalBinning(("a", "b"))
    >>> binning.index(np.array(["b", None, "z", "a"], dtype=object)).tolist()
    [1, 3, 2, 0]
    >>> binning.labels, CategoricalBinning(("other", "x")).labels
    (('a', 'b', 'other'), ('other', 'x', '_other'))
    """

    def __init__(self, vocabulary: Sequence[str], reference: FloatArray | None = None) -> None:
        self.vocabulary = tuple(vocabulary)
        self.other = len(self.vocabulary)
        self.missing = self.other + 1
        self.n_bins = self.other + 1
        #: bin labels as exported: the vocabulary, then ``other`` (see :data:`OTHER_BIN`)
        self.labels = (*self.vocabulary, _other_label(self.vocabulary))
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
