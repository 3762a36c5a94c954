"""The performance window: realized performance over a window of its own (labels by arrival),
pinned against scikit-learn on exactly the labels that arrived in it, for a model labeled in one
batch a day; everything else keeps the short window. Also: the default (the window itself),
segments, checkpoints (old ones too) and the configuration's checks."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from modelmeter.engine import (
    FeatureSpec,
    LabelBatch,
    ModelMonitor,
    MonitorConfig,
    PredictionBatch,
    ReferenceData,
    Snapshot,
)

TOL = 1e-12
HOUR = 3600.0
DAY = 24 * HOUR
T0 = 100 * DAY  # midnight of simulated day 0
WINDOW, BUCKET = 300.0, 10.0  # the short window: drift, quality, operations...
PERF_WINDOW, PERF_BUCKET = DAY + HOUR, 1800.0  # 50 buckets of 30 minutes
BATCH_HOUR = 2.0  # the labels of the day before come at 02:00
DAYS = 3
COUNTRIES = ("de", "fr")
CLASSES = {"binary": ("no", "yes"), "multiclass": ("a", "b", "c"), "regression": ()}
FEATURES = (
    FeatureSpec("x", "numeric"),
    FeatureSpec("country", "categorical", categories=COUNTRIES),
)


def config(task: str, **changes: Any) -> MonitorConfig:
    values: dict[str, Any] = {
        "task": task,
        "classes": CLASSES[task],
        "features": FEATURES,
        "window_seconds": WINDOW,
        "bucket_seconds": BUCKET,
        "min_samples": 30,
        "performance_window_seconds": PERF_WINDOW,
        "performance_bucket_seconds": PERF_BUCKET,
    }
    values.update(changes)
    return MonitorConfig(**values)


def outputs(
    rng: np.random.Generator, task: str, n: int, accuracy: float = 0.8
) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, labels) of ``n`` events: a classifier right ``accuracy`` of the time, a
    regressor with an error of sd 1 (``accuracy`` < 0.5: sd 3)."""
    if task == "regression":
        actual = rng.normal(10.0, 2.0, n)
        return actual + rng.normal(0.0, 1.0 if accuracy >= 0.5 else 3.0, n), actual
    classes = np.array(CLASSES[task], dtype=object)
    predicted = classes[rng.integers(0, len(classes), n)]
    actual = np.where(
        rng.random(n) < accuracy, predicted, classes[rng.integers(0, len(classes), n)]
    )
    return predicted, actual.astype(object)


def reference(task: str, rng: np.random.Generator, n: int = 1000) -> ReferenceData:
    predicted, actual = outputs(rng, task, n)
    features = {"x": rng.normal(size=n), "country": rng.choice(COUNTRIES, n).astype(object)}
    return ReferenceData(features, predicted, actual)


def predictions(
    rng: np.random.Generator, task: str, start: float, stop: float, n: int
) -> tuple[PredictionBatch, np.ndarray]:
    """A prediction batch in [start, stop) and the labels its events will get."""
    predicted, actual = outputs(rng, task, n)
    batch = PredictionBatch(
        timestamps=np.sort(rng.uniform(start, stop, n)),
        features={"x": rng.normal(size=n), "country": rng.choice(COUNTRIES, n).astype(object)},
        predictions=predicted,
    )
    return batch, actual


class Arrived:
    """Every label a monitor was given: arrival time, prediction, label, segment value."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def add(
        self, at: np.ndarray, predicted: np.ndarray, actual: np.ndarray, country: np.ndarray
    ) -> None:
        self.parts.append((at, predicted, actual, country))

    def within(
        self, now: float, window: float, bucket: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(predictions, labels, countries) of the labels that arrived in the window ending at
        ``now``: in its ``n`` buckets, ``floor(t / bucket) > floor(now / bucket) - n``."""
        n = math.ceil(window / bucket - 1e-9)
        head = math.floor(now / bucket)
        predicted, actual, country = [], [], []
        for at, p, a, c in self.parts:
            rows = np.floor(at / bucket) > head - n
            predicted.append(p[rows])
            actual.append(a[rows])
            country.append(c[rows])
        if not self.parts:
            return np.array([], dtype=object), np.array([], dtype=object), np.array([])
        return np.concatenate(predicted), np.concatenate(actual), np.concatenate(country)


