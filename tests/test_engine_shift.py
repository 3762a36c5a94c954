"""Shift-aware calibration: weighted isotonic fits, fall-backs, and the estimate under shift.

Tolerances: the weighted calibration equals scikit-learn's IsotonicRegression with
sample_weight on the same data to 1e-12. Without shift (live rows from the reference's
distribution) the fit falls back to plain CBPE; forced to apply anyway, its estimate stays
within 0.01 of plain CBPE on 5,000 live rows. Under a covariate shift that plain CBPE cannot
follow (the model's score ignores x2, which moves the outcome; the live rows move along x2),
plain CBPE errs by more than 0.05 in accuracy and the shift-aware estimate by less than half
of that (binary and multiclass, 5,000 live rows; the realized accuracy's own standard error
is about 0.007); so it does when only x2's spread changes (plain CBPE errs by more than 0.025
there). Weights that leave the live inputs imbalanced (a category the reference never saw)
make it fall back.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from modelmeter.engine import FeatureSpec, MonitorConfig, ReferenceData
from modelmeter.engine.estimation import Calibrator
from modelmeter.engine.shift import (
    ShiftSettings,
    density_ratio,
    effective_size,
    encode,
    fit_shift_aware,
)

REGIONS = np.array(["a", "b", "c"], dtype=object)
FEATURES = (
    FeatureSpec("x1", "numeric"),
    FeatureSpec("x2", "numeric"),
    FeatureSpec("region", "categorical"),
)


def rows(
    rng: np.random.Generator, n: int, x2_mean: float, k: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Features and true class codes: P(y | x1, x2, region) fixed, x2's mean moves."""
    x1 = rng.normal(size=n)
    x2 = rng.normal(x2_mean, 1.0, n)
    region = REGIONS[rng.choice(3, n, p=[0.5, 0.3, 0.2])]
    effect = np.select([region == "b", region == "c"], [0.5, -0.5], 0.0)
    if k == 2:
        p1 = 1 / (1 + np.exp(-(1.8 * x1 + 1.5 * x2 + effect - 0.2)))
        probabilities = np.column_stack([1 - p1, p1])
    else:
        logits = np.column_stack([1.8 * x1, 1.5 * x2 + effect, -1.8 * x1 - effect])
        probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities /= probabilities.sum(axis=1, keepdims=True)
    y = (rng.random(n)[:, None] > np.cumsum(probabilities, axis=1)).sum(axis=1)
    return {"x1": x1, "x2": x2, "region": region}, np.minimum(y, k - 1)


class Model:
    """A logistic regression on x1 and region only: its score cannot see x2."""

    def __init__(self, rng: np.random.Generator, k: int) -> None:
        features, y = rows(rng, 20_000, 0.0, k)
        self.k = k
        self.model = LogisticRegression(max_iter=1000).fit(self.design(features), y)

    @staticmethod
    def design(f: dict[str, np.ndarray]) -> np.ndarray:
        return np.column_stack([f["x1"], f["region"] == "b", f["region"] == "c"]).astype(float)

    def scores(self, f: dict[str, np.ndarray]) -> np.ndarray:
        p: np.ndarray = self.model.predict_proba(self.design(f))
        return p[:, 1] if self.k == 2 else p


def setup(
    k: int, seed: int = 0, n_reference: int = 20_000
) -> tuple[MonitorConfig, ReferenceData, Model, Calibrator]:
    rng = np.random.default_rng(seed)
    model = Model(rng, k)
    classes = tuple(f"c{j}" for j in range(k))
    config = MonitorConfig(
        task="binary" if k == 2 else "multiclass", classes=classes, features=FEATURES
    )
    features, y = rows(rng, n_reference, 0.0, k)
    scores = model.scores(features)
    names = np.array(classes, dtype=object)
    predicted = (scores >= 0.5).astype(int) if k == 2 else scores.argmax(axis=1)
    reference = ReferenceData(features, names[predicted], names[y], scores)
    plain = Calibrator.fit(scores, names[y], classes, config.positive_class)
    return config, reference, model, plain


def estimated_accuracy(calibrator: Calibrator, scores: np.ndarray) -> float:
    probabilities = calibrator.probabilities(scores)
    predicted = (scores >= 0.5).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)
    return float(probabilities[np.arange(len(predicted)), predicted].mean())


def realized_accuracy(scores: np.ndarray, y: np.ndarray) -> float:
    predicted = (scores >= 0.5).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)
    return float(np.mean(predicted == y))


# ---------------------------------------------------------------------------- calibration


def test_weighted_calibration_equals_sklearn_isotonic_with_sample_weight() -> None:
    rng = np.random.default_rng(3)
    scores = rng.random(3000) ** 2
    labels = np.where(rng.random(3000) < np.sqrt(scores), "pos", "neg").astype(object)
    weights = rng.exponential(size=3000)
    weights[::7] = 0.0  # rows of weight 0 are left out
    calibrator = Calibrator.fit(scores, labels, ("neg", "pos"), "pos", sample_weight=weights)
    model = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip")
    model.fit(scores, labels == "pos", sample_weight=weights)
    probe = np.concatenate([rng.random(500), [-0.5, 0.0, 1.0, 1.5]])
    np.testing.assert_allclose(
        calibrator.probabilities(probe)[:, 1], model.predict(probe), atol=1e-12, rtol=0
    )


