"""ModelMonitor: incremental = batch, expiry, checkpoints, bad input, quality and operations."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np
import pytest

from modelmeter.engine import (
    LABEL_DELAY_BOUNDS,
    LATENCY_BOUNDS,
    FeatureSpec,
    LabelBatch,
    ModelMonitor,
    MonitorConfig,
    PredictionBatch,
    ReferenceData,
    Snapshot,
)

CLASSES = ("cat", "dog", "eel")
FEATURES = (
    FeatureSpec("x", "numeric", low=-3.0, high=3.0),
    FeatureSpec("y", "numeric"),
    FeatureSpec("color", "categorical", categories=("red", "green", "blue")),
    FeatureSpec("city", "categorical"),
)


def config(**changes: Any) -> MonitorConfig:
    values: dict[str, Any] = {
        "task": "multiclass",
        "classes": CLASSES,
        "features": FEATURES,
        "window_seconds": 60.0,
        "bucket_seconds": 5.0,
        "min_samples": 20,
    }
    values.update(changes)
    return MonitorConfig(**values)


def events(rng: np.random.Generator, n: int, start: float, stop: float) -> PredictionBatch:
    x = rng.normal(size=n)
    x[rng.random(n) < 0.05] = np.nan
    scores = rng.dirichlet([2, 2, 2], n)
    predictions = np.array(CLASSES, dtype=object)[scores.argmax(axis=1)]
    errors = rng.random(n) < 0.03
    predictions[errors] = ""
    return PredictionBatch(
        timestamps=np.sort(rng.uniform(start, stop, n)),
        features={
            "x": x * 1.5,
            "y": rng.exponential(size=n),
            "color": rng.choice(["red", "green", "blue", "pink", None], n).astype(object),
            "city": rng.choice(["paris", "rome", "oslo"], n).astype(object),
        },
        predictions=predictions,
        scores=scores,
        latency_seconds=rng.exponential(0.05, n),
        errors=errors,
    )


def reference() -> ReferenceData:
    rng = np.random.default_rng(100)
    batch = events(rng, 3000, 0.0, 1.0)
    labels = np.array(CLASSES, dtype=object)[rng.integers(0, 3, 3000)]
    predictions = batch.predictions.copy()
    predictions[predictions == ""] = "cat"
    return ReferenceData(batch.features, predictions, labels, batch.scores)


def monitor(**changes: Any) -> ModelMonitor:
    return ModelMonitor(config(**changes), reference())


def labels_for(rng: np.random.Generator, batch: PredictionBatch, delay: float) -> LabelBatch:
    keep = batch.predictions != ""
    n = int(keep.sum())
    actual = np.where(rng.random(n) < 0.6, batch.predictions[keep], rng.choice(CLASSES, n)).astype(
        object
    )
    made = batch.timestamps[keep]
    return LabelBatch(made + delay, made, batch.predictions[keep], actual)


def slice_batch(batch: PredictionBatch, rows: np.ndarray) -> PredictionBatch:
    assert batch.scores is not None and batch.latency_seconds is not None
    assert batch.errors is not None
    return PredictionBatch(
        timestamps=batch.timestamps[rows],
        features={k: v[rows] for k, v in batch.features.items()},
        predictions=batch.predictions[rows],
        scores=batch.scores[rows],
        latency_seconds=batch.latency_seconds[rows],
        errors=batch.errors[rows],
    )


def assert_same(a: Any, b: Any, rel: float = 0.0) -> None:
    """Equal JSON-like values; floats within ``rel`` (relative), NaN/None equal to itself."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key], rel)
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y, rel)
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=rel, abs_tol=rel), (a, b)
    else:
        assert a == b


