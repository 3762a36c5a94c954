"""The estimate's confidence bands in the monitor, and its swappable shift-aware calibration.

Tolerances and measured values:

- incremental = batch: the bands of a window fed in batches over several buckets equal
  :func:`classification_bands` of all its rows at once (probabilities from the same
  calibrator) to 1e-12, binary and multiclass (and every segment value's estimate, which has
  no band, the estimate of its rows);
- coverage: with calibrated scores (reference and live from one distribution, labels drawn
  from the scores), the window's realized accuracy lies in [lower, upper] in >= 90 % of 300
  windows of 400 rows (measured with these seeds: binary 95.7 %, 3 classes 94.3 %; the
  nominal level is 95 %);
- the swap: under a covariate shift plain CBPE cannot follow (design of
  tests/test_engine_shift.py), plain CBPE's estimate errs by more than 0.05 and the refitted
  one by less than half of that, on 5,000 new shifted predictions; ``use_calibration(None)``
  gives exactly a fresh monitor's figures.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from modelmeter.engine import (
    ClassificationFigures,
    FeatureSpec,
    LabelBatch,
    ModelMonitor,
    MonitorConfig,
    PredictionBatch,
    ReferenceData,
    Snapshot,
)
from modelmeter.engine.bands import band_terms, classification_bands, expected_counts
from modelmeter.engine.estimation import Calibrator
from modelmeter.engine.shift import ShiftFit, ShiftSettings
from test_engine_shift import FEATURES, Model, rows

REGIONS = np.array(["a", "b", "c"], dtype=object)


def flat(figures: ClassificationFigures | None) -> list[float]:
    """Every number of a ClassificationFigures, in a fixed order."""
    assert figures is not None
    out = [figures.accuracy, figures.precision, figures.recall, figures.f1]
    for name in sorted(figures.per_class):
        c = figures.per_class[name]
        out += [c.precision, c.recall, c.f1]
    return out


def assert_figures(actual: ClassificationFigures | None, expected: ClassificationFigures) -> None:
    np.testing.assert_allclose(flat(actual), flat(expected), rtol=0, atol=1e-12)


def assert_same(
    actual: ClassificationFigures | None, expected: ClassificationFigures | None
) -> None:
    np.testing.assert_array_equal(flat(actual), flat(expected))  # NaN == NaN, else exact


# ---------------------------------------------------------------------------- calibrated data


def calibrated(rng: np.random.Generator, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores ((n,) binary, (n, k) otherwise) and true class codes drawn from them."""
    if k == 2:
        scores = rng.beta(2.0, 2.0, n)
        return scores, (rng.random(n) < scores).astype(np.int64)
    scores = rng.dirichlet(np.full(k, 0.8), n)
    y = (rng.random(n)[:, None] > np.cumsum(scores, axis=1)).sum(axis=1)
    return scores, np.minimum(y, k - 1)


def predicted_of(scores: np.ndarray) -> np.ndarray:
    return (scores >= 0.5).astype(np.int64) if scores.ndim == 1 else scores.argmax(axis=1)


def calibrated_setup(
    k: int, seed: int, n_reference: int = 20_000, segments: bool = False, **overrides: Any
) -> tuple[MonitorConfig, ReferenceData, np.ndarray]:
    rng = np.random.default_rng(seed)
    classes = tuple(f"c{j}" for j in range(k))
    features = (FeatureSpec("x", "numeric"), FeatureSpec("region", "categorical"))
    config = MonitorConfig(
        task="binary" if k == 2 else "multiclass",
        classes=classes,
        features=features,
        segments=("region",) if segments else (),
        **overrides,
    )
    scores, y = calibrated(rng, n_reference, k)
    names = np.array(classes, dtype=object)
    scores = scores.copy()
    scores[:37] = np.nan  # unscored reference rows: not among the calibration's rows
    predicted = names[predicted_of(np.nan_to_num(scores, nan=0.25))]
    reference = ReferenceData(
        {"x": rng.normal(size=n_reference), "region": REGIONS[rng.choice(3, n_reference)]},
        predicted,
        names[y],
        scores,
    )
    return config, reference, names


def scored_rows(scores: np.ndarray) -> np.ndarray:
    missing = np.isnan(scores) if scores.ndim == 1 else np.isnan(scores).any(axis=1)
    return np.asarray(~missing)


# ---------------------------------------------------------------------------- incremental = batch