def test_weighted_multiclass_calibration_is_renormalised_weighted_one_vs_rest() -> None:
    rng = np.random.default_rng(4)
    classes = ("a", "b", "c")
    scores = rng.dirichlet([1.0, 1.0, 1.0], size=4000)
    labels = np.array(classes, dtype=object)[
        (rng.random(4000)[:, None] > np.cumsum(scores, axis=1)).sum(axis=1)
    ]
    weights = rng.gamma(2.0, size=4000)
    calibrator = Calibrator.fit(scores, labels, classes, None, sample_weight=weights)
    probe = rng.dirichlet([1.0, 1.0, 1.0], size=300)
    curves = np.column_stack(
        [
            IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip")
            .fit(scores[:, j], labels == c, sample_weight=weights)
            .predict(probe[:, j])
            for j, c in enumerate(classes)
        ]
    )
    curves /= curves.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(calibrator.probabilities(probe), curves, atol=1e-12, rtol=0)


def test_sample_weight_is_checked_and_ones_change_nothing() -> None:
    rng = np.random.default_rng(5)
    scores = rng.random(500)
    labels = np.where(rng.random(500) < scores, "1", "0").astype(object)
    plain = Calibrator.fit(scores, labels, ("0", "1"), "1")
    ones = Calibrator.fit(scores, labels, ("0", "1"), "1", sample_weight=np.ones(500))
    np.testing.assert_array_equal(plain.probabilities(scores), ones.probabilities(scores))
    with pytest.raises(ValueError, match="shape"):
        Calibrator.fit(scores, labels, ("0", "1"), "1", sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="finite and >= 0"):
        Calibrator.fit(scores, labels, ("0", "1"), "1", sample_weight=-np.ones(500))
    with pytest.raises(ValueError, match="weight > 0"):
        Calibrator.fit(scores, labels, ("0", "1"), "1", sample_weight=np.zeros(500))


# ---------------------------------------------------------------------------- the fit


def test_no_shift_falls_back_and_a_forced_fit_stays_at_plain_cbpe() -> None:
    config, reference, model, plain = setup(2)
    live, _ = rows(np.random.default_rng(11), 5_000, 0.0, 2)
    fit = fit_shift_aware(config, reference, live, seed=1)
    assert fit.calibrator is None and not fit.applied
    assert fit.reason is not None and fit.reason.startswith("no shift to correct")
    assert 0.45 < fit.auc < 0.55
    forced = fit_shift_aware(config, reference, live, seed=1, settings=ShiftSettings(min_auc=0.0))
    assert forced.calibrator is not None
    assert forced.effective_size > 0.8 * reference.labels.shape[0]
    scores = model.scores(live)
    assert (
        abs(estimated_accuracy(forced.calibrator, scores) - estimated_accuracy(plain, scores))
        < 0.01
    )


@pytest.mark.parametrize("k", [2, 3])
def test_shift_aware_estimate_follows_a_shift_plain_cbpe_cannot(k: int) -> None:
    config, reference, model, plain = setup(k)
    live, y = rows(np.random.default_rng(12), 5_000, 1.5, k)
    scores = model.scores(live)
    realized = realized_accuracy(scores, y)
    fit = fit_shift_aware(config, reference, live, seed=2)
    assert fit.calibrator is not None, fit.reason
    assert fit.auc > 0.8 and fit.effective_size >= 200
    plain_error = abs(estimated_accuracy(plain, scores) - realized)
    shift_error = abs(estimated_accuracy(fit.calibrator, scores) - realized)
    assert plain_error > 0.05, (plain_error, shift_error)
    assert shift_error < plain_error / 2, (plain_error, shift_error)
    weights = fit.weights
    assert weights is not None and weights.shape == (20_000,)
    assert fit.clip == pytest.approx(math.sqrt(20_000))  # the default: sqrt(n)
    assert weights.mean() == pytest.approx(1.0) and weights.max() <= fit.clip + 1e-9
    assert fit.effective_size == pytest.approx(effective_size(weights))


def test_a_change_of_spread_alone_is_seen_and_followed() -> None:
    # x2 keeps its mean, its standard deviation drops to 0.4: a linear classifier on the raw
    # features cannot tell the samples apart; the squared terms of the design can.
    config, reference, model, plain = setup(2)
    rng = np.random.default_rng(18)
    live, _ = rows(rng, 5_000, 0.0, 2)
    live["x2"] = 0.4 * live["x2"]
    effect = np.select([live["region"] == "b", live["region"] == "c"], [0.5, -0.5], 0.0)
    logit = 1.8 * live["x1"] + 1.5 * live["x2"] + effect - 0.2
    y = (rng.random(5_000) < 1 / (1 + np.exp(-logit))).astype(int)
    scores = model.scores(live)
    realized = realized_accuracy(scores, y)
    fit = fit_shift_aware(config, reference, live, seed=3)
    assert fit.calibrator is not None and fit.auc > 0.7, fit
    plain_error = abs(estimated_accuracy(plain, scores) - realized)
    shift_error = abs(estimated_accuracy(fit.calibrator, scores) - realized)
    assert plain_error > 0.025 and shift_error < plain_error / 2, (plain_error, shift_error)


