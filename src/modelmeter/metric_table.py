"""The exported metric families, declared: names, types, labels, HELP; and the series bound.

:data:`METRICS` lists every family :class:`~modelmeter.exposition.ModelMetricsCollector`
exports, in exposition order (the README's table). The fixed label values (drift statistics,
quality issues, ingest kinds and outcomes, expiry and retirement reasons) are declared here
too, so :func:`series_bound` counts exactly what can be exported.

>>> [d.name for d in METRICS[:2]], METRICS[1].labels
(['modelmeter_models', 'model_info'], ('model', 'version', 'task'))
"""

from __future__ import annotations

from dataclasses import dataclass

from modelmeter.engine.config import DEFAULT_MAX_CATEGORIES
from modelmeter.engine.operations import LABEL_DELAY_BOUNDS, LATENCY_BOUNDS
from modelmeter.spec import DEFAULT_THRESHOLDS, MAX_SEGMENT_VALUES, ModelSpec

__all__ = [
    "DRIFT_STATISTICS",
    "EXPIRY_REASONS",
    "INGEST_KINDS",
    "INGEST_OUTCOMES",
    "METRICS",
    "MULTIVARIATE_BOUNDS",
    "MULTIVARIATE_METHODS",
    "QUALITY_ISSUES",
    "RETIREMENT_REASONS",
    "SHIFT_REFIT_OUTCOMES",
    "MetricDef",
    "drift_bins",
    "segment_values",
    "series_bound",
]

DRIFT_STATISTICS = ("psi", "jensen_shannon", "ks_binned", "wasserstein_binned", "chi2_pvalue")
QUALITY_ISSUES = {
    "numeric": ("missing", "out_of_range", "wrong_type"),
    "categorical": ("missing", "unseen_category", "wrong_type"),
}
INGEST_KINDS = ("predictions", "labels")
INGEST_OUTCOMES = ("accepted", "rejected", "duplicate", "pending", "retired")
EXPIRY_REASONS = ("ttl", "budget")
RETIREMENT_REASONS = ("capacity", "idle", "manual")
SHIFT_REFIT_OUTCOMES = ("applied", "fallback", "failed", "discarded")
MULTIVARIATE_METHODS = ("pca",)
MULTIVARIATE_BOUNDS = ("lower", "upper")


@dataclass(frozen=True)
class MetricDef:
    """One exported family: its exposition name, type, labels and HELP text."""

    name: str
    type: str  # "gauge" | "counter" | "histogram"
    labels: tuple[str, ...]
    help: str


_MV = ("model", "version")
_SEG = ("model", "version", "segment", "value")


def _g(name: str, labels: tuple[str, ...], help_: str) -> MetricDef:
    return MetricDef(name, "gauge", labels, help_)


def _c(name: str, labels: tuple[str, ...], help_: str) -> MetricDef:
    return MetricDef(name, "counter", labels, help_)


