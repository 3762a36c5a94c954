"""Confidence bands of estimated performance: the statistic, its exact parts, its coverage.

Coverage: windows of rows with perfectly calibrated probabilities (the actual class of each
row is drawn from its probabilities); the band of the estimate at z = 1.96 must hold the
realized figure in 93-97 % of 2,000 seeded windows (the binomial standard error of a 95 %
coverage over 2,000 windows is 0.5 %). That is asserted for accuracy, precision, recall and
F1: binary (the positive class), multiclass macro averages, and multiclass per class. The
macro recall and macro F1 bands drop the covariances of two off-diagonal cells, which makes
them slightly wide by construction (their standard deviation is checked to lie within 0-12 %
above the Monte Carlo one, all others within 5 %).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelmeter.engine.bands import (
    band_terms,
    band_weights,
    classification_bands,
    expected_counts,
)
from modelmeter.engine.performance import classification_figures

WINDOWS = 2_000
FIGURES = ("accuracy", "precision", "recall", "f1")


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def binary_window(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    p = 1.0 / (1.0 + np.exp(-(2.0 * rng.normal(size=n) - 0.7)))
    probabilities = np.column_stack([1.0 - p, p])
    predicted = (p >= 0.4).astype(np.int64)  # not the argmax: any decision rule will do
    return probabilities, predicted


def multiclass_window(rng: np.random.Generator, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    probabilities = softmax(1.5 * rng.normal(size=(n, k)) + np.linspace(0.0, 1.0, k))
    return probabilities, probabilities.argmax(axis=1).astype(np.int64)


def draw_actual(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    cumulative = np.cumsum(probabilities, axis=1)
    cumulative[:, -1] = 1.0
    return (rng.random(probabilities.shape[0])[:, None] > cumulative).sum(axis=1)


def realized_counts(predicted: np.ndarray, actual: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(predicted * k + actual, minlength=k * k).reshape(k, k).astype(float)


def test_band_terms_are_sums_of_row_variances_and_add_up_over_batches() -> None:
    rng = np.random.default_rng(1)
    probabilities, predicted = multiclass_window(rng, 300, 4)
    terms = band_terms(probabilities, predicted, 4)
    for p in range(4):
        rows = probabilities[predicted == p]
        np.testing.assert_allclose(terms[0, p], (rows * (1 - rows)).sum(axis=0), atol=1e-12)
        np.testing.assert_allclose(terms[1, p], (rows * rows[:, [p]]).sum(axis=0), atol=1e-12)
    halves = band_terms(probabilities[:100], predicted[:100], 4) + band_terms(
        probabilities[100:], predicted[100:], 4
    )
    np.testing.assert_allclose(halves, terms, atol=1e-12)
    variance, covariance = band_weights(probabilities, predicted)
    assert variance.shape == covariance.shape == (300, 4)
    # rows without a prediction (code < 0) are left out, as in the expected counts
    with_missing = np.concatenate([predicted[:-1], [-1]])
    np.testing.assert_allclose(
        band_terms(probabilities, with_missing, 4),
        band_terms(probabilities[:-1], predicted[:-1], 4),
        atol=1e-12,
    )
    np.testing.assert_allclose(
        expected_counts(probabilities, with_missing, 4).sum(), 299.0, atol=1e-9
    )


def test_estimate_is_the_expected_matrix_figures_and_accuracy_variance_is_exact() -> None:
    rng = np.random.default_rng(2)
    probabilities, predicted = binary_window(rng, 400)
    expected = expected_counts(probabilities, predicted, 2)
    bands = classification_bands(
        expected, band_terms(probabilities, predicted, 2), ("n", "p"), 1, min_samples=1
    )
    assert bands.estimate == classification_figures(expected, ("n", "p"), 1, 1)
    correct = probabilities[np.arange(400), predicted]
    assert bands.sd.accuracy == pytest.approx(
        math.sqrt(float((correct * (1 - correct)).sum())) / 400, rel=1e-12
    )
    positive = predicted == 1
    p = probabilities[positive, 1]
    assert bands.sd.precision == pytest.approx(
        math.sqrt(float((p * (1 - p)).sum())) / positive.sum(), rel=1e-12
    )
    assert bands.lower.accuracy == pytest.approx(bands.estimate.accuracy - 1.96 * bands.sd.accuracy)
    assert bands.upper.f1 == pytest.approx(bands.estimate.f1 + 1.96 * bands.sd.f1)


def coverage(
    make: object, k: int, positive: int | None, seed: int
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Share of windows whose realized figures lie in the band; and the mean band sd and the
    realized figures' spread (around the estimate) per figure, of one fixed window."""
    rng = np.random.default_rng(seed)
    classes = tuple(f"c{j}" for j in range(k))
    inside = {f: 0 for f in FIGURES}
    inside.update({f"{c}:{f}": 0 for c in classes for f in FIGURES[1:]})
    for _ in range(WINDOWS):
        probabilities, predicted = make(rng)  # type: ignore[operator]
        bands = classification_bands(
            expected_counts(probabilities, predicted, k),
            band_terms(probabilities, predicted, k),
            classes,
            positive,
            min_samples=1,
        )
        realized = classification_figures(
            realized_counts(predicted, draw_actual(rng, probabilities), k), classes, positive, 1
        )
        for f in FIGURES:
            inside[f] += getattr(bands.lower, f) <= getattr(realized, f) <= getattr(bands.upper, f)
        for c in classes:
            for f in FIGURES[1:]:
                value = getattr(realized.per_class[c], f)
                low, high = (
                    getattr(bands.lower.per_class[c], f),
                    getattr(bands.upper.per_class[c], f),
                )
                inside[f"{c}:{f}"] += low <= value <= high
    shares = {key: value / WINDOWS for key, value in inside.items()}
    # one fixed window: the band's sd against the Monte Carlo spread of the realized figures
    probabilities, predicted = make(np.random.default_rng(seed + 1))  # type: ignore[operator]
    bands = classification_bands(
        expected_counts(probabilities, predicted, k),
        band_terms(probabilities, predicted, k),
        classes,
        positive,
        min_samples=1,
    )
    draws = [
        classification_figures(
            realized_counts(predicted, draw_actual(rng, probabilities), k), classes, positive, 1
        )
        for _ in range(WINDOWS)
    ]
    band_sd = {f: getattr(bands.sd, f) for f in FIGURES}
    spread = {f: float(np.std([getattr(d, f) for d in draws])) for f in FIGURES}
    return shares, band_sd, spread