def test_fit_is_deterministic_given_the_seed() -> None:
    config, reference, _, _ = setup(2)
    live, _ = rows(np.random.default_rng(13), 3_000, 1.0, 2)
    first = fit_shift_aware(config, reference, live, seed=7)
    again = fit_shift_aware(config, reference, live, seed=7)
    other = fit_shift_aware(config, reference, live, seed=8)
    assert first.weights is not None and again.weights is not None and other.weights is not None
    np.testing.assert_array_equal(first.weights, again.weights)
    assert first.auc == again.auc
    assert not np.array_equal(first.weights, other.weights)  # other folds, other samples
    boosted = fit_shift_aware(config, reference, live, 7, ShiftSettings(method="boosting"))
    assert boosted.calibrator is not None and boosted.auc > 0.7


def test_falls_back_with_too_few_live_rows_or_too_few_effective_rows() -> None:
    config, reference, _, _ = setup(2)
    few, _ = rows(np.random.default_rng(14), 499, 1.0, 2)
    fit = fit_shift_aware(config, reference, few)
    assert fit.calibrator is None and fit.reason == "too few live rows: 499 < 500"
    assert math.isnan(fit.auc)
    # Far outside a small reference: the weights rest on a few rows (at least sqrt(n) = 45).
    config, small, _, _ = setup(2, n_reference=2_000)
    far, _ = rows(np.random.default_rng(15), 2_000, 4.0, 2)
    fit = fit_shift_aware(config, small, far)
    assert fit.calibrator is None and fit.auc > 0.99
    assert fit.reason is not None and fit.reason.startswith("too few effective reference rows")
    assert 45 <= fit.effective_size < 200


def test_falls_back_when_the_weights_cannot_balance_the_inputs() -> None:
    # A third of the live rows have a region the reference never saw: no weighting of the
    # reference rows can make its share match.
    config, reference, model, _ = setup(2)
    live, _ = rows(np.random.default_rng(19), 3_000, 0.0, 2)
    live["region"] = live["region"].copy()
    live["region"][::3] = "d"
    fit = fit_shift_aware(config, reference, live, seed=4, live_scores=model.scores(live))
    assert fit.calibrator is None and fit.auc > 0.6
    assert fit.reason is not None and "imbalanced" in fit.reason and "region" in fit.reason
    assert fit.imbalance > 0.5
    # balanced after weighting (the shift of the tests above): small differences remain
    moved, _ = rows(np.random.default_rng(20), 3_000, 1.0, 2)
    fit = fit_shift_aware(config, reference, moved, seed=4, live_scores=model.scores(moved))
    assert fit.calibrator is not None and fit.imbalance < 0.1
    with pytest.raises(ValueError, match="live scores have shape"):
        fit_shift_aware(config, reference, moved, live_scores=np.zeros((3_000, 2)))


def test_inputs_are_checked_and_categories_encoded_as_the_drift_bins() -> None:
    config, reference, _, _ = setup(2)
    live, _ = rows(np.random.default_rng(16), 600, 0.0, 2)
    with pytest.raises(ValueError, match=r"live features lack \['x2'\]"):
        fit_shift_aware(config, reference, {k: v for k, v in live.items() if k != "x2"})
    with pytest.raises(ValueError, match="reference scores"):
        no_scores = ReferenceData(reference.features, reference.predictions, reference.labels)
        fit_shift_aware(config, no_scores, live)
    regression = MonitorConfig(task="regression", features=FEATURES)
    with pytest.raises(ValueError, match="classification"):
        fit_shift_aware(regression, reference, live)
    with pytest.raises(ValueError, match="min_auc"):
        ShiftSettings(min_auc=1.0)
    encoding = encode(
        config,
        {"x1": np.array([1.0, np.nan]), "x2": np.zeros(2), "region": np.array(["b", "a"], object)},
        {"x1": np.array([2.0]), "x2": np.zeros(1), "region": np.array([None], dtype=object)},
    )
    assert encoding.reference[:, 2].tolist() == [1.0, 0.0]
    assert math.isnan(encoding.reference[1, 0]) and math.isnan(encoding.live[0, 2])
    assert encoding.categorical.tolist() == [False, False, True]


def test_density_ratio_is_clipped_and_normalised() -> None:
    rng = np.random.default_rng(17)
    q = rng.beta(0.3, 0.3, 5_000)
    weights = density_ratio(q, 5_000, 2_500, clip=20.0)
    assert weights.mean() == pytest.approx(1.0)
    assert weights.max() == pytest.approx(20.0)
    order = np.argsort(q, kind="stable")
    assert np.all(np.diff(weights[order]) >= -1e-12)  # monotone in q
    unclipped = density_ratio(np.full(10, 0.25), 10, 10, clip=20.0)
    np.testing.assert_allclose(unclipped, 1.0)
    assert effective_size(np.ones(50)) == pytest.approx(50.0)