@pytest.mark.parametrize("slow_path", [False, True])
def test_incremental_equals_one_batch(slow_path: bool) -> None:
    # 9,000 events: the one big batch is cut in chunks of 4,096 inside the engine.
    rng = np.random.default_rng(1)
    n = 9000
    batch = events(rng, n, 1000.0, 1050.0)
    if slow_path:  # object columns and wrong-type masks take the value-by-value path
        x = batch.features["x"].astype(object)
        x[::7] = "text"
        wrong = {"y": rng.random(n) < 0.1, "city": rng.random(n) < 0.1}
        batch = PredictionBatch(
            batch.timestamps,
            {**batch.features, "x": x},
            batch.predictions,
            batch.scores,
            batch.latency_seconds,
            batch.errors,
            wrong_type=wrong,
        )
    labels = labels_for(rng, batch, 3.0)
    one, many = monitor(), monitor()
    one.observe(batch)
    one.label(labels)
    for rows in np.array_split(np.arange(n), 97):
        part = slice_batch(batch, rows)
        if slow_path:
            part = PredictionBatch(
                part.timestamps,
                part.features,
                part.predictions,
                part.scores,
                part.latency_seconds,
                part.errors,
                wrong_type={k: v[rows] for k, v in batch.wrong_type.items()},
            )
        many.observe(part)
    for rows in np.array_split(np.arange(len(labels)), 31):
        many.label(
            LabelBatch(
                labels.label_timestamps[rows],
                labels.prediction_timestamps[rows],
                labels.predictions[rows],
                labels.labels[rows],
            )
        )
    a, b = one.snapshot(now=1055.0).to_dict(), many.snapshot(now=1055.0).to_dict()
    # Counts are exact; sums of floats (estimated counts, latency) differ by rounding only.
    assert_same(a, b, rel=1e-9)
    assert a["window_predictions"] == n and a["realized"]["accuracy"] is not None
    if slow_path:
        assert a["quality_window"]["x"]["wrong_type"] == len(range(0, n, 7))
        assert a["quality_window"]["city"]["wrong_type"] == int(batch.wrong_type["city"].sum())


def test_old_events_expire_from_the_window_but_stay_in_the_totals() -> None:
    rng = np.random.default_rng(2)
    m = monitor()
    m.observe(events(rng, 500, 0.0, 4.9))  # bucket 0
    m.observe(events(rng, 300, 30.0, 34.9))  # bucket 6
    snap = m.snapshot(now=59.0)  # head bucket 11: buckets 0..11 in the window
    assert snap.window_predictions == 800
    snap = m.snapshot(now=60.0)  # head bucket 12: bucket 0 expired
    assert snap.window_predictions == 300
    assert snap.predictions_total == 800
    assert sum(snap.drift["y"].samples for _ in [0]) == 300
    snap = m.snapshot(now=95.0)  # head bucket 19: bucket 6 expired too
    assert snap.window_predictions == 0 and snap.predictions_total == 800
    assert math.isnan(snap.drift["y"].psi) and math.isnan(snap.label_coverage)
    assert snap.quality_total["x"]["missing"] > 0 and snap.quality_window["x"]["missing"] == 0


def test_events_older_than_the_window_count_in_totals_only_and_future_ones_at_the_head() -> None:
    rng = np.random.default_rng(3)
    m = monitor()
    m.observe(events(rng, 100, 1000.0, 1001.0))
    m.observe(events(rng, 50, 100.0, 200.0))  # far older than the window
    snap = m.snapshot(now=1001.0)
    assert snap.window_predictions == 100 and snap.predictions_total == 150
    future = events(rng, 40, 5000.0, 5001.0)
    m.observe(future, now=1002.0)  # clock skew: counted in the newest bucket (1000-1005)
    snap = m.snapshot(now=1004.0)
    assert snap.window_predictions == 140
    assert m.snapshot(now=1065.0).window_predictions == 0  # and they expire with it