def day_batch(
    monitor: ModelMonitor,
    arrived: Arrived,
    rng: np.random.Generator,
    task: str,
    at: float,
    n: int,
    accuracy: float = 0.8,
) -> None:
    """The labels of ``n`` predictions of the day before ``at``, all arriving at ``at``."""
    predicted, actual = outputs(rng, task, n, accuracy)
    made = np.sort(rng.uniform(at - DAY, at - HOUR, n))
    country = rng.choice(COUNTRIES, n).astype(object)
    codes = monitor.segment_codes({"x": np.zeros(n), "country": country})
    arrival = np.full(n, at)
    monitor.label(LabelBatch(arrival, made, predicted, actual, codes), now=at)
    arrived.add(arrival, predicted, actual, country)


def assert_realized(snap: Snapshot, task: str, predicted: np.ndarray, actual: np.ndarray) -> None:
    """The snapshot's realized figures are scikit-learn's / numpy's on these labels."""
    assert snap.performance_labels == predicted.shape[0]
    if task == "regression":
        assert snap.regression is not None and snap.performance_confusion == {}
        error = np.asarray(predicted, float) - np.asarray(actual, float)
        assert abs(snap.regression.mae - float(np.mean(np.abs(error)))) <= TOL
        assert abs(snap.regression.rmse - math.sqrt(float(np.mean(error**2)))) <= TOL
        return
    figures = snap.realized
    assert figures is not None
    classes = list(CLASSES[task])
    kwargs: dict[str, Any] = {"labels": classes, "zero_division": np.nan}
    if task == "binary":
        kwargs |= {"pos_label": "yes", "average": "binary"}
    else:
        kwargs |= {"average": "macro"}
    assert abs(figures.accuracy - accuracy_score(actual, predicted)) <= TOL
    assert abs(figures.precision - precision_score(actual, predicted, **kwargs)) <= TOL
    assert abs(figures.recall - recall_score(actual, predicted, **kwargs)) <= TOL
    assert abs(figures.f1 - f1_score(actual, predicted, **kwargs)) <= TOL
    for p in classes:
        for a in classes:
            expected = float(np.sum((predicted == p) & (actual == a)))
            assert snap.performance_confusion[(p, a)] == expected


def accuracy_of(snap: Snapshot, task: str) -> float:
    if task == "regression":
        assert snap.regression is not None
        return -snap.regression.mae  # higher is better, like accuracy
    assert snap.realized is not None
    return snap.realized.accuracy


