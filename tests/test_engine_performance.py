"""Realized and reference performance against scikit-learn (exact to 1e-12), through the
monitor too."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
    root_mean_squared_error,
)

from modelmeter.engine import (
    FeatureSpec,
    LabelBatch,
    ModelMonitor,
    MonitorConfig,
    ReferenceData,
)
from modelmeter.engine.performance import classification_figures, regression_figures

TOL = 1e-12


def confusion(predicted: np.ndarray, actual: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)))
    for p, a in zip(predicted, actual, strict=True):
        matrix[index[p], index[a]] += 1
    return matrix


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= TOL


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("positive", ["no", "yes"])
def test_binary_figures_match_sklearn(seed: int, positive: str) -> None:
    rng = np.random.default_rng(seed)
    classes = ("no", "yes")
    actual = rng.choice(classes, 500, p=[0.7, 0.3])
    predicted = np.where(rng.random(500) < 0.8, actual, rng.choice(classes, 500))
    figures = classification_figures(
        confusion(predicted, actual, classes), classes, classes.index(positive), 1
    )
    p, r, f, _ = precision_recall_fscore_support(
        actual, predicted, labels=[positive], zero_division=np.nan
    )
    assert same(figures.accuracy, accuracy_score(actual, predicted))
    assert same(figures.precision, p[0])
    assert same(figures.recall, r[0])
    assert same(figures.f1, f[0])
    assert same(figures.f1, f1_score(actual, predicted, pos_label=positive))


@pytest.mark.parametrize("seed", [0, 1])
def test_multiclass_macro_and_per_class_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    classes = ("a", "b", "c", "d")
    actual = rng.choice(classes, 800)
    predicted = np.where(rng.random(800) < 0.6, actual, rng.choice(classes, 800))
    figures = classification_figures(confusion(predicted, actual, classes), classes, None, 1)
    p, r, f, _ = precision_recall_fscore_support(
        actual, predicted, labels=list(classes), zero_division=np.nan
    )
    for i, name in enumerate(classes):
        assert same(figures.per_class[name].precision, p[i])
        assert same(figures.per_class[name].recall, r[i])
        assert same(figures.per_class[name].f1, f[i])
    macro = precision_recall_fscore_support(
        actual, predicted, labels=list(classes), average="macro", zero_division=np.nan
    )
    assert same(figures.precision, macro[0])
    assert same(figures.recall, macro[1])
    assert same(figures.f1, macro[2])


def test_zero_division_cases_are_nan_like_sklearn() -> None:
    classes = ("a", "b", "c")
    # "c" never predicted and never actual: all NaN; "b" never predicted: precision NaN.
    actual = np.array(["a", "a", "b", "b", "a"])
    predicted = np.array(["a", "a", "a", "a", "a"])
    figures = classification_figures(confusion(predicted, actual, classes), classes, None, 1)
    p, r, f, _ = precision_recall_fscore_support(
        actual, predicted, labels=list(classes), zero_division=np.nan
    )
    for i, name in enumerate(classes):
        assert same(figures.per_class[name].precision, p[i])
        assert same(figures.per_class[name].recall, r[i])
        assert same(figures.per_class[name].f1, f[i])
    assert math.isnan(figures.per_class["b"].precision)
    assert figures.per_class["b"].recall == 0.0
    assert math.isnan(figures.per_class["c"].f1)
    macro = precision_recall_fscore_support(
        actual, predicted, labels=list(classes), average="macro", zero_division=np.nan
    )
    assert same(figures.precision, macro[0])
    assert same(figures.recall, macro[1])
    assert same(figures.f1, macro[2])
    # Binary: no predicted positive -> precision NaN (never 0).
    binary = classification_figures(
        confusion(np.array(["n", "n"]), np.array(["y", "n"]), ("n", "y")), ("n", "y"), 1, 1
    )
    assert math.isnan(binary.precision) and binary.recall == 0.0 and binary.f1 == 0.0


def test_below_min_samples_everything_is_nan() -> None:
    classes = ("a", "b")
    figures = classification_figures(np.array([[3.0, 1.0], [0.0, 5.0]]), classes, 1, 10)
    assert all(math.isnan(v) for v in (figures.accuracy, figures.precision, figures.f1))
    assert math.isnan(figures.per_class["a"].recall)
    empty = classification_figures(np.zeros((2, 2)), classes, 1, 1)
    assert math.isnan(empty.accuracy)
    assert math.isnan(regression_figures(np.array([9.0, 1.0, 1.0]), 10).mae)


def test_regression_figures_match_sklearn() -> None:
    rng = np.random.default_rng(5)
    actual = rng.normal(10, 3, 1000)
    predicted = actual + rng.normal(0, 1, 1000)
    error = predicted - actual
    sums = np.array([1000.0, np.abs(error).sum(), (error**2).sum()])
    figures = regression_figures(sums, 1)
    assert abs(figures.mae - mean_absolute_error(actual, predicted)) <= TOL
    assert abs(figures.rmse - math.sqrt(mean_squared_error(actual, predicted))) <= TOL


def _monitor(task: str, classes: tuple[str, ...], min_samples: int = 10) -> ModelMonitor:
    rng = np.random.default_rng(0)
    config = MonitorConfig(
        task=task,  # type: ignore[arg-type]
        classes=classes,
        features=(FeatureSpec("x", "numeric"),),
        min_samples=min_samples,
    )
    if classes:
        ref_pred = rng.choice(classes, 300).astype(object)
        ref_label = rng.choice(classes, 300).astype(object)
    else:
        ref_pred = rng.normal(size=300)
        ref_label = rng.normal(size=300)
    return ModelMonitor(config, ReferenceData({"x": rng.normal(size=300)}, ref_pred, ref_label))


def test_monitor_realized_multiclass_matches_sklearn_over_the_window() -> None:
    rng = np.random.default_rng(11)
    classes = ("a", "b", "c")
    monitor = _monitor("multiclass", classes)
    n = 2000
    predicted = rng.choice(classes, n).astype(object)
    actual = np.where(rng.random(n) < 0.5, predicted, rng.choice(classes, n)).astype(object)
    arrival = np.sort(rng.uniform(0, 600, n))  # window 300 s: only the last part counts
    for chunk in np.array_split(np.arange(n), 17):
        monitor.label(
            LabelBatch(arrival[chunk], arrival[chunk] - 5, predicted[chunk], actual[chunk])
        )
    snap = monitor.snapshot(now=600.0)
    # The ring holds buckets 31..60 (10 s each, head = bucket of t=600): t >= 310.
    inside = arrival >= 310.0
    assert snap.window_labeled == int(inside.sum())
    assert snap.realized is not None
    assert same(snap.realized.accuracy, accuracy_score(actual[inside], predicted[inside]))
    macro = precision_recall_fscore_support(
        actual[inside],
        predicted[inside],
        labels=list(classes),
        average="macro",
        zero_division=np.nan,
    )
    assert same(snap.realized.precision, macro[0])
    assert same(snap.realized.f1, macro[2])
    # Cumulative confusion counts every label, expired or not.
    for (p, a), count in snap.confusion_total.items():
        assert count == int(np.sum((predicted == p) & (actual == a)))


def test_monitor_regression_matches_sklearn() -> None:
    rng = np.random.default_rng(12)
    monitor = _monitor("regression", ())
    actual = rng.normal(size=500)
    predicted = actual + rng.normal(0, 0.5, 500)
    t = np.full(500, 100.0)
    monitor.label(LabelBatch(t, t - 1, predicted, actual))
    figures = monitor.snapshot(now=100.0).regression
    assert figures is not None
    assert abs(figures.mae - mean_absolute_error(actual, predicted)) <= 1e-12
    assert abs(figures.rmse - math.sqrt(mean_squared_error(actual, predicted))) <= 1e-12


def test_errored_predictions_are_left_out_of_realized_performance() -> None:
    monitor = _monitor("binary", ("0", "1"), min_samples=1)
    t = np.full(4, 50.0)
    predicted = np.array(["1", "", "0", "1"], dtype=object)
    actual = np.array(["1", "0", "0", "0"], dtype=object)
    monitor.label(LabelBatch(t, t, predicted, actual))
    snap = monitor.snapshot(now=50.0)
    assert snap.realized is not None
    assert snap.realized.accuracy == pytest.approx(2 / 3, abs=TOL)
    assert snap.window_labeled == 4  # labels received, errored prediction included


# --------------------------------------------------------------------------- reference figures


def _reference_monitor(
    task: str,
    classes: tuple[str, ...],
    predictions: np.ndarray,
    labels: np.ndarray,
    positive: str | None = None,
) -> tuple[ModelMonitor, ReferenceData]:
    config = MonitorConfig(
        task=task,  # type: ignore[arg-type]
        classes=classes,
        positive_class=positive,
        features=(FeatureSpec("x", "numeric"),),
        min_samples=100_000,  # far above the reference size: the reference figure ignores it
    )
    x = np.random.default_rng(21).normal(size=predictions.shape[0])
    reference = ReferenceData({"x": x}, predictions, labels)
    return ModelMonitor(config, reference), reference


@pytest.mark.parametrize("positive", ["no", "yes"])
def test_reference_binary_figures_match_sklearn(positive: str) -> None:
    rng = np.random.default_rng(31)
    classes = ("no", "yes")
    labels = rng.choice(classes, 700, p=[0.65, 0.35]).astype(object)
    predictions = np.where(rng.random(700) < 0.85, labels, rng.choice(classes, 700)).astype(object)
    predictions[[3, 50]] = ""  # errored reference rows are left out, as in realized figures
    monitor, _ = _reference_monitor("binary", classes, predictions, labels, positive)
    reference = monitor.snapshot(now=0.0).reference
    assert reference is not None
    kept = predictions != ""
    y_true, y_pred = labels[kept].astype(str), predictions[kept].astype(str)
    assert abs(reference.accuracy - accuracy_score(y_true, y_pred)) <= TOL
    assert abs(reference.precision - precision_score(y_true, y_pred, pos_label=positive)) <= TOL
    assert abs(reference.recall - recall_score(y_true, y_pred, pos_label=positive)) <= TOL
    assert abs(reference.f1 - f1_score(y_true, y_pred, pos_label=positive)) <= TOL


def test_reference_multiclass_macro_figures_match_sklearn() -> None:
    rng = np.random.default_rng(32)
    classes = ("a", "b", "c", "d")
    labels = rng.choice(classes, 900, p=[0.4, 0.3, 0.2, 0.1]).astype(object)
    predictions = np.where(rng.random(900) < 0.7, labels, rng.choice(classes, 900)).astype(object)
    monitor, _ = _reference_monitor("multiclass", classes, predictions, labels)
    reference = monitor.snapshot(now=0.0).reference
    assert reference is not None
    y_true, y_pred = labels.astype(str), predictions.astype(str)
    assert abs(reference.accuracy - accuracy_score(y_true, y_pred)) <= TOL
    assert abs(reference.precision - precision_score(y_true, y_pred, average="macro")) <= TOL
    assert abs(reference.recall - recall_score(y_true, y_pred, average="macro")) <= TOL
    assert abs(reference.f1 - f1_score(y_true, y_pred, average="macro")) <= TOL
    per_class = f1_score(y_true, y_pred, labels=list(classes), average=None)
    for i, name in enumerate(classes):
        assert abs(reference.per_class[name].f1 - per_class[i]) <= TOL


def test_reference_regression_figures_match_sklearn() -> None:
    rng = np.random.default_rng(33)
    labels = rng.normal(0.0, 1.0, 800)
    predictions = labels + rng.normal(0.1, 0.4, 800)
    monitor, _ = _reference_monitor("regression", (), predictions, labels)
    snap = monitor.snapshot(now=0.0)
    assert snap.reference is None and snap.reference_regression is not None
    figures = snap.reference_regression
    assert abs(figures.mae - mean_absolute_error(labels, predictions)) <= TOL
    assert abs(figures.rmse - root_mean_squared_error(labels, predictions)) <= TOL
    assert snap.to_dict()["reference_regression"] == {"mae": figures.mae, "rmse": figures.rmse}


def test_reference_figures_do_not_depend_on_traffic_and_survive_checkpoints() -> None:
    rng = np.random.default_rng(34)
    classes = ("a", "b", "c")
    labels = rng.choice(classes, 300).astype(object)
    predictions = np.where(rng.random(300) < 0.6, labels, rng.choice(classes, 300)).astype(object)
    monitor, data = _reference_monitor("multiclass", classes, predictions, labels)
    before = monitor.snapshot(now=0.0)
    assert before.regression is None and before.reference_regression is None
    t = np.full(50, 10.0)
    monitor.label(LabelBatch(t, t, np.full(50, "a", object), np.full(50, "b", object)))
    after = monitor.snapshot(now=10.0)
    assert after.reference == before.reference
    exported = after.to_dict()["reference"]
    assert abs(exported["accuracy"] - accuracy_score(labels, predictions)) <= TOL
    checkpoint = json.loads(json.dumps(monitor.to_checkpoint(), allow_nan=False))
    restored = ModelMonitor.from_checkpoint(monitor.config, data, checkpoint)
    assert repr(restored.snapshot(now=10.0)) == repr(after)
