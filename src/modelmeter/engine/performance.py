"""Performance figures from additive counts: a confusion matrix, or regression error sums.

``confusion[p, a]`` counts events predicted ``p`` whose actual class is ``a`` (the same layout
holds expected counts for estimated performance). Figures follow scikit-learn's definitions
with ``zero_division=np.nan``: a ratio whose denominator is 0 is NaN, never 0, and the macro
average leaves NaN classes out. Below ``min_samples`` every figure is NaN.

>>> import numpy as np
>>> confusion = np.array([[5.0, 1.0], [2.0, 2.0]])  # rows: predicted "a", "b"
>>> figures = classification_figures(confusion, ("a", "b"), positive=1, min_samples=1)
>>> round(figures.accuracy, 3), round(figures.precision, 3), round(figures.recall, 3)
(0.7, 0.5, 0.667)
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from modelmeter.engine.snapshot import ClassFigures, ClassificationFigures, RegressionFigures

__all__ = [
    "classification_figures",
    "confusion_counts",
    "confusion_index",
    "regression_figures",
    "regression_sums",
]

NAN = float("nan")
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _ratio(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _nanmean(values: FloatArray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else NAN


def confusion_index(predicted: IntArray, actual: IntArray, n_classes: int) -> IntArray:
    """Flat index ``predicted * n_classes + actual`` into a (k, k) confusion matrix."""
    flat: IntArray = predicted * n_classes + actual
    return flat


def confusion_counts(predicted: IntArray, actual: IntArray, n_classes: int) -> FloatArray:
    """(k, k) counts ``[p, a]`` from class codes; events without a prediction (code < 0) are
    left out, as in realized performance.

    >>> confusion_counts(np.array([0, 1, 1, -2]), np.array([0, 0, 1, 1]), 2)
    array([[1., 0.],
           [1., 1.]])
    """
    rows = predicted >= 0
    if not rows.all():
        predicted, actual = predicted[rows], actual[rows]
    flat = confusion_index(predicted, actual, n_classes)
    counts = np.bincount(flat, minlength=n_classes * n_classes).astype(np.float64)
    matrix: FloatArray = counts.reshape(n_classes, n_classes)
    return matrix


def classification_figures(
    confusion: FloatArray,
    classes: tuple[str, ...],
    positive: int | None,
    min_samples: int,
) -> ClassificationFigures:
    """Accuracy, precision, recall and F1 from a (k, k) matrix of (expected) counts.

    With ``positive`` (binary) the headline precision/recall/F1 are those of that class;
    otherwise (multiclass) they are macro averages over the classes that have a value.
    """
    total = float(confusion.sum())
    k = len(classes)
    if total < min_samples or total <= 0:
        nan_class = ClassFigures(precision=NAN, recall=NAN, f1=NAN)
        return ClassificationFigures(
            accuracy=NAN,
            precision=NAN,
            recall=NAN,
            f1=NAN,
            per_class={c: nan_class for c in classes},
        )
    tp = np.diagonal(confusion).astype(np.float64)
    predicted = confusion.sum(axis=1)
    actual = confusion.sum(axis=0)
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, actual)
    f1 = _ratio(2.0 * tp, predicted + actual)
    per_class = {
        classes[i]: ClassFigures(
            precision=float(precision[i]), recall=float(recall[i]), f1=float(f1[i])
        )
        for i in range(k)
    }
    accuracy = float(tp.sum() / total)
    if positive is not None:
        return ClassificationFigures(
            accuracy=accuracy,
            precision=float(precision[positive]),
            recall=float(recall[positive]),
            f1=float(f1[positive]),
            per_class=per_class,
        )
    return ClassificationFigures(
        accuracy=accuracy,
        precision=_nanmean(precision),
        recall=_nanmean(recall),
        f1=_nanmean(f1),
        per_class=per_class,
    )


def regression_sums(predictions: FloatArray, labels: FloatArray) -> FloatArray:
    """Per-event additive terms (n, 3): count 1, absolute error, squared error."""
    error = predictions - labels
    terms = np.empty((predictions.shape[0], 3))
    terms[:, 0] = 1.0
    np.abs(error, out=terms[:, 1])
    np.square(error, out=terms[:, 2])
    return terms


def regression_figures(sums: FloatArray, min_samples: int) -> RegressionFigures:
    """MAE and RMSE from summed ``[count, sum |e|, sum e^2]``; NaN below ``min_samples``.

    >>> regression_figures(np.array([2.0, 3.0, 5.0]), min_samples=1)
    RegressionFigures(mae=1.5, rmse=1.5811388300841898)
    """
    count = float(sums[0])
    if count < min_samples or count <= 0:
        return RegressionFigures(mae=NAN, rmse=NAN)
    return RegressionFigures(mae=float(sums[1] / count), rmse=math.sqrt(float(sums[2] / count)))
