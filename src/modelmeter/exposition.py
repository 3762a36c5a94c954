"""Prometheus exposition: one custom Collector that reads engine snapshots at scrape time.

The collector service keeps a :class:`ModelMonitor` per (model, version). On each scrape,
:class:`ModelMetricsCollector` calls its *provider* once; the provider takes a snapshot of
every monitor under its lock and returns a :class:`CollectorState`. ``collect()`` turns that
state into fresh ``*MetricFamily`` objects: no gauge is kept between scrapes, nothing is
updated per event, and a figure that is NaN (undefined, or below ``min_samples``) is left
out rather than exported as a number.

The ``model`` label is the registered model's name; ``feature``, ``class`` and ``threshold``
labels come only from the model's spec and fixed lists here (never from the snapshot's keys
or from events), so bad traffic cannot create series. ``version`` and ``replica`` are
checked against ``[A-Za-z0-9_.:-]{1,64}``.

Example (a registry with no models yet):

>>> registry = build_registry(lambda: CollectorState(models=(), ingest={}))
>>> b"modelmeter_models 0.0" in render(registry)
True
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from modelmeter.engine.operations import LABEL_DELAY_BOUNDS, LATENCY_BOUNDS
from modelmeter.spec import DEFAULT_THRESHOLDS, MAX_SEGMENT_VALUES, ModelSpec

if TYPE_CHECKING:
    from modelmeter.engine.snapshot import ClassificationFigures, DriftFigures, Histogram, Snapshot

__all__ = [
    "CONTENT_TYPE_LATEST",
    "DRIFT_STATISTICS",
    "INGEST_KINDS",
    "INGEST_OUTCOMES",
    "METRICS",
    "CollectorState",
    "ExpositionRegistry",
    "MetricDef",
    "ModelMetricsCollector",
    "ModelState",
    "ServingResources",
    "StateProvider",
    "StoreState",
    "build_registry",
    "render",
    "segment_values",
    "series_bound",
]

LABEL_VALUE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
DRIFT_STATISTICS = ("psi", "jensen_shannon", "ks", "wasserstein", "chi2_pvalue")
QUALITY_ISSUES = {
    "numeric": ("missing", "out_of_range", "wrong_type"),
    "categorical": ("missing", "unseen_category", "wrong_type"),
}
INGEST_KINDS = ("predictions", "labels")
INGEST_OUTCOMES = ("accepted", "rejected", "duplicate", "pending", "retired")
EXPIRY_REASONS = ("ttl", "budget")
RETIREMENT_REASONS = ("capacity", "idle", "manual")
MULTIVARIATE_METHODS = ("pca",)
MULTIVARIATE_BOUNDS = ("lower", "upper")


# --------------------------------------------------------------------------- the state


@dataclass(frozen=True)
class ServingResources:
    """The last resource report of one serving replica (sent by the SDK).

    ``cpu_ratio``: CPU time per second, 1.0 = one full core; ``memory_bytes``: RSS.
    """

    cpu_ratio: float
    memory_bytes: float


@dataclass(frozen=True)
class StoreState:
    """The collector's store at scrape time: bytes in use and the budget (0 = none)."""

    database_bytes: int
    wal_bytes: int
    budget_bytes: int = 0


@dataclass(frozen=True)
class ModelState:
    """One registered model as the collector sees it at scrape time.

    Parameters
    ----------
    name
        The registered model name (the ``model`` label).
    spec
        Its :class:`~modelmeter.spec.ModelSpec`: task, classes, positive class, features,
        window, ``min_samples`` and thresholds. Every feature/class label comes from here.
    snapshots
        ``version -> Snapshot``, taken by ``ModelMonitor.snapshot(now)`` for this scrape.
    pending_labels
        Predictions in the store still waiting for a label.
    resources
        ``(version, replica) -> ServingResources``, the latest report per replica.
    waiting_labels
        Labels in the store still waiting for their prediction.
    last_prediction
        When the collector last received a prediction of the model (Unix seconds), if ever.
    dropped
        ``(replica, kind) -> count``: events the SDK of a replica reports it dropped.
    """

    name: str
    spec: ModelSpec
    snapshots: Mapping[str, Snapshot] = field(default_factory=dict)
    pending_labels: int = 0
    resources: Mapping[tuple[str, str], ServingResources] = field(default_factory=dict)
    waiting_labels: int = 0
    last_prediction: float | None = None
    dropped: Mapping[tuple[str, str], int] = field(default_factory=dict)