def test_binary_band_covers_95_percent_of_realized_figures() -> None:
    shares, band_sd, spread = coverage(lambda rng: binary_window(rng, 500), 2, 1, seed=10)
    for figure in FIGURES:
        assert 0.93 <= shares[figure] <= 0.97, (figure, shares)
        assert band_sd[figure] == pytest.approx(spread[figure], rel=0.05), figure


def test_multiclass_band_covers_95_percent_macro_and_per_class() -> None:
    shares, band_sd, spread = coverage(lambda rng: multiclass_window(rng, 1_000, 4), 4, None, 20)
    for key, share in shares.items():
        assert 0.93 <= share <= 0.97, (key, shares)
    for figure in ("accuracy", "precision"):  # exact variances
        assert band_sd[figure] == pytest.approx(spread[figure], rel=0.05), figure
    for figure in ("recall", "f1"):  # conservative by construction: dropped covariances < 0
        assert 0.98 * spread[figure] <= band_sd[figure] <= 1.12 * spread[figure], figure


def test_bands_are_nan_below_min_samples_clipped_and_widened_by_the_reference() -> None:
    probabilities = np.array([[0.02, 0.98]] * 30)
    predicted = np.ones(30, dtype=np.int64)
    expected = expected_counts(probabilities, predicted, 2)
    terms = band_terms(probabilities, predicted, 2)
    few = classification_bands(expected, terms, ("a", "b"), 1, min_samples=100)
    assert math.isnan(few.lower.accuracy) and math.isnan(few.upper.f1)
    bands = classification_bands(expected, terms, ("a", "b"), 1, min_samples=1)
    assert bands.upper.accuracy == 1.0 and bands.upper.precision == 1.0
    assert math.isnan(bands.sd.per_class["a"].precision)  # nothing predicted "a"
    assert math.isnan(bands.lower.per_class["a"].precision)
    wide = classification_bands(expected, terms, ("a", "b"), 1, min_samples=1, reference_rows=10)
    assert wide.sd.accuracy == pytest.approx(bands.sd.accuracy * math.sqrt(1 + 30 / 10))
    narrow = classification_bands(expected, terms, ("a", "b"), 1, 1, z=1.0)
    assert narrow.lower.accuracy == pytest.approx(bands.estimate.accuracy - bands.sd.accuracy)
    with pytest.raises(ValueError, match="terms"):
        classification_bands(expected, terms[0], ("a", "b"), 1, 1)
    with pytest.raises(ValueError, match="z must be"):
        classification_bands(expected, terms, ("a", "b"), 1, 1, z=0.0)
    with pytest.raises(ValueError, match="reference_rows"):
        classification_bands(expected, terms, ("a", "b"), 1, 1, reference_rows=0.0)