# --------------------------------------------------------------------------- daily labels


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_daily_labels_give_figures_every_hour_equal_to_sklearn(task: str) -> None:
    rng = np.random.default_rng({"binary": 1, "multiclass": 2, "regression": 3}[task])
    monitor = ModelMonitor(config(task), reference(task, rng))
    arrived = Arrived()
    made = 0
    checked_hours = 0
    for hour in range(int(DAYS * 24 + 6)):
        now = T0 + hour * HOUR
        batch, _ = predictions(rng, task, now - 120.0, now, 150)  # traffic all day
        monitor.observe(batch, now=now)
        made += 150
        if hour % 24 == BATCH_HOUR:
            day_batch(monitor, arrived, rng, task, now, int(rng.integers(300, 500)))
        snap = monitor.snapshot(now)
        # The short window: the last 5 minutes' predictions, and labels only at a batch.
        assert snap.window_seconds == WINDOW and snap.performance_window_seconds == PERF_WINDOW
        assert snap.window_predictions == 150 and snap.predictions_total == made
        assert snap.drift["x"].samples == 150 and snap.prediction_drift.samples == 150
        at_batch = hour % 24 == BATCH_HOUR
        assert snap.window_labeled == (arrived.parts[-1][0].shape[0] if at_batch else 0)
        # The performance window: exactly the labels that arrived in it.
        predicted, actual, _ = arrived.within(now, PERF_WINDOW, PERF_BUCKET)
        if hour < BATCH_HOUR:
            assert snap.performance_labels == 0 and math.isnan(accuracy_of(snap, task))
            continue
        assert not math.isnan(accuracy_of(snap, task))  # present at every hour
        assert_realized(snap, task, predicted, actual)
        # One day's batch between batches; two in the hour after a batch.
        batches = 2 if hour % 24 == BATCH_HOUR and hour > 24 else 1
        assert predicted.shape[0] == sum(p[0].shape[0] for p in arrived.parts[-batches:])
        checked_hours += 1
    assert checked_hours == DAYS * 24 + 6 - BATCH_HOUR


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_a_bad_batch_is_below_threshold_until_a_good_one_replaces_it(task: str) -> None:
    rng = np.random.default_rng(7)
    monitor = ModelMonitor(config(task), reference(task, rng))
    arrived = Arrived()
    good, bad = (0.9, 0.3)
    threshold = 0.7 if task != "regression" else -1.5  # accuracy, or -MAE
    seen: list[tuple[float, float]] = []
    for hour in range(2 * 24 + 2 + 6):
        now = T0 + hour * HOUR
        monitor.observe(predictions(rng, task, now - 60.0, now, 50)[0], now=now)
        if hour == BATCH_HOUR:
            day_batch(monitor, arrived, rng, task, now, 400, good)
        elif hour == 24 + BATCH_HOUR:
            day_batch(monitor, arrived, rng, task, now, 400, bad)
        elif hour == 48 + BATCH_HOUR:
            day_batch(monitor, arrived, rng, task, now, 400, good)
        if hour >= BATCH_HOUR:
            snap = monitor.snapshot(now)
            predicted, actual, _ = arrived.within(now, PERF_WINDOW, PERF_BUCKET)
            assert_realized(snap, task, predicted, actual)
            seen.append((hour, accuracy_of(snap, task)))
    for at, value in seen:
        if at < 24 + BATCH_HOUR:  # the first good batch alone
            assert value >= threshold, at
        elif 24 + BATCH_HOUR < at < 48 + BATCH_HOUR:  # the bad batch alone
            assert value < threshold, at
        elif at > 48 + BATCH_HOUR:  # the good batch has replaced it
            assert value >= threshold, at
    # The hour of a batch holds the one before too (its window is a day and an hour).
    assert sum(1 for _, value in seen if value < threshold) >= 23


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_the_default_performance_window_is_the_window(task: str) -> None:
    rng = np.random.default_rng(11)
    default = config(task, performance_window_seconds=None, performance_bucket_seconds=None)
    assert (default.performance_window, default.performance_bucket) == (WINDOW, BUCKET)
    assert default.performance_n_buckets == default.n_buckets
    monitor = ModelMonitor(default, reference(task, rng))
    arrived = Arrived()
    for step in range(40):
        now = T0 + 25.0 * step
        batch, actual = predictions(rng, task, now - 25.0, now, 80)
        monitor.observe(batch, now=now)
        late = rng.random(80) < 0.7
        at = np.minimum(batch.timestamps[late] + rng.uniform(0.0, 30.0, int(late.sum())), now)
        monitor.label(
            LabelBatch(at, batch.timestamps[late], batch.predictions[late], actual[late]), now=now
        )
        arrived.add(at, batch.predictions[late], actual[late], np.zeros(int(late.sum())))
        snap = monitor.snapshot(now)
        # As before the performance window: the labels received in the window.
        predicted, labels, _ = arrived.within(now, WINDOW, BUCKET)
        assert snap.performance_labels == snap.window_labeled == predicted.shape[0]
        assert snap.performance_window_seconds == snap.window_seconds
        if predicted.shape[0] >= default.min_samples:
            assert_realized(snap, task, predicted, labels)
    checkpoint = monitor.to_checkpoint()
    assert checkpoint["performance_ring"]["n_buckets"] == checkpoint["ring"]["n_buckets"]
    realized = {"confusion", "regression"}
    assert not realized & set(checkpoint["ring"]["arrays"])
    assert realized & set(checkpoint["performance_ring"]["arrays"])