@dataclass(frozen=True)
class CollectorState:
    """Everything one scrape exports.

    ``models`` in the order they should appear; ``ingest`` counts ingested events,
    ``(model, kind, outcome) -> count`` with kind in :data:`INGEST_KINDS` and outcome in
    :data:`INGEST_OUTCOMES` (cumulative since the collector's store began).

    A provider fills it under the service's lock, e.g.::

        def provider() -> CollectorState:
            with lock:
                now = time.time()
                return CollectorState(
                    models=[
                        ModelState(name, entry.spec,
                                   {v: m.snapshot(now) for v, m in entry.monitors.items()},
                                   store.pending_count(name), dict(entry.resources))
                        for name, entry in registry.items()
                    ],
                    ingest=dict(ingest_counts),
                )
    """

    models: Sequence[ModelState]
    ingest: Mapping[tuple[str, str, str], int] = field(default_factory=dict)
    #: ``(model, kind, reason) -> count`` of events that expired unjoined
    expired: Mapping[tuple[str, str, str], int] = field(default_factory=dict)
    #: ``(model, reason) -> count`` of retired versions
    retired: Mapping[tuple[str, str], int] = field(default_factory=dict)
    store: StoreState | None = None


#: Returns the current :class:`CollectorState`; called once per scrape.
StateProvider = Callable[[], CollectorState]


# --------------------------------------------------------------------------- the metric table


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
    _g("model_accuracy", _MV, "Realized accuracy over the labels received in the window."),
    _g("model_precision", _MV, "Realized precision (binary: positive class; multiclass: macro)."),
    _g("model_recall", _MV, "Realized recall (binary: positive class; multiclass: macro)."),
    _g("model_f1_score", _MV, "Realized F1 score (binary: positive class; multiclass: macro)."),
    _g("model_class_precision", (*_MV, "class"), "Realized one-vs-rest precision per class."),
    _g("model_class_recall", (*_MV, "class"), "Realized one-vs-rest recall per class."),
    _g("model_class_f1_score", (*_MV, "class"), "Realized one-vs-rest F1 score per class."),
    _g("model_estimated_accuracy", _MV, "Accuracy estimated from calibrated scores (no labels)."),
    _g("model_estimated_precision", _MV, "Precision estimated from calibrated scores."),
    _g("model_estimated_recall", _MV, "Recall estimated from calibrated scores."),
    _g("model_estimated_f1_score", _MV, "F1 score estimated from calibrated scores."),
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
    _g("model_mean_absolute_error", _MV, "Realized mean absolute error in the window."),
    _g("model_root_mean_squared_error", _MV, "Realized root mean squared error in the window."),
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
    _g("model_min_samples", ("model",), "Minimum sample size below which figures are omitted."),
    _g("model_label_coverage_ratio", _MV, "Labeled fraction of the window's predictions."),
    _g("model_pending_labels", ("model",), "Stored predictions waiting for a label."),
    _g(
        "model_feature_drift",
        (*_MV, "feature", "statistic"),
        "Drift of a feature in the window against the reference data.",
    ),
    _g(
        "model_feature_drift_detected",
        (*_MV, "feature"),
        "1 if the feature drifted (Benjamini-Hochberg controlled), else 0.",
    ),
    _g("model_prediction_drift", (*_MV, "statistic"), "Drift of the model output in the window."),
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
        "Realized accuracy over the labels received in the window for the predictions of "
        "one segment value (segment: a spec segments feature; value: one of its values or "
        "other).",
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
        "model_feature_quality_issues_total",
        (*_MV, "feature", "issue"),
        "Feature values with a data-quality issue.",
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