def test_checkpoint_round_trip_gives_an_identical_snapshot() -> None:
    rng = np.random.default_rng(4)
    m = monitor()
    batch = events(rng, 3000, 0.0, 100.0)
    m.observe(batch)
    m.label(labels_for(rng, batch, 20.0))
    m.observe(
        PredictionBatch(
            np.array([101.0]),
            {
                "x": np.array([9.0]),
                "y": np.array([1.0]),
                "color": np.array(["red"], dtype=object),
                "city": np.array([None], dtype=object),
            },
            np.array(["cat"], dtype=object),
            unknown_features=2,
        )
    )
    data = json.loads(json.dumps(m.to_checkpoint(), allow_nan=False))
    restored = ModelMonitor.from_checkpoint(config(), reference(), data)
    assert repr(restored.snapshot(now=110.0)) == repr(m.snapshot(now=110.0))
    # Both go on identically.
    more = events(rng, 500, 105.0, 130.0)
    for target in (m, restored):
        target.observe(more)
    assert repr(restored.snapshot(now=131.0)) == repr(m.snapshot(now=131.0))


@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_checkpoint_round_trip_with_only_one_kind_of_feature(kind: str) -> None:
    # Zero-length axes (no categorical or no numeric feature) must survive JSON, which drops them.
    features = tuple(f for f in FEATURES if f.kind == kind)
    ref = reference()
    ref_kept = ReferenceData(
        {f.name: ref.features[f.name] for f in features}, ref.predictions, ref.labels, ref.scores
    )
    m = ModelMonitor(config(features=features), ref_kept)
    full = events(np.random.default_rng(5), 500, 0.0, 50.0)
    batch = dataclasses.replace(full, features={f.name: full.features[f.name] for f in features})
    m.observe(batch)
    data = json.loads(json.dumps(m.to_checkpoint(), allow_nan=False))
    restored = ModelMonitor.from_checkpoint(config(features=features), ref_kept, data)
    assert repr(restored.snapshot(now=60.0)) == repr(m.snapshot(now=60.0))


def test_checkpoint_from_another_configuration_is_refused() -> None:
    data = monitor().to_checkpoint()
    with pytest.raises(ValueError, match="window"):
        ModelMonitor.from_checkpoint(config(bucket_seconds=10.0), reference(), data)
    with pytest.raises(ValueError, match="shape"):
        ModelMonitor.from_checkpoint(config(drift_bins=5), reference(), data)


def test_memory_is_bounded_by_features_bins_and_buckets_not_traffic() -> None:
    rng = np.random.default_rng(5)
    m = monitor()

    def shapes(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: shapes(v) for k, v in value.items()}
        if isinstance(value, list):
            return np.shape(value)
        return None

    m.observe(events(rng, 10, 0.0, 1.0))
    small = shapes(m.to_checkpoint())
    for start in range(0, 2000, 20):
        m.observe(events(rng, 1000, float(start), start + 20.0))
    assert shapes(m.to_checkpoint()) == small


def test_quality_issues_are_counted_per_feature() -> None:
    m = monitor(min_samples=1)
    n = 6
    batch = PredictionBatch(
        timestamps=np.full(n, 10.0),
        features={
            "x": np.array(["1.5", 2.0, None, 7.0, -np.inf, 0.0], dtype=object),
            "y": np.array([1.0, np.nan, 2.0, 3.0, 4.0, 5.0]),
            "color": np.array(["red", "pink", None, "blue", 3, "red"], dtype=object),
            "city": np.array(["paris"] * n, dtype=object),
        },
        predictions=np.array(["cat"] * n, dtype=object),
        wrong_type={"color": np.array([False, False, False, False, True, False])},
        unknown_features=3,
    )
    m.observe(batch)
    snap = m.snapshot(now=10.0)
    assert snap.quality_window["x"] == {
        "missing": 1,
        "out_of_range": 2,
        "unseen_category": 0,
        "wrong_type": 1,
    }
    assert snap.quality_window["y"]["missing"] == 1
    assert snap.quality_window["color"] == {
        "missing": 1,
        "out_of_range": 0,
        "unseen_category": 1,
        "wrong_type": 1,
    }
    assert snap.quality_window_ratio["color"]["unseen_category"] == pytest.approx(1 / 6)
    assert snap.quality_total == snap.quality_window
    assert snap.unknown_features_total == 3
    # Wrong-type, missing and infinite values are not part of the drift histogram.
    assert snap.drift["x"].samples == 3
    assert snap.drift["color"].samples == 4  # red, pink (other), blue, red


