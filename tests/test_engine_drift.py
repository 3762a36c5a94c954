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
    chi2_pvalue_rows,
    jensen_shannon,
    jensen_shannon_rows,
    ks_rows,
    pool_sparse_bins,
    psi,
    psi_rows,
    wasserstein_rows,
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


def random_rows(
    rng: np.random.Generator, rows: int = 60, bins: int = 9
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(reference counts, reference sums, window counts, window sums) with awkward rows.

    Sums put each bin's values at a random mean inside ``[bin, bin + 1)`` (per row and side),
    so bin means are ordered as in real binnings and sometimes tie across the two sides.
    """
    reference = rng.integers(0, 60, (rows, bins)).astype(float)
    current = rng.integers(0, 60, (rows, bins)).astype(float)
    current[rng.random((rows, bins)) < 0.15] = 0.0  # bins empty in the window only
    for i in range(0, rows, 3):  # bins empty on both sides (as many as all but one)
        empty = rng.choice(bins, size=int(rng.integers(1, bins)), replace=False)
        reference[i, empty] = current[i, empty] = 0.0
    current[[1, 8]] = 0.0  # windows without counts
    current[[4, 10, 22]] = rng.integers(0, 2, (3, bins))  # a handful of events (< min_samples)
    reference[5] = 0.0  # a reference without counts
    reference[14] = current[14] = 0.0  # nothing on either side
    reference[16], current[16] = 0.0, 0.0  # a single bin left
    reference[16, 3], current[16, 3] = 9.0, 5.0
    current[19] = reference[19]  # the window is the reference
    current[20] = reference[20] * 3
    current[25] = 0.0
    current[25, -1] = 7.0  # everything in the last bin (overflow)
    positions = np.arange(bins) + rng.random((2, rows, bins))
    positions[1, 19] = positions[0, 19]  # the same bin means on both sides: ties
    return reference, reference * positions[0], current, current * positions[1]


def binning_for(reference_counts: np.ndarray, reference_sums: np.ndarray) -> NumericBinning:
    """A NumericBinning whose reference is the given bin counts and sums (its KS and
    Wasserstein methods only use those, and the scale)."""
    size = reference_counts.size
    binning = NumericBinning(np.arange(size - 1.0), bins=size - 2)
    assert binning.n_bins == size
    binning.reference_counts, binning.reference_sums = reference_counts, reference_sums
    binning.scale = 0.5 + size / 10
    return binning


@pytest.mark.parametrize("seed", range(4))
def test_row_statistics_equal_the_scalar_ones_on_every_row(seed: int) -> None:
    rng = np.random.default_rng(seed)
    reference, reference_sums, current, current_sums = random_rows(rng)
    binnings = [binning_for(r, s) for r, s in zip(reference, reference_sums, strict=True)]
    scales = np.array([b.scale for b in binnings])
    expected = {
        "psi": [psi(r, c) for r, c in zip(reference, current, strict=True)],
        "js": [jensen_shannon(r, c) for r, c in zip(reference, current, strict=True)],
        "chi2": [chi2_pvalue(r, c) for r, c in zip(reference, current, strict=True)],
        "ks": [b.ks(c) for b, c in zip(binnings, current, strict=True)],
        "w": [
            # A binning always has reference counts; without them the row figure is NaN.
            b.wasserstein(c, s) if b.reference_counts.sum() > 0 else math.nan
            for b, c, s in zip(binnings, current, current_sums, strict=True)
        ],
    }
    # Padded with bins empty on both sides (features with fewer bins share a matrix that
    # way): the same figures.
    unpadded = (reference, reference_sums, current, current_sums)
    padded = tuple(np.pad(a, ((0, 0), (0, 4))) for a in unpadded)
    for ref, ref_sums, cur, cur_sums in (unpadded, padded):
        rows = {
            "psi": psi_rows(ref, cur),
            "js": jensen_shannon_rows(ref, cur),
            "chi2": chi2_pvalue_rows(ref, cur),
            "ks": ks_rows(ref, cur),
            "w": wasserstein_rows(ref, ref_sums, cur, cur_sums, scales),
        }
        for name, values in rows.items():
            assert values.shape == (reference.shape[0],)
            np.testing.assert_allclose(
                values, expected[name], rtol=1e-12, atol=0, equal_nan=True, err_msg=name
            )
    # The awkward rows give what the scalar rules say.
    assert math.isnan(expected["psi"][1]) and math.isnan(expected["chi2"][5])
    assert expected["chi2"][16] == 1.0 and expected["ks"][19] == 0.0 == expected["w"][19]
    assert expected["js"][14] == 0.0 and math.isnan(expected["chi2"][14])


def test_row_statistics_refuse_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="same shape"):
        psi_rows(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="same shape"):
        chi2_pvalue_rows(np.ones(3), np.ones(3))


def test_monitor_numeric_drift_equals_the_scalar_statistics_per_feature() -> None:
    # Features with different numbers of bins (ties merge quantile edges; a constant has one
    # bin), one below min_samples in the window and one without any finite value there.
    rng = np.random.default_rng(12)
    n = 4000
    reference = {
        "normal": rng.normal(size=n),
        "ties": rng.integers(0, 4, n).astype(float),
        "constant": np.full(n, 2.0),
        "sparse": rng.exponential(size=n),
        "empty": rng.normal(size=n),
    }
    names = tuple(reference)
    config = MonitorConfig(
        task="regression",
        features=tuple(FeatureSpec(name, "numeric") for name in names),
        min_samples=200,
        drift_bins=8,
    )
    predictions = reference["normal"] + rng.normal(size=n)
    monitor = ModelMonitor(config, ReferenceData(reference, predictions, predictions))
    k = 1500
    window = {
        "normal": rng.normal(0.4, 1.2, k),
        "ties": rng.integers(-1, 6, k).astype(float),
        "constant": np.where(rng.random(k) < 0.7, 2.0, 3.0),
        "sparse": np.where(rng.random(k) < 0.9, np.nan, rng.exponential(size=k)),
        "empty": np.full(k, np.nan),
    }
    monitor.observe(PredictionBatch(np.full(k, 10.0), window, window["normal"]))
    snap = monitor.snapshot(now=10.0)
    binnings = {name: NumericBinning(values, bins=8) for name, values in reference.items()}
    assert len({b.n_bins for b in binnings.values()}) == 3
    for name in names:
        binning, values = binnings[name], window[name]
        counts = binning.counts(values)
        figures = snap.drift[name]
        assert figures.samples == int(counts.sum())
        if figures.samples < config.min_samples:
            assert name in ("sparse", "empty")
            assert all(
                math.isnan(v)
                for v in (
                    figures.psi,
                    figures.jensen_shannon,
                    figures.ks,
                    figures.wasserstein,
                    figures.chi2_pvalue,
                )
            )
            assert not figures.drifted
            continue
        ref = binning.reference_counts
        assert figures.psi == pytest.approx(psi(ref, counts), rel=1e-12, abs=0)
        assert figures.jensen_shannon == pytest.approx(jensen_shannon(ref, counts), rel=1e-12)
        assert figures.ks == pytest.approx(binning.ks(counts), rel=1e-12, abs=0)
        assert figures.wasserstein == pytest.approx(
            binning.wasserstein(counts, binning.sums(values)), rel=1e-12, abs=0
        )
        assert figures.chi2_pvalue == pytest.approx(chi2_pvalue(ref, counts), rel=1e-12, abs=0)
    assert snap.drift["ties"].drifted and snap.drift["normal"].drifted


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


def test_monitor_categorical_drift_equals_the_scalar_statistics_per_feature() -> None:
    # Vocabularies of different sizes (the block pads them), one feature below min_samples.
    rng = np.random.default_rng(13)
    n, k = 3000, 1200
    vocabularies = {"two": ["a", "b"], "five": list("abcde"), "sparse": ["x", "y", "z"]}
    reference = {name: rng.choice(vocab, n).astype(object) for name, vocab in vocabularies.items()}
    window = {
        "two": rng.choice(["a", "b", "new"], k, p=[0.2, 0.7, 0.1]).astype(object),
        "five": rng.choice(list("abcde"), k).astype(object),
        "sparse": np.where(rng.random(k) < 0.95, None, "x").astype(object),
    }
    config = MonitorConfig(
        task="regression",
        features=tuple(FeatureSpec(name, "categorical") for name in vocabularies),
        min_samples=200,
    )
    predictions = rng.normal(size=n)
    monitor = ModelMonitor(config, ReferenceData(reference, predictions, predictions))
    monitor.observe(PredictionBatch(np.full(k, 10.0), window, rng.normal(size=k)))
    snap = monitor.snapshot(now=10.0)
    for name, values in window.items():
        binning = CategoricalBinning.fit(reference[name])
        codes = binning.index(values)
        counts = np.bincount(codes[codes < binning.n_bins], minlength=binning.n_bins).astype(
            np.float64
        )
        figures = snap.drift[name]
        assert figures.samples == int(counts.sum())
        assert math.isnan(figures.ks) and math.isnan(figures.wasserstein)
        if figures.samples < config.min_samples:
            assert name == "sparse" and math.isnan(figures.psi) and not figures.drifted
            continue
        ref = binning.reference_counts
        assert figures.psi == pytest.approx(psi(ref, counts), rel=1e-12)
        assert figures.jensen_shannon == pytest.approx(jensen_shannon(ref, counts), rel=1e-12)
        assert figures.chi2_pvalue == pytest.approx(chi2_pvalue(ref, counts), rel=1e-12)


def test_chi2_pools_sparse_bins_so_false_alarms_stay_nominal() -> None:
    """A window of 2,000 against a reference of 20,000: the reference has no mass beyond its
    own range, so one window value out there made the unpooled test alarm in about 15 % of
    same-distribution windows instead of 5 %. Pooled as Cochran's rule asks, it is nominal;
    the statistic is scipy's on the pooled table."""
    reference = np.array([0.0, 500.0, 480.0, 50.0, 0.0])
    current = np.array([3.0, 60.0, 40.0, 3.0, 0.0])
    pooled_ref, pooled_cur = pool_sparse_bins(reference[None, :], current[None, :])
    table = np.vstack([pooled_ref[0], pooled_cur[0]])
    table = table[:, table.sum(axis=0) > 0]
    assert table.shape == (2, 3)  # the two tails and the small bin pooled into one
    scipy_p = stats.chi2_contingency(table, correction=False).pvalue
    assert chi2_pvalue(reference, current) == pytest.approx(scipy_p, rel=1e-12)
    rng = np.random.default_rng(7)
    pooled, unpooled = [], []
    for _ in range(300):
        binning = NumericBinning(rng.normal(size=20_000), bins=10)
        counts = binning.counts(rng.normal(size=2_000))
        pooled.append(chi2_pvalue(binning.reference_counts, counts))
        full = np.vstack([binning.reference_counts, counts])
        full = full[:, full.sum(axis=0) > 0]
        unpooled.append(stats.chi2_contingency(full, correction=False).pvalue)
    assert 0.01 <= float(np.mean(np.array(pooled) < 0.05)) <= 0.09
    assert float(np.mean(np.array(unpooled) < 0.05)) > float(np.mean(np.array(pooled) < 0.05))