@pytest.mark.parametrize("k", [2, 3])
def test_window_bands_equal_the_bands_of_all_rows_at_once(k: int) -> None:
    config, reference, names = calibrated_setup(k, seed=k, segments=True)
    monitor = ModelMonitor(config, reference)
    calibrator = Calibrator.fit(
        reference.scores, reference.labels, config.classes, config.positive_class
    )
    rng = np.random.default_rng(100 + k)
    all_scores, all_predicted, all_regions = [], [], []
    for b in range(8):
        n = int(rng.integers(50, 400))
        scores, _ = calibrated(rng, n, k)
        predicted = predicted_of(scores)
        scores[rng.random(n) < 0.05] = np.nan  # rows without scores: not estimated
        errored = rng.random(n) < 0.03  # errored predictions: neither
        predictions = np.where(errored, "", names[predicted]).astype(object)
        predicted = np.where(errored, -1, predicted)
        regions = REGIONS[rng.choice(3, n, p=[0.6, 0.3, 0.1])]
        regions[rng.random(n) < 0.02] = None  # counted under "other"
        # batch b spans buckets 10 s wide: one bucket, or several at once
        t = 1_000.0 + 25.0 * b + (rng.random(n) * 30.0 if b % 2 else np.zeros(n))
        monitor.observe(
            PredictionBatch(t, {"x": rng.normal(size=n), "region": regions}, predictions, scores),
            now=1_000.0 + 25.0 * b + 30.0,
        )
        all_scores.append(scores)
        all_predicted.append(predicted)
        all_regions.append(regions)
    snap = monitor.snapshot(now=1_000.0 + 25.0 * 7 + 30.0)
    scores, predicted = np.concatenate(all_scores), np.concatenate(all_predicted)
    regions = np.concatenate(all_regions)
    rows = scored_rows(scores) & (predicted >= 0)
    n_scored = int(scored_rows(reference.scores).sum())
    assert n_scored == 20_000 - 37

    def bands_of(selected: np.ndarray) -> Any:
        probabilities = calibrator.probabilities(scores[selected])
        return classification_bands(
            expected_counts(probabilities, predicted[selected], k),
            band_terms(probabilities, predicted[selected], k),
            config.classes,
            monitor._output.positive,
            config.min_samples,
            reference_rows=n_scored,
        )

    whole = bands_of(rows)
    assert whole.estimate.accuracy == whole.estimate.accuracy  # enough rows: not NaN
    assert_figures(snap.estimated, whole.estimate)
    assert_figures(snap.estimated_lower, whole.lower)
    assert_figures(snap.estimated_upper, whole.upper)
    assert snap.estimated_lower is not None and snap.estimated_upper is not None
    assert snap.estimated_lower.accuracy < snap.estimated.accuracy < snap.estimated_upper.accuracy
    segment = snap.segments["region"]
    for value in ("a", "b", "c", "other"):
        members = np.array([r == value if value != "other" else r is None for r in regions])
        assert_figures(segment[value].estimated, bands_of(rows & members).estimate)
    assert math.isnan(segment["other"].estimated.accuracy)  # below min_samples: NaN
    json.dumps(snap.to_dict(), allow_nan=False)  # the new fields are JSON-able


def test_no_calibration_no_bands_and_nan_below_min_samples() -> None:
    config, reference, names = calibrated_setup(2, seed=5)
    unscored = ReferenceData(reference.features, reference.predictions, reference.labels)
    snap = ModelMonitor(config, unscored).snapshot(now=1_000.0)
    assert snap.estimated is None and snap.estimated_lower is None and snap.estimated_upper is None
    assert not snap.estimation_shift_aware and math.isnan(snap.estimation_auc)
    monitor = ModelMonitor(config, reference)
    rng = np.random.default_rng(6)
    scores, _ = calibrated(rng, 99, 2)
    monitor.observe(
        PredictionBatch(
            np.full(99, 1_000.0),
            {"x": rng.normal(size=99), "region": REGIONS[rng.choice(3, 99)]},
            names[predicted_of(scores)],
            scores,
        )
    )
    snap = monitor.snapshot(now=1_000.0)
    assert all(math.isnan(v) for v in flat(snap.estimated_lower) + flat(snap.estimated_upper))
    assert snap.estimation_reason is None and math.isnan(snap.estimation_effective_rows)


# ---------------------------------------------------------------------------- coverage