def series_bound(spec: ModelSpec, versions: int, replicas: int) -> int:
    """The most series one model can export with ``versions`` live versions and ``replicas``
    reporting replicas (the README's cardinality formula; tests check /metrics against it).

    With ``k`` classes (0 for regression), ``F`` features and ``S`` drift statistics, a version
    exports at most ``k**2 + 6k + F*(S + 7) + S + c`` series (the confusion matrix, per-class
    figures and outcomes, per-feature drift and quality, output drift) where ``c`` counts the
    fixed families and histogram buckets, plus 4 with multivariate drift (on and ``F >= 2``:
    error, lower and upper bound, flag), plus ``(8 + 3)`` (classification) or ``(4 + 3)``
    (regression) per segment value (:func:`segment_values`); each replica adds its CPU,
    memory and two dropped counters; the model adds its gauges, thresholds and ingest, expiry
    and retirement counters.

    >>> from modelmeter.spec import load_spec
    >>> spec = load_spec(b'{"task": "binary", "classes": [0, 1], "features": '
    ...                  b'[{"name": "x", "type": "numeric"}], "reference": {"path": "r.csv"}}')
    >>> series_bound(spec, versions=1, replicas=1)
    129
    """
    k = len(spec.classes)
    n_features = len(spec.features)
    n_stats = len(DRIFT_STATISTICS)
    per_version = 2 if spec.positive_class is not None else 1  # model_info, positive class
    if k:
        per_version += 3 * 4 + 3 * k  # realized, estimated, reference figures; per class
        per_version += k * k + 3 * k  # confusion matrix, one-vs-rest outcomes
    else:
        per_version += 6  # realized, estimated and reference MAE and RMSE
    per_version += 4  # window predictions, labeled, errors; label coverage
    per_version += n_features * (n_stats + 1) + n_stats + 1  # drift statistics and flags
    if spec.has_multivariate:
        per_version += 1 + len(MULTIVARIATE_BOUNDS) + 1  # error, band, flag
    per_version += n_features * 3 * 2  # quality ratio and total, three issues per feature
    per_version += 3  # predictions, errors, unknown features
    per_value = 8 + 3 if k else 4 + 3  # realized and estimated figures; volume, coverage
    per_version += per_value * segment_values(spec)
    per_version += len(LATENCY_BOUNDS) + 3 + len(LABEL_DELAY_BOUNDS) + 3  # buckets, sum, count
    per_replica = 2 + len(INGEST_KINDS)  # CPU, memory, dropped per kind
    per_model = 5 + len(DEFAULT_THRESHOLDS)  # window, min_samples, pending, waiting, last
    per_model += len(INGEST_KINDS) * (len(INGEST_OUTCOMES) + len(EXPIRY_REASONS))
    per_model += len(RETIREMENT_REASONS)
    return per_model + versions * per_version + replicas * per_replica


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


_Scalar = GaugeMetricFamily | CounterMetricFamily
_go_float: Callable[[float], str] = floatToGoString  # the client's own `le` formatting


# --------------------------------------------------------------------------- the collector


def _finite(value: float) -> bool:
    return not math.isnan(value)


Labels = tuple[str, ...]
Buckets = tuple[tuple[str, float], ...]


class _Samples:
    """The samples of one scrape, per family, as plain ``(label values, value)`` rows.

    Scalar families map to ``[(labels, value)]``; histograms (``.histogram``) to
    ``[(labels, cumulative buckets, sum)]``. Both :meth:`ModelMetricsCollector.collect`
    (prometheus_client families) and :meth:`ModelMetricsCollector.expose` (fast text) read it.
    """

    def __init__(self) -> None:
        self.plain = True  # no label value needs escaping (no '\\', '"' or newline)
        self.scalar: dict[str, list[tuple[Labels, float]]] = {}
        self.histogram: dict[str, list[tuple[Labels, Buckets, float]]] = {}
        for d in METRICS:
            if d.type == "histogram":
                self.histogram[d.name] = []
            else:
                self.scalar[d.name] = []

    def __getitem__(self, name: str) -> list[tuple[Labels, float]]:
        return self.scalar[name]