#: Every family this collector exports, in exposition order (the README table).
METRICS: tuple[MetricDef, ...] = (
    _g("modelmeter_models", (), "Registered models."),
    _g("model_info", (*_MV, "task"), "1 per monitored model version; task is the model task."),
    _g("model_positive_class_info", (*_MV, "class"), "1: the positive class of a binary model."),
    _g(
        "model_accuracy",
        _MV,
        "Realized accuracy over the labels received in the performance window.",
    ),
    _g(
        "model_precision",
        _MV,
        "Realized precision in the performance window (binary: positive class; multiclass: macro).",
    ),
    _g(
        "model_recall",
        _MV,
        "Realized recall in the performance window (binary: positive class; multiclass: macro).",
    ),
    _g(
        "model_f1_score",
        _MV,
        "Realized F1 score in the performance window (binary: positive class; multiclass: macro).",
    ),
    _g("model_class_precision", (*_MV, "class"), "Realized one-vs-rest precision per class."),
    _g("model_class_recall", (*_MV, "class"), "Realized one-vs-rest recall per class."),
    _g("model_class_f1_score", (*_MV, "class"), "Realized one-vs-rest F1 score per class."),
    _g("model_estimated_accuracy", _MV, "Accuracy estimated from calibrated scores (no labels)."),
    _g("model_estimated_precision", _MV, "Precision estimated from calibrated scores."),
    _g("model_estimated_recall", _MV, "Recall estimated from calibrated scores."),
    _g("model_estimated_f1_score", _MV, "F1 score estimated from calibrated scores."),
    _g(
        "model_estimated_accuracy_lower",
        _MV,
        "Lower end of the 95% band of the estimated accuracy: where the window's realized "
        "accuracy lies if the calibration holds (sampling spread of the window and of the "
        "calibration rows).",
    ),
    _g(
        "model_estimated_accuracy_upper",
        _MV,
        "Upper end of the 95% band of the estimated accuracy: where the window's realized "
        "accuracy lies if the calibration holds (sampling spread of the window and of the "
        "calibration rows).",
    ),
    _g(
        "model_estimated_precision_lower",
        _MV,
        "Lower end of the 95% band of the estimated precision: where the window's realized "
        "precision lies if the calibration holds (sampling spread of the window and of the "
        "calibration rows).",
    ),
    _g(
        "model_estimated_precision_upper",
        _MV,
        "Upper end of the 95% band of the estimated precision: where the window's realized "
        "precision lies if the calibration holds (sampling spread of the window and of the "
        "calibration rows).",
    ),
    _g(
        "model_estimated_recall_lower",
        _MV,
        "Lower end of the 95% band of the estimated recall: where the window's realized "
        "recall lies if the calibration holds (sampling spread of the window and of the "
        "calibration rows).",
    ),
    _g(
        "model_estimated_recall_upper",
        _MV,
        "Upper end of the 95% band of the estimated recall: where the window's realized "
        "recall lies if the calibration holds (sampling spread of the window and of the "
        "calibration rows).",
    ),
    _g(
        "model_estimated_f1_score_lower",
        _MV,
        "Lower end of the 95% band of the estimated F1 score: where the window's realized "
        "F1 score lies if the calibration holds (sampling spread of the window and of the "
        "calibration rows).",
    ),
    _g(
        "model_estimated_f1_score_upper",
        _MV,
        "Upper end of the 95% band of the estimated F1 score: where the window's realized "
        "F1 score lies if the calibration holds (sampling spread of the window and of the "
        "calibration rows).",
    ),
    _g(
        "model_estimation_shift_aware",
        _MV,
        "1 while the estimate uses a calibration refitted for the live inputs (shift-aware "
        "CBPE), 0 while it uses the reference's (plain CBPE).",
    ),
    _g(
        "model_estimation_shift_auc",
        _MV,
        "Cross-validated AUC of the classifier separating recent live rows from the reference "
        "at the last refit (0.5: no shift).",
    ),
    _g(
        "model_estimation_effective_reference_rows",
        _MV,
        "Effective sample size (Kish) of the reference rows behind the calibration in use.",
    ),
    _g("model_reference_accuracy", _MV, "Accuracy of the model on the spec's reference data."),
    _g(
        "model_reference_precision",
        _MV,
        "Precision on the spec's reference data (binary: positive class; multiclass: macro).",
    ),
    _g(
        "model_reference_recall",
        _MV,
        "Recall on the spec's reference data (binary: positive class; multiclass: macro).",
    ),
    _g(
        "model_reference_f1_score",
        _MV,
        "F1 score on the spec's reference data (binary: positive class; multiclass: macro).",
    ),
    _g(
        "model_mean_absolute_error",
        _MV,
        "Realized mean absolute error over the labels received in the performance window.",
    ),
    _g(
        "model_root_mean_squared_error",
        _MV,
        "Realized root mean squared error over the labels received in the performance window.",
    ),
    _g(
        "model_estimated_mean_absolute_error",
        _MV,
        "Mean absolute error estimated before labels (loss model fitted on the reference).",
    ),
    _g(
        "model_estimated_root_mean_squared_error",
        _MV,
        "Root mean squared error estimated before labels (loss model fitted on the reference).",
    ),
    _g(
        "model_reference_mean_absolute_error",
        _MV,
        "Mean absolute error of the model on the spec's reference data.",
    ),
    _g(
        "model_reference_root_mean_squared_error",
        _MV,
        "Root mean squared error of the model on the spec's reference data.",
    ),
    _g("model_window_predictions", _MV, "Predictions made in the window."),
    _g("model_window_labeled_predictions", _MV, "Labels received in the window."),
    _g("model_window_errors", _MV, "Prediction errors in the window."),
    _g("model_window_seconds", ("model",), "Length of the sliding window in seconds."),
    _g(
        "model_performance_window_seconds",
        ("model",),
        "Length of the performance window in seconds (spec performance.window): realized "
        "figures count the labels that arrived in it.",
    ),
    _g(
        "model_performance_window_labels",
        _MV,
        "Labels (of predictions with a value) received in the performance window: the sample "
        "size of the realized figures, omitted below model_min_samples.",
    ),
    _g(
        "model_performance_window_outcomes",
        (*_MV, "class", "outcome"),
        "One-vs-rest outcomes (tp, fp, fn) per class of the labels received in the performance "
        "window; sums over collectors.",
    ),
    _g("model_min_samples", ("model",), "Minimum sample size below which figures are omitted."),
    _g("model_label_coverage_ratio", _MV, "Labeled fraction of the window's predictions."),
    _g("model_pending_labels", ("model",), "Stored predictions waiting for a label."),
    _g(
        "model_feature_drift",
        (*_MV, "feature", "statistic"),
        "Drift of a feature in the window against the reference data (ks_binned and "
        "wasserstein_binned are computed on the reference's bins; see the README for their "
        "error bounds).",
    ),
    _g(
        "model_feature_drift_detected",
        (*_MV, "feature"),
        "1 if the feature drifted (Benjamini-Hochberg controlled), else 0.",
    ),
    _g("model_prediction_drift", (*_MV, "statistic"), "Drift of the model output in the window."),
    _g(
        "model_feature_reference_ratio",
        ("model", "feature", "bin"),
        "Fraction of the reference data's values of the feature in each drift bin (sums to 1; "
        "the reference proportions of PSI).",
    ),
    _g(
        "model_prediction_reference_ratio",
        ("model", "bin"),
        "Fraction of the reference data's predictions in each bin of the output drift.",
    ),
    _g("model_drift_detected", _MV, "1 if any feature or the output drifted, else 0."),
    _g(
        "model_multivariate_drift",
        (*_MV, "method"),
        "Multivariate drift: mean PCA reconstruction error of the window's predictions.",
    ),
    _g(
        "model_multivariate_drift_threshold",
        (*_MV, "method", "bound"),
        "Band of the window's mean reconstruction error calibrated on the reference for the "
        "window's size (z standard deviations of the mean).",
    ),
    _g(
        "model_multivariate_drift_detected",
        _MV,
        "1 if the window's mean reconstruction error is outside its band, else 0.",
    ),
    _g(
        "model_segment_accuracy",
        _SEG,
        "Realized accuracy over the labels received in the performance window for the "
        "predictions of one segment value (segment: a spec segments feature; value: one of its "
        "values or other).",
    ),
    _g("model_segment_precision", _SEG, "Realized precision of one segment value."),
    _g("model_segment_recall", _SEG, "Realized recall of one segment value."),
    _g("model_segment_f1_score", _SEG, "Realized F1 score of one segment value."),
    _g(
        "model_segment_estimated_accuracy",
        _SEG,
        "Accuracy of one segment value estimated from calibrated scores (no labels).",
    ),
    _g("model_segment_estimated_precision", _SEG, "Estimated precision of one segment value."),
    _g("model_segment_estimated_recall", _SEG, "Estimated recall of one segment value."),
    _g("model_segment_estimated_f1_score", _SEG, "Estimated F1 score of one segment value."),
    _g(
        "model_segment_mean_absolute_error",
        _SEG,
        "Realized mean absolute error of one segment value in the window.",
    ),
    _g(
        "model_segment_root_mean_squared_error",
        _SEG,
        "Realized root mean squared error of one segment value in the window.",
    ),
    _g(
        "model_segment_estimated_mean_absolute_error",
        _SEG,
        "Mean absolute error of one segment value estimated before labels.",
    ),
    _g(
        "model_segment_estimated_root_mean_squared_error",
        _SEG,
        "Root mean squared error of one segment value estimated before labels.",
    ),
    _g(
        "model_segment_window_predictions",
        _SEG,
        "Predictions made in the window with this segment value.",
    ),
    _g(
        "model_segment_window_labeled_predictions",
        _SEG,
        "Labels received in the window for predictions with this segment value.",
    ),
    _g(
        "model_segment_performance_window_labels",
        _SEG,
        "Labels received in the performance window for predictions with this segment value: "
        "the sample size of its realized figures.",
    ),
    _g(
        "model_segment_label_coverage_ratio",
        _SEG,
        "Labeled fraction of the window's predictions with this segment value.",
    ),
    _g(
        "model_feature_quality_ratio",
        (*_MV, "feature", "issue"),
        "Fraction of the window's predictions with this data-quality issue.",
    ),
    _g("model_alert_threshold", ("model", "threshold"), "Alert threshold of the model."),
    _g(
        "model_serving_cpu_ratio",
        (*_MV, "replica"),
        "CPU use of the serving process, 1.0 = one core.",
    ),
    _g("model_serving_memory_bytes", (*_MV, "replica"), "Resident memory of the serving process."),
    _c("model_predictions_total", _MV, "Predictions received."),
    _c("model_prediction_errors_total", _MV, "Predictions that reported an error."),
    _c(
        "model_labeled_predictions_total",
        (*_MV, "predicted_class", "actual_class"),
        "Labeled predictions by predicted and actual class (confusion matrix).",
    ),
    _c(
        "model_classification_outcomes_total",
        (*_MV, "class", "outcome"),
        "One-vs-rest true positives (tp), false positives (fp), false negatives (fn) per class.",
    ),
    _c(
        "model_estimated_outcomes_total",
        (*_MV, "class", "outcome"),
        "Expected one-vs-rest tp, fp, fn per class: sums of the calibrated probabilities of the "
        "scored predictions, counted when they are made.",
    ),
    _c(
        "model_feature_quality_issues_total",
        (*_MV, "feature", "issue"),
        "Feature values with a data-quality issue.",
    ),
    _c(
        "model_feature_bin_observations_total",
        (*_MV, "feature", "bin"),
        "Feature values per drift bin (bin: 0 .. k-1 by the reference's edges, or the "
        "category or other); missing and wrong-type values are in none.",
    ),
    _c(
        "model_prediction_bin_observations_total",
        (*_MV, "bin"),
        "Predictions per bin of the output drift (errored predictions are in none).",
    ),
    _c(
        "model_multivariate_reconstruction_error_sum_total",
        _MV,
        "Sum of the PCA reconstruction errors of the predictions (multivariate drift).",
    ),
    _c(
        "model_multivariate_reconstruction_rows_total",
        _MV,
        "Predictions scored by the multivariate drift (the count of the error sum).",
    ),
    _c("model_unknown_features_total", _MV, "Feature names sent that are not in the spec."),
    MetricDef("model_prediction_latency_seconds", "histogram", _MV, "Prediction latency."),
    MetricDef("model_label_delay_seconds", "histogram", _MV, "Delay from prediction to label."),
    _c(
        "modelmeter_ingest_events_total",
        ("model", "kind", "outcome"),
        "Events received by the collector, by kind and outcome (retired: a label for a "
        "prediction whose version retired); counted since the collector process started.",
    ),
    _g("model_waiting_labels", ("model",), "Stored labels waiting for their prediction."),
    _g(
        "model_last_prediction_timestamp_seconds",
        ("model",),
        "Unix time the collector last received a prediction of the model.",
    ),
    _c(
        "modelmeter_expired_events_total",
        ("model", "kind", "reason"),
        "Stored events that expired unjoined (predictions waiting for a label, labels "
        "waiting for a prediction): reason ttl (MODELMETER_LABEL_TTL) or budget "
        "(MODELMETER_STORE_BUDGET); counted since the collector process started.",
    ),
    _c(
        "modelmeter_versions_retired_total",
        ("model", "reason"),
        "Model versions retired: capacity (a new version beyond MODELMETER_MAX_VERSIONS), "
        "idle (MODELMETER_VERSION_IDLE) or manual (DELETE); since the process started.",
    ),
    _c(
        "modelmeter_shift_refits_total",
        ("model", "outcome"),
        "Shift-aware recalibrations of the estimate (MODELMETER_SHIFT_REFIT_INTERVAL): applied, "
        "fallback (plain CBPE kept: no shift, too few rows, weights that do not balance), failed "
        "(an error, logged) or discarded (the version changed meanwhile); since the process "
        "started.",
    ),
    _c(
        "modelmeter_client_dropped_events_total",
        ("model", "replica", "kind"),
        "Events the SDK of a serving replica reports it dropped (since that client started).",
    ),
    _g(
        "modelmeter_store_bytes",
        (),
        "Bytes the collector's store uses: database pages in use plus the WAL file.",
    ),
    _g("modelmeter_store_wal_bytes", (), "Size of the store's write-ahead log file."),
    _g(
        "modelmeter_store_budget_bytes",
        (),
        "Disk budget of the store (MODELMETER_STORE_BUDGET); absent when there is none.",
    ),
)


