"""Confidence bands of estimated performance: where the realized figures of a window should lie.

CBPE (:mod:`modelmeter.engine.estimation`) gives each scored prediction calibrated class
probabilities ``P``. If they are right, the actual class of a row predicted ``p`` is a
Categorical(``P``) draw, independent of the other rows, and the window's (predicted, actual)
counts are sums of those draws. Their expectation is the ``expected`` matrix the estimate is
computed from; their spread comes from two more additive (k, k) statistics, summed over the
rows predicted ``p`` (:func:`band_terms`, per row :func:`band_weights`):

- ``terms[0, p, a] = sum P_a (1 - P_a)``: the variance of count ``[p, a]``;
- ``terms[1, p, a] = sum P_p P_a``: minus the covariance of counts ``[p, p]`` and ``[p, a]``
  (``a != p``; the diagonal is not used). Covariances between two cells that are both off the
  diagonal (``-sum P_a P_b``, ``a, b != p``) are not kept: that would take (k, k, k).

Every figure is a function of the counts. Its variance is the delta method's: with the
gradient ``L[p, a]`` of the figure at the expected counts, ``Var = sum_p (sum_a L[p, a]^2
terms[0, p, a] - 2 sum_{a != p} L[p, p] L[p, a] terms[1, p, a])``, and the band is the
estimate +- ``z`` standard deviations (default 1.96: 95 %), clipped to [0, 1]. The number of
rows predicted ``p`` is known (not random). What that gives:

- accuracy: the correct count is a Poisson-binomial sum, its variance ``sum_p terms[0, p, p]``
  is exact (the band is its normal approximation);
- precision, recall, F1 of one class (binary: the positive class; every class's per-class
  figures): the true positives and the false negatives are sums over disjoint rows, hence
  independent; the delta method uses their exact variances;
- multiclass macro precision: the classes' true positives are independent, so the variance is
  exact;
- multiclass macro recall and macro F1: every gradient entry off the diagonal is <= 0, so the
  dropped covariances (``-L_a L_b sum P_a P_b``, both off the diagonal) only lower the
  variance: the band is slightly wider than the delta method's (measured: the standard
  deviation 0-10 % too large, 95-97 % coverage for 3 to 10 classes).

That is the sampling spread of the realized figure around the estimate when the probabilities
are calibrated. The calibration is itself estimated from ``reference_rows`` rows (plain CBPE:
the scored reference rows; shift-aware: the weights' effective sample size): its error is, to
first order, the error of a mean over those rows where the window's is over the window's
``n``, so with ``reference_rows`` every variance is multiplied by ``1 + n / reference_rows``.
No band includes a bias the calibration does not follow (concept drift, or a covariate shift
it was not refitted for).

>>> import numpy as np
>>> probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
>>> predicted = np.array([0, 0, 1, 1])
>>> expected = expected_counts(probabilities, predicted, 2)
>>> terms = band_terms(probabilities, predicted, 2)
>>> expected.tolist(), terms[0].round(2).tolist()
([[1.7, 0.3], [0.7, 1.3]], [[0.25, 0.25], [0.45, 0.45]])
>>> bands = classification_bands(expected, terms, ("a", "b"), positive=1, min_samples=1)
>>> round(bands.estimate.accuracy, 3), round(bands.lower.accuracy, 3), bands.upper.accuracy
(0.75, 0.34, 1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from modelmeter.engine.performance import classification_figures
from modelmeter.engine.snapshot import ClassFigures, ClassificationFigures

__all__ = [
    "Bands",
    "Z",
    "band_terms",
    "band_weights",
    "classification_bands",
    "expected_counts",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
NAN = float("nan")
#: Default half-width of a band in standard deviations (two-sided 95 %).
Z = 1.96


@dataclass(frozen=True)
class Bands:
    """The estimate, its standard deviation, and the band ``[lower, upper]`` per figure."""

    estimate: ClassificationFigures
    sd: ClassificationFigures
    lower: ClassificationFigures
    upper: ClassificationFigures
    z: float


def _valid(probabilities: FloatArray, predicted: IntArray) -> tuple[FloatArray, IntArray]:
    probabilities = np.asarray(probabilities, np.float64)
    predicted = np.asarray(predicted, np.int64)
    if probabilities.ndim != 2 or predicted.shape != (probabilities.shape[0],):
        raise ValueError(
            f"probabilities (n, k) and predicted (n,) expected, got {probabilities.shape} "
            f"and {predicted.shape}"
        )
    rows = predicted >= 0  # no prediction: not counted, as in the expected counts
    if not rows.all():
        return probabilities[rows], predicted[rows]
    return probabilities, predicted


def band_weights(probabilities: FloatArray, predicted: IntArray) -> tuple[FloatArray, FloatArray]:
    """Per row (n, k): ``P_a (1 - P_a)`` and ``P_p P_a`` (``p`` the row's predicted class),
    the weights a row adds to cells ``[0, p, a]`` and ``[1, p, a]`` of the band statistic.

    >>> variance, covariance = band_weights(np.array([[0.5, 0.25, 0.25]]), np.array([0]))
    >>> variance.tolist(), covariance.tolist()
    ([[0.25, 0.1875, 0.1875]], [[0.25, 0.125, 0.125]])
    """
    probabilities = np.asarray(probabilities, np.float64)
    predicted = np.asarray(predicted, np.int64)
    variance: FloatArray = probabilities * (1.0 - probabilities)
    own = np.take_along_axis(probabilities, np.maximum(predicted, 0)[:, None], axis=1)
    covariance: FloatArray = probabilities * own
    return variance, covariance


def band_terms(probabilities: FloatArray, predicted: IntArray, k: int) -> FloatArray:
    """The (2, k, k) band statistic of a batch of scored rows (calibrated ``probabilities``
    (n, k), ``predicted`` class codes (n,); codes < 0 are left out); additive over batches.

    >>> band_terms(np.array([[0.5, 0.25, 0.25]]), np.array([2]), 3)[:, 2].tolist()
    [[0.25, 0.1875, 0.1875], [0.125, 0.0625, 0.0625]]
    """
    probabilities, predicted = _valid(probabilities, predicted)
    variance, covariance = band_weights(probabilities, predicted)
    out = np.zeros((2, k, k))
    for p in range(k):
        rows = predicted == p
        out[0, p] = variance[rows].sum(axis=0)
        out[1, p] = covariance[rows].sum(axis=0)
    return out


def expected_counts(probabilities: FloatArray, predicted: IntArray, k: int) -> FloatArray:
    """The (k, k) expected (predicted, actual) counts: ``P`` summed over the rows predicted
    ``p`` (what the monitor's ``expected`` statistic holds).

    >>> expected_counts(np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 0]), 2).tolist()
    [[1.1, 0.9], [0.0, 0.0]]
    """
    probabilities, predicted = _valid(probabilities, predicted)
    out = np.zeros((k, k))
    for p in range(k):
        out[p] = probabilities[predicted == p].sum(axis=0)
    return out


def _sd(gradient: FloatArray, terms: FloatArray) -> float:
    """Delta-method standard deviation of a figure with ``gradient`` (k, k) at the counts."""
    k = gradient.shape[0]
    diagonal = np.diagonal(gradient)
    off = ~np.eye(k, dtype=bool)
    variance = float(np.sum(gradient**2 * terms[0]))
    variance -= 2.0 * float(np.sum((diagonal[:, None] * gradient * terms[1])[off]))
    return math.sqrt(max(variance, 0.0))


def _gradients(expected: FloatArray) -> dict[str, list[FloatArray | None]]:
    """Per class, the gradient (k, k) of its precision, recall and F1 (None: undefined)."""
    k = expected.shape[0]
    tp = np.diagonal(expected).copy()
    predicted = expected.sum(axis=1)  # rows predicted c: known, not random
    actual = expected.sum(axis=0)
    missed = actual - tp
    out: dict[str, list[FloatArray | None]] = {"precision": [], "recall": [], "f1": []}
    for c in range(k):
        precision = recall = f1 = None
        if predicted[c] > 0:
            precision = np.zeros((k, k))
            precision[c, c] = 1.0 / predicted[c]
        if actual[c] > 0:
            recall = np.zeros((k, k))
            recall[:, c] = -tp[c] / actual[c] ** 2
            recall[c, c] = missed[c] / actual[c] ** 2
        denominator = predicted[c] + actual[c]
        if denominator > 0:
            f1 = np.zeros((k, k))
            f1[:, c] = -2.0 * tp[c] / denominator**2
            f1[c, c] = 2.0 * (predicted[c] + missed[c]) / denominator**2
        out["precision"].append(precision)
        out["recall"].append(recall)
        out["f1"].append(f1)
    return out


def _figures(accuracy: float, headline: dict[str, float], per_class: dict[str, ClassFigures]) -> (
    ClassificationFigures
):  # fmt: skip
    return ClassificationFigures(
        accuracy=accuracy,
        precision=headline["precision"],
        recall=headline["recall"],
        f1=headline["f1"],
        per_class=per_class,
    )


def classification_bands(
    expected: FloatArray,
    terms: FloatArray,
    classes: tuple[str, ...],
    positive: int | None,
    min_samples: int,
    z: float = Z,
    reference_rows: float | None = None,
) -> Bands:
    """The estimate of the ``expected`` (k, k) counts and its band from the (2, k, k)
    ``terms`` of :func:`band_terms` summed over the same rows.

    ``positive`` (binary) picks the headline class; otherwise the headline figures are macro
    averages over the classes whose figure is defined, as in
    :func:`~modelmeter.engine.performance.classification_figures`. Every value is NaN where
    the estimate is (below ``min_samples`` rows, or undefined). ``reference_rows`` (None:
    sampling only) adds the calibration's own error (see the module's description).

    >>> rows = [[0.8, 0.2, 0.0]] * 50 + [[0.125, 0.75, 0.125]] * 40 + [[0.0, 0.5, 0.5]] * 10
    >>> probabilities, predicted = np.array(rows), np.repeat([0, 1, 2], [50, 40, 10])
    >>> expected = expected_counts(probabilities, predicted, 3)
    >>> expected.tolist()
    [[40.0, 10.0, 0.0], [5.0, 30.0, 5.0], [0.0, 5.0, 5.0]]
    >>> terms = band_terms(probabilities, predicted, 3)
    >>> bands = classification_bands(expected, terms, ("a", "b", "c"), None, min_samples=1)
    >>> round(bands.estimate.accuracy, 3), round(bands.sd.accuracy, 4)
    (0.75, 0.0424)
    >>> bool(bands.lower.f1 < bands.estimate.f1 < bands.upper.f1)
    True
    """
    expected = np.asarray(expected, np.float64)
    terms = np.asarray(terms, np.float64)
    k = len(classes)
    if expected.shape != (k, k) or terms.shape != (2, k, k):
        raise ValueError(
            f"expected ({k}, {k}) counts and (2, {k}, {k}) terms, got {expected.shape} and "
            f"{terms.shape}"
        )
    if not (z > 0 and math.isfinite(z)):
        raise ValueError(f"z must be a finite number > 0, got {z}")
    if reference_rows is not None and not reference_rows > 0:
        raise ValueError(f"reference_rows must be > 0, got {reference_rows}")
    estimate = classification_figures(expected, classes, positive, min_samples)
    if math.isnan(estimate.accuracy):
        return Bands(estimate, estimate, estimate, estimate, z)
    total = float(expected.sum())
    if reference_rows is not None:
        terms = terms * (1.0 + total / reference_rows)
    accuracy_sd = math.sqrt(max(float(np.trace(terms[0])), 0.0)) / total
    gradients = _gradients(expected)
    per_class_sd: dict[str, dict[str, float]] = {c: {} for c in classes}
    headline: dict[str, float] = {}
    for figure, per_class in gradients.items():
        for c, gradient in zip(classes, per_class, strict=True):
            per_class_sd[c][figure] = NAN if gradient is None else _sd(gradient, terms)
        if positive is not None:
            headline[figure] = per_class_sd[classes[positive]][figure]
            continue
        defined = [g for g in per_class if g is not None]
        # macro: the mean of the defined classes' figures, so the mean of their gradients
        headline[figure] = _sd(np.mean(defined, axis=0), terms) if defined else NAN
    sd = _figures(
        accuracy_sd, headline, {c: ClassFigures(**values) for c, values in per_class_sd.items()}
    )

    def shifted(sign: float) -> ClassificationFigures:
        def move(value: float, spread: float) -> float:
            moved = value + sign * z * spread
            return moved if math.isnan(moved) else min(1.0, max(0.0, moved))

        per_class = {
            c: ClassFigures(
                precision=move(estimate.per_class[c].precision, sd.per_class[c].precision),
                recall=move(estimate.per_class[c].recall, sd.per_class[c].recall),
                f1=move(estimate.per_class[c].f1, sd.per_class[c].f1),
            )
            for c in classes
        }
        return ClassificationFigures(
            accuracy=move(estimate.accuracy, sd.accuracy),
            precision=move(estimate.precision, sd.precision),
            recall=move(estimate.recall, sd.recall),
            f1=move(estimate.f1, sd.f1),
            per_class=per_class,
        )

    return Bands(estimate, sd, shifted(-1.0), shifted(1.0), z)