def test_operations_histograms_and_label_coverage() -> None:
    rng = np.random.default_rng(6)
    m = monitor()
    batch = events(rng, 1000, 100.0, 150.0)
    m.observe(batch)
    assert batch.latency_seconds is not None and batch.errors is not None
    labels = labels_for(rng, batch, 0.0)
    half = np.arange(len(labels)) % 2 == 0
    delays = rng.exponential(100.0, int(half.sum()))
    m.label(
        LabelBatch(
            labels.prediction_timestamps[half] + delays,
            labels.prediction_timestamps[half],
            labels.predictions[half],
            labels.labels[half],
        ),
        now=155.0,
    )
    snap = m.snapshot(now=155.0)
    assert snap.window_predictions == 1000
    assert snap.window_errors == int(batch.errors.sum()) == snap.errors_total
    assert snap.label_coverage == pytest.approx(half.sum() / 1000, abs=1e-12)
    latency = snap.latency
    assert latency.bounds == LATENCY_BOUNDS and latency.count == 1000
    expected = np.bincount(
        np.searchsorted(LATENCY_BOUNDS, batch.latency_seconds, side="left"),
        minlength=len(LATENCY_BOUNDS) + 1,
    )
    assert latency.counts == tuple(expected.tolist())
    assert latency.sum == pytest.approx(batch.latency_seconds.sum(), rel=1e-12)
    # Label delay: Prometheus "le" buckets, checked value by value.
    assert snap.label_delay.bounds == LABEL_DELAY_BOUNDS
    manual = [0] * (len(LABEL_DELAY_BOUNDS) + 1)
    for delay in delays:
        manual[next((i for i, b in enumerate(LABEL_DELAY_BOUNDS) if delay <= b), -1)] += 1
    assert list(snap.label_delay.counts) == manual


def test_label_for_an_expired_prediction_counts_in_performance_not_coverage() -> None:
    rng = np.random.default_rng(7)
    m = monitor(min_samples=1)
    m.observe(events(rng, 10, 1000.0, 1001.0))
    late = LabelBatch(
        np.array([1000.0]),
        np.array([100.0]),
        np.array(["cat"], dtype=object),
        np.array(["cat"], dtype=object),
    )
    m.label(late)
    snap = m.snapshot(now=1001.0)
    assert snap.window_labeled == 1 and snap.label_coverage == 0.0
    assert snap.realized is not None and snap.realized.accuracy == 1.0


@pytest.mark.parametrize("n", [3, 5000])
def test_text_column_for_a_numeric_feature_is_wrong_type_not_a_crash(n: int) -> None:
    m = monitor(min_samples=1)
    rng = np.random.default_rng(12)
    batch = events(rng, n, 10.0, 11.0)
    features = {**batch.features, "y": np.array(["a"] * n)}  # numpy text, not numbers
    m.observe(PredictionBatch(batch.timestamps, features, batch.predictions))
    snap = m.snapshot(now=11.0)
    assert snap.quality_window["y"]["wrong_type"] == n
    assert snap.drift["y"].samples == 0 and snap.drift["x"].samples > 0