class ModelMetricsCollector:
    """The one custom Collector of the model metrics (see :data:`METRICS`).

    ``collect()`` calls ``provider()`` once and yields fresh families built from it.
    ``expose()`` gives the same families as exposition text, byte for byte what
    ``generate_latest`` writes for them, about four times faster (see :func:`render`).
    Register it on your own ``CollectorRegistry`` (see :func:`build_registry`).

    >>> from prometheus_client import CollectorRegistry
    >>> registry = CollectorRegistry()
    >>> registry.register(ModelMetricsCollector(lambda: CollectorState(models=())))
    >>> registry.get_sample_value("modelmeter_models")
    0.0
    """

    def __init__(self, provider: StateProvider) -> None:
        self.provider = provider

    def collect(self) -> Iterator[Metric]:
        """Build every family from one state; families with no samples are still yielded."""
        samples = _gather(self.provider())
        for d in METRICS:
            if d.type == "histogram":
                histogram = HistogramMetricFamily(d.name, d.help, labels=d.labels)
                for labels, buckets, total in samples.histogram[d.name]:
                    histogram.add_metric(labels, buckets, total)
                yield histogram
                continue
            family: _Scalar
            if d.type == "counter":
                family = CounterMetricFamily(d.name, d.help, labels=d.labels)
            else:
                family = GaugeMetricFamily(d.name, d.help, labels=d.labels)
            for labels, value in samples.scalar[d.name]:
                family.add_metric(labels, value)
            yield family

    def expose(self) -> str:
        """The exposition text of one scrape (what ``generate_latest`` would write)."""
        return _format(_gather(self.provider()))


def _gather(state: CollectorState) -> _Samples:
    samples = _Samples()
    samples["modelmeter_models"].append(((), float(len(state.models))))
    registered = set()
    for model in state.models:
        registered.add(model.name)
        _add_model(samples, model)
    ingest = samples["modelmeter_ingest_events_total"]
    for (name, kind, outcome), count in state.ingest.items():
        if name in registered and kind in INGEST_KINDS and outcome in INGEST_OUTCOMES:
            ingest.append(((name, kind, outcome), float(count)))
    expired = samples["modelmeter_expired_events_total"]
    for (name, kind, reason), count in state.expired.items():
        if name in registered and kind in INGEST_KINDS and reason in EXPIRY_REASONS:
            expired.append(((name, kind, reason), float(count)))
    retired = samples["modelmeter_versions_retired_total"]
    for (name, reason), count in state.retired.items():
        if name in registered and reason in RETIREMENT_REASONS:
            retired.append(((name, reason), float(count)))
    if state.store is not None:
        store = state.store
        samples["modelmeter_store_bytes"].append(
            ((), float(store.database_bytes + store.wal_bytes))
        )
        samples["modelmeter_store_wal_bytes"].append(((), float(store.wal_bytes)))
        if store.budget_bytes > 0:
            samples["modelmeter_store_budget_bytes"].append(((), float(store.budget_bytes)))
    return samples


def _add_model(f: _Samples, model: ModelState) -> None:
    spec = model.spec
    name = model.name
    if _needs_escape(name) or any(_needs_escape(c) for c in spec.classes):
        f.plain = False  # features, versions and replicas are validated names
    f["model_window_seconds"].append(((name,), float(spec.window_seconds)))
    f["model_min_samples"].append(((name,), float(spec.min_samples)))
    f["model_pending_labels"].append(((name,), float(model.pending_labels)))
    f["model_waiting_labels"].append(((name,), float(model.waiting_labels)))
    if model.last_prediction is not None:
        f["model_last_prediction_timestamp_seconds"].append(((name,), model.last_prediction))
    dropped = f["modelmeter_client_dropped_events_total"]
    for (replica, kind), count in sorted(model.dropped.items()):
        if LABEL_VALUE.fullmatch(replica) and kind in INGEST_KINDS:
            dropped.append(((name, replica, kind), float(count)))
    thresholds = f["model_alert_threshold"]
    for threshold in DEFAULT_THRESHOLDS:
        thresholds.append(((name, threshold), float(spec.thresholds[threshold])))
    for version in sorted(model.snapshots):
        if LABEL_VALUE.fullmatch(version):
            _add_version(f, spec, (name, version), model.snapshots[version])
    cpu, memory = f["model_serving_cpu_ratio"], f["model_serving_memory_bytes"]
    for (version, replica), resources in sorted(model.resources.items()):
        if version in model.snapshots and LABEL_VALUE.fullmatch(replica):
            labels = (name, version, replica)
            if _finite(resources.cpu_ratio):
                cpu.append((labels, float(resources.cpu_ratio)))
            if _finite(resources.memory_bytes):
                memory.append((labels, float(resources.memory_bytes)))


