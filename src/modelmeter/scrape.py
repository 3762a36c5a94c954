"""One scrape's data: the collector's state (plain data) and the sample rows built from it.

:func:`gather` turns a :class:`CollectorState` into plain ``(label values, value)`` rows per
family of :data:`~modelmeter.metric_table.METRICS`, which
:mod:`modelmeter.exposition` writes as families or as exposition text. A figure that is NaN
(undefined, or below ``min_samples``) is left out rather than exported as a number.

The ``model`` label is the registered model's name; ``feature``, ``class`` and ``threshold``
labels come only from the model's spec and the fixed lists of the metric table (never from the
snapshot's keys or from events), and ``bin`` labels from the engine's drift bins (fitted on the
spec and its reference data), so bad traffic cannot create series. ``version`` and
``replica`` are checked with :func:`modelmeter.names.is_name`.

The counters of a model spread over several collectors (bin observations, estimated outcomes,
reconstruction sums) are exported for every bin and class from the version's first
prediction, at 0 until something is counted, so that a difference over a window is defined;
the reference ratios are the model's (one copy, from its first version's snapshot).

This module knows nothing of the service: a replica's resources and the store's size are
read through :class:`ResourceFigures` and :class:`StoreFigures` (any object with those
attributes, e.g. the service's ``ServingResources`` and ``StoreState``).

>>> samples = gather(CollectorState(models=()))
>>> samples["modelmeter_models"], samples.plain
([((), 0.0)], True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from prometheus_client.utils import floatToGoString

from modelmeter.metric_table import (
    DRIFT_STATISTICS,
    EXPIRY_REASONS,
    INGEST_KINDS,
    INGEST_OUTCOMES,
    METRICS,
    MULTIVARIATE_BOUNDS,
    MULTIVARIATE_METHODS,
    QUALITY_ISSUES,
    RETIREMENT_REASONS,
    SHIFT_REFIT_OUTCOMES,
)
from modelmeter.names import is_name
from modelmeter.spec import DEFAULT_THRESHOLDS, ModelSpec

if TYPE_CHECKING:
    from modelmeter.engine.snapshot import (
        ClassificationFigures,
        DriftFigures,
        Histogram,
        RegressionFigures,
        Snapshot,
    )

__all__ = [
    "Buckets",
    "CollectorState",
    "Labels",
    "ModelState",
    "ResourceFigures",
    "Samples",
    "StateProvider",
    "StoreFigures",
    "gather",
    "go_float",
]

Labels = tuple[str, ...]
Buckets = tuple[tuple[str, float], ...]
#: A sample value or bucket bound as the Prometheus client writes it.
go_float: Callable[[float], str] = floatToGoString


# --------------------------------------------------------------------------- the state


class ResourceFigures(Protocol):
    """The last resource report of one serving replica: ``cpu_ratio`` (CPU time per second,
    1.0 = one full core) and ``memory_bytes`` (RSS); NaN when not reported."""

    @property
    def cpu_ratio(self) -> float: ...

    @property
    def memory_bytes(self) -> float: ...


class StoreFigures(Protocol):
    """The collector's store at scrape time: bytes in use and the budget (0 = none)."""

    @property
    def database_bytes(self) -> int: ...

    @property
    def wal_bytes(self) -> int: ...

    @property
    def budget_bytes(self) -> int: ...


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
        ``(version, replica) -> ResourceFigures``, the latest report per replica.
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
    resources: Mapping[tuple[str, str], ResourceFigures] = field(default_factory=dict)
    waiting_labels: int = 0
    last_prediction: float | None = None
    dropped: Mapping[tuple[str, str], int] = field(default_factory=dict)


@dataclass(frozen=True)
class CollectorState:
    """Everything one scrape exports.

    ``models`` in the order they should appear; ``ingest`` counts ingested events,
    ``(model, kind, outcome) -> count`` with kind in :data:`INGEST_KINDS` and outcome in
    :data:`INGEST_OUTCOMES` (since the collector process started: a restart resets them).

    The service's hub fills it under its lock (``Hub.state``), once per scrape.
    """

    models: Sequence[ModelState]
    ingest: Mapping[tuple[str, str, str], int] = field(default_factory=dict)
    #: ``(model, kind, reason) -> count`` of events that expired unjoined
    expired: Mapping[tuple[str, str, str], int] = field(default_factory=dict)
    #: ``(model, reason) -> count`` of retired versions
    retired: Mapping[tuple[str, str], int] = field(default_factory=dict)
    #: ``(model, outcome) -> count`` of shift-aware refits
    refits: Mapping[tuple[str, str], int] = field(default_factory=dict)
    store: StoreFigures | None = None