def series_bound(
    spec: ModelSpec, versions: int, replicas: int, max_categories: int = DEFAULT_MAX_CATEGORIES
) -> int:
    """The most series one model can export with ``versions`` live versions and ``replicas``
    reporting replicas (the README's cardinality formula; tests check /metrics against it).

    With ``k`` classes (0 for regression), ``F`` features, ``S`` drift statistics and ``B``
    drift bins in all (:func:`drift_bins`: of every feature and of the output), a version
    exports at most ``k**2 + 12k + F*(S + 7) + S + B + c`` series (the confusion matrix,
    per-class figures, realized, estimated and performance-window outcomes, per-feature drift
    and quality, output drift, bin counters) where ``c`` counts the fixed families and histogram
    buckets, plus 6 with multivariate drift (on and ``F >= 2``: error, lower and upper bound,
    flag, error sum and rows), plus ``(8 + 4)`` (classification) or ``(4 + 4)`` (regression) per
    segment value (:func:`segment_values`); each replica adds its CPU, memory and two dropped
    counters; the model adds its gauges, thresholds, the ``B`` reference ratios, and its ingest,
    expiry and retirement counters. ``max_categories`` is the collector's
    MODELMETER_MAX_CATEGORIES (the most bins of a categorical feature without spec categories,
    ``other`` aside).

    >>> from modelmeter.spec import load_spec
    >>> spec = load_spec(b'{"task": "binary", "classes": [0, 1], "features": '
    ...                  b'[{"name": "x", "type": "numeric"}], "reference": {"path": "r.csv"}}')
    >>> series_bound(spec, versions=1, replicas=1)
    188
    """
    k = len(spec.classes)
    n_features = len(spec.features)
    n_stats = len(DRIFT_STATISTICS)
    bins = drift_bins(spec, max_categories)
    per_version = 2 if spec.positive_class is not None else 1  # model_info, positive class
    if k:
        per_version += 3 * 4 + 3 * k  # realized, estimated, reference figures; per class
        per_version += 2 * 4 + 3  # estimate bands; shift-aware flag, AUC, effective rows
        per_version += k * k + 3 * k + 3 * k  # confusion matrix, realized, estimated outcomes
    else:
        per_version += 6  # realized, estimated and reference MAE and RMSE
    per_version += 4  # window predictions, labeled, errors; label coverage
    per_version += 1 + 3 * k  # performance window labels; its outcomes per class
    per_version += n_features * (n_stats + 1) + n_stats + 1  # drift statistics and flags
    per_version += bins  # values per bin of every feature and of the output
    if spec.has_multivariate:
        per_version += 1 + len(MULTIVARIATE_BOUNDS) + 1  # error, band, flag
        per_version += 2  # error sum, rows
    per_version += n_features * 3 * 2  # quality ratio and total, three issues per feature
    per_version += 3  # predictions, errors, unknown features
    per_value = 8 + 4 if k else 4 + 4  # realized, estimated figures; volumes, coverage
    per_version += per_value * segment_values(spec)
    per_version += len(LATENCY_BOUNDS) + 3 + len(LABEL_DELAY_BOUNDS) + 3  # buckets, sum, count
    per_replica = 2 + len(INGEST_KINDS)  # CPU, memory, dropped per kind
    per_model = 6 + len(DEFAULT_THRESHOLDS)  # windows, min_samples, pending, waiting, last
    per_model += bins  # reference ratios
    per_model += len(INGEST_KINDS) * (len(INGEST_OUTCOMES) + len(EXPIRY_REASONS))
    per_model += len(RETIREMENT_REASONS) + len(SHIFT_REFIT_OUTCOMES)
    return per_model + versions * per_version + replicas * per_replica