def bad_batches() -> list[tuple[str, PredictionBatch]]:
    rng = np.random.default_rng(8)
    good = events(rng, 10, 0.0, 1.0)
    f = dict(good.features)

    def with_(**changes: Any) -> PredictionBatch:
        values = {
            "timestamps": good.timestamps,
            "features": f,
            "predictions": good.predictions,
            "scores": good.scores,
            "latency_seconds": good.latency_seconds,
            "errors": good.errors,
        }
        values.update(changes)
        return PredictionBatch(**values)

    bad_time = good.timestamps.copy()
    bad_time[3] = np.nan
    bad_class = good.predictions.copy()
    bad_class[4] = "whale"
    assert good.scores is not None
    bad_scores = good.scores.copy()
    bad_scores[0, 0] = 1.5
    return [
        ("timestamps", with_(timestamps=bad_time)),
        ("'predictions'", with_(predictions=bad_class)),
        ("'x'", with_(features={**f, "x": f["x"][:5]})),
        ("'city' is missing", with_(features={k: v for k, v in f.items() if k != "city"})),
        ("scores", with_(scores=bad_scores)),
        ("scores", with_(scores=good.scores[:, :2])),
        ("latency_seconds", with_(latency_seconds=-good.timestamps - 1)),
        ("errors", with_(errors=np.zeros(3, bool))),
        ("wrong_type", with_(wrong_type={"nope": np.zeros(10, bool)})),
        ("wrong_type", with_(wrong_type={"x": np.array(["yes"] * 10)})),
        ("unknown_features", with_(unknown_features=-1)),
    ]


@pytest.mark.parametrize(("column", "batch"), bad_batches())
def test_bad_batches_raise_naming_the_column_and_change_nothing(
    column: str, batch: PredictionBatch
) -> None:
    rng = np.random.default_rng(9)
    m = monitor()
    m.observe(events(rng, 100, 0.0, 1.0))
    before = json.dumps(m.to_checkpoint())
    with pytest.raises(ValueError, match=column):
        m.observe(batch)
    assert json.dumps(m.to_checkpoint()) == before


def test_bad_labels_raise_and_change_nothing() -> None:
    m = monitor()
    before = json.dumps(m.to_checkpoint())
    t = np.array([1.0, 2.0])
    cases = [
        ("'labels'", LabelBatch(t, t, np.array(["cat", "dog"]), np.array(["cat", "whale"]))),
        ("'labels'", LabelBatch(t, t, np.array(["cat", "dog"]), np.array(["cat", ""]))),
        ("'predictions'", LabelBatch(t, t, np.array(["cat", 3]), np.array(["cat", "dog"]))),
        (
            "prediction_timestamps",
            LabelBatch(t, t[:1], np.array(["cat"] * 2), np.array(["cat"] * 2)),
        ),
        (
            "label_timestamps",
            LabelBatch(np.array([np.inf, 1.0]), t, np.array(["cat"] * 2), np.array(["cat"] * 2)),
        ),
    ]
    for column, batch in cases:
        with pytest.raises(ValueError, match=column):
            m.label(batch)
    assert json.dumps(m.to_checkpoint()) == before


def test_checked_batches_count_as_the_raw_ones() -> None:
    """check() returns the checked batch; observe()/label() of it skip the validation and
    give exactly the state of the raw batch (the service checks before its commit)."""
    rng = np.random.default_rng(12)
    batch = events(rng, 500, 1000.0, 1010.0)
    labels = labels_for(rng, batch, 2.0)
    raw, checked = monitor(), monitor()
    raw.observe(batch, now=1010.0)
    raw.label(labels, now=1012.0)
    predictions = checked.check(batch, 1010.0)
    assert len(predictions) == 500 and predictions.batch is batch
    label_rows = checked.check(labels, 1012.0)
    assert len(label_rows) == len(labels)
    checked.observe(predictions, now=1010.0)
    checked.label(label_rows, now=1012.0)
    assert json.dumps(checked.to_checkpoint()) == json.dumps(raw.to_checkpoint())
    assert checked.snapshot(1015.0).to_dict() == raw.snapshot(1015.0).to_dict()
    with pytest.raises(ValueError, match="now"):
        checked.observe(predictions, now=math.inf)