def _add_version(f: _Samples, spec: ModelSpec, mv: Labels, snap: Snapshot) -> None:
    f["model_info"].append(((*mv, spec.task), 1.0))
    if spec.positive_class is not None:
        f["model_positive_class_info"].append(((*mv, spec.positive_class), 1.0))
    f["model_window_predictions"].append((mv, float(snap.window_predictions)))
    f["model_window_labeled_predictions"].append((mv, float(snap.window_labeled)))
    f["model_window_errors"].append((mv, float(snap.window_errors)))
    if _finite(snap.label_coverage):
        f["model_label_coverage_ratio"].append((mv, snap.label_coverage))
    if snap.realized is not None:
        _add_figures(f, "model_", mv, snap.realized)
        for cls in spec.classes:
            figures = snap.realized.per_class.get(cls)
            if figures is None:
                continue
            for metric, value in (
                ("model_class_precision", figures.precision),
                ("model_class_recall", figures.recall),
                ("model_class_f1_score", figures.f1),
            ):
                if _finite(value):
                    f[metric].append(((*mv, cls), value))
    if snap.estimated is not None:
        _add_figures(f, "model_estimated_", mv, snap.estimated)
    if snap.reference is not None:
        _add_figures(f, "model_reference_", mv, snap.reference)
    for prefix, errors in (
        ("model_", snap.regression),
        ("model_reference_", snap.reference_regression),
        ("model_estimated_", snap.estimated_regression),
    ):
        if errors is not None:
            if _finite(errors.mae):
                f[prefix + "mean_absolute_error"].append((mv, errors.mae))
            if _finite(errors.rmse):
                f[prefix + "root_mean_squared_error"].append((mv, errors.rmse))
    _add_drift(f, spec, mv, snap)
    _add_segments(f, spec, mv, snap)
    _add_quality(f, spec, mv, snap)
    _add_counters(f, spec, mv, snap)
    _add_histogram(f.histogram["model_prediction_latency_seconds"], mv, snap.latency)
    _add_histogram(f.histogram["model_label_delay_seconds"], mv, snap.label_delay)


def _add_figures(f: _Samples, prefix: str, mv: Labels, figures: ClassificationFigures) -> None:
    for metric, value in (
        ("accuracy", figures.accuracy),
        ("precision", figures.precision),
        ("recall", figures.recall),
        ("f1_score", figures.f1),
    ):
        if _finite(value):
            f[prefix + metric].append((mv, value))


def _add_segments(f: _Samples, spec: ModelSpec, mv: Labels, snap: Snapshot) -> None:
    """Per segment value: its figures (absent below ``min_samples``), volume and coverage.
    Values are the engine's vocabulary (spec or reference) plus ``other``, never traffic's."""
    for segment in spec.segments:
        values = snap.segments.get(segment)
        if values is None:
            continue
        for value, figures in values.items():
            if _needs_escape(value):
                f.plain = False
            labels = (*mv, segment, value)
            f["model_segment_window_predictions"].append((labels, float(figures.predictions)))
            f["model_segment_window_labeled_predictions"].append((labels, float(figures.labeled)))
            if _finite(figures.label_coverage):
                f["model_segment_label_coverage_ratio"].append((labels, figures.label_coverage))
            for prefix, classification in (
                ("model_segment_", figures.realized),
                ("model_segment_estimated_", figures.estimated),
            ):
                if classification is not None:
                    _add_figures(f, prefix, labels, classification)
            for prefix, errors in (
                ("model_segment_", figures.regression),
                ("model_segment_estimated_", figures.estimated_regression),
            ):
                if errors is not None:
                    if _finite(errors.mae):
                        f[prefix + "mean_absolute_error"].append((labels, errors.mae))
                    if _finite(errors.rmse):
                        f[prefix + "root_mean_squared_error"].append((labels, errors.rmse))


def _drift_values(drift: DriftFigures) -> tuple[float, ...]:
    return (drift.psi, drift.jensen_shannon, drift.ks, drift.wasserstein, drift.chi2_pvalue)


