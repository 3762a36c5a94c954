"""The typed, frozen values that ``ModelMonitor.snapshot(now)`` returns.

A figure that is undefined, or computed on fewer than ``min_samples`` values, is NaN (never 0),
so that an alert never fires on too little data. :meth:`Snapshot.to_dict` gives a JSON-able
form (NaN becomes None).

>>> Histogram(bounds=(1.0, 2.0), counts=(3, 0, 1), sum=4.5, count=4).count
4
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "BinCounts",
    "ClassFigures",
    "ClassificationFigures",
    "DriftFigures",
    "Histogram",
    "MultivariateFigures",
    "RegressionFigures",
    "SegmentFigures",
    "Snapshot",
]


@dataclass(frozen=True)
class ClassFigures:
    """Precision, recall and F1 of one class (one-vs-rest)."""

    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class ClassificationFigures:
    """Accuracy and precision/recall/F1: of the positive class (binary) or macro (multiclass)."""

    accuracy: float
    precision: float
    recall: float
    f1: float
    per_class: Mapping[str, ClassFigures]


@dataclass(frozen=True)
class RegressionFigures:
    """Mean absolute error and root mean squared error."""

    mae: float
    rmse: float


@dataclass(frozen=True)
class DriftFigures:
    """Drift of one feature (or the output) in the window against the reference.

    ``samples`` is the number of non-missing values in the window. ``ks`` and
    ``wasserstein`` are NaN for categorical data; everything but ``samples`` is NaN (and
    ``drifted`` False) below ``min_samples``. ``drifted`` is the Benjamini-Hochberg decision.
    """

    samples: int
    psi: float
    jensen_shannon: float
    ks: float
    wasserstein: float
    chi2_pvalue: float
    drifted: bool


@dataclass(frozen=True)
class MultivariateFigures:
    """Multivariate drift of the window: the mean PCA reconstruction error of its events
    against the band calibrated on the reference for a window of ``samples`` rows.

    ``error``, ``lower`` and ``upper`` are NaN (and ``drifted`` False) below ``min_samples``;
    ``drifted`` is True when the error is outside [lower, upper]. ``rows_total`` and
    ``error_total`` are the rows scored and the sum of their errors since the version started
    (cumulative: the window's ``error`` is the difference of two error sums over the
    difference of two row counts).
    """

    method: str
    samples: int
    error: float
    lower: float
    upper: float
    drifted: bool
    rows_total: int = 0
    error_total: float = 0.0


@dataclass(frozen=True)
class BinCounts:
    """The drift bins of one feature (or of the model output), as the drift figures use them.

    ``labels``: the bins, numeric ``"0"`` .. ``"k-1"`` (underflow, the reference's quantile
    bins, overflow), categorical the vocabulary then ``other``. ``counts``: values counted in
    each bin since the version started (cumulative; the window's counts of the drift figures
    are the differences of two such vectors). ``reference``: the reference's fraction in each
    bin (sums to 1; NaN for a reference without values), the ``p`` of PSI.
    """

    labels: tuple[str, ...]
    counts: tuple[float, ...]
    reference: tuple[float, ...]


@dataclass(frozen=True)
class SegmentFigures:
    """The window's figures of one value of a segment feature.

    ``predictions``: predictions made in the window with this value; ``labeled``: labels
    received in the window for them; ``label_coverage``: labeled fraction of the window's
    predictions (NaN without predictions). ``realized``/``estimated`` (classification) and
    ``regression``/``estimated_regression`` (regression) are as in :class:`Snapshot`, computed
    on this value's rows, NaN below ``min_samples`` of them; the realized ones (``realized``,
    ``regression``) on the labels of the performance window, ``performance_labels`` of them
    (those with a prediction). (The estimate's confidence band is the window's only:
    :class:`Snapshot` ``estimated_lower``/``estimated_upper``.)

    >>> SegmentFigures(predictions=10, labeled=4, label_coverage=0.4).performance_labels
    0
    """

    predictions: int
    labeled: int
    label_coverage: float
    realized: ClassificationFigures | None = None
    estimated: ClassificationFigures | None = None
    regression: RegressionFigures | None = None
    estimated_regression: RegressionFigures | None = None
    performance_labels: int = 0


@dataclass(frozen=True)
class Histogram:
    """Prometheus-style histogram: ``counts[i]`` holds values <= ``bounds[i]`` and above the
    previous bound (not cumulative); the last count is the +Inf bucket."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float
    count: int


