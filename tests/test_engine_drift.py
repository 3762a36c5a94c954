"""Drift statistics against independent references (scipy.stats, scipy.spatial, numpy).

Tolerances: PSI, Jensen-Shannon and chi-square p-values equal the direct formulas to 1e-12.
KS and Wasserstein are computed from bins, so they are checked against scipy on the raw
values within the bounds documented in modelmeter.engine.drift:
``ks_binned <= ks_exact <= ks_binned + max bin mass`` and
``|w_binned - w_exact| <= sum_i p_i MAD_i(reference) + q_i MAD_i(window)`` (normalised; MAD_i
is the mean absolute deviation from the mean inside bin i, computed here from the raw values).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from modelmeter.engine import (
    PSI_EPSILON,
    FeatureSpec,
    ModelMonitor,
    MonitorConfig,
    PredictionBatch,
    ReferenceData,
)
from modelmeter.engine.drift import (
    CategoricalBinning,
    NumericBinning,
    benjamini_hochberg,
    chi2_pvalue,
    jensen_shannon,
    psi,
)

SHIFTS = [(0.0, 1.0), (0.3, 1.0), (1.0, 1.5), (-2.0, 0.5), (4.0, 1.0)]


def psi_direct(ref: np.ndarray, cur: np.ndarray) -> float:
    p = np.clip(ref / ref.sum(), PSI_EPSILON, None)
    q = np.clip(cur / cur.sum(), PSI_EPSILON, None)
    return float(np.sum((q - p) * np.log(q / p)))


@pytest.mark.parametrize(("loc", "scale"), SHIFTS)
def test_psi_js_chi2_equal_the_direct_formulas(loc: float, scale: float) -> None:
    rng = np.random.default_rng(1)
    binning = NumericBinning(rng.normal(size=20_000), bins=10)
    counts = binning.counts(rng.normal(loc, scale, 3000))
    ref = binning.reference_counts
    assert abs(psi(ref, counts) - psi_direct(ref, counts)) <= 1e-12
    scipy_js = float(jensenshannon(ref / ref.sum(), counts / counts.sum(), base=2))
    assert abs(jensen_shannon(ref, counts) - scipy_js) <= 1e-12
    filled = (ref + counts) > 0
    table = np.vstack([ref[filled], counts[filled]])
    scipy_p = stats.chi2_contingency(table, correction=False).pvalue
    assert abs(chi2_pvalue(ref, counts) - scipy_p) <= 1e-12


@pytest.mark.parametrize("seed", range(3))
def test_chi2_false_alarm_rate_is_nominal_even_for_windows_as_large_as_the_reference(
    seed: int,
) -> None:
    # Over references and windows drawn from one distribution, p < 0.05 about 5 % of the
    # time (a goodness-of-fit test against the reference proportions would ignore the
    # reference's noise and alarm far more often). 300 trials: 3 sigma is about 0.04.
    rng = np.random.default_rng(seed)
    pvalues = []
    for _ in range(300):
        binning = NumericBinning(rng.normal(size=5_000), bins=10)
        pvalues.append(
            chi2_pvalue(binning.reference_counts, binning.counts(rng.normal(size=5_000)))
        )
    assert 0.01 <= float(np.mean(np.array(pvalues) < 0.05)) <= 0.09


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("loc", "scale"), SHIFTS)
@pytest.mark.parametrize("bins", [10, 20])
def test_binned_ks_and_wasserstein_are_within_their_bounds(
    seed: int, loc: float, scale: float, bins: int
) -> None:
    rng = np.random.default_rng(seed)
    reference = rng.gamma(2.0, 1.0, 5000)
    current = rng.gamma(2.0, 1.0, 4000) * scale + loc
    binning = NumericBinning(reference, bins=bins)
    counts = binning.counts(current)
    ref_p = binning.reference_counts / binning.reference_counts.sum()
    cur_q = counts / counts.sum()

    exact_ks = stats.ks_2samp(reference, current).statistic
    binned_ks = binning.ks(counts)
    assert binned_ks <= exact_ks + 1e-12
    assert exact_ks <= binned_ks + max(ref_p.max(), cur_q.max()) + 1e-12

    binned_w = binning.wasserstein(counts, binning.sums(current))
    exact_w = stats.wasserstein_distance(reference, current) / binning.scale
    bound = (spread(binning, reference) + spread(binning, current)) / binning.scale
    assert abs(binned_w - exact_w) <= bound + 1e-12
    # The distance to scipy's own weighted Wasserstein of the bin means is exact.
    ref_means = binning.reference_sums / np.maximum(binning.reference_counts, 1)
    cur_means = binning.sums(current) / np.maximum(counts, 1)
    weighted = (
        stats.wasserstein_distance(ref_means, cur_means, binning.reference_counts, counts)
        / binning.scale
    )
    assert abs(binned_w - weighted) <= 1e-12


def spread(binning: NumericBinning, values: np.ndarray) -> float:
    """sum_i mass_i * mean |x - mean_i| over the bins: the cost of moving each bin to its mean."""
    index = binning.index(values)
    total = 0.0
    for i in np.unique(index):
        inside = values[index == i]
        total += inside.size / values.size * np.mean(np.abs(inside - inside.mean()))
    return total


def test_binned_wasserstein_is_close_for_a_pure_shift() -> None:
    # The bound is loose; in practice the binned figure is close to the exact one.
    rng = np.random.default_rng(4)
    reference = rng.normal(size=50_000)
    current = rng.normal(0.5, 1.0, 50_000)
    binning = NumericBinning(reference, bins=20)
    counts = binning.counts(current)
    exact = stats.wasserstein_distance(reference, current) / binning.scale
    assert binning.wasserstein(counts, binning.sums(current)) == pytest.approx(exact, rel=0.02)


def test_benjamini_hochberg_matches_scipy() -> None:
    rng = np.random.default_rng(9)
    for _ in range(50):
        pvalues = np.concatenate([rng.random(20), rng.random(5) * 0.01])
        rng.shuffle(pvalues)
        adjusted = stats.false_discovery_control(pvalues, method="bh")
        assert benjamini_hochberg(pvalues.tolist(), 0.05) == (adjusted <= 0.05).tolist()


def test_categorical_binning_uses_vocabulary_plus_other() -> None:
    reference = np.array(["a", "b", "b", None, "c"], dtype=object)
    binning = CategoricalBinning.fit(reference)
    assert binning.vocabulary == ("a", "b", "c")
    assert binning.reference_counts.tolist() == [1.0, 2.0, 1.0, 0.0]
    spec_vocab = CategoricalBinning.fit(reference, categories=("b", "a"))
    assert spec_vocab.reference_counts.tolist() == [2.0, 1.0, 1.0]  # "c" is other
    codes = binning.index(np.array(["c", "zz", None, ["unhashable"]], dtype=object))
    assert codes.tolist() == [2, 3, 4, 3]


def make_monitor(
    min_samples: int = 100, bins: int = 10
) -> tuple[ModelMonitor, dict[str, np.ndarray]]:
    rng = np.random.default_rng(21)
    n = 5000
    features = {
        "x": rng.normal(size=n),
        "y": rng.exponential(size=n),
        "color": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]).astype(object),
    }
    config = MonitorConfig(
        task="regression",
        features=(
            FeatureSpec("x", "numeric"),
            FeatureSpec("y", "numeric", low=0.0),
            FeatureSpec("color", "categorical"),
        ),
        min_samples=min_samples,
        drift_bins=bins,
    )
    predictions = features["x"] * 2 + rng.normal(size=n)
    reference = ReferenceData(features, predictions, predictions + rng.normal(size=n))
    return ModelMonitor(config, reference), features


def batch(rng: np.random.Generator, n: int, t: float, shift: float = 0.0) -> PredictionBatch:
    x = rng.normal(shift, 1.0, n)
    purple = min(shift, 1.0) / 10
    color = rng.choice(["red", "green", "blue", "purple"], n, p=[0.5, 0.3, 0.2 - purple, purple])
    return PredictionBatch(
        timestamps=np.full(n, t),
        features={"x": x, "y": rng.exponential(size=n), "color": color.astype(object)},
        predictions=x * 2 + rng.normal(size=n),
    )


def test_monitor_drift_equals_statistics_of_the_window_values() -> None:
    monitor, reference = make_monitor()
    rng = np.random.default_rng(5)
    events = batch(rng, 3000, 100.0, shift=1.0)
    monitor.observe(events)
    snap = monitor.snapshot(now=100.0)
    binning = NumericBinning(reference["x"], bins=10)
    x = events.features["x"]
    counts = binning.counts(x)
    figures = snap.drift["x"]
    assert figures.samples == 3000
    assert figures.psi == pytest.approx(binning.psi(counts), abs=1e-12)
    assert figures.jensen_shannon == pytest.approx(
        jensen_shannon(binning.reference_counts, counts), abs=1e-12
    )
    assert figures.ks == pytest.approx(binning.ks(counts), abs=1e-12)
    assert figures.wasserstein == pytest.approx(
        binning.wasserstein(counts, binning.sums(x)), abs=1e-12
    )
    assert figures.chi2_pvalue == pytest.approx(
        chi2_pvalue(binning.reference_counts, counts), abs=1e-12
    )
    assert figures.drifted and snap.drift_detected
    color = snap.drift["color"]
    assert math.isnan(color.ks) and math.isnan(color.wasserstein)
    cat = CategoricalBinning.fit(reference["color"])
    cat_counts = np.bincount(cat.index(events.features["color"]), minlength=cat.n_bins + 1)[:-1]
    assert color.psi == pytest.approx(cat.psi(cat_counts.astype(float)), abs=1e-12)
    assert color.drifted  # "purple" is unseen: 10 % of the window in "other"
    assert snap.quality_window["color"]["unseen_category"] == int(
        np.sum(events.features["color"] == "purple")
    )
    assert snap.prediction_drift.samples == 3000 and snap.prediction_drift.drifted


def test_no_drift_is_not_flagged() -> None:
    monitor, _ = make_monitor()
    rng = np.random.default_rng(6)
    monitor.observe(batch(rng, 3000, 100.0))
    snap = monitor.snapshot(now=100.0)
    assert not snap.drift_detected
    assert all(not f.drifted for f in snap.drift.values())
    assert snap.drift["x"].psi < 0.02


def test_below_min_samples_drift_is_nan_and_not_flagged() -> None:
    monitor, _ = make_monitor(min_samples=500)
    rng = np.random.default_rng(7)
    monitor.observe(batch(rng, 499, 100.0, shift=3.0))
    snap = monitor.snapshot(now=100.0)
    for figures in [*snap.drift.values(), snap.prediction_drift]:
        assert figures.samples == 499
        assert all(
            math.isnan(v) for v in (figures.psi, figures.jensen_shannon, figures.chi2_pvalue)
        )
        assert not figures.drifted
    assert not snap.drift_detected


def test_missing_and_infinite_values_are_not_binned() -> None:
    monitor, _ = make_monitor(min_samples=1)
    rng = np.random.default_rng(8)
    events = batch(rng, 200, 100.0)
    x = events.features["x"].copy()
    x[:10] = np.nan
    x[10:15] = np.inf
    x[15:17] = -np.inf
    features = dict(events.features)
    features["x"] = x
    monitor.observe(PredictionBatch(events.timestamps, features, events.predictions))
    snap = monitor.snapshot(now=100.0)
    assert snap.drift["x"].samples == 183
    assert math.isfinite(snap.drift["x"].wasserstein)
    assert snap.quality_window["x"] == {
        "missing": 10,
        "out_of_range": 7,
        "unseen_category": 0,
        "wrong_type": 0,
    }