def _add_drift(f: _Samples, spec: ModelSpec, mv: Labels, snap: Snapshot) -> None:
    statistics = f["model_feature_drift"]
    detected = f["model_feature_drift_detected"]
    enough = False
    for feature in spec.features:
        drift = snap.drift.get(feature.name)
        if drift is None:
            continue
        labels = (*mv, feature.name)
        for statistic, value in zip(DRIFT_STATISTICS, _drift_values(drift), strict=True):
            if _finite(value):
                statistics.append(((*labels, statistic), value))
        if drift.samples >= snap.min_samples:
            enough = True
            detected.append((labels, 1.0 if drift.drifted else 0.0))
    output = snap.prediction_drift
    for statistic, value in zip(DRIFT_STATISTICS, _drift_values(output), strict=True):
        if _finite(value):
            f["model_prediction_drift"].append(((*mv, statistic), value))
    if enough or output.samples >= snap.min_samples:
        f["model_drift_detected"].append((mv, 1.0 if snap.drift_detected else 0.0))
    multivariate = snap.multivariate
    if (
        multivariate is not None
        and spec.has_multivariate
        and multivariate.method in MULTIVARIATE_METHODS
        and multivariate.samples >= snap.min_samples
        and _finite(multivariate.error)
    ):
        labels = (*mv, multivariate.method)
        f["model_multivariate_drift"].append((labels, multivariate.error))
        for bound, value in zip(
            MULTIVARIATE_BOUNDS, (multivariate.lower, multivariate.upper), strict=True
        ):
            f["model_multivariate_drift_threshold"].append(((*labels, bound), value))
        f["model_multivariate_drift_detected"].append((mv, 1.0 if multivariate.drifted else 0.0))


def _add_quality(f: _Samples, spec: ModelSpec, mv: Labels, snap: Snapshot) -> None:
    ratio_rows = f["model_feature_quality_ratio"]
    total_rows = f["model_feature_quality_issues_total"]
    for feature in spec.features:
        ratios = snap.quality_window_ratio.get(feature.name, {})
        totals = snap.quality_total.get(feature.name, {})
        for issue in QUALITY_ISSUES[feature.kind]:
            labels = (*mv, feature.name, issue)
            ratio = ratios.get(issue)
            if ratio is not None and _finite(ratio):
                ratio_rows.append((labels, ratio))
            total = totals.get(issue)
            if total is not None:
                total_rows.append((labels, float(total)))


def _add_counters(f: _Samples, spec: ModelSpec, mv: Labels, snap: Snapshot) -> None:
    f["model_predictions_total"].append((mv, float(snap.predictions_total)))
    f["model_prediction_errors_total"].append((mv, float(snap.errors_total)))
    f["model_unknown_features_total"].append((mv, float(snap.unknown_features_total)))
    if not spec.classes:
        return
    confusion = snap.confusion_total
    labeled = f["model_labeled_predictions_total"]
    predicted_sums = dict.fromkeys(spec.classes, 0)
    actual_sums = dict.fromkeys(spec.classes, 0)
    for predicted in spec.classes:
        for actual in spec.classes:
            count = confusion.get((predicted, actual), 0)
            predicted_sums[predicted] += count
            actual_sums[actual] += count
            labeled.append(((*mv, predicted, actual), float(count)))
    outcomes = f["model_classification_outcomes_total"]
    for cls in spec.classes:
        tp = confusion.get((cls, cls), 0)
        outcomes.append(((*mv, cls, "tp"), float(tp)))
        outcomes.append(((*mv, cls, "fp"), float(predicted_sums[cls] - tp)))
        outcomes.append(((*mv, cls, "fn"), float(actual_sums[cls] - tp)))


def _add_histogram(
    rows: list[tuple[Labels, Buckets, float]], mv: Labels, histogram: Histogram
) -> None:
    buckets: list[tuple[str, float]] = []
    cumulative = 0
    for bound, count in zip(histogram.bounds, histogram.counts[:-1], strict=True):
        cumulative += count
        buckets.append((_go_float(bound), float(cumulative)))
    buckets.append(("+Inf", float(cumulative + histogram.counts[-1])))
    rows.append((mv, tuple(buckets), float(histogram.sum)))


# --------------------------------------------------------------------------- fast text


class _Escaped(dict[str, str]):
    """Label value -> escaped text, computed once per value and scrape."""

    def __missing__(self, value: str) -> str:
        escaped = value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
        self[value] = escaped
        return escaped


class _GoFloats(dict[float, str]):
    """Sample value -> text as the client writes it (``floatToGoString``), memoised."""

    def __missing__(self, value: float) -> str:
        text = _go_float(value)
        if value == value:  # NaN never matches itself: do not store it
            self[value] = text
        return text


