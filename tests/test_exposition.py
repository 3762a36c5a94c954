"""Exposition: golden /metrics text from real monitors fed with real data, checked against
the snapshots, scikit-learn, and ``promtool check metrics``."""

# ruff: noqa: E501  (the golden exposition lines are longer than 100 characters)

from __future__ import annotations

import dataclasses
import math
import subprocess
import time

import numpy as np
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
)

from exposition_support import (
    LABELED,
    NOW,
    T0,
    Scenario,
    breast_cancer_model,
    lines,
    make_scenario,
    sample_value,
)
from helpers import require_binary
from modelmeter.engine import ModelMonitor, PredictionBatch
from modelmeter.exposition import (
    METRICS,
    CollectorState,
    ExpositionRegistry,
    MetricDef,
    ModelMetricsCollector,
    ModelState,
    build_registry,
    render,
    series_bound,
)
from modelmeter.metric_table import DRIFT_STATISTICS
from modelmeter.spec import load_reference


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return make_scenario()


@pytest.fixture
def registry(scenario: Scenario) -> ExpositionRegistry:
    return build_registry(scenario.state)


# --------------------------------------------------------------------------- golden text

# model_reference_*: examples/binary-reference.csv (228 rows) scored by scikit-learn, positive
# class malignant: accuracy 217/228, precision 79/84, recall 79/85, F1 158/169.
GOLDEN = """\
modelmeter_models 1.0
model_info{model="cancer",task="binary",version="v1"} 1.0
model_positive_class_info{class="malignant",model="cancer",version="v1"} 1.0
model_reference_accuracy{model="cancer",version="v1"} 0.9517543859649122
model_reference_precision{model="cancer",version="v1"} 0.9404761904761905
model_reference_recall{model="cancer",version="v1"} 0.9294117647058824
model_reference_f1_score{model="cancer",version="v1"} 0.9349112426035503
model_window_predictions{model="cancer",version="v1"} 569.0
model_window_labeled_predictions{model="cancer",version="v1"} 400.0
model_window_seconds{model="cancer"} 300.0
model_min_samples{model="cancer"} 100.0
model_pending_labels{model="cancer"} 169.0
model_alert_threshold{model="cancer",threshold="accuracy_warning"} 0.9
model_alert_threshold{model="cancer",threshold="accuracy_critical"} 0.8
model_alert_threshold{model="cancer",threshold="error_rate"} 0.1
model_alert_threshold{model="cancer",threshold="latency_p95_seconds"} 0.25
model_alert_threshold{model="cancer",threshold="cpu_ratio"} 0.85
model_alert_threshold{model="cancer",threshold="memory_bytes"} 7.86432e+08
model_alert_threshold{model="cancer",threshold="drift_psi"} 0.2
model_alert_threshold{model="cancer",threshold="prediction_drift_psi"} 0.2
model_alert_threshold{model="cancer",threshold="quality_ratio"} 0.05
model_alert_threshold{model="cancer",threshold="estimated_accuracy"} 0.8
model_alert_threshold{model="cancer",threshold="label_coverage"} 0.5
model_alert_threshold{model="cancer",threshold="rejected_ratio"} 0.05
model_alert_threshold{model="cancer",threshold="silence_seconds"} 900.0
model_predictions_total{model="cancer",version="v1"} 569.0
model_labeled_predictions_total{actual_class="benign",model="cancer",predicted_class="benign",version="v1"} 222.0
model_labeled_predictions_total{actual_class="malignant",model="cancer",predicted_class="benign",version="v1"} 23.0
model_labeled_predictions_total{actual_class="benign",model="cancer",predicted_class="malignant",version="v1"} 5.0
model_labeled_predictions_total{actual_class="malignant",model="cancer",predicted_class="malignant",version="v1"} 150.0
model_classification_outcomes_total{class="benign",model="cancer",outcome="tp",version="v1"} 222.0
model_classification_outcomes_total{class="benign",model="cancer",outcome="fp",version="v1"} 23.0
model_classification_outcomes_total{class="benign",model="cancer",outcome="fn",version="v1"} 5.0
model_classification_outcomes_total{class="malignant",model="cancer",outcome="tp",version="v1"} 150.0
model_classification_outcomes_total{class="malignant",model="cancer",outcome="fp",version="v1"} 5.0
model_classification_outcomes_total{class="malignant",model="cancer",outcome="fn",version="v1"} 23.0
model_label_delay_seconds_bucket{le="1.0",model="cancer",version="v1"} 0.0
model_label_delay_seconds_bucket{le="5.0",model="cancer",version="v1"} 0.0
model_label_delay_seconds_bucket{le="10.0",model="cancer",version="v1"} 0.0
model_label_delay_seconds_bucket{le="30.0",model="cancer",version="v1"} 0.0
model_label_delay_seconds_bucket{le="60.0",model="cancer",version="v1"} 0.0
model_label_delay_seconds_bucket{le="120.0",model="cancer",version="v1"} 160.0
model_label_delay_seconds_bucket{le="300.0",model="cancer",version="v1"} 400.0
model_label_delay_seconds_bucket{le="900.0",model="cancer",version="v1"} 400.0
model_label_delay_seconds_bucket{le="1800.0",model="cancer",version="v1"} 400.0
model_label_delay_seconds_bucket{le="3600.0",model="cancer",version="v1"} 400.0
model_label_delay_seconds_bucket{le="7200.0",model="cancer",version="v1"} 400.0
model_label_delay_seconds_bucket{le="21600.0",model="cancer",version="v1"} 400.0
model_label_delay_seconds_bucket{le="43200.0",model="cancer",version="v1"} 400.0
model_label_delay_seconds_bucket{le="86400.0",model="cancer",version="v1"} 400.0
model_label_delay_seconds_bucket{le="259200.0",model="cancer",version="v1"} 400.0
model_label_delay_seconds_bucket{le="604800.0",model="cancer",version="v1"} 400.0
model_label_delay_seconds_bucket{le="+Inf",model="cancer",version="v1"} 400.0
model_label_delay_seconds_count{model="cancer",version="v1"} 400.0
model_label_delay_seconds_sum{model="cancer",version="v1"} 50025.0
modelmeter_ingest_events_total{kind="predictions",model="cancer",outcome="accepted"} 569.0
modelmeter_ingest_events_total{kind="labels",model="cancer",outcome="accepted"} 400.0
"""


