"""The binned KS and Wasserstein figures (exported as ``ks_binned`` / ``wasserstein_binned``)
against scipy on the raw values, within the bounds stated in modelmeter.engine.rowwise:

* ``ks_binned <= ks_exact <= ks_rows_upper <= ks_binned + max_i max(p_i, q_i)``;
* ``|wasserstein_binned - wasserstein_exact| <= (sum_i p_i MAD_i(reference) +
  sum_i q_i MAD_i(window)) / scale``, MAD_i computed here from the raw values, and the same
  with ``MAD_i`` replaced by half the width of each inner bin.

``ks_exact`` is ``scipy.stats.ks_2samp(...).statistic``, ``wasserstein_exact`` is
``scipy.stats.wasserstein_distance(...) / scale``. The figures come from the engine's own
code: :class:`NumericBinning` fitted on the reference and :func:`numeric_drift` (what a
snapshot runs), and once through :class:`ModelMonitor`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from scipy import stats

from modelmeter.engine import (
    FeatureSpec,
    ModelMonitor,
    MonitorConfig,
    PredictionBatch,
    ReferenceData,
)
from modelmeter.engine.drift import NumericBinning, ks_rows_upper, numeric_drift

FloatArray = np.ndarray
Draw = Callable[[np.random.Generator, int], FloatArray]

TOLERANCE = 1e-12

#: The engine's default number of quantile bins (10).
DEFAULT_BINS = MonitorConfig(task="regression", features=()).drift_bins


@dataclass(frozen=True)
class Case:
    reference: Draw
    window: Draw
    reference_size: int = 10_000
    window_size: int = 2_000


def normal(loc: float = 0.0, scale: float = 1.0) -> Draw:
    return lambda rng, n: rng.normal(loc, scale, n)


CASES = {
    "no_shift": Case(normal(), normal()),
    "location_shift": Case(normal(), normal(0.5)),
    "scale_shift": Case(normal(), normal(0.0, 2.0)),
    "beyond_the_range": Case(normal(), normal(4.0)),
    "heavy_tailed_t2": Case(
        lambda rng, n: rng.standard_t(2.0, n), lambda rng, n: rng.standard_t(2.0, n) + 0.3
    ),
    "cauchy": Case(lambda rng, n: rng.standard_cauchy(n), lambda rng, n: rng.standard_cauchy(n)),
    "skewed_gamma_scaled": Case(
        lambda rng, n: rng.gamma(2.0, 1.0, n), lambda rng, n: rng.gamma(2.0, 1.3, n)
    ),
    "discrete_ties": Case(
        lambda rng, n: rng.poisson(3.0, n).astype(float),
        lambda rng, n: rng.poisson(3.5, n).astype(float),
    ),
    "rounded_ties": Case(
        lambda rng, n: np.round(rng.normal(0.0, 1.0, n), 1),
        lambda rng, n: np.round(rng.normal(0.2, 1.0, n), 1),
    ),
    "constant_reference": Case(
        lambda rng, n: np.full(n, 2.0), lambda rng, n: np.where(rng.random(n) < 0.7, 2.0, 3.0)
    ),
    "small_window": Case(normal(), normal(0.3), window_size=30),
    "small_window_no_shift": Case(normal(), normal(), window_size=60),
    "large_window": Case(normal(), normal(0.1), window_size=50_000),
    "large_window_no_shift": Case(normal(), normal(), reference_size=50_000, window_size=50_000),
}


def engine_figures(
    binning: NumericBinning, window: FloatArray
) -> tuple[float, float, float, FloatArray, FloatArray]:
    """(ks_binned, ks_upper, wasserstein_binned, window counts, window sums), by the row
    functions a snapshot runs."""
    counts = binning.counts(window)
    sums = binning.sums(window)
    rows = [binning.reference_counts[None, :], binning.reference_sums[None, :]]
    ((_, _, _, ks, wasserstein, _),) = numeric_drift(
        *rows, counts[None, :], sums[None, :], np.array([binning.scale]), min_samples=1
    )
    upper = float(ks_rows_upper(binning.reference_counts[None, :], counts[None, :])[0])
    return ks, upper, wasserstein, counts, sums


def spread(binning: NumericBinning, values: FloatArray) -> FloatArray:
    """Per bin: its share of ``values`` times their mean absolute deviation from their mean."""
    index = binning.index(values)
    terms = np.zeros(binning.n_bins)
    for i in np.unique(index):
        inside = values[index == i]
        terms[i] = inside.size / values.size * np.mean(np.abs(inside - inside.mean()))
    return terms


def width_spread(binning: NumericBinning, values: FloatArray) -> FloatArray:
    """:func:`spread` with each inner bin's MAD replaced by half its width (the bound kept
    state allows); under- and overflow bins keep the MAD of the raw values."""
    terms = spread(binning, values)
    counts = binning.counts(values)
    inner = np.arange(1, binning.edges.size)  # bin i is [edges[i - 1], edges[i])
    terms[inner] = counts[inner] / counts.sum() * np.diff(binning.edges) / 2.0
    return terms


def check_bounds(binning: NumericBinning, reference: FloatArray, window: FloatArray) -> None:
    ks, upper, wasserstein, counts, _ = engine_figures(binning, window)
    p = binning.reference_counts / binning.reference_counts.sum()
    q = counts / counts.sum()

    exact_ks = float(stats.ks_2samp(reference, window).statistic)
    assert ks <= exact_ks + TOLERANCE
    assert exact_ks <= upper + TOLERANCE
    assert ks <= upper + TOLERANCE
    assert upper <= ks + max(p.max(), q.max()) + TOLERANCE

    exact_w = float(stats.wasserstein_distance(reference, window)) / binning.scale
    error = abs(wasserstein - exact_w)
    bound = float(spread(binning, reference).sum() + spread(binning, window).sum())
    assert error <= bound / binning.scale + TOLERANCE
    widths = float(width_spread(binning, reference).sum() + width_spread(binning, window).sum())
    assert bound <= widths + TOLERANCE
    assert error <= widths / binning.scale + TOLERANCE


@pytest.mark.parametrize("bins", [4, 10, 20], ids=lambda b: f"{b}bins")
@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed{s}")
@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_binned_ks_and_wasserstein_are_within_their_bounds(
    case: Case, seed: int, bins: int
) -> None:
    rng = np.random.default_rng(seed)
    reference = case.reference(rng, case.reference_size)
    window = case.window(rng, case.window_size)
    binning = NumericBinning(reference, bins=bins)
    check_bounds(binning, reference, window)
    ks, upper, wasserstein, counts, sums = engine_figures(binning, window)
    assert ks == binning.ks(counts) and upper == binning.ks_upper(counts)
    assert wasserstein == binning.wasserstein(counts, sums)


def test_snapshot_figures_are_within_their_bounds() -> None:
    # The figures a snapshot exports, all cases as the features of one model (features
    # with fewer bins share the matrix through padding), default 10 bins.
    rng = np.random.default_rng(7)
    k = 2_000
    reference = {name: case.reference(rng, 10_000) for name, case in CASES.items()}
    window = {name: case.window(rng, k) for name, case in CASES.items()}
    config = MonitorConfig(
        task="regression",
        features=tuple(FeatureSpec(name, "numeric") for name in CASES),
        min_samples=100,
    )
    assert config.drift_bins == DEFAULT_BINS
    predictions = rng.normal(size=10_000)
    monitor = ModelMonitor(config, ReferenceData(reference, predictions, predictions))
    monitor.observe(PredictionBatch(np.full(k, 10.0), window, rng.normal(size=k)))
    snap = monitor.snapshot(now=10.0)
    for name in CASES:
        binning = NumericBinning(reference[name], bins=DEFAULT_BINS)
        ks, _, wasserstein, _, _ = engine_figures(binning, window[name])
        figures = snap.drift[name]
        assert figures.ks == pytest.approx(ks, rel=1e-12, abs=1e-15)
        assert figures.wasserstein == pytest.approx(wasserstein, rel=1e-12, abs=1e-15)
        check_bounds(binning, reference[name], window[name])


@pytest.mark.parametrize("seed", range(5), ids=lambda s: f"seed{s}")
def test_bounds_are_not_vacuous_on_the_default_bins(seed: int) -> None:
    # An unshifted normal window of 5,000 against a reference of 20,000, default 10 bins.
    # The KS bound is as wide as one reference bin (0.1), nowhere near the 1 a bound of a
    # statistic in [0, 1] could be; the measured gap is far smaller still.
    rng = np.random.default_rng(seed)
    reference = rng.normal(size=20_000)
    window = rng.normal(size=5_000)
    binning = NumericBinning(reference, bins=DEFAULT_BINS)
    assert DEFAULT_BINS == 10 and binning.n_bins == 12
    ks, upper, wasserstein, _, _ = engine_figures(binning, window)
    exact_ks = float(stats.ks_2samp(reference, window).statistic)
    assert upper - ks < 0.11
    assert exact_ks - ks < 0.015
    exact_w = float(stats.wasserstein_distance(reference, window)) / binning.scale
    bound = (spread(binning, reference).sum() + spread(binning, window).sum()) / binning.scale
    assert bound < 0.4
    assert abs(wasserstein - exact_w) < 0.01


def test_the_ks_bound_is_reached() -> None:
    # The upper bound is the best the counts allow: in bin [1, 2) the reference values sit at
    # its bottom and the window's at its top, so the exact KS statistic equals it.
    reference = np.array([0.0, 1.0, 1.0, 2.0, 3.0])
    binning = NumericBinning(reference, bins=4)
    window = np.array([0.0, 1.9, 1.9, 2.0, 3.0])
    ks, upper, _, counts, _ = engine_figures(binning, window)
    assert counts.tolist() == binning.reference_counts.tolist() and ks == 0.0
    exact_ks = float(stats.ks_2samp(reference, window).statistic)
    assert exact_ks == pytest.approx(upper) == pytest.approx(0.4)
