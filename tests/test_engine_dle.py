"""Direct loss estimation (regression performance before labels): the engine's estimate equals
scikit-learn's gradient boosting fitted on the same reference; incremental equals batch; the
window slides; min_samples; checkpoints (also one from before the loss model); the real
collector's /metrics."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.ensemble import HistGradientBoostingRegressor

from modelmeter.engine import (
    FeatureSpec,
    LabelBatch,
    ModelMonitor,
    MonitorConfig,
    PredictionBatch,
    ReferenceData,
)
from modelmeter.engine.loss import MAX_ITER, SEED, LossModel
from service_support import collector

T0 = 1_000_000.0
VOCABULARY = ("a", "b", "c")
FEATURES = (
    FeatureSpec("x", "numeric"),
    FeatureSpec("w", "numeric"),
    FeatureSpec("c", "categorical"),
)
TOL = 1e-9
PARAMS = {  # the regressor the loss model documents (modelmeter.engine.loss.regressor)
    "loss": "poisson",
    "max_iter": MAX_ITER,
    "learning_rate": 0.1,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 40,
    "l2_regularization": 1.0,
    "interaction_cst": "no_interactions",
    "early_stopping": False,
    "random_state": SEED,
}


def rows(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    """Features, prediction and label of a model whose noise grows with x (and with c = "c")."""
    x = rng.uniform(0, 2, n) + shift
    w = rng.normal(size=n)
    c = np.array(VOCABULARY, dtype=object)[rng.choice(3, n, p=[0.5, 0.3, 0.2])]
    noise = (0.1 + x) * np.where(c == "c", 2.0, 1.0)
    prediction = 3 * x + w
    label = prediction + rng.normal(size=n) * noise
    x[rng.random(n) < 0.03] = np.nan  # missing values, in the reference and the stream
    c[rng.random(n) < 0.02] = None
    return {"x": x, "w": w, "c": c, "prediction": prediction, "label": label}


def reference(seed: int = 1, n: int = 3000) -> ReferenceData:
    data = rows(np.random.default_rng(seed), n)
    return ReferenceData({k: data[k] for k in ("x", "w", "c")}, data["prediction"], data["label"])


def config(min_samples: int = 50) -> MonitorConfig:
    return MonitorConfig(
        task="regression",
        features=FEATURES,
        window_seconds=300.0,
        bucket_seconds=10.0,
        min_samples=min_samples,
    )


def batch(data: dict[str, np.ndarray], t: float | np.ndarray) -> PredictionBatch:
    n = data["prediction"].shape[0]
    times = np.full(n, t) if np.ndim(t) == 0 else np.asarray(t, dtype=np.float64)
    return PredictionBatch(times, {k: data[k] for k in ("x", "w", "c")}, data["prediction"])


def design(data: dict[str, np.ndarray]) -> np.ndarray:
    """x, w, the category code (sorted vocabulary, unseen = 3, missing = NaN), the prediction."""
    codes = {v: float(i) for i, v in enumerate(VOCABULARY)}
    c = np.array([np.nan if v is None else codes.get(v, 3.0) for v in data["c"]])
    return np.column_stack([data["x"], data["w"], c, data["prediction"]])


def sklearn_estimate(ref: ReferenceData, window: dict[str, np.ndarray]) -> tuple[float, float]:
    """Fit the documented regressor on the reference, predict the window's losses."""
    ref_rows = {"x": ref.features["x"], "w": ref.features["w"], "c": ref.features["c"],
                "prediction": ref.predictions}  # fmt: skip
    x_ref = design(ref_rows)
    error = np.asarray(ref.predictions, float) - np.asarray(ref.labels, float)
    x_window = design(window)
    predicted = []
    for target in (np.abs(error), np.square(error)):
        model = HistGradientBoostingRegressor(
            **PARAMS, categorical_features=np.array([False, False, True, False])
        )
        model.fit(x_ref, target)
        predicted.append(model.predict(x_window))
    return float(np.mean(predicted[0])), math.sqrt(float(np.mean(predicted[1])))


def test_estimate_equals_sklearn_fitted_on_the_same_reference() -> None:
    ref = reference()
    monitor = ModelMonitor(config(), ref)
    window = rows(np.random.default_rng(2), 800, shift=0.8)  # into the noisy region
    window["c"][:5] = "z"  # unseen category: the "other" code
    monitor.observe(batch(window, T0), now=T0)
    estimated = monitor.snapshot(T0).estimated_regression
    assert estimated is not None
    mae, rmse = sklearn_estimate(ref, window)
    assert abs(estimated.mae - mae) <= TOL * mae
    assert abs(estimated.rmse - rmse) <= TOL * rmse
    # and the estimate sees the shift: above the reference's figures
    reference_figures = monitor.snapshot(T0).reference_regression
    assert reference_figures is not None and estimated.mae > 1.3 * reference_figures.mae