def test_a_batch_checked_by_another_monitor_is_validated_again() -> None:
    rng = np.random.default_rng(13)
    batch = events(rng, 50, 0.0, 1.0)
    fine = monitor().check(batch)
    ref = reference()
    town = FeatureSpec("town", "categorical")
    other = ModelMonitor(
        config(features=(*FEATURES, town)),
        dataclasses.replace(ref, features={**ref.features, "town": ref.features["city"]}),
    )
    before = json.dumps(other.to_checkpoint())
    with pytest.raises(ValueError, match="'town' is missing"):
        other.observe(fine)
    assert json.dumps(other.to_checkpoint()) == before
    same = monitor()
    same.observe(fine)  # another monitor of the same configuration: validated, then counted
    assert same.snapshot(1.0).window_predictions == 50


def test_empty_batches_are_fine() -> None:
    m = monitor()
    empty = PredictionBatch(
        timestamps=np.zeros(0),
        features={
            "x": np.zeros(0),
            "y": np.zeros(0),
            "color": np.zeros(0, dtype=object),
            "city": np.zeros(0, dtype=object),
        },
        predictions=np.zeros(0, dtype=object),
        scores=np.zeros((0, 3)),
        latency_seconds=np.zeros(0),
        unknown_features=1,
    )
    m.observe(empty)
    m.label(LabelBatch(np.zeros(0), np.zeros(0), np.zeros(0, object), np.zeros(0, object)))
    snap = m.snapshot(now=0.0)
    assert snap.window_predictions == 0 and snap.unknown_features_total == 1


def test_snapshot_is_json_able_and_nan_below_min_samples() -> None:
    rng = np.random.default_rng(10)
    m = monitor(min_samples=1000)
    m.observe(events(rng, 100, 0.0, 1.0))
    snap: Snapshot = m.snapshot(now=1.0)
    assert snap.realized is not None and math.isnan(snap.realized.accuracy)
    assert snap.estimated is not None and math.isnan(snap.estimated.accuracy)
    text = json.dumps(snap.to_dict(), allow_nan=False)
    assert '"psi": null' in text


def test_regression_task_end_to_end() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(size=2000)
    cfg = MonitorConfig(task="regression", features=(FeatureSpec("x", "numeric"),), min_samples=10)
    m = ModelMonitor(cfg, ReferenceData({"x": x}, 2 * x, 2 * x + rng.normal(size=2000)))
    xs = rng.normal(2.0, 1.0, 500)
    predictions = 2 * xs
    predictions[:5] = np.nan  # errored
    t = np.full(500, 10.0)
    m.observe(PredictionBatch(t, {"x": xs}, predictions))
    m.label(LabelBatch(t, t, predictions, 2 * xs + 1.0))
    snap = m.snapshot(now=10.0)
    assert snap.regression is not None and snap.realized is None and snap.estimated is None
    assert snap.regression.mae == pytest.approx(1.0, abs=1e-12)
    assert snap.prediction_drift.samples == 495 and snap.prediction_drift.drifted
    assert snap.prediction_drift.wasserstein > 1.0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"task": "ranking"}, "valid tasks"),
        ({"classes": ("a",)}, "at least 2"),
        ({"task": "binary", "classes": ("a", "b"), "positive_class": "c"}, "positive_class"),
        ({"bucket_seconds": 0.0}, "bucket_seconds"),
        ({"window_seconds": 1.0}, "window_seconds"),
        ({"min_samples": 0}, "min_samples"),
        ({"drift_fdr": 1.0}, "drift_fdr"),
        ({"features": (FeatureSpec("x", "numeric"), FeatureSpec("x", "numeric"))}, "unique"),
    ],
)
def test_invalid_configuration_is_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config(**changes)


def test_reference_must_cover_the_features() -> None:
    ref = reference()
    with pytest.raises(ValueError, match="'z'"):
        ModelMonitor(config(features=(*FEATURES, FeatureSpec("z", "numeric"))), ref)