@pytest.mark.parametrize(("k", "seed"), [(2, 21), (3, 22)])
def test_realized_accuracy_lies_in_the_band_of_calibrated_windows(k: int, seed: int) -> None:
    config, reference, names = calibrated_setup(k, seed, min_samples=100)
    monitor = ModelMonitor(config, reference)
    rng = np.random.default_rng(seed + 1000)
    windows, n = 300, 400
    inside = 0
    for w in range(windows):
        t = 10_000.0 + 1_000.0 * w  # every window on its own: the previous one has expired
        scores, y = calibrated(rng, n, k)
        predicted = names[predicted_of(scores)]
        features = {"x": rng.normal(size=n), "region": REGIONS[rng.choice(3, n)]}
        monitor.observe(PredictionBatch(np.full(n, t), features, predicted, scores), now=t)
        monitor.label(LabelBatch(np.full(n, t + 1.0), np.full(n, t), predicted, names[y]))
        snap = monitor.snapshot(now=t + 2.0)
        assert snap.window_predictions == n and snap.performance_labels == n
        assert snap.realized is not None
        assert snap.estimated_lower is not None and snap.estimated_upper is not None
        realized = snap.realized.accuracy
        inside += snap.estimated_lower.accuracy <= realized <= snap.estimated_upper.accuracy
    share = inside / windows
    assert share >= 0.90, share
    assert share < 0.995, share  # a band, not everything


# ---------------------------------------------------------------------------- the swap


# The stream and the model of tests/test_engine_shift.py: x2 moves the outcome, the score
# cannot see it.


def shift_setup(k: int, seed: int = 0) -> tuple[MonitorConfig, ReferenceData, Model, np.ndarray]:
    rng = np.random.default_rng(seed)
    model = Model(rng, k)
    classes = tuple(f"c{j}" for j in range(k))
    config = MonitorConfig(
        task="binary" if k == 2 else "multiclass", classes=classes, features=FEATURES
    )
    features, y = rows(rng, 20_000, 0.0, k)
    scores = model.scores(features)
    names = np.array(classes, dtype=object)
    reference = ReferenceData(features, names[predicted_of(scores)], names[y], scores)
    return config, reference, model, names


def feed(
    monitor: ModelMonitor,
    model: Model,
    names: np.ndarray,
    features: dict[str, np.ndarray],
    y: np.ndarray,
    t: float,
) -> Snapshot:
    """Observe and label the rows at time ``t``; the snapshot just after."""
    n = y.shape[0]
    predicted = names[predicted_of(model.scores(features))]
    monitor.observe(PredictionBatch(np.full(n, t), features, predicted, model.scores(features)))
    monitor.label(LabelBatch(np.full(n, t + 1.0), np.full(n, t), predicted, names[y]))
    return monitor.snapshot(now=t + 2.0)


@pytest.mark.parametrize("k", [2, 3])
def test_a_shift_aware_fit_follows_the_shift_and_none_restores_plain_cbpe(k: int) -> None:
    config, reference, model, names = shift_setup(k)
    monitor = ModelMonitor(config, reference)
    plain = ModelMonitor(config, reference)
    assert monitor.can_shift
    recent, _ = rows(np.random.default_rng(31), 5_000, 1.5, k)  # features of recent predictions
    fit = monitor.shift_fit(recent, seed=2)
    assert fit.applied, fit.reason
    monitor.use_calibration(fit)
    live, y = rows(np.random.default_rng(32), 5_000, 1.5, k)  # new shifted predictions
    shifted = feed(monitor, model, names, live, y, 10_000.0)
    baseline = feed(plain, model, names, live, y, 10_000.0)
    assert shifted.realized == baseline.realized and shifted.realized is not None
    realized = shifted.realized.accuracy
    assert shifted.estimated is not None and baseline.estimated is not None
    plain_error = abs(baseline.estimated.accuracy - realized)
    shift_error = abs(shifted.estimated.accuracy - realized)
    assert plain_error > 0.05, (plain_error, shift_error)
    assert shift_error < plain_error / 2, (plain_error, shift_error)
    assert shifted.estimation_shift_aware and not baseline.estimation_shift_aware
    assert shifted.estimation_auc == fit.auc and fit.auc > 0.8
    assert shifted.estimation_effective_rows == fit.effective_size
    assert shifted.estimation_reason is None
    # The band of the refit: its probabilities, and its effective rows as reference_rows.
    assert fit.calibrator is not None
    scores = model.scores(live)
    predicted = predicted_of(scores)
    probabilities = fit.calibrator.probabilities(scores)
    bands = classification_bands(
        expected_counts(probabilities, predicted, k),
        band_terms(probabilities, predicted, k),
        config.classes,
        1 if k == 2 else None,
        config.min_samples,
        reference_rows=fit.effective_size,
    )
    assert_figures(shifted.estimated_lower, bands.lower)
    assert_figures(shifted.estimated_upper, bands.upper)
    assert shifted.estimated_lower is not None and shifted.estimated_upper is not None
    assert shifted.estimated_lower.accuracy <= realized <= shifted.estimated_upper.accuracy
    # None: plain CBPE again, for the predictions that follow (the window has turned over).
    monitor.use_calibration(None)
    later, y_later = rows(np.random.default_rng(33), 3_000, 1.5, k)
    restored = feed(monitor, model, names, later, y_later, 20_000.0)
    fresh = feed(ModelMonitor(config, reference), model, names, later, y_later, 20_000.0)
    for name in ("estimated", "estimated_lower", "estimated_upper", "realized"):
        assert_same(getattr(restored, name), getattr(fresh, name))
    assert not restored.estimation_shift_aware and restored.estimation_reason is None
    assert math.isnan(restored.estimation_auc) and math.isnan(restored.estimation_effective_rows)