def test_segment_figures_follow_the_performance_window() -> None:
    rng = np.random.default_rng(5)
    task = "binary"
    monitor = ModelMonitor(config(task, segments=("country",)), reference(task, rng))
    arrived = Arrived()
    for hour in range(2 * 24 + 4):
        now = T0 + hour * HOUR
        monitor.observe(predictions(rng, task, now - 60.0, now, 40)[0], now=now)
        if hour % 24 == BATCH_HOUR:
            day_batch(monitor, arrived, rng, task, now, 600)
        if hour < BATCH_HOUR:
            continue
        snap = monitor.snapshot(now)
        predicted, actual, country = arrived.within(now, PERF_WINDOW, PERF_BUCKET)
        _, _, short = arrived.within(now, WINDOW, BUCKET)
        segment = snap.segments["country"]
        assert sum(figures.predictions for figures in segment.values()) == 40  # short window
        for value in COUNTRIES:
            rows = country == value
            figures = segment[value]
            assert figures.performance_labels == int(rows.sum()) > 0
            assert figures.realized is not None
            accuracy = accuracy_score(actual[rows], predicted[rows])
            assert abs(figures.realized.accuracy - accuracy) <= TOL
            f1 = f1_score(actual[rows], predicted[rows], pos_label="yes", zero_division=np.nan)
            assert abs(figures.realized.f1 - f1) <= TOL
            # Labels received in the short window: only in the hour of a batch.
            assert figures.labeled == int(np.sum(short == value))
            assert figures.labeled == 0 or hour % 24 == BATCH_HOUR
        assert segment["other"].performance_labels == 0
        to_dict = snap.to_dict()["segments"]["country"]["de"]
        assert to_dict["performance_labels"] == snap.segments["country"]["de"].performance_labels


# --------------------------------------------------------------------------- checkpoints


def _fed(task: str, **changes: Any) -> ModelMonitor:
    rng = np.random.default_rng(21)
    cfg = config(task, segments=("country",), **changes)
    monitor = ModelMonitor(cfg, reference(task, np.random.default_rng(20)))
    arrived = Arrived()
    for hour in range(30):
        now = T0 + hour * HOUR
        monitor.observe(predictions(rng, task, now - 60.0, now, 60)[0], now=now)
        if hour % 24 == BATCH_HOUR:
            day_batch(monitor, arrived, rng, task, now, 300)
    now = T0 + 30 * HOUR
    batch, actual = predictions(rng, task, now - 100.0, now - 50.0, 200)
    monitor.observe(batch, now=now)
    codes = monitor.segment_codes(batch.features)
    monitor.label(
        LabelBatch(batch.timestamps + 40.0, batch.timestamps, batch.predictions, actual, codes),
        now=now,
    )
    return monitor


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_checkpoint_round_trip_with_a_performance_window(task: str) -> None:
    monitor = _fed(task)
    data = json.loads(json.dumps(monitor.to_checkpoint(), allow_nan=False))
    assert data["performance_ring"]["n_buckets"] == 50
    assert data["performance_ring"]["bucket_seconds"] == PERF_BUCKET
    ref = reference(task, np.random.default_rng(20))
    cfg = monitor.config
    restored = ModelMonitor.from_checkpoint(cfg, ref, data)
    now = T0 + 30 * HOUR + 5.0
    assert repr(restored.snapshot(now)) == repr(monitor.snapshot(now))
    assert monitor.snapshot(now).performance_labels == 300 + 200
    later = T0 + 40 * HOUR
    for target in (monitor, restored):
        target.observe(predictions(np.random.default_rng(3), task, later - 60, later, 50)[0])
    assert repr(restored.snapshot(later)) == repr(monitor.snapshot(later))
    # Another performance window does not fit.
    other = dataclasses.replace(cfg, performance_bucket_seconds=3600.0)
    with pytest.raises(ValueError, match="performance window"):
        ModelMonitor.from_checkpoint(other, ref, data)