def test_lookup_tables_reproduce_the_regressor_row_by_row() -> None:
    data = rows(np.random.default_rng(3), 500)
    window = rows(np.random.default_rng(4), 500, shift=0.5)
    x = design(data)
    error = data["prediction"] - data["label"]
    model = LossModel.fit(x, (None, None, 3, None), data["prediction"], data["label"])
    ours = model.predict(design(window))
    for t, target in enumerate((np.abs(error), np.square(error))):
        theirs = HistGradientBoostingRegressor(
            **PARAMS, categorical_features=np.array([False, False, True, False])
        ).fit(x, target)
        np.testing.assert_allclose(ours[:, t], theirs.predict(design(window)), rtol=TOL)


def test_without_tables_the_regressors_themselves_predict() -> None:
    """The path for a scikit-learn whose tree internals cannot be read: same numbers."""
    data = rows(np.random.default_rng(3), 500)
    window = design(rows(np.random.default_rng(4), 200, shift=0.5))
    x = design(data)
    tables = LossModel.fit(x, (None, None, 3, None), data["prediction"], data["label"])
    error = data["prediction"] - data["label"]
    order = [2, 0, 1, 3]  # categorical inputs first, as LossModel.fit orders them
    fitted = [
        HistGradientBoostingRegressor(
            **PARAMS, categorical_features=np.array([True, False, False, False])
        ).fit(x[:, order], target)
        for target in (np.abs(error), np.square(error))
    ]
    plain = LossModel([None] * 4, [[np.zeros(1)] * 4] * 2, [0.0, 0.0], fitted)
    plain.order = np.array(order)
    np.testing.assert_allclose(plain.predict(window), tables.predict(window), rtol=TOL)


def test_incremental_equals_batch() -> None:
    ref = reference()
    window = rows(np.random.default_rng(5), 1000, shift=0.3)
    times = T0 + np.sort(np.random.default_rng(6).uniform(0, 200, 1000))
    whole = ModelMonitor(config(), ref)
    whole.observe(batch(window, times), now=T0 + 200)
    pieces = ModelMonitor(config(), ref)
    for start in range(0, 1000, 37):
        stop = min(start + 37, 1000)
        part = {k: v[start:stop] for k, v in window.items()}
        pieces.observe(batch(part, times[start:stop]), now=float(times[stop - 1]))
        step = pieces.snapshot(float(times[stop - 1])).estimated_regression
        assert step is not None
        assert math.isnan(step.mae) == (stop < 50)
    a = whole.snapshot(T0 + 200).estimated_regression
    b = pieces.snapshot(T0 + 200).estimated_regression
    assert a is not None and b is not None
    assert math.isclose(a.mae, b.mae, rel_tol=1e-12)
    assert math.isclose(a.rmse, b.rmse, rel_tol=1e-12)


def test_old_buckets_leave_the_estimate() -> None:
    ref = reference()
    quiet = rows(np.random.default_rng(7), 600, shift=-0.5)
    noisy = rows(np.random.default_rng(8), 600, shift=1.0)
    monitor = ModelMonitor(config(), ref)
    monitor.observe(batch(quiet, T0), now=T0)
    monitor.observe(batch(noisy, T0 + 200), now=T0 + 200)
    both = monitor.snapshot(T0 + 200).estimated_regression
    late = monitor.snapshot(T0 + 350).estimated_regression  # the bucket of T0 has expired
    alone = ModelMonitor(config(), ref)
    alone.observe(batch(noisy, T0 + 200), now=T0 + 200)
    expected = alone.snapshot(T0 + 350).estimated_regression
    assert both is not None and late is not None and expected is not None
    assert late.mae > both.mae
    assert math.isclose(late.mae, expected.mae, rel_tol=1e-12)
    assert math.isclose(late.rmse, expected.rmse, rel_tol=1e-12)
    empty = monitor.snapshot(T0 + 600).estimated_regression
    assert empty is not None and math.isnan(empty.mae) and math.isnan(empty.rmse)


def test_min_samples_and_errored_predictions() -> None:
    monitor = ModelMonitor(config(min_samples=100), reference())
    data = rows(np.random.default_rng(9), 120)
    data["prediction"][:21] = np.nan  # errored: no prediction, no loss
    monitor.observe(batch({k: v[:120] for k, v in data.items()}, T0), now=T0)
    below = monitor.snapshot(T0).estimated_regression
    assert below is not None and math.isnan(below.mae) and math.isnan(below.rmse)
    assert monitor.snapshot(T0).to_dict()["estimated_regression"] == {"mae": None, "rmse": None}
    more = rows(np.random.default_rng(10), 1)
    monitor.observe(batch(more, T0), now=T0)  # 99 + 1 scored predictions
    at = monitor.snapshot(T0).estimated_regression
    assert at is not None and math.isfinite(at.mae) and math.isfinite(at.rmse)
    assert at.rmse >= at.mae * 0.5


def test_classification_and_tiny_references_have_no_estimate() -> None:
    tiny = reference(n=15)
    snap = ModelMonitor(config(), tiny).snapshot(T0)
    assert snap.estimated_regression is None and snap.regression is not None
    binary = MonitorConfig(task="binary", features=(FeatureSpec("x", "numeric"),),
                           classes=("0", "1"))  # fmt: skip
    labels = np.array(["0", "1"] * 50, dtype=object)
    ref = ReferenceData({"x": np.arange(100.0)}, labels, labels)
    assert ModelMonitor(binary, ref).snapshot(T0).estimated_regression is None