def test_golden_lines(registry: ExpositionRegistry) -> None:
    body = render(registry).decode()
    golden_lines = GOLDEN.splitlines()
    families = dict.fromkeys(line.split("{")[0].split(" ")[0] for line in golden_lines)
    wanted = {
        "model_window_labeled_predictions",
        "model_label_delay_seconds_bucket",
        "model_label_delay_seconds_count",
        "model_label_delay_seconds_sum",
    }
    got = [line for family in families for line in lines(body, family)]
    assert [line for line in got if 'version="v2"' not in line] == golden_lines  # v2: see below
    assert wanted <= set(families)


def test_every_family_is_present_with_help_and_type(registry: ExpositionRegistry) -> None:
    body = render(registry).decode()
    for d in METRICS:
        assert f"# HELP {d.name} " in body, d.name
        assert f"# TYPE {d.name} {d.type}\n" in body, d.name
    parsed = {family.name: family for family in text_string_to_metric_families(body)}
    for d in METRICS:
        name = d.name.removesuffix("_total") if d.type == "counter" else d.name
        assert parsed[name].documentation, name
        assert parsed[name].type == d.type
        for sample in parsed[name].samples:
            assert set(sample.labels) - {"le"} == set(d.labels), sample
    assert parsed["process_resident_memory_bytes"].samples[0].value > 0
    assert "python_info" in parsed
    # these families have samples in this scenario (the model is binary with scores and labels)
    empty = {d.name for d in METRICS if not lines(body, _sample_name(d))}
    assert empty == {
        "model_mean_absolute_error",
        "model_root_mean_squared_error",
        "model_reference_mean_absolute_error",
        "model_reference_root_mean_squared_error",
        "model_estimated_mean_absolute_error",
        "model_estimated_root_mean_squared_error",
        # no shift-aware refit ran (the collector schedules them; tests/test_shift_e2e.py)
        "model_estimation_shift_auc",
        "model_estimation_effective_reference_rows",
        "modelmeter_shift_refits_total",
        # this model declares no segments (tests/test_engine_segments.py exports them)
        *(d.name for d in METRICS if d.name.startswith("model_segment_")),
    }