def _as_before_the_performance_ring(data: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint as written before the performance ring: its realized statistics in the
    window ring, no count of labels, no ``performance_ring``."""
    old: dict[str, Any] = json.loads(json.dumps(data))
    performance = old.pop("performance_ring")
    arrays = performance["arrays"]
    del arrays["labels"]
    old["ring"]["arrays"].update(arrays)
    return old


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_an_old_checkpoint_of_a_default_config_keeps_its_realized_figures(task: str) -> None:
    monitor = _fed(task, performance_window_seconds=None, performance_bucket_seconds=None)
    old = _as_before_the_performance_ring(monitor.to_checkpoint())
    assert "confusion" in old["ring"]["arrays"] or "regression" in old["ring"]["arrays"]
    ref = reference(task, np.random.default_rng(20))
    restored = ModelMonitor.from_checkpoint(monitor.config, ref, old)
    now = T0 + 30 * HOUR + 5.0
    snap = monitor.snapshot(now)
    assert snap.performance_labels == 200 and not math.isnan(accuracy_of(snap, task))
    assert repr(restored.snapshot(now)) == repr(snap)
    assert restored.to_checkpoint() == monitor.to_checkpoint()


def test_an_old_checkpoint_loads_into_a_longer_performance_window_empty() -> None:
    task = "binary"
    monitor = _fed(task, performance_window_seconds=None, performance_bucket_seconds=None)
    old = _as_before_the_performance_ring(monitor.to_checkpoint())
    ref = reference(task, np.random.default_rng(20))
    restored = ModelMonitor.from_checkpoint(config(task, segments=("country",)), ref, old)
    now = T0 + 30 * HOUR + 5.0
    snap, before = restored.snapshot(now), monitor.snapshot(now)
    assert snap.performance_labels == 0 and snap.realized is not None
    assert math.isnan(snap.realized.accuracy)
    assert snap.segments["country"]["de"].performance_labels == 0
    # Everything of the window is intact.
    assert snap.window_predictions == before.window_predictions
    assert snap.window_labeled == before.window_labeled
    assert snap.confusion_total == before.confusion_total
    assert repr(snap.drift) == repr(before.drift)


# --------------------------------------------------------------------------- configuration


def test_the_state_size_counts_the_performance_ring() -> None:
    ref = reference("multiclass", np.random.default_rng(0))
    short = ModelMonitor(config("multiclass", performance_window_seconds=None,
                                performance_bucket_seconds=None), ref)  # fmt: skip
    long = ModelMonitor(config("multiclass"), ref)
    per_bucket = 3 * 3 + 1  # the confusion matrix and the count of labels
    assert long.state_bytes - short.state_bytes == 8 * per_bucket * (50 - 30)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"performance_bucket_seconds": 0.0}, "performance_bucket_seconds must be > 0"),
        ({"performance_bucket_seconds": math.inf}, "performance_bucket_seconds must be > 0"),
        (
            {"performance_window_seconds": 5.0, "performance_bucket_seconds": None},
            r"performance_window_seconds \(5.0\) must be >= performance_bucket_seconds "
            r"\(10.0, the window's bucket\)",
        ),
        ({"performance_window_seconds": math.inf}, "must be >="),
        (
            {"performance_window_seconds": 30 * DAY, "performance_bucket_seconds": 10.0},
            "259200 buckets; use larger buckets",
        ),
    ],
)
def test_a_bad_performance_window_is_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config("binary", **changes)


def test_the_performance_window_defaults_to_the_window() -> None:
    only_window = config("binary", performance_bucket_seconds=None)
    assert (only_window.performance_window, only_window.performance_bucket) == (PERF_WINDOW, 10.0)
    assert only_window.performance_n_buckets == 9000
    only_bucket = config("binary", performance_window_seconds=None, performance_bucket_seconds=60.0)
    assert (only_bucket.performance_window, only_bucket.performance_n_buckets) == (WINDOW, 5)