def _template(sample_name: str, names: Sequence[str]) -> tuple[str, Callable[[Labels], Labels]]:
    """``'name{a="%s",b="%s"} %s\\n'`` with label names sorted as the client sorts them,
    and a function that puts a row's label values in that order."""
    order = sorted(range(len(names)), key=names.__getitem__)
    if not names:
        return sample_name + " %s\n", lambda labels: ()
    inner = ",".join(f'{names[i]}="%s"' for i in order)
    if len(order) == 1:
        return f"{sample_name}{{{inner}}} %s\n", lambda labels: labels
    return f"{sample_name}{{{inner}}} %s\n", itemgetter(*order)


def _needs_escape(value: str) -> bool:
    return "\\" in value or '"' in value or "\n" in value


def _format(samples: _Samples) -> str:
    """Exposition text equal to ``generate_latest`` on the families of ``samples``."""
    escaped = _Escaped()
    go = _GoFloats()
    out: list[str] = []
    for d in METRICS:
        help_text = d.help.replace("\\", r"\\").replace("\n", r"\n")
        out.append(f"# HELP {d.name} {help_text}\n# TYPE {d.name} {d.type}\n")
        if d.type == "histogram":
            _format_histogram(out, d, samples.histogram[d.name], escaped, go)
            continue
        template, ordered = _template(d.name, d.labels)
        rows = samples.scalar[d.name]
        if samples.plain:  # no label value needs escaping: the hot path
            out.extend([template % (*ordered(labels), go[value]) for labels, value in rows])
        else:
            out.extend(
                template % (*map(escaped.__getitem__, ordered(labels)), go[value])
                for labels, value in rows
            )
    return "".join(out)


def _format_histogram(
    out: list[str],
    d: MetricDef,
    rows: list[tuple[Labels, Buckets, float]],
    escaped: _Escaped,
    go: _GoFloats,
) -> None:
    bucket, bucket_order = _template(d.name + "_bucket", (*d.labels, "le"))
    count, ordered = _template(d.name + "_count", d.labels)
    total, _ = _template(d.name + "_sum", d.labels)
    for labels, buckets, sum_value in rows:
        values = tuple(map(escaped.__getitem__, labels))
        for bound, cumulative in buckets:
            out.append(bucket % (*bucket_order((*values, bound)), go[cumulative]))
        out.append(count % (*ordered(values), go[buckets[-1][1]]))
        out.append(total % (*ordered(values), go[sum_value]))


# --------------------------------------------------------------------------- registry


class ExpositionRegistry(CollectorRegistry):
    """The collector's registry: the model metrics first, then everything else.

    ``models`` is the :class:`ModelMetricsCollector`; ``runtime`` is an inner registry with
    the ``process_*`` and ``python_info`` collectors, and with any collector registered
    later. ``generate_latest(registry)`` works as usual; :func:`render` is faster.
    """

    def __init__(self, provider: StateProvider) -> None:
        super().__init__(auto_describe=False)
        self.models = ModelMetricsCollector(provider)
        self.runtime = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self.runtime)
        PlatformCollector(registry=self.runtime)
        super().register(self.models)
        super().register(self.runtime)

    def register(self, collector: Collector) -> None:
        """Add a collector after the model metrics (to ``runtime``)."""
        self.runtime.register(collector)

    def unregister(self, collector: Collector) -> None:
        """Remove a collector added with :meth:`register`."""
        self.runtime.unregister(collector)


def build_registry(provider: StateProvider) -> ExpositionRegistry:
    """A new registry with the model metrics, ``process_*`` and ``python_info``.

    Never touches the global ``REGISTRY``: each collector app (and each test) has its own.

    >>> registry = build_registry(lambda: CollectorState(models=()))
    >>> registry.get_sample_value("process_resident_memory_bytes") > 0
    True
    """
    return ExpositionRegistry(provider)


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition (``CONTENT_TYPE_LATEST``) of ``registry``.

    For an :class:`ExpositionRegistry` the model metrics are written by
    :meth:`ModelMetricsCollector.expose` (the same bytes as ``generate_latest``, faster);
    any other registry goes through ``generate_latest``.
    """
    if isinstance(registry, ExpositionRegistry):
        return registry.models.expose().encode("utf-8") + generate_latest(registry.runtime)
    return generate_latest(registry)