def test_series_of_a_model_stay_within_the_stated_bound(scenario: Scenario) -> None:
    """The README's cardinality formula bounds what a model exports, and nearly reaches it
    for a version with every figure (v1 here: scores, labels, latency, drift, quality)."""
    full = scenario.state(snapshots={"v1": scenario.monitor.snapshot(NOW)})
    body = render(build_registry(lambda: full)).decode()
    series = [
        line for line in body.splitlines() if not line.startswith("#") and 'model="cancer"' in line
    ]
    bound = series_bound(scenario.spec, versions=1, replicas=1)
    assert len(series) <= bound
    # what the bound counts and this state lacks: per-class figures and drift statistics a
    # binary model with numeric features has no value for (chi-square p-value), and 1 of
    # the 2 dropped kinds, the refit's AUC and effective rows, and the refit counters (no
    # shift-aware refit ran)
    assert len(series) >= bound - 3 * 2 - len(scenario.spec.features) - 2 - 2 - 4
    assert series_bound(scenario.spec, versions=10, replicas=32) > bound


def _sample_name(d: MetricDef) -> str:
    return d.name + "_count" if d.type == "histogram" else d.name


def test_promtool_check_metrics_is_silent(registry: ExpositionRegistry) -> None:
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=render(registry),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")


def test_render_equals_generate_latest(registry: ExpositionRegistry, scenario: Scenario) -> None:
    only_models = CollectorRegistry()
    only_models.register(ModelMetricsCollector(scenario.state))
    assert registry.models.expose() == generate_latest(only_models).decode()
    body = render(registry)
    assert body.startswith(generate_latest(only_models))
    assert b"\nprocess_cpu_seconds_total " in body


# --------------------------------------------------------------------------- values


def test_values_equal_the_snapshot(registry: ExpositionRegistry, scenario: Scenario) -> None:
    snap = scenario.monitor.snapshot(NOW)
    value = registry.get_sample_value
    mv = {"model": "cancer", "version": "v1"}
    assert snap.realized is not None and snap.estimated is not None
    assert snap.reference is not None
    for metric, figure in (
        ("accuracy", "accuracy"),
        ("precision", "precision"),
        ("recall", "recall"),
        ("f1_score", "f1"),
    ):
        assert value(f"model_{metric}", mv) == getattr(snap.realized, figure)
        assert value(f"model_estimated_{metric}", mv) == getattr(snap.estimated, figure)
        assert value(f"model_reference_{metric}", mv) == getattr(snap.reference, figure)
    for cls, figures in snap.realized.per_class.items():
        labels = {**mv, "class": cls}
        assert value("model_class_precision", labels) == figures.precision
        assert value("model_class_recall", labels) == figures.recall
        assert value("model_class_f1_score", labels) == figures.f1
    assert value("model_label_coverage_ratio", mv) == snap.label_coverage
    assert value("model_window_errors", mv) == snap.window_errors
    for feature, drift in snap.drift.items():
        fields = ("psi", "jensen_shannon", "ks", "wasserstein", "chi2_pvalue")
        for statistic, name in zip(DRIFT_STATISTICS, fields, strict=True):
            labels = {**mv, "feature": feature, "statistic": statistic}
            assert value("model_feature_drift", labels) == getattr(drift, name)
        assert value("model_feature_drift_detected", {**mv, "feature": feature}) == drift.drifted
        for issue in ("missing", "out_of_range", "wrong_type"):
            labels = {**mv, "feature": feature, "issue": issue}
            assert (
                value("model_feature_quality_ratio", labels)
                == (snap.quality_window_ratio[feature][issue])
            )
            assert (
                value("model_feature_quality_issues_total", labels)
                == (snap.quality_total[feature][issue])
            )
    for statistic in ("psi", "jensen_shannon", "chi2_pvalue"):
        labels = {**mv, "statistic": statistic}
        assert value("model_prediction_drift", labels) == getattr(snap.prediction_drift, statistic)
    assert value("model_drift_detected", mv) == snap.drift_detected
    assert value("model_prediction_errors_total", mv) == snap.errors_total == 0
    assert value("model_unknown_features_total", mv) == snap.unknown_features_total
    resources = {**mv, "replica": "replica-1"}
    assert value("model_serving_cpu_ratio", resources) == scenario.resources.cpu_ratio
    assert value("model_serving_memory_bytes", resources) == scenario.resources.memory_bytes