def test_the_window_turns_over_to_a_new_calibration() -> None:
    config, reference, model, names = shift_setup(2)
    monitor = ModelMonitor(config, reference)
    recent, _ = rows(np.random.default_rng(41), 3_000, 1.5, 2)
    fit = monitor.shift_fit(recent, seed=3)
    assert fit.calibrator is not None
    before, y_before = rows(np.random.default_rng(42), 1_000, 1.5, 2)
    after, y_after = rows(np.random.default_rng(43), 1_000, 1.5, 2)
    feed(monitor, model, names, before, y_before, 10_000.0)  # counted with plain CBPE
    monitor.use_calibration(fit)
    snap = feed(monitor, model, names, after, y_after, 10_010.0)  # with the refit
    plain = monitor._output.reference_calibrator
    assert plain is not None
    s_before, s_after = model.scores(before), model.scores(after)
    correct = (
        plain.probabilities(s_before)[np.arange(1_000), predicted_of(s_before)].sum()
        + fit.calibrator.probabilities(s_after)[np.arange(1_000), predicted_of(s_after)].sum()
    )
    assert snap.estimated is not None
    assert snap.estimated.accuracy == pytest.approx(correct / 2_000, abs=1e-12)


def test_a_fit_that_fell_back_keeps_plain_cbpe_and_records_the_reason() -> None:
    config, reference, model, names = shift_setup(2)
    monitor = ModelMonitor(config, reference)
    same, _ = rows(np.random.default_rng(51), 2_000, 0.0, 2)  # no shift
    applied = monitor.shift_fit(rows(np.random.default_rng(52), 2_000, 1.5, 2)[0], seed=1)
    assert applied.applied
    monitor.use_calibration(applied)
    fit = monitor.shift_fit(same, seed=1)
    assert not fit.applied and fit.reason is not None and fit.reason.startswith("no shift")
    monitor.use_calibration(fit)
    live, y = rows(np.random.default_rng(53), 2_000, 0.0, 2)
    snap = feed(monitor, model, names, live, y, 10_000.0)
    fresh = feed(ModelMonitor(config, reference), model, names, live, y, 10_000.0)
    assert_same(snap.estimated, fresh.estimated)
    assert_same(snap.estimated_upper, fresh.estimated_upper)
    assert not snap.estimation_shift_aware and snap.estimation_reason == fit.reason
    assert math.isnan(snap.estimation_auc)
    few = monitor.shift_fit({name: column[:10] for name, column in same.items()})
    monitor.use_calibration(few)
    assert monitor.snapshot(now=10_002.0).estimation_reason == "too few live rows: 10 < 500"


def test_shift_fit_changes_nothing_and_is_deterministic() -> None:
    config, reference, model, names = shift_setup(2)
    monitor = ModelMonitor(config, reference)
    live, y = rows(np.random.default_rng(61), 1_000, 1.0, 2)
    feed(monitor, model, names, live, y, 10_000.0)
    before = json.dumps(monitor.snapshot(now=10_003.0).to_dict())
    checkpoint = json.dumps(monitor.to_checkpoint())
    settings = ShiftSettings(max_reference_rows=3_000)
    first = monitor.shift_fit(live, seed=9, settings=settings)
    again = monitor.shift_fit(live, seed=9, settings=settings)
    assert json.dumps(monitor.snapshot(now=10_003.0).to_dict()) == before
    assert json.dumps(monitor.to_checkpoint()) == checkpoint
    assert first.applied and again.applied
    assert first.auc == again.auc and first.effective_size == again.effective_size
    assert first.weights is not None and again.weights is not None
    np.testing.assert_array_equal(first.weights, again.weights)
    assert first.calibrator is not None and again.calibrator is not None
    probe = np.linspace(0.0, 1.0, 101)
    np.testing.assert_array_equal(
        first.calibrator.probabilities(probe), again.calibrator.probabilities(probe)
    )
    other = monitor.shift_fit(live, seed=10, settings=settings)
    assert other.weights is not None and not np.array_equal(first.weights, other.weights)