#: Returns the current :class:`CollectorState`; called once per scrape.
StateProvider = Callable[[], CollectorState]


# --------------------------------------------------------------------------- the samples


def _finite(value: float) -> bool:
    return not math.isnan(value)


def _needs_escape(value: str) -> bool:
    return "\\" in value or '"' in value or "\n" in value


class Samples:
    """The samples of one scrape, per family, as plain ``(label values, value)`` rows.

    Scalar families map to ``[(labels, value)]``; histograms (``.histogram``) to
    ``[(labels, cumulative buckets, sum)]``. ``plain``: no label value needs escaping.
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


def gather(state: CollectorState) -> Samples:
    """The sample rows of one scrape of ``state``."""
    samples = Samples()
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
    refits = samples["modelmeter_shift_refits_total"]
    for (name, outcome), count in state.refits.items():
        if name in registered and outcome in SHIFT_REFIT_OUTCOMES:
            refits.append(((name, outcome), float(count)))
    if state.store is not None:
        store = state.store
        samples["modelmeter_store_bytes"].append(
            ((), float(store.database_bytes + store.wal_bytes))
        )
        samples["modelmeter_store_wal_bytes"].append(((), float(store.wal_bytes)))
        if store.budget_bytes > 0:
            samples["modelmeter_store_budget_bytes"].append(((), float(store.budget_bytes)))
    return samples


def _add_model(f: Samples, model: ModelState) -> None:
    spec = model.spec
    name = model.name
    if _needs_escape(name) or any(_needs_escape(c) for c in spec.classes):
        f.plain = False  # features, versions and replicas are validated names
    f["model_window_seconds"].append(((name,), float(spec.window_seconds)))
    f["model_performance_window_seconds"].append(((name,), float(spec.performance_window_seconds)))
    f["model_min_samples"].append(((name,), float(spec.min_samples)))
    f["model_pending_labels"].append(((name,), float(model.pending_labels)))
    f["model_waiting_labels"].append(((name,), float(model.waiting_labels)))
    if model.last_prediction is not None:
        f["model_last_prediction_timestamp_seconds"].append(((name,), model.last_prediction))
    dropped = f["modelmeter_client_dropped_events_total"]
    for (replica, kind), count in sorted(model.dropped.items()):
        if is_name("replica", replica) and kind in INGEST_KINDS:
            dropped.append(((name, replica, kind), float(count)))
    thresholds = f["model_alert_threshold"]
    for threshold in DEFAULT_THRESHOLDS:
        thresholds.append(((name, threshold), float(spec.thresholds[threshold])))
    versions = [v for v in sorted(model.snapshots) if is_name("version", v)]
    for version in versions:
        _add_version(f, spec, (name, version), model.snapshots[version])
    if versions:  # every version's monitor has the spec's bins: the first one's will do
        _add_reference(f, spec, name, model.snapshots[versions[0]])
    cpu, memory = f["model_serving_cpu_ratio"], f["model_serving_memory_bytes"]
    for (version, replica), resources in sorted(model.resources.items()):
        if version in model.snapshots and is_name("replica", replica):
            labels = (name, version, replica)
            if _finite(resources.cpu_ratio):
                cpu.append((labels, float(resources.cpu_ratio)))
            if _finite(resources.memory_bytes):
                memory.append((labels, float(resources.memory_bytes)))


def _add_version(f: Samples, spec: ModelSpec, mv: Labels, snap: Snapshot) -> None:
    f["model_info"].append(((*mv, spec.task), 1.0))
    if spec.positive_class is not None:
        f["model_positive_class_info"].append(((*mv, spec.positive_class), 1.0))
    f["model_window_predictions"].append((mv, float(snap.window_predictions)))
    f["model_window_labeled_predictions"].append((mv, float(snap.window_labeled)))
    f["model_window_errors"].append((mv, float(snap.window_errors)))
    f["model_performance_window_labels"].append((mv, float(snap.performance_labels)))
    if spec.classes:
        performance = f["model_performance_window_outcomes"]
        for labels, count in _outcomes(mv, spec.classes, snap.performance_confusion):
            performance.append((labels, count))
    if _finite(snap.label_coverage):
        f["model_label_coverage_ratio"].append((mv, snap.label_coverage))
    if snap.realized is not None:
        _add_figures(f, "model_", mv, snap.realized)
        for cls in spec.classes:
            figures = snap.realized.per_class.get(cls)
            if figures is not None:
                _add_finite(
                    f,
                    (*mv, cls),
                    ("model_class_precision", figures.precision),
                    ("model_class_recall", figures.recall),
                    ("model_class_f1_score", figures.f1),
                )
    _add_figures(f, "model_estimated_", mv, snap.estimated)
    if snap.estimated is not None:
        _add_figures(f, "model_estimated_", mv, snap.estimated_lower, "_lower")
        _add_figures(f, "model_estimated_", mv, snap.estimated_upper, "_upper")
        f["model_estimation_shift_aware"].append((mv, float(snap.estimation_shift_aware)))
        _add_finite(
            f,
            mv,
            ("model_estimation_shift_auc", snap.estimation_auc),
            ("model_estimation_effective_reference_rows", snap.estimation_effective_rows),
        )
    _add_figures(f, "model_reference_", mv, snap.reference)
    _add_errors(f, "model_", mv, snap.regression)
    _add_errors(f, "model_reference_", mv, snap.reference_regression)
    _add_errors(f, "model_estimated_", mv, snap.estimated_regression)
    _add_drift(f, spec, mv, snap)
    _add_segments(f, spec, mv, snap)
    _add_quality(f, spec, mv, snap)
    _add_counters(f, spec, mv, snap)
    _add_bins(f, spec, mv, snap)
    _add_histogram(f.histogram["model_prediction_latency_seconds"], mv, snap.latency)
    _add_histogram(f.histogram["model_label_delay_seconds"], mv, snap.label_delay)


def _add_finite(f: Samples, labels: Labels, *values: tuple[str, float]) -> None:
    """``(family, value)`` samples with ``labels``, the NaN ones left out."""
    for metric, value in values:
        if _finite(value):
            f[metric].append((labels, value))


def _add_figures(
    f: Samples,
    prefix: str,
    labels: Labels,
    figures: ClassificationFigures | None,
    suffix: str = "",
) -> None:
    if figures is not None:
        _add_finite(
            f,
            labels,
            (prefix + "accuracy" + suffix, figures.accuracy),
            (prefix + "precision" + suffix, figures.precision),
            (prefix + "recall" + suffix, figures.recall),
            (prefix + "f1_score" + suffix, figures.f1),
        )


def _add_errors(f: Samples, prefix: str, labels: Labels, errors: RegressionFigures | None) -> None:
    if errors is not None:
        _add_finite(
            f,
            labels,
            (prefix + "mean_absolute_error", errors.mae),
            (prefix + "root_mean_squared_error", errors.rmse),
        )


def _add_segments(f: Samples, spec: ModelSpec, mv: Labels, snap: Snapshot) -> None:
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
            f["model_segment_performance_window_labels"].append(
                (labels, float(figures.performance_labels))
            )
            if _finite(figures.label_coverage):
                f["model_segment_label_coverage_ratio"].append((labels, figures.label_coverage))
            _add_figures(f, "model_segment_", labels, figures.realized)
            _add_figures(f, "model_segment_estimated_", labels, figures.estimated)
            _add_errors(f, "model_segment_", labels, figures.regression)
            _add_errors(f, "model_segment_estimated_", labels, figures.estimated_regression)


def _drift_values(drift: DriftFigures) -> tuple[float, ...]:
    return (drift.psi, drift.jensen_shannon, drift.ks, drift.wasserstein, drift.chi2_pvalue)


def _add_drift(f: Samples, spec: ModelSpec, mv: Labels, snap: Snapshot) -> None:
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


def _add_quality(f: Samples, spec: ModelSpec, mv: Labels, snap: Snapshot) -> None:
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


def _add_counters(f: Samples, spec: ModelSpec, mv: Labels, snap: Snapshot) -> None:
    f["model_predictions_total"].append((mv, float(snap.predictions_total)))
    f["model_prediction_errors_total"].append((mv, float(snap.errors_total)))
    f["model_unknown_features_total"].append((mv, float(snap.unknown_features_total)))
    if not spec.classes:
        return
    confusion = snap.confusion_total
    labeled = f["model_labeled_predictions_total"]
    for predicted in spec.classes:
        for actual in spec.classes:
            count = confusion.get((predicted, actual), 0)
            labeled.append(((*mv, predicted, actual), float(count)))
    f["model_classification_outcomes_total"].extend(_outcomes(mv, spec.classes, confusion))
    expected = snap.expected_total
    if expected:  # scores in the reference: the expected confusion E[predicted, actual]
        estimated = f["model_estimated_outcomes_total"]
        for cls in spec.classes:
            tp_value = expected.get((cls, cls), 0.0)
            fp = math.fsum(expected.get((cls, a), 0.0) for a in spec.classes if a != cls)
            fn = math.fsum(expected.get((p, cls), 0.0) for p in spec.classes if p != cls)
            estimated.append(((*mv, cls, "tp"), tp_value))
            estimated.append(((*mv, cls, "fp"), fp))
            estimated.append(((*mv, cls, "fn"), fn))


def _outcomes(
    mv: Labels, classes: Sequence[str], confusion: Mapping[tuple[str, str], float]
) -> list[tuple[Labels, float]]:
    """One-vs-rest ``(class, tp | fp | fn)`` samples of a (predicted, actual) -> count matrix."""
    out: list[tuple[Labels, float]] = []
    for cls in classes:
        tp = confusion.get((cls, cls), 0)
        fp = sum(confusion.get((cls, a), 0) for a in classes if a != cls)
        fn = sum(confusion.get((p, cls), 0) for p in classes if p != cls)
        out.extend((((*mv, cls, "tp"), float(tp)), ((*mv, cls, "fp"), float(fp))))
        out.append(((*mv, cls, "fn"), float(fn)))
    return out


def _add_bins(f: Samples, spec: ModelSpec, mv: Labels, snap: Snapshot) -> None:
    """Values per drift bin of every feature and of the output; reconstruction sums."""
    rows = f["model_feature_bin_observations_total"]
    for feature in spec.features:
        bins = snap.feature_bins.get(feature.name)
        if bins is None:
            continue
        if feature.kind == "categorical" and any(map(_needs_escape, bins.labels)):
            f.plain = False
        rows.extend(
            ((*mv, feature.name, b), c) for b, c in zip(bins.labels, bins.counts, strict=True)
        )
    output = snap.prediction_bins
    if output is not None:  # classes: checked for escapes with the model
        f["model_prediction_bin_observations_total"].extend(
            ((*mv, b), c) for b, c in zip(output.labels, output.counts, strict=True)
        )
    multivariate = snap.multivariate
    if multivariate is not None and spec.has_multivariate:
        f["model_multivariate_reconstruction_error_sum_total"].append(
            (mv, multivariate.error_total)
        )
        f["model_multivariate_reconstruction_rows_total"].append(
            (mv, float(multivariate.rows_total))
        )


def _add_reference(f: Samples, spec: ModelSpec, name: str, snap: Snapshot) -> None:
    """The reference's fraction in each drift bin (NaN ones, of an empty reference, left out)."""
    rows = f["model_feature_reference_ratio"]
    for feature in spec.features:
        bins = snap.feature_bins.get(feature.name)
        if bins is not None:
            rows.extend(
                ((name, feature.name, b), p)
                for b, p in zip(bins.labels, bins.reference, strict=True)
                if _finite(p)
            )
    output = snap.prediction_bins
    if output is not None:
        f["model_prediction_reference_ratio"].extend(
            ((name, b), p)
            for b, p in zip(output.labels, output.reference, strict=True)
            if _finite(p)
        )


def _add_histogram(
    rows: list[tuple[Labels, Buckets, float]], mv: Labels, histogram: Histogram
) -> None:
    buckets: list[tuple[str, float]] = []
    cumulative = 0
    for bound, count in zip(histogram.bounds, histogram.counts[:-1], strict=True):
        cumulative += count
        buckets.append((go_float(bound), float(cumulative)))
    buckets.append(("+Inf", float(cumulative + histogram.counts[-1])))
    rows.append((mv, tuple(buckets), float(histogram.sum)))