def test_latency_histogram_is_cumulative(registry: ExpositionRegistry, scenario: Scenario) -> None:
    snap = scenario.monitor.snapshot(NOW)
    mv = {"model": "cancer", "version": "v1"}
    latency = scenario.latency
    for bound in snap.latency.bounds:
        exported = registry.get_sample_value(
            "model_prediction_latency_seconds_bucket", {**mv, "le": repr(float(bound))}
        )
        assert exported == np.count_nonzero(latency <= bound)  # independent cumulative count
    inf = {**mv, "le": "+Inf"}
    assert registry.get_sample_value("model_prediction_latency_seconds_bucket", inf) == len(latency)
    assert registry.get_sample_value("model_prediction_latency_seconds_count", mv) == len(latency)
    exported_sum = sample_value(registry, "model_prediction_latency_seconds_sum", mv)
    assert exported_sum == snap.latency.sum
    assert math.isclose(exported_sum, float(latency.sum()), rel_tol=1e-9)


def test_realized_figures_match_sklearn(registry: ExpositionRegistry, scenario: Scenario) -> None:
    y_true = scenario.labels[:LABELED].astype(str)
    y_pred = scenario.predictions[:LABELED].astype(str)
    mv = {"model": "cancer", "version": "v1"}
    value = registry.get_sample_value
    assert math.isclose(
        sample_value(registry, "model_accuracy", mv), accuracy_score(y_true, y_pred), abs_tol=1e-12
    )
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, pos_label="malignant", average="binary"
    )
    assert math.isclose(sample_value(registry, "model_precision", mv), precision, abs_tol=1e-12)
    assert math.isclose(sample_value(registry, "model_recall", mv), recall, abs_tol=1e-12)
    assert math.isclose(sample_value(registry, "model_f1_score", mv), f1, abs_tol=1e-12)
    classes = ["benign", "malignant"]
    matrix = confusion_matrix(y_true, y_pred, labels=classes)  # rows: actual, columns: predicted
    for a, actual in enumerate(classes):
        for p, predicted in enumerate(classes):
            labels = {**mv, "predicted_class": predicted, "actual_class": actual}
            assert value("model_labeled_predictions_total", labels) == matrix[a, p]


def test_reference_figures_match_sklearn(registry: ExpositionRegistry, scenario: Scenario) -> None:
    reference = load_reference(scenario.spec)
    y_true = reference.labels.astype(str)
    y_pred = reference.predictions.astype(str)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, pos_label="malignant", average="binary"
    )
    expected = {
        "model_reference_accuracy": accuracy_score(y_true, y_pred),
        "model_reference_precision": precision,
        "model_reference_recall": recall,
        "model_reference_f1_score": f1,
    }
    for version in ("v1", "v2"):  # v2 has seen no traffic: the reference figure is there anyway
        mv = {"model": "cancer", "version": version}
        for name, figure in expected.items():
            assert math.isclose(sample_value(registry, name, mv), figure, abs_tol=1e-12), name