def test_shift_fit_and_use_calibration_refuse_what_does_not_fit() -> None:
    config, reference, _, _ = shift_setup(2)
    live, _ = rows(np.random.default_rng(71), 600, 1.5, 2)
    unscored = ModelMonitor(
        config, ReferenceData(reference.features, reference.predictions, reference.labels)
    )
    assert not unscored.can_shift
    with pytest.raises(ValueError, match="reference scores"):
        unscored.shift_fit(live)
    regression = ModelMonitor(
        MonitorConfig(task="regression", features=FEATURES),
        ReferenceData(reference.features, np.zeros(20_000), np.ones(20_000)),
    )
    assert not regression.can_shift
    with pytest.raises(ValueError, match="classification"):
        regression.shift_fit(live)
    featureless = ModelMonitor(
        MonitorConfig(task="binary", classes=config.classes, features=()),
        ReferenceData({}, reference.predictions, reference.labels, reference.scores),
    )
    assert not featureless.can_shift
    with pytest.raises(ValueError, match="at least one feature"):
        featureless.shift_fit(live)
    monitor = ModelMonitor(config, reference)
    with pytest.raises(ValueError, match="lack"):
        monitor.shift_fit({"x1": live["x1"]})
    fit = monitor.shift_fit(live, seed=1)
    assert fit.applied
    with pytest.raises(ValueError, match="can_shift"):
        unscored.use_calibration(fit)
    unscored.use_calibration(None)  # nothing to restore: fine
    multiclass_config, multiclass_reference, _, _ = shift_setup(3)
    multiclass = ModelMonitor(multiclass_config, multiclass_reference)
    with pytest.raises(ValueError, match="classes"):
        multiclass.use_calibration(fit)  # a binary calibrator
    assert not multiclass.snapshot(now=0.0).estimation_shift_aware
    wrong = ShiftFit(fit.calibrator, fit.auc, 0.0, 1, 1, 0.0)
    with pytest.raises(ValueError, match="rows must be > 0"):
        monitor.use_calibration(wrong)


# ---------------------------------------------------------------------------- checkpoints


def test_a_checkpoint_without_the_band_statistic_loads() -> None:
    config, reference, names = calibrated_setup(2, seed=81, segments=True)
    monitor = ModelMonitor(config, reference)
    rng = np.random.default_rng(82)
    scores, _ = calibrated(rng, 500, 2)
    features = {"x": rng.normal(size=500), "region": REGIONS[rng.choice(3, 500)]}
    predicted = names[predicted_of(scores)]
    monitor.observe(PredictionBatch(np.full(500, 1_000.0), features, predicted, scores))
    snap = monitor.snapshot(now=1_000.0)
    data = json.loads(json.dumps(monitor.to_checkpoint(), allow_nan=False))
    assert "segment_expected" in data["ring"]["arrays"]
    del data["ring"]["arrays"]["expected_terms"]  # written before it
    restored = ModelMonitor.from_checkpoint(config, reference, data)
    loaded = restored.snapshot(now=1_000.0)
    assert_same(loaded.estimated, snap.estimated)
    # No terms for the counts loaded: the band is the estimate until the window turns over.
    assert_same(loaded.estimated_lower, snap.estimated)
    assert_same(loaded.estimated_upper, snap.estimated)
    assert_same(loaded.segments["region"]["a"].estimated, snap.segments["region"]["a"].estimated)
    # The full checkpoint round-trips, and counting resumes.
    full = ModelMonitor.from_checkpoint(config, reference, monitor.to_checkpoint())
    assert_same(full.snapshot(now=1_000.0).estimated_lower, snap.estimated_lower)
    restored.observe(PredictionBatch(np.full(500, 1_005.0), features, predicted, scores))
    after = restored.snapshot(now=1_005.0)
    assert after.estimated_lower is not None and after.estimated is not None
    assert after.estimated_lower.accuracy < after.estimated.accuracy
