"""Segments: per-value performance, volume and label coverage, pinned against scikit-learn."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    recall_score,
)

from modelmeter.engine import (
    FeatureSpec,
    LabelBatch,
    ModelMonitor,
    MonitorConfig,
    PredictionBatch,
    ReferenceData,
)

CLASSES = ("no", "yes")
COUNTRIES = ("de", "fr", "it")
FEATURES = (
    FeatureSpec("x", "numeric"),
    FeatureSpec("country", "categorical", categories=COUNTRIES),
    FeatureSpec("channel", "categorical"),  # vocabulary from the reference: app, web
)
T0 = 1_000.0


def config(**changes: Any) -> MonitorConfig:
    values: dict[str, Any] = {
        "task": "binary",
        "classes": CLASSES,
        "features": FEATURES,
        "window_seconds": 300.0,
        "bucket_seconds": 10.0,
        "min_samples": 30,
        "segments": ("country", "channel"),
    }
    values.update(changes)
    return MonitorConfig(**values)


def reference(rng: np.random.Generator, n: int = 2000) -> ReferenceData:
    x = rng.normal(size=n)
    score = 1 / (1 + np.exp(-2 * x))
    label = np.where(rng.random(n) < score, "yes", "no").astype(object)
    return ReferenceData(
        {
            "x": x,
            "country": rng.choice(COUNTRIES, n).astype(object),
            "channel": rng.choice(["app", "web"], n).astype(object),
        },
        np.where(score > 0.5, "yes", "no").astype(object),
        label,
        score,
    )


def traffic(rng: np.random.Generator, n: int) -> tuple[PredictionBatch, np.ndarray]:
    """Predictions (with countries outside the vocabulary and missing ones) and their labels;
    the model is worse in "it" (its labels are flipped more often)."""
    x = rng.normal(size=n)
    score = 1 / (1 + np.exp(-2 * x))
    country = rng.choice(["de", "fr", "it", "xx", None], n, p=[0.3, 0.3, 0.2, 0.1, 0.1])
    channel = rng.choice(["app", "web", "tv"], n, p=[0.5, 0.4, 0.1])
    flip = rng.random(n) < np.where(country == "it", 0.4, 0.1)
    predicted = np.where(score > 0.5, "yes", "no").astype(object)
    label = np.where(flip, np.where(predicted == "yes", "no", "yes"), predicted).astype(object)
    batch = PredictionBatch(
        timestamps=np.sort(rng.uniform(T0, T0 + 200.0, n)),
        features={"x": x, "country": country.astype(object), "channel": channel.astype(object)},
        predictions=predicted,
        scores=score,
    )
    return batch, label


def labels_for(
    monitor: ModelMonitor, batch: PredictionBatch, label: np.ndarray, rows: np.ndarray
) -> LabelBatch:
    codes = monitor.segment_codes(batch.features)
    assert codes is not None
    return LabelBatch(
        batch.timestamps[rows] + 5.0,
        batch.timestamps[rows],
        batch.predictions[rows],
        label[rows],
        segments=codes[rows],
    )


def segment_rows(batch: PredictionBatch, feature: str, value: str, values: tuple[str, ...]):
    column = batch.features[feature]
    if value == "other":
        return np.array([v not in values for v in column.tolist()])
    return np.array([v == value for v in column.tolist()])


@pytest.fixture
def fed() -> tuple[ModelMonitor, PredictionBatch, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    monitor = ModelMonitor(config(), reference(rng))
    batch, label = traffic(rng, 3000)
    monitor.observe(batch, now=T0 + 200.0)
    labeled = rng.random(3000) < 0.7
    monitor.label(labels_for(monitor, batch, label, labeled), now=T0 + 210.0)
    return monitor, batch, label, labeled


def test_per_segment_figures_equal_scikit_learn_on_that_segments_rows(fed: Any) -> None:
    monitor, batch, label, labeled = fed
    snap = monitor.snapshot(T0 + 210.0)
    vocabularies = {"country": COUNTRIES, "channel": ("app", "web")}
    assert {f: tuple(v) for f, v in snap.segments.items()} == {
        "country": ("de", "fr", "it", "other"),
        "channel": ("app", "web", "other"),  # "tv" is not in the reference: other
    }
    for feature, values in vocabularies.items():
        for value, figures in snap.segments[feature].items():
            rows = segment_rows(batch, feature, value, values)
            assert figures.predictions == int(rows.sum())
            assert figures.labeled == int((rows & labeled).sum())
            assert figures.label_coverage == pytest.approx((rows & labeled).sum() / rows.sum())
            y_true, y_pred = label[rows & labeled], batch.predictions[rows & labeled]
            realized = figures.realized
            assert realized is not None
            kw: dict[str, Any] = {"pos_label": "yes", "zero_division": np.nan}
            assert realized.accuracy == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
            assert realized.precision == pytest.approx(
                precision_score(y_true, y_pred, **kw), abs=1e-12
            )
            assert realized.recall == pytest.approx(recall_score(y_true, y_pred, **kw), abs=1e-12)
            assert realized.f1 == pytest.approx(f1_score(y_true, y_pred, **kw), abs=1e-12)
    # "it" is the failing segment; the model's average hides it
    assert snap.segments["country"]["it"].realized.accuracy < 0.7  # type: ignore[union-attr]
    assert snap.realized is not None and snap.realized.accuracy > 0.8


def test_estimated_figures_per_segment_add_up_to_the_models(fed: Any) -> None:
    monitor, *_ = fed
    snap = monitor.snapshot(T0 + 210.0)
    assert snap.estimated is not None
    for values in snap.segments.values():
        weighted = sum(
            f.predictions * f.estimated.accuracy  # type: ignore[union-attr]
            for f in values.values()
        )
        assert weighted / snap.window_predictions == pytest.approx(
            snap.estimated.accuracy, abs=1e-12
        )


def test_min_samples_holds_per_segment() -> None:
    rng = np.random.default_rng(3)
    monitor = ModelMonitor(config(min_samples=150), reference(rng))
    batch, label = traffic(rng, 600)
    monitor.observe(batch, now=T0 + 200.0)
    monitor.label(labels_for(monitor, batch, label, np.ones(600, bool)), now=T0 + 210.0)
    country = monitor.snapshot(T0 + 210.0).segments["country"]
    for value, figures in country.items():
        assert figures.realized is not None and figures.estimated is not None
        enough = figures.labeled >= 150
        assert math.isnan(figures.realized.accuracy) is (not enough), value
        assert math.isnan(figures.estimated.accuracy) is (figures.predictions < 150), value
    assert math.isnan(country["it"].realized.accuracy)  # type: ignore[union-attr]
    assert math.isnan(country["other"].realized.accuracy)  # type: ignore[union-attr]
    assert not math.isnan(country["de"].realized.accuracy)  # type: ignore[union-attr]


def test_incremental_equals_batch_and_checkpoint_round_trip() -> None:
    rng = np.random.default_rng(5)
    ref = reference(rng)
    batch, label = traffic(rng, 2000)
    whole = ModelMonitor(config(), ref)
    whole.observe(batch, now=T0 + 200.0)
    whole.label(labels_for(whole, batch, label, np.arange(2000) % 3 > 0), now=T0 + 210.0)
    parts = ModelMonitor(config(), ref)
    for chunk in np.array_split(np.arange(2000), 7):
        part = PredictionBatch(
            batch.timestamps[chunk],
            {k: v[chunk] for k, v in batch.features.items()},
            batch.predictions[chunk],
            scores=None if batch.scores is None else batch.scores[chunk],
        )
        parts.observe(part, now=T0 + 200.0)
        parts.label(labels_for(parts, part, label[chunk], chunk % 3 > 0), now=T0 + 210.0)
        later = parts.snapshot(T0 + 210.0)
    expected = whole.snapshot(T0 + 210.0)
    assert later.segments.keys() == expected.segments.keys()
    for feature, values in expected.segments.items():
        for value, figures in values.items():
            got = later.segments[feature][value]
            assert (got.predictions, got.labeled) == (figures.predictions, figures.labeled)
            assert json.dumps(got.realized.__dict__, default=str) == json.dumps(
                figures.realized.__dict__, default=str
            )
            assert got.estimated.accuracy == pytest.approx(  # type: ignore[union-attr]
                figures.estimated.accuracy,  # type: ignore[union-attr]
                abs=1e-12,
            )
    data = json.loads(json.dumps(whole.to_checkpoint(), allow_nan=False))
    restored = ModelMonitor.from_checkpoint(config(), ref, data)
    assert restored.snapshot(T0 + 210.0).to_dict() == expected.to_dict()
    assert "segments" in expected.to_dict()


def test_a_model_without_segments_keeps_its_state_and_snapshot_form() -> None:
    rng = np.random.default_rng(2)
    monitor = ModelMonitor(config(segments=()), reference(rng))
    batch, label = traffic(rng, 200)
    monitor.observe(batch, now=T0 + 200.0)
    monitor.label(LabelBatch(batch.timestamps, batch.timestamps, batch.predictions, label))
    assert monitor.segment_codes(batch.features) is None
    arrays = monitor.to_checkpoint()["ring"]["arrays"]
    assert not any(name.startswith("segment") for name in arrays)
    snap = monitor.snapshot(T0 + 210.0)
    assert snap.segments == {} and "segments" not in snap.to_dict()


def test_labels_without_codes_or_with_stale_codes() -> None:
    rng = np.random.default_rng(4)
    monitor = ModelMonitor(config(min_samples=1), reference(rng))
    batch, label = traffic(rng, 100)
    monitor.observe(batch, now=T0 + 200.0)
    codes = monitor.segment_codes(batch.features)
    assert codes is not None
    stale = codes.copy()
    stale[:10, 0] = 99  # a code beyond the vocabulary (an earlier spec): other
    stale[10:20] = -1  # unknown (stored before segments): left out
    monitor.label(
        LabelBatch(batch.timestamps, batch.timestamps, batch.predictions, label, segments=stale)
    )
    monitor.label(  # no codes at all: counted for the model only
        LabelBatch(batch.timestamps[:5], batch.timestamps[:5], batch.predictions[:5], label[:5])
    )
    snap = monitor.snapshot(T0 + 210.0)
    country = snap.segments["country"]
    assert sum(f.labeled for f in country.values()) == 90
    assert snap.window_labeled == 105
    expected_other = int((codes[20:, 0] == 3).sum()) + 10
    assert country["other"].labeled == expected_other
    with pytest.raises(ValueError, match="column 'segments'"):
        monitor.check(
            LabelBatch(
                batch.timestamps, batch.timestamps, batch.predictions, label, segments=codes[:, :1]
            )
        )


def test_regression_segments_equal_scikit_learn() -> None:
    rng = np.random.default_rng(8)
    n = 1500
    features = (FeatureSpec("x", "numeric"), FeatureSpec("country", "categorical"))
    cfg = MonitorConfig(task="regression", features=features, min_samples=20, segments=("country",))
    x = rng.normal(size=n)
    country = rng.choice(COUNTRIES, n).astype(object)
    ref = ReferenceData(
        {"x": x, "country": country},
        2 * x,
        2 * x + rng.normal(scale=np.where(country == "it", 2, 0.5)),
    )
    monitor = ModelMonitor(cfg, ref)
    xs = rng.normal(size=n)
    cs = rng.choice([*COUNTRIES, "xx"], n).astype(object)
    ts = np.sort(rng.uniform(T0, T0 + 100, n))
    predicted = 2 * xs
    actual = predicted + rng.normal(scale=np.where(cs == "it", 2, 0.5))
    batch = PredictionBatch(ts, {"x": xs, "country": cs}, predicted)
    monitor.observe(batch, now=T0 + 100.0)
    codes = monitor.segment_codes(batch.features)
    monitor.label(LabelBatch(ts + 1, ts, predicted, actual, segments=codes), now=T0 + 110.0)
    snap = monitor.snapshot(T0 + 110.0)
    for value, figures in snap.segments["country"].items():
        rows = cs == value if value != "other" else cs == "xx"
        assert figures.regression is not None and figures.estimated_regression is not None
        assert figures.regression.mae == pytest.approx(
            mean_absolute_error(actual[rows], predicted[rows]), abs=1e-12
        )
        assert figures.regression.rmse == pytest.approx(
            math.sqrt(mean_squared_error(actual[rows], predicted[rows])), abs=1e-12
        )
        assert figures.estimated_regression.mae > 0
    assert snap.segments["country"]["it"].estimated_regression.mae > (  # type: ignore[union-attr]
        snap.segments["country"]["de"].estimated_regression.mae  # type: ignore[union-attr]
    )


def test_segments_must_name_categorical_features() -> None:
    with pytest.raises(ValueError, match="categorical feature"):
        config(segments=("x",))
    with pytest.raises(ValueError, match="at most 3"):
        config(segments=("country", "channel", "a", "b"))
    rng = np.random.default_rng(1)
    ref = reference(rng)
    many = dict(ref.features)
    many["channel"] = np.array([f"c{i % 25}" for i in range(2000)], dtype=object)
    with pytest.raises(ValueError, match="at most 20"):
        ModelMonitor(config(), ReferenceData(many, ref.predictions, ref.labels, ref.scores))