def test_checkpoint_keeps_the_sums_and_refits_the_model() -> None:
    ref = reference()
    data = rows(np.random.default_rng(11), 400, shift=0.4)
    monitor = ModelMonitor(config(), ref)
    monitor.observe(batch(data, T0), now=T0)
    monitor.label(
        LabelBatch(np.full(400, T0 + 1), np.full(400, T0), data["prediction"], data["label"]),
        now=T0 + 1,
    )
    saved = orjson.loads(orjson.dumps(monitor.to_checkpoint()))
    assert len(saved["ring"]["arrays"]["loss"]) == config().n_buckets
    restored = ModelMonitor.from_checkpoint(config(), reference(), saved)
    assert (
        restored.snapshot(T0 + 5).estimated_regression
        == monitor.snapshot(T0 + 5).estimated_regression
    )
    more = rows(np.random.default_rng(12), 100, shift=0.4)
    for m in (monitor, restored):
        m.observe(batch(more, T0 + 20), now=T0 + 20)
    assert restored.snapshot(T0 + 25).to_dict() == monitor.snapshot(T0 + 25).to_dict()

    # A checkpoint written before the loss model existed: it loads, the estimate restarts.
    del saved["ring"]["arrays"]["loss"]
    old = ModelMonitor.from_checkpoint(config(), reference(), saved)
    snap = old.snapshot(T0 + 5)
    assert snap.window_predictions == 400 and snap.regression == monitor.snapshot(T0 + 5).regression
    assert snap.estimated_regression is not None and math.isnan(snap.estimated_regression.mae)
    bad = orjson.loads(orjson.dumps(monitor.to_checkpoint()))
    bad["ring"]["arrays"]["loss"] = [[0.0] * 2] * config().n_buckets
    with pytest.raises(ValueError, match="'loss'"):
        ModelMonitor.from_checkpoint(config(), reference(), bad)


def test_collector_exports_the_estimate(tmp_path: Path) -> None:
    rng = np.random.default_rng(21)
    ref = rows(rng, 1500)
    for key in ("x", "w", "prediction", "label"):
        ref[key] = np.round(ref[key], 4)  # exact through the CSV
    path = tmp_path / "dle.csv"
    pd.DataFrame(ref).to_csv(path, index=False)
    spec = {
        "task": "regression",
        "features": [
            {"name": "x", "type": "numeric"},
            {"name": "w", "type": "numeric"},
            {"name": "c", "type": "categorical", "categories": list(VOCABULARY)},
        ],
        "reference": {"path": str(path)},
        "min_samples": 50,
        "window": {"length": "1h", "bucket": "1m"},
    }
    live = rows(rng, 300, shift=0.7)
    live["c"][live["c"] == None] = "b"  # noqa: E711 - the JSON events carry every category
    live["x"][np.isnan(live["x"])] = 1.0
    events = [
        {
            "id": f"r{i}",
            "features": {"x": float(live["x"][i]), "w": float(live["w"][i]), "c": live["c"][i]},
            "prediction": float(live["prediction"][i]),
            "version": "v1",
        }
        for i in range(300)
    ]
    with collector(tmp_path) as proc, httpx.Client(base_url=proc.url, timeout=30) as c:
        put = c.put("/v1/models/dle", content=orjson.dumps(spec),
                    headers={"content-type": "application/json"})  # fmt: skip
        assert put.status_code == 201, put.text
        body = c.post("/v1/models/dle/predictions", json={"predictions": events[:40]})
        assert body.json()["accepted"] == 40
        text = c.get("/metrics").text
        assert "model_estimated_mean_absolute_error{" not in text  # below min_samples
        assert "# HELP model_estimated_mean_absolute_error " in text
        body = c.post("/v1/models/dle/predictions", json={"predictions": events[40:]})
        assert body.json()["accepted"] == 260
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(c.get("/metrics").text)
            for s in family.samples
        }
    read = pd.read_csv(path)  # the reference as the collector parsed it
    reference_data = ReferenceData(
        {"x": read["x"].to_numpy(float), "w": read["w"].to_numpy(float),
         "c": np.array([None if pd.isna(v) else v for v in read["c"]], dtype=object)},
        read["prediction"].to_numpy(float), read["label"].to_numpy(float),
    )  # fmt: skip
    mae, rmse = sklearn_estimate(reference_data, live)
    labels = (("model", "dle"), ("version", "v1"))
    assert abs(samples[("model_estimated_mean_absolute_error", labels)] - mae) <= TOL * mae
    assert abs(samples[("model_estimated_root_mean_squared_error", labels)] - rmse) <= TOL * rmse
    assert ("model_reference_mean_absolute_error", labels) in samples
    assert ("model_mean_absolute_error", labels) not in samples  # no labels yet