@dataclass(frozen=True)
class Snapshot:
    """Everything a monitor knows at time ``time``: window figures and cumulative totals.

    ``window_labeled`` is the number of labels received in the window; ``label_coverage`` is
    the labeled fraction of the predictions made in the window. ``realized``/``estimated`` are
    set for classification (``estimated`` only when the reference has scores), ``regression``
    for regression.

    Realized performance (``realized``, ``regression``, and the segments' ones) is computed on
    the labels received in the *performance window*, ``performance_window_seconds`` long
    (the window's length unless configured; labels count by arrival, so a longer one keeps
    figures between the batches of a model labeled once a day). Its sample:
    ``performance_labels``, the labels with a prediction in that window (NaN figures below
    ``min_samples`` of them), and, for classification, ``performance_confusion``
    (``(predicted, actual) -> count`` in that window; empty for regression). A snapshot built
    by hand without them has ``performance_window_seconds`` NaN.

    ``estimated_lower`` and ``estimated_upper`` (with ``estimated``) are the confidence band
    of the estimate, figure by figure (:func:`~modelmeter.engine.bands.classification_bands`,
    95 %): where the window's realized figures should lie if the calibration in use holds,
    including the calibration's own error; NaN where the estimate is, None without
    calibration. The calibration in use: plain CBPE (the reference's), or a shift-aware refit
    (:meth:`~modelmeter.engine.monitor.ModelMonitor.use_calibration`): then
    ``estimation_shift_aware`` is True, ``estimation_auc`` the refit's domain-classifier AUC
    and ``estimation_effective_rows`` the effective reference rows it rests on (NaN with
    plain CBPE). ``estimation_reason`` says why the last refit fell back to plain CBPE (None
    when it was applied, or there was none).

    ``multivariate`` is the multivariate drift (None when it is off or the model has fewer
    than 2 features).

    ``estimated_regression`` (regression) is the MAE and RMSE estimated before labels by the
    loss model fitted on the reference (direct loss estimation, :mod:`modelmeter.engine.loss`):
    NaN below ``min_samples`` predictions, None when the reference has too few labeled rows.

    ``reference`` (classification) and ``reference_regression`` (regression) are the same
    figures computed on the reference data's predictions and labels: fixed per monitor,
    derived from the reference (not stored in checkpoints), computed on every reference row
    with a prediction whatever ``min_samples``; NaN only where a ratio is undefined.

    ``segments`` maps each segment feature to its values (vocabulary, then ``other``) and
    their :class:`SegmentFigures`; empty when the model has no segments.

    Cumulative counts for a Prometheus that merges several monitors of one model (counters,
    summed over collectors): ``feature_bins`` and ``prediction_bins`` (:class:`BinCounts` of
    every feature and of the output), ``expected_total`` (classification with scores: the
    expected confusion matrix, sums of calibrated probabilities, ``(predicted, actual) ->
    count``, counted at prediction time) and ``multivariate``'s totals.
    """

    time: float
    window_seconds: float
    min_samples: int
    window_predictions: int
    window_errors: int
    window_labeled: int
    label_coverage: float
    realized: ClassificationFigures | None
    estimated: ClassificationFigures | None
    regression: RegressionFigures | None
    drift: Mapping[str, DriftFigures]
    prediction_drift: DriftFigures
    drift_detected: bool
    quality_window: Mapping[str, Mapping[str, int]]
    quality_window_ratio: Mapping[str, Mapping[str, float]]
    predictions_total: int
    errors_total: int
    unknown_features_total: int
    confusion_total: Mapping[tuple[str, str], int]
    quality_total: Mapping[str, Mapping[str, int]]
    latency: Histogram
    label_delay: Histogram
    reference: ClassificationFigures | None = None
    reference_regression: RegressionFigures | None = None
    multivariate: MultivariateFigures | None = None
    estimated_regression: RegressionFigures | None = None
    segments: Mapping[str, Mapping[str, SegmentFigures]] = field(default_factory=dict)
    feature_bins: Mapping[str, BinCounts] = field(default_factory=dict)
    prediction_bins: BinCounts | None = None
    expected_total: Mapping[tuple[str, str], float] = field(default_factory=dict)
    performance_window_seconds: float = math.nan
    performance_labels: int = 0
    performance_confusion: Mapping[tuple[str, str], float] = field(default_factory=dict)
    estimated_lower: ClassificationFigures | None = None
    estimated_upper: ClassificationFigures | None = None
    estimation_shift_aware: bool = False
    estimation_auc: float = math.nan
    estimation_effective_rows: float = math.nan
    estimation_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: NaN -> None, ``confusion_total``, ``expected_total`` and
        ``performance_confusion`` as lists of records.

        >>> from modelmeter.engine import Histogram
        >>> empty = Histogram(bounds=(1.0,), counts=(0, 0), sum=0.0, count=0)
        >>> nan = float("nan")
        >>> drift = DriftFigures(0, nan, nan, nan, nan, nan, False)
        >>> snap = Snapshot(0.0, 300.0, 100, 0, 0, 0, nan, None, None, None, {}, drift, False,
        ...                 {}, {}, 0, 0, 0, {("a", "b"): 2}, {}, empty, empty)
        >>> snap.to_dict()["confusion_total"], snap.to_dict()["label_coverage"]
        ([{'predicted': 'a', 'actual': 'b', 'count': 2}], None)
        >>> snap.to_dict()["performance_confusion"], snap.to_dict()["performance_window_seconds"]
        ([], None)
        """
        data = {
            name: asdict(value) if hasattr(value, "__dataclass_fields__") else value
            for name, value in self.__dict__.items()
        }
        data["drift"] = {name: asdict(value) for name, value in self.drift.items()}
        data["quality_window"] = {k: dict(v) for k, v in self.quality_window.items()}
        data["quality_window_ratio"] = {k: dict(v) for k, v in self.quality_window_ratio.items()}
        data["quality_total"] = {k: dict(v) for k, v in self.quality_total.items()}
        if self.segments:
            data["segments"] = {
                k: {value: asdict(figures) for value, figures in v.items()}
                for k, v in self.segments.items()
            }
        else:
            del data["segments"]  # a model without segments: the form it always had
        data["feature_bins"] = {name: asdict(value) for name, value in self.feature_bins.items()}
        for name in ("confusion_total", "expected_total", "performance_confusion"):
            data[name] = [
                {"predicted": p, "actual": a, "count": n}
                for (p, a), n in getattr(self, name).items()
            ]
        cleaned: dict[str, Any] = _without_nan(data)
        return cleaned


def _without_nan(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, Mapping):
        return {str(k): _without_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nan(v) for v in value]
    return value