def test_nan_figures_are_omitted(registry: ExpositionRegistry, scenario: Scenario) -> None:
    body = render(registry).decode()
    assert "NaN" not in body
    empty = scenario.empty.snapshot(NOW)
    assert empty.realized is not None and math.isnan(empty.realized.accuracy)
    assert math.isnan(empty.label_coverage)
    v2 = [line for line in body.splitlines() if 'version="v2"' in line]
    families = {line.split("{")[0] for line in v2}
    assert families == {
        "model_info",
        "model_positive_class_info",
        "model_performance_window_labels",
        "model_performance_window_outcomes",
        "model_estimation_shift_aware",
        "model_reference_accuracy",
        "model_reference_precision",
        "model_reference_recall",
        "model_reference_f1_score",
        "model_window_predictions",
        "model_window_labeled_predictions",
        "model_window_errors",
        "model_predictions_total",
        "model_prediction_errors_total",
        "model_unknown_features_total",
        "model_labeled_predictions_total",
        "model_classification_outcomes_total",
        "model_estimated_outcomes_total",
        "model_feature_quality_issues_total",
        # the counters of every bin are there (at 0) before the first event
        "model_feature_bin_observations_total",
        "model_prediction_bin_observations_total",
        "model_multivariate_reconstruction_error_sum_total",
        "model_multivariate_reconstruction_rows_total",
        "model_prediction_latency_seconds_bucket",
        "model_prediction_latency_seconds_count",
        "model_prediction_latency_seconds_sum",
        "model_label_delay_seconds_bucket",
        "model_label_delay_seconds_count",
        "model_label_delay_seconds_sum",
    }
    # the categorical output has no KS or Wasserstein: left out, not exported as a number
    snap = scenario.monitor.snapshot(NOW)
    assert math.isnan(snap.prediction_drift.ks)
    assert 'model_prediction_drift{model="cancer",statistic="ks_binned"' not in body


def test_drift_below_min_samples_is_omitted(scenario: Scenario) -> None:
    spec = dataclasses.replace(scenario.spec, min_samples=1000)
    monitor = ModelMonitor(spec.monitor_config(), load_reference(scenario.spec))
    x, _, _ = breast_cancer_model(spec)
    monitor.observe(
        PredictionBatch(
            timestamps=(T0 + np.arange(len(x)) * 0.25).astype(np.float64),
            features={name: x[name].to_numpy(np.float64) for name in spec.feature_names},
            predictions=scenario.predictions,
        )
    )
    state = CollectorState(models=[ModelState("cancer", spec, {"v1": monitor.snapshot(NOW)})])
    body = render(build_registry(lambda: state)).decode()
    for family in ("model_feature_drift", "model_feature_drift_detected", "model_drift_detected"):
        assert lines(body, family) == [], family
    assert lines(body, "model_window_predictions") == [
        'model_window_predictions{model="cancer",version="v1"} 569.0'
    ]


# --------------------------------------------------------------------------- registry


def test_registries_are_separate_from_the_global_one(scenario: Scenario) -> None:
    first = build_registry(scenario.state)
    second = build_registry(lambda: CollectorState(models=()))
    assert first.get_sample_value("modelmeter_models") == 1.0
    assert second.get_sample_value("modelmeter_models") == 0.0
    assert REGISTRY.get_sample_value("modelmeter_models") is None


def test_collectors_registered_later_follow_the_model_metrics(scenario: Scenario) -> None:
    registry = build_registry(scenario.state)
    requests = Counter("modelmeter_http_requests", "HTTP requests.", registry=registry)
    requests.inc()
    body = render(registry)
    assert b"\nmodelmeter_http_requests_total 1.0\n" in body
    assert body.index(b"modelmeter_http_requests_total") > body.index(b"model_label_delay_seconds")
    registry.unregister(requests)
    assert b"modelmeter_http_requests_total" not in render(registry)


def test_each_scrape_calls_the_provider_once(scenario: Scenario) -> None:
    calls: list[float] = []

    def provider() -> CollectorState:
        calls.append(time.monotonic())
        return scenario.state()

    registry = build_registry(provider)
    render(registry)
    render(registry)
    assert len(calls) == 2