def drift_bins(spec: ModelSpec, max_categories: int = DEFAULT_MAX_CATEGORIES) -> int:
    """The most drift bins of a model, those of every feature and of the output: a numeric
    feature (or a regression's output) ``drift_bins + 2`` (the reference's quantile bins,
    fewer when quantiles coincide, and under- and overflow), a categorical feature its
    categories (without them: at most ``max_categories``) plus ``other``, a classifier's output
    its ``k`` classes plus ``other``.

    >>> from modelmeter.spec import load_spec
    >>> spec = load_spec(b'{"task": "multiclass", "classes": ["a", "b", "c"], "features": ['
    ...     b'{"name": "x", "type": "numeric"},'
    ...     b'{"name": "country", "type": "categorical", "categories": ["de", "fr"]},'
    ...     b'{"name": "channel", "type": "categorical"}]}')
    >>> drift_bins(spec), drift_bins(spec, max_categories=5)
    (120, 25)
    """
    total = len(spec.classes) + 1 if spec.classes else spec.drift_bins + 2
    for feature in spec.features:
        if feature.kind == "numeric":
            total += spec.drift_bins + 2
        else:
            categories = feature.categories
            total += (max_categories if categories is None else len(categories)) + 1
    return total


def segment_values(spec: ModelSpec) -> int:
    """The most segment values a version exports: per segment feature, its categories (or, when
    the reference gives its vocabulary, at most 20) plus ``other``.

    >>> from modelmeter.spec import load_spec
    >>> spec = load_spec(b'{"task": "binary", "classes": [0, 1], "features": ['
    ...     b'{"name": "country", "type": "categorical", "categories": ["de", "fr"]},'
    ...     b'{"name": "channel", "type": "categorical"}], "segments": ["country", "channel"]}')
    >>> segment_values(spec)
    24
    """
    by_name = {f.name: f for f in spec.features}
    total = 0
    for name in spec.segments:
        categories = by_name[name].categories
        total += (MAX_SEGMENT_VALUES if categories is None else len(categories)) + 1
    return total
