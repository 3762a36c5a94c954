"""Confidence-based estimation: calibration against scikit-learn, and what it can and cannot see.

Tolerances: the calibration curve and the expected confusion counts equal an independent
computation with sklearn's IsotonicRegression to 1e-9 (sums of floats). On a stream with
covariate shift and calibrated scores the estimated accuracy is within 0.02 of the realized
one (20,000 labeled predictions: the realized figure's own standard error is about 0.003).
Under pure concept drift the estimate stays where it was while the realized accuracy drops.
"""

from __future__ import annotations

import numpy as np
from sklearn.isotonic import IsotonicRegression

from modelmeter.engine import (
    FeatureSpec,
    LabelBatch,
    ModelMonitor,
    MonitorConfig,
    PredictionBatch,
    ReferenceData,
)
from modelmeter.engine.estimation import Calibrator
from modelmeter.engine.performance import classification_figures

CLASSES = ("neg", "pos")


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def binary_data(
    rng: np.random.Generator, n: int, loc: float, concept: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x, calibrated model score, prediction, label. ``concept`` != 1 changes P(y | x)."""
    x = rng.normal(loc, 1.0, n)
    score = sigmoid(2.0 * x - 0.5)  # the model's score: calibrated under the original concept
    truth = sigmoid(concept * (2.0 * x - 0.5))
    label = np.where(rng.random(n) < truth, "pos", "neg").astype(object)
    prediction = np.where(score >= 0.5, "pos", "neg").astype(object)
    return x, score, prediction, label


def binary_monitor(seed: int = 0) -> ModelMonitor:
    rng = np.random.default_rng(seed)
    x, score, prediction, label = binary_data(rng, 20_000, 0.0)
    config = MonitorConfig(
        task="binary",
        classes=CLASSES,
        positive_class="pos",
        features=(FeatureSpec("x", "numeric"),),
        window_seconds=600,
        bucket_seconds=60,
    )
    return ModelMonitor(config, ReferenceData({"x": x}, prediction, label, score))


def run_stream(monitor: ModelMonitor, seed: int, loc: float, concept: float = 1.0) -> None:
    rng = np.random.default_rng(seed)
    x, score, prediction, label = binary_data(rng, 20_000, loc, concept)
    t = np.linspace(1000.0, 1500.0, x.size)
    for chunk in np.array_split(np.arange(x.size), 40):
        monitor.observe(PredictionBatch(t[chunk], {"x": x[chunk]}, prediction[chunk], score[chunk]))
        monitor.label(LabelBatch(t[chunk] + 1, t[chunk], prediction[chunk], label[chunk]))


def test_calibrator_curve_equals_sklearn_isotonic() -> None:
    rng = np.random.default_rng(3)
    scores = rng.random(3000) ** 2
    labels = np.where(rng.random(3000) < np.sqrt(scores), "pos", "neg").astype(object)
    calibrator = Calibrator.fit(scores, labels, CLASSES, positive="pos")
    model = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(scores, labels == "pos")
    probe = np.concatenate([rng.random(500), [-0.5, 0.0, 1.0, 1.5]])
    probabilities = calibrator.probabilities(probe)
    np.testing.assert_allclose(probabilities[:, 1], model.predict(probe), atol=1e-12, rtol=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-12, rtol=0)


def test_binary_expected_counts_are_sums_of_calibrated_probabilities() -> None:
    rng = np.random.default_rng(4)
    ref_x, ref_score, ref_pred, ref_label = binary_data(rng, 5000, 0.0)
    monitor = ModelMonitor(
        MonitorConfig(task="binary", classes=CLASSES, features=(FeatureSpec("x", "numeric"),)),
        ReferenceData({"x": ref_x}, ref_pred, ref_label, ref_score),
    )
    x, score, prediction, _ = binary_data(rng, 3000, 0.7)
    score[::10] = np.nan  # not given: left out of the estimate
    monitor.observe(PredictionBatch(np.full(3000, 5.0), {"x": x}, prediction, score))
    estimated = monitor.snapshot(now=5.0).estimated
    assert estimated is not None

    iso = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip")
    iso.fit(ref_score, ref_label == "pos")
    given = ~np.isnan(score)
    p = iso.predict(score[given])
    positive = prediction[given] == "pos"
    tp, fp = p[positive].sum(), (1 - p[positive]).sum()
    fn, tn = p[~positive].sum(), (1 - p[~positive]).sum()
    expected = np.array([[tn, fn], [fp, tp]])  # rows: predicted neg, pos; columns: actual
    direct = classification_figures(expected, CLASSES, 1, 100)
    assert abs(estimated.accuracy - (tp + tn) / given.sum()) <= 1e-9
    assert abs(estimated.precision - tp / (tp + fp)) <= 1e-9
    assert abs(estimated.recall - tp / (tp + fn)) <= 1e-9
    assert abs(estimated.f1 - direct.f1) <= 1e-9


def test_estimate_follows_realized_accuracy_under_covariate_shift() -> None:
    for seed, loc in [(10, 0.0), (11, 0.8), (12, -1.0), (13, 1.5)]:
        monitor = binary_monitor()
        run_stream(monitor, seed, loc)
        snap = monitor.snapshot(now=1500.0)
        assert snap.estimated is not None and snap.realized is not None
        assert snap.window_labeled == 20_000
        assert abs(snap.estimated.accuracy - snap.realized.accuracy) < 0.02, (loc, snap)
        assert abs(snap.estimated.f1 - snap.realized.f1) < 0.03
        if loc != 0.0:
            assert snap.drift["x"].drifted  # it is covariate shift indeed


def test_estimate_misses_pure_concept_drift() -> None:
    # Same inputs, same scores; only P(y | x) changes (much flatter). Known limitation.
    before = binary_monitor()
    run_stream(before, 20, 0.0)
    after = binary_monitor()
    run_stream(after, 20, 0.0, concept=0.15)
    snap_before, snap_after = before.snapshot(now=1500.0), after.snapshot(now=1500.0)
    assert snap_before.estimated is not None and snap_after.estimated is not None
    assert snap_before.realized is not None and snap_after.realized is not None
    assert abs(snap_after.estimated.accuracy - snap_before.estimated.accuracy) < 0.005
    assert snap_after.realized.accuracy < snap_before.realized.accuracy - 0.2
    assert snap_after.estimated.accuracy - snap_after.realized.accuracy > 0.2
    assert snap_after.drift["x"].psi < 0.01  # and the inputs did not drift


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def multiclass_data(
    rng: np.random.Generator, n: int, loc: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    classes = np.array(["a", "b", "c"], dtype=object)
    x = rng.normal(loc, 1.0, n)
    scores = softmax(np.column_stack([2 * x, np.zeros(n), -2 * x + 0.5]))
    label = classes[(rng.random(n)[:, None] > np.cumsum(scores, axis=1)).sum(axis=1)]
    return x, scores, classes[scores.argmax(axis=1)], label


def test_multiclass_estimate_is_renormalised_one_vs_rest_and_tracks_accuracy() -> None:
    rng = np.random.default_rng(30)
    classes = ("a", "b", "c")
    ref_x, ref_scores, ref_pred, ref_label = multiclass_data(rng, 20_000, 0.0)
    config = MonitorConfig(
        task="multiclass", classes=classes, features=(FeatureSpec("x", "numeric"),)
    )
    monitor = ModelMonitor(config, ReferenceData({"x": ref_x}, ref_pred, ref_label, ref_scores))
    x, scores, prediction, label = multiclass_data(rng, 20_000, 0.6)
    t = np.full(x.size, 50.0)
    monitor.observe(PredictionBatch(t, {"x": x}, prediction, scores))
    monitor.label(LabelBatch(t, t, prediction, label))
    snap = monitor.snapshot(now=50.0)
    assert snap.estimated is not None and snap.realized is not None

    calibrated = np.column_stack(
        [
            IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip")
            .fit(ref_scores[:, k], ref_label == c)
            .predict(scores[:, k])
            for k, c in enumerate(classes)
        ]
    )
    calibrated /= calibrated.sum(axis=1, keepdims=True)
    expected = np.zeros((3, 3))
    for k, c in enumerate(classes):
        expected[k] = calibrated[prediction == c].sum(axis=0)
    direct = classification_figures(expected, classes, None, 100)
    assert abs(snap.estimated.accuracy - direct.accuracy) <= 1e-9
    assert abs(snap.estimated.f1 - direct.f1) <= 1e-9
    assert abs(snap.estimated.accuracy - snap.realized.accuracy) < 0.02


def test_no_reference_scores_means_no_estimate() -> None:
    rng = np.random.default_rng(1)
    x, _, prediction, label = binary_data(rng, 500, 0.0)
    config = MonitorConfig(task="binary", classes=CLASSES, features=(FeatureSpec("x", "numeric"),))
    monitor = ModelMonitor(config, ReferenceData({"x": x}, prediction, label))
    monitor.observe(PredictionBatch(np.zeros(500), {"x": x}, prediction, scores=np.full(500, 0.7)))
    assert monitor.snapshot(now=0.0).estimated is None
