"""Exposition: label values only from the spec and escaped like the client; multiclass and
regression figures against scikit-learn; segment series fixed by the spec and within the bound."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_diabetes, load_wine
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import (
    accuracy_score,
    mean_absolute_error,
    mean_squared_error,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from exposition_support import (
    EXAMPLES,
    LABELED,
    NOW,
    T0,
    Scenario,
    lines,
    make_scenario,
    sample_value,
)
from modelmeter.engine import LabelBatch, ModelMonitor, PredictionBatch, ReferenceData, Snapshot
from modelmeter.exposition import (
    CollectorState,
    ModelMetricsCollector,
    ModelState,
    build_registry,
    render,
    series_bound,
)
from modelmeter.spec import load_reference, load_spec


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return make_scenario()


# --------------------------------------------------------------------------- labels


def _label_values(body: str, name: str) -> set[str]:
    return {
        sample.labels[name]
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if name in sample.labels and family.name.startswith("model")
    }


def test_labels_come_only_from_the_spec(scenario: Scenario) -> None:
    snap = scenario.monitor.snapshot(NOW)
    assert snap.realized is not None
    poisoned = dataclasses.replace(
        snap,
        drift={**snap.drift, "evil_feature": snap.drift["mean_radius"]},
        quality_window_ratio={**snap.quality_window_ratio, "evil_feature": {"evil_issue": 0.5}},
        quality_total={
            **snap.quality_total,
            "evil_feature": {"missing": 3},
            "mean_radius": {**snap.quality_total["mean_radius"], "evil_issue": 2},
        },
        confusion_total={**snap.confusion_total, ("evil_class", "benign"): 7},
        realized=dataclasses.replace(
            snap.realized,
            per_class={**snap.realized.per_class, "evil_class": snap.realized.per_class["benign"]},
        ),
    )
    state = CollectorState(
        models=[
            ModelState(
                "cancer",
                scenario.spec,
                {"v1": poisoned, "bad version": snap, "x" * 65: snap},
                resources={
                    ("v1", "evil replica"): scenario.resources,
                    ("v 2", "r1"): scenario.resources,
                },
            )
        ],
        ingest={
            ("cancer", "predictions", "accepted"): 3,
            ("unregistered", "predictions", "rejected"): 5,
            ("cancer", "evil_kind", "accepted"): 1,
            ("cancer", "labels", "evil_outcome"): 1,
        },
    )
    body = render(build_registry(lambda: state)).decode()
    assert "evil" not in body and "unregistered" not in body
    assert _label_values(body, "model") == {"cancer"}
    assert _label_values(body, "version") == {"v1"}
    assert _label_values(body, "feature") == set(scenario.spec.feature_names)
    assert _label_values(body, "class") == {"benign", "malignant"}
    assert _label_values(body, "predicted_class") == {"benign", "malignant"}
    assert _label_values(body, "issue") == {"missing", "out_of_range", "wrong_type"}
    assert lines(body, "model_serving_cpu_ratio") == []
    assert lines(body, "modelmeter_ingest_events_total") == [
        'modelmeter_ingest_events_total{kind="predictions",model="cancer",outcome="accepted"} 3.0'
    ]


def test_label_values_are_escaped_like_the_client(scenario: Scenario) -> None:
    classes = ('say "benign"', "back\\slash malignant")
    rename = {"benign": classes[0], "malignant": classes[1]}
    spec = load_spec(
        {**scenario.spec.to_dict(), "classes": list(classes), "positive_class": classes[1]}
    )
    reference = load_reference(scenario.spec)
    renamed = ReferenceData(
        features=reference.features,
        predictions=np.array([rename[v] for v in reference.predictions], dtype=object),
        labels=np.array([rename[v] for v in reference.labels], dtype=object),
        scores=reference.scores,
    )
    monitor = ModelMonitor(spec.monitor_config(), renamed)
    predictions = np.array([rename[v] for v in scenario.predictions[:LABELED]], dtype=object)
    monitor.label(
        LabelBatch(
            label_timestamps=np.full(LABELED, T0 + 10),
            prediction_timestamps=np.full(LABELED, T0),
            predictions=predictions,
            labels=np.array([rename[v] for v in scenario.labels[:LABELED]], dtype=object),
        )
    )
    state = CollectorState(
        models=[ModelState('the "odd"\nmodel', spec, {"v1": monitor.snapshot(NOW)})]
    )
    collector = ModelMetricsCollector(lambda: state)
    only = CollectorRegistry()
    only.register(collector)
    text = collector.expose()
    assert text == generate_latest(only).decode()
    assert 'class="back\\\\slash malignant"' in text
    assert 'model="the \\"odd\\"\\nmodel"' in text
    parsed = _label_values(text, "class")
    assert parsed == set(classes)


# --------------------------------------------------------------------------- other tasks


def test_multiclass_outcomes_match_sklearn() -> None:
    spec = load_spec(EXAMPLES / "multiclass-spec.yaml")
    data = load_wine(as_frame=True)
    x = data.frame[list(spec.feature_names)]
    y = np.asarray(data.target_names, dtype=object)[data.frame["target"]]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=0))
    model.fit(x.iloc[::3], y[::3])
    predictions = model.predict(x).astype(object)
    monitor = ModelMonitor(spec.monitor_config(), load_reference(spec))
    timestamps = T0 + np.arange(len(x), dtype=np.float64)
    monitor.observe(
        PredictionBatch(
            timestamps=timestamps,
            features={name: x[name].to_numpy(np.float64) for name in spec.feature_names},
            predictions=predictions,
            scores=model.predict_proba(x),
        )
    )
    monitor.label(LabelBatch(timestamps + 1, timestamps, predictions, y))
    state = CollectorState(models=[ModelState("wine", spec, {"v1": monitor.snapshot(T0 + 300)})])
    registry = build_registry(lambda: state)
    value = registry.get_sample_value
    mv = {"model": "wine", "version": "v1"}
    classes = list(spec.classes)
    per_class = multilabel_confusion_matrix(y, predictions, labels=classes)  # [[tn, fp], [fn, tp]]
    for cls, ((_, fp), (fn, tp)) in zip(classes, per_class, strict=True):
        for outcome, expected in (("tp", tp), ("fp", fp), ("fn", fn)):
            labels = {**mv, "class": cls, "outcome": outcome}
            assert value("model_classification_outcomes_total", labels) == expected
    precision, recall, f1, _ = precision_recall_fscore_support(y, predictions, average="macro")
    assert math.isclose(sample_value(registry, "model_precision", mv), precision, abs_tol=1e-12)
    assert math.isclose(sample_value(registry, "model_recall", mv), recall, abs_tol=1e-12)
    assert math.isclose(sample_value(registry, "model_f1_score", mv), f1, abs_tol=1e-12)
    reference = load_reference(spec)
    ref_true, ref_pred = reference.labels.astype(str), reference.predictions.astype(str)
    precision, recall, f1, _ = precision_recall_fscore_support(ref_true, ref_pred, average="macro")
    for name, expected in (
        ("model_reference_accuracy", accuracy_score(ref_true, ref_pred)),
        ("model_reference_precision", precision),
        ("model_reference_recall", recall),
        ("model_reference_f1_score", f1),
    ):
        assert math.isclose(sample_value(registry, name, mv), expected, abs_tol=1e-12), name
    assert value("model_positive_class_info", {**mv, "class": "class_0"}) is None
    assert value("model_info", {**mv, "task": "multiclass"}) == 1.0


def test_regression_errors_match_sklearn() -> None:
    spec = load_spec(EXAMPLES / "regression-spec.yaml")
    data = load_diabetes(as_frame=True, scaled=False)
    x = data.frame[list(spec.feature_names)]
    y = data.frame["target"].to_numpy(np.float64)
    model = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(x.iloc[::2], y[::2])
    predictions = model.predict(x)
    features: dict[str, np.ndarray] = {n: x[n].to_numpy(np.float64) for n in spec.feature_names}
    features["sex"] = np.array([str(int(v)) for v in x["sex"]], dtype=object)
    timestamps = T0 + np.arange(len(x), dtype=np.float64) * 0.5
    monitor = ModelMonitor(spec.monitor_config(), load_reference(spec))
    monitor.observe(PredictionBatch(timestamps, features, predictions))
    monitor.label(LabelBatch(timestamps + 5, timestamps, predictions, y))
    snapshot: Snapshot = monitor.snapshot(T0 + 600)
    state = CollectorState(models=[ModelState("diabetes", spec, {"v1": snapshot})])
    registry = build_registry(lambda: state)
    mv = {"model": "diabetes", "version": "v1"}
    mae = sample_value(registry, "model_mean_absolute_error", mv)
    rmse = sample_value(registry, "model_root_mean_squared_error", mv)
    assert math.isclose(mae, mean_absolute_error(y, predictions), rel_tol=1e-9)
    assert math.isclose(rmse, math.sqrt(mean_squared_error(y, predictions)), rel_tol=1e-9)
    reference = load_reference(spec)
    ref_true = np.asarray(reference.labels, np.float64)
    ref_pred = np.asarray(reference.predictions, np.float64)
    ref_mae = sample_value(registry, "model_reference_mean_absolute_error", mv)
    ref_rmse = sample_value(registry, "model_reference_root_mean_squared_error", mv)
    assert math.isclose(ref_mae, mean_absolute_error(ref_true, ref_pred), abs_tol=1e-12)
    assert math.isclose(ref_rmse, math.sqrt(mean_squared_error(ref_true, ref_pred)), abs_tol=1e-12)
    estimated = snapshot.estimated_regression  # pinned against scikit-learn in test_engine_dle
    assert estimated is not None
    assert sample_value(registry, "model_estimated_mean_absolute_error", mv) == estimated.mae
    assert sample_value(registry, "model_estimated_root_mean_squared_error", mv) == estimated.rmse
    body = render(registry).decode()
    assert lines(body, "model_accuracy") == []
    assert lines(body, "model_reference_accuracy") == []
    assert lines(body, "model_labeled_predictions_total") == []
    assert _label_values(body, "issue") >= {"unseen_category", "out_of_range"}
    sex_issues = {
        s.labels["issue"]
        for f in text_string_to_metric_families(body)
        for s in f.samples
        if s.labels.get("feature") == "sex" and f.name == "model_feature_quality_ratio"
    }
    assert sex_issues == {"missing", "unseen_category", "wrong_type"}


# --------------------------------------------------------------------------- segments


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_segment_series_are_fixed_by_the_spec_and_within_the_bound(task: str) -> None:
    """Every segment value of the spec (categories, or the reference's vocabulary) plus
    ``other`` is exported, whatever the traffic sent; the bound counts them."""
    from modelmeter.exposition import segment_values

    rng = np.random.default_rng(9)
    n = 400
    doc: dict[str, Any] = {
        "task": task,
        "features": [
            {"name": "x", "type": "numeric"},
            {"name": "country", "type": "categorical", "categories": ["de", "fr"]},
            {"name": "channel", "type": "categorical"},
        ],
        "min_samples": 10,
        "segments": ["country", "channel"],
    }
    if task == "binary":
        doc |= {"classes": ["no", "yes"], "reference": {"score": "score"}}
    spec = load_spec(json.dumps(doc))
    x = rng.normal(size=n)
    score = 1 / (1 + np.exp(-x))
    frame = pd.DataFrame(
        {
            "x": x,
            "country": rng.choice(["de", "fr"], n),
            "channel": rng.choice(["app", "web"], n),
            "prediction": np.where(score > 0.5, "yes", "no") if task == "binary" else 2 * x,
            "label": np.where(rng.random(n) < score, "yes", "no") if task == "binary" else x,
            "score": score,
        }
    )
    reference = load_reference(spec, data=frame.to_csv(index=False).encode())
    monitor = ModelMonitor(spec.monitor_config(), reference)
    live = frame.copy()
    live["country"] = rng.choice(["de", "fr", 'evil"}', "zz"], n)  # unseen values: other
    features = {
        "x": live["x"].to_numpy(),
        "country": live["country"].to_numpy(object),
        "channel": live["channel"].to_numpy(object),
    }
    ts = np.full(n, T0)
    predictions = live["prediction"].to_numpy(object if task == "binary" else np.float64)
    monitor.observe(
        PredictionBatch(ts, features, predictions, scores=score if task == "binary" else None)
    )
    labels = live["label"].to_numpy(object if task == "binary" else np.float64)
    monitor.label(
        LabelBatch(ts + 1, ts, predictions, labels, segments=monitor.segment_codes(features))
    )
    state = CollectorState(models=[ModelState("m", spec, {"v1": monitor.snapshot(T0 + 2)})])
    body = render(build_registry(lambda: state)).decode()
    segment_lines = [line for line in body.splitlines() if line.startswith("model_segment_")]
    values = {(line.split('segment="')[1].split('"')[0], line.split('value="')[1].split('"')[0])
              for line in segment_lines}  # fmt: skip
    assert values == {
        ("country", "de"), ("country", "fr"), ("country", "other"),
        ("channel", "app"), ("channel", "web"), ("channel", "other"),
    }  # fmt: skip
    assert "evil" not in body and "zz" not in body
    per_value = 12 if task == "binary" else 8
    # every figure of the values with traffic; channel "other" had none: only its volumes
    # (window predictions and labels, performance-window labels)
    assert len(segment_lines) == per_value * 5 + 3
    assert segment_values(spec) == 3 + 21  # channel: up to 20 reference values, plus other
    series = [line for line in body.splitlines() if line and not line.startswith("#")
              and 'model="m"' in line]  # fmt: skip
    assert len(series) <= series_bound(spec, versions=1, replicas=0)
