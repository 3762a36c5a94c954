"""Multivariate drift (PCA reconstruction error): pinned against scikit-learn, incremental
equals batch, a correlation-only drift caught while every univariate flag stays quiet; the
spec, the exposition and the real collector's /metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from modelmeter.engine import (
    FeatureSpec,
    ModelMonitor,
    MonitorConfig,
    MultivariateConfig,
    PredictionBatch,
    ReferenceData,
)
from modelmeter.engine.multivariate import ReconstructionDrift, frequency_table
from modelmeter.engine.snapshot import Snapshot
from modelmeter.exposition import (
    CollectorState,
    ModelState,
    build_registry,
    render,
    series_bound,
)
from modelmeter.spec import ModelSpec, SpecError, load_spec
from service_support import collector, events, spec_dict, without_labels, write_reference

JSON = {"content-type": "application/json"}

VOCABULARY = np.array(["a", "b", "c", "d"], dtype=object)
T0 = 1_000_000.0
COMPONENTS: list[int] = []  # components scikit-learn kept in the last sklearn_errors call


def mixed(rng: np.random.Generator, n: int, flip: bool = False) -> dict[str, np.ndarray]:
    """Three correlated numeric features with some NaN, and two categoricals tied to them."""
    base = rng.normal(size=n)
    x = base + 0.3 * rng.normal(size=n)
    y = (-base if flip else base) + 0.5 * rng.normal(size=n)
    w = rng.normal(2.0, 3.0, size=n)
    x[rng.random(n) < 0.02] = np.nan
    c = VOCABULARY[np.clip(np.digitize(base, [-0.7, 0.0, 0.7]), 0, 3)].copy()
    c[rng.random(n) < 0.01] = None
    d = VOCABULARY[rng.choice(3, n, p=[0.6, 0.3, 0.1])]
    return {"x": x, "y": y, "w": w, "c": c, "d": d}


FEATURES = (
    FeatureSpec("x", "numeric"),
    FeatureSpec("y", "numeric"),
    FeatureSpec("w", "numeric"),
    FeatureSpec("c", "categorical"),
    FeatureSpec("d", "categorical"),
)


def regression_monitor(
    reference: dict[str, np.ndarray], features: tuple[FeatureSpec, ...] = FEATURES, **kw: object
) -> ModelMonitor:
    n = next(iter(reference.values())).shape[0]
    config = MonitorConfig(
        task="regression",
        features=features,
        window_seconds=300.0,
        bucket_seconds=10.0,
        **kw,  # type: ignore[arg-type]
    )
    predictions = np.zeros(n)
    return ModelMonitor(config, ReferenceData(reference, predictions, predictions))


def batch(columns: dict[str, np.ndarray], t: float = T0) -> PredictionBatch:
    n = next(iter(columns.values())).shape[0]
    return PredictionBatch(np.full(n, t), columns, np.zeros(n))


def sklearn_errors(
    reference: dict[str, np.ndarray], live: dict[str, np.ndarray], variance: float
) -> np.ndarray:
    """The same method written independently with numpy and scikit-learn: impute
    the reference mean / the most frequent category, frequency-encode, StandardScaler, PCA,
    inverse_transform, Euclidean distance."""

    def encode(columns: dict[str, np.ndarray]) -> np.ndarray:
        out = []
        for name in ("x", "y", "w"):
            ref = reference[name]
            mean = np.nanmean(ref)
            out.append(np.where(np.isfinite(columns[name]), columns[name], mean))
        for name in ("c", "d"):
            ref = reference[name]
            values, counts = np.unique(ref[ref != None].astype(str), return_counts=True)  # noqa: E711
            mode = values[np.argmax(counts)]
            imputed_ref = np.where(ref == None, mode, ref).astype(str)  # noqa: E711
            freq = {v: float(np.mean(imputed_ref == v)) for v in values}
            col = np.where(columns[name] == None, mode, columns[name]).astype(str)  # noqa: E711
            out.append(np.array([freq.get(v, 0.0) for v in col]))
        return np.stack(out, axis=1)

    scaler = StandardScaler().fit(encode(reference))
    pca = PCA(n_components=variance, svd_solver="full").fit(scaler.transform(encode(reference)))
    COMPONENTS.append(int(pca.n_components_))
    z = scaler.transform(encode(live))
    return np.linalg.norm(z - pca.inverse_transform(pca.transform(z)), axis=1)


def test_errors_equal_scikit_learn_per_row_and_window_mean() -> None:
    rng = np.random.default_rng(11)
    reference = mixed(rng, 5_000)
    live = mixed(rng, 3_000, flip=True)
    live["c"][:5] = "never-seen"  # an unseen category: frequency 0
    live["w"][5:8] = [np.inf, -np.inf, np.nan]  # non-finite: imputed with the mean
    expected = sklearn_errors(reference, live, 0.65)
    monitor = regression_monitor(reference, min_samples=1)
    drift = monitor._multivariate
    assert drift is not None and drift.n_components == COMPONENTS[-1]
    monitor.observe(batch(live))
    snap = monitor.snapshot(T0 + 1)
    assert snap.multivariate is not None
    assert snap.multivariate.samples == 3_000
    assert math.isclose(snap.multivariate.error, float(expected.mean()), rel_tol=0, abs_tol=1e-9)
    # per row: the module's errors() on the same encoding the monitor counts
    numeric = np.stack([live[n] for n in ("x", "y", "w")])
    cat = monitor._categorical
    index = np.stack(
        [
            np.where(codes == b.missing, cat.width - 1, codes) + j * cat.width
            for j, (b, codes) in enumerate(
                (b, b.index(live[s.name])) for b, s in zip(cat.binnings, cat.specs, strict=True)
            )
        ]
    )
    ours = drift.errors(numeric, index)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("variance", [0.3, 0.65, 0.9])
def test_components_kept_as_scikit_learn(variance: float) -> None:
    rng = np.random.default_rng(5)
    reference = mixed(rng, 4_000)
    live = mixed(rng, 500)
    monitor = regression_monitor(
        reference, multivariate=MultivariateConfig(variance=variance), min_samples=1
    )
    monitor.observe(batch(live))
    snap = monitor.snapshot(T0 + 1)
    assert snap.multivariate is not None
    expected = sklearn_errors(reference, live, variance)
    assert math.isclose(snap.multivariate.error, float(expected.mean()), abs_tol=1e-9)
    assert monitor._multivariate is not None
    assert monitor._multivariate.n_components == COMPONENTS[-1]


def test_incremental_equals_batch() -> None:
    rng = np.random.default_rng(2)
    reference = mixed(rng, 3_000)
    live = mixed(rng, 9_001, flip=True)
    whole = regression_monitor(reference, min_samples=1)
    parts = regression_monitor(reference, min_samples=1)
    whole.observe(batch(live))
    for start, stop in ((0, 1), (1, 17), (17, 4_200), (4_200, 9_001)):
        parts.observe(batch({k: v[start:stop] for k, v in live.items()}))
    a, b = whole.snapshot(T0 + 1).multivariate, parts.snapshot(T0 + 1).multivariate
    assert a is not None and b is not None
    assert a.samples == b.samples == 9_001
    assert math.isclose(a.error, b.error, rel_tol=1e-12)
    assert (a.lower, a.upper, a.drifted) == (b.lower, b.upper, b.drifted)


def correlated(rng: np.random.Generator, n: int, rho: float) -> dict[str, np.ndarray]:
    cov = [[1.0, rho], [rho, 1.0]]
    values = rng.multivariate_normal([0.0, 0.0], cov, size=n)
    return {"u": values[:, 0].copy(), "v": values[:, 1].copy()}


PAIR = (FeatureSpec("u", "numeric"), FeatureSpec("v", "numeric"))


def test_correlation_flip_caught_while_univariate_flags_stay_quiet() -> None:
    rng = np.random.default_rng(2024)
    reference = correlated(rng, 20_000, 0.9)
    monitor = regression_monitor(reference, PAIR)
    monitor.observe(batch(correlated(rng, 20_000, -0.9)))
    snap = monitor.snapshot(T0 + 1)
    assert snap.multivariate is not None and snap.multivariate.drifted
    assert snap.multivariate.error > snap.multivariate.upper
    assert not any(d.drifted for d in snap.drift.values())
    assert not snap.drift_detected


def test_same_distribution_window_not_flagged() -> None:
    rng = np.random.default_rng(2024)
    reference = correlated(rng, 20_000, 0.9)
    monitor = regression_monitor(reference, PAIR)
    monitor.observe(batch(correlated(rng, 20_000, 0.9)))
    snap = monitor.snapshot(T0 + 1)
    assert snap.multivariate is not None and not snap.multivariate.drifted
    assert snap.multivariate.lower < snap.multivariate.error < snap.multivariate.upper


def test_false_alarm_rate_matches_the_band() -> None:
    """400 independent same-distribution windows of 500 rows: at z = 3 about 0.27 % flag."""
    rng = np.random.default_rng(8)
    reference = correlated(rng, 20_000, 0.9)
    drift = regression_monitor(reference, PAIR)._multivariate
    assert drift is not None
    alarms = 0
    for _ in range(400):
        live = correlated(rng, 500, 0.9)
        errors = drift.errors(np.stack([live["u"], live["v"]]), np.zeros((0, 500), np.int64))
        low, high = drift.band(500)
        alarms += not low <= errors.mean() <= high
    assert alarms <= 5  # expected 1.1; P(more than 5) < 0.1 %


def test_below_min_samples_nothing() -> None:
    rng = np.random.default_rng(1)
    monitor = regression_monitor(correlated(rng, 2_000, 0.9), PAIR, min_samples=100)
    monitor.observe(batch(correlated(rng, 99, -0.9)))
    figures = monitor.snapshot(T0 + 1).multivariate
    assert figures is not None and figures.samples == 99
    assert math.isnan(figures.error) and math.isnan(figures.upper) and not figures.drifted
    assert monitor.snapshot(T0 + 1).to_dict()["multivariate"]["error"] is None
    monitor.observe(batch(correlated(rng, 1, -0.9)))
    assert monitor.snapshot(T0 + 1).multivariate.samples == 100  # type: ignore[union-attr]
    assert not math.isnan(monitor.snapshot(T0 + 1).multivariate.error)  # type: ignore[union-attr]


def test_window_slides_and_checkpoints() -> None:
    rng = np.random.default_rng(4)
    reference = correlated(rng, 2_000, 0.9)
    monitor = regression_monitor(reference, PAIR, min_samples=1)
    monitor.observe(batch(correlated(rng, 500, -0.9), T0))
    monitor.observe(batch(correlated(rng, 300, 0.9), T0 + 200))
    restored = ModelMonitor.from_checkpoint(
        monitor.config,
        ReferenceData(reference, np.zeros(2_000), np.zeros(2_000)),
        monitor.to_checkpoint(),
    )
    assert restored.snapshot(T0 + 201) == monitor.snapshot(T0 + 201)
    assert monitor.snapshot(T0 + 201).multivariate.samples == 800  # type: ignore[union-attr]
    late = monitor.snapshot(T0 + 400).multivariate  # the first batch has left the window
    assert late is not None and late.samples == 300 and not late.drifted


def test_checkpoint_from_before_multivariate_loads() -> None:
    rng = np.random.default_rng(4)
    reference = correlated(rng, 2_000, 0.9)
    ref = ReferenceData(reference, np.zeros(2_000), np.zeros(2_000))
    old = regression_monitor(reference, PAIR, min_samples=1, multivariate=None)
    old.observe(batch(correlated(rng, 500, -0.9)))
    assert old.snapshot(T0 + 1).multivariate is None
    config = MonitorConfig(task="regression", features=PAIR, min_samples=1)
    loaded = ModelMonitor.from_checkpoint(config, ref, old.to_checkpoint())
    snap = loaded.snapshot(T0 + 1)
    assert snap.window_predictions == 500
    assert snap.multivariate is not None and snap.multivariate.samples == 0
    back = ModelMonitor.from_checkpoint(old.config, ref, loaded.to_checkpoint())
    assert back.snapshot(T0 + 1).multivariate is None


def test_off_with_fewer_than_two_features() -> None:
    rng = np.random.default_rng(0)
    monitor = regression_monitor({"u": rng.normal(size=200)}, (FeatureSpec("u", "numeric"),))
    assert monitor.snapshot(T0).multivariate is None


def test_frequency_table_imputes_missing_with_the_mode() -> None:
    assert frequency_table(np.array([1, 1, 0, 2]), 3, [2]).tolist() == [0.25, 0.75, 0.75]


def test_invalid_settings() -> None:
    with pytest.raises(ValueError, match="valid methods are"):
        MultivariateConfig(method="mmd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="variance must be in"):
        MultivariateConfig(variance=1.0)
    with pytest.raises(ValueError, match="z must be"):
        ReconstructionDrift.fit(np.zeros((2, 5)), np.zeros((0, 5), np.int64), np.zeros(0), z=0)


# --------------------------------------------------------------------------- spec, exposition


def test_spec_drift_multivariate() -> None:
    base = "task: regression\nfeatures: [{name: a, type: numeric}, {name: b, type: numeric}]\n"
    spec = load_spec(base)
    assert spec.has_multivariate
    assert spec.monitor_config().multivariate == MultivariateConfig("pca", 0.65, 3.0)
    tuned = load_spec(base + "drift: {multivariate: {method: pca, variance: 0.8, z: 4}}")
    assert tuned.monitor_config().multivariate == MultivariateConfig("pca", 0.8, 4.0)
    assert load_spec(json.dumps(tuned.to_dict())) == tuned
    off = load_spec(base + "drift: {multivariate: false}")
    assert not off.has_multivariate and off.monitor_config().multivariate is None
    assert load_spec(json.dumps(off.to_dict())) == off
    with pytest.raises(SpecError) as error:
        load_spec(base + "drift: {multivariate: {method: mmd, variance: 1, k: 2}}")
    assert str(error.value) == (
        "3 problems: drift.multivariate.k: unknown field; expected one of method, variance, z; "
        "drift.multivariate.method: expected 'pca', got 'mmd'; drift.multivariate.variance: "
        "expected a share of variance strictly between 0 and 1, got 1"
    )


def _state(spec: ModelSpec, snap: Snapshot) -> CollectorState:
    return CollectorState(models=(ModelState("m", spec, {"v1": snap}),))


def test_exposition_families_labels_and_bound() -> None:
    rng = np.random.default_rng(2024)
    spec = load_spec(
        "task: regression\nfeatures: [{name: u, type: numeric}, {name: v, type: numeric}]\n"
        "min_samples: 100\n"
    )
    reference = correlated(rng, 5_000, 0.9)
    monitor = ModelMonitor(
        spec.monitor_config(), ReferenceData(reference, np.zeros(5_000), np.zeros(5_000))
    )
    monitor.observe(batch(correlated(rng, 50, -0.9)))
    few = render(build_registry(lambda: _state(spec, monitor.snapshot(T0 + 1)))).decode()
    assert (
        "model_multivariate_drift{" not in few and "model_multivariate_drift_detected{" not in few
    )
    monitor.observe(batch(correlated(rng, 2_000, -0.9)))
    snap = monitor.snapshot(T0 + 1)
    assert snap.multivariate is not None
    registry = build_registry(lambda: _state(spec, snap))
    labels = {"model": "m", "version": "v1", "method": "pca"}
    value = registry.get_sample_value("model_multivariate_drift", labels)
    assert value == snap.multivariate.error
    for bound, expected in (("lower", snap.multivariate.lower), ("upper", snap.multivariate.upper)):
        got = registry.get_sample_value(
            "model_multivariate_drift_threshold", {**labels, "bound": bound}
        )
        assert got == expected
    flag = registry.get_sample_value(
        "model_multivariate_drift_detected", {"model": "m", "version": "v1"}
    )
    assert flag == 1.0

    # process_* and python_gc_* samples move between two renders: compare modelmeter's families
    def ours(text: str) -> list[str]:
        prefixes = ("model", "# HELP model", "# TYPE model")
        return [line for line in text.splitlines() if line.startswith(prefixes)]

    body = render(registry).decode()
    assert ours(body) == ours(generate_latest(registry).decode())
    series = [line for line in body.splitlines() if 'model="m"' in line and line[0] != "#"]
    assert len(series) <= series_bound(spec, versions=1, replicas=1)
    without = load_spec(json.dumps(spec.to_dict() | {"drift": {"multivariate": False}}))
    assert series_bound(spec, 1, 1) - series_bound(without, 1, 1) == 4 + 2  # + error sum, rows
    mv = {"model": "m", "version": "v1"}
    rows = registry.get_sample_value("model_multivariate_reconstruction_rows_total", mv)
    error_sum = registry.get_sample_value("model_multivariate_reconstruction_error_sum_total", mv)
    assert rows == snap.multivariate.rows_total == 2_050  # every row counted, also the first 50
    assert error_sum == snap.multivariate.error_total
    assert math.isclose(error_sum / rows, snap.multivariate.error, rel_tol=1e-12)  # one window


def test_collector_exports_multivariate_drift(tmp_path: Path) -> None:
    """Through the real collector process: the three families appear with the right labels."""
    ref = write_reference(tmp_path)
    with collector(tmp_path) as proc, httpx.Client(base_url=proc.url, timeout=10) as client:
        spec = spec_dict(str(ref))
        put = client.put("/v1/models/mv", content=json.dumps(spec).encode(), headers=JSON)
        assert put.status_code == 201, put.text
        body = {"predictions": without_labels(events(0, 300, seed=5))}
        assert client.post("/v1/models/mv/predictions", json=body).status_code == 200
        families = {
            family.name: family
            for family in text_string_to_metric_families(client.get("/metrics").text)
        }
    (error,) = families["model_multivariate_drift"].samples
    assert error.labels == {"model": "mv", "version": "default", "method": "pca"}
    assert error.value > 0
    bounds = {
        s.labels["bound"]: s.value for s in families["model_multivariate_drift_threshold"].samples
    }
    assert set(bounds) == {"lower", "upper"} and bounds["lower"] < bounds["upper"]
    assert all(
        s.labels == {"model": "mv", "version": "default", "method": "pca", "bound": b}
        for s, b in zip(families["model_multivariate_drift_threshold"].samples, bounds, strict=True)
    )
    (flag,) = families["model_multivariate_drift_detected"].samples
    assert flag.labels == {"model": "mv", "version": "default"}
    assert flag.value == (0.0 if bounds["lower"] <= error.value <= bounds["upper"] else 1.0)


def test_dashboard_shows_the_error_against_its_band() -> None:
    from modelmeter.dashboard.panels import _multivariate_card
    from modelmeter.dashboard.queries import RawRefresh, Selection
    from modelmeter.dashboard.view import build_view

    labels = {"model": "m", "version": "v1"}

    def sample(name: str, value: float, **extra: str) -> dict[str, Any]:
        return {"metric": {"__name__": name, **labels, **extra}, "value": [0, str(value)]}

    instant = {
        "result": [
            sample("model_multivariate_drift", 1.58, method="pca"),
            sample("model_multivariate_drift_threshold", 1.05, method="pca", bound="lower"),
            sample("model_multivariate_drift_threshold", 1.11, method="pca", bound="upper"),
            sample("model_multivariate_drift_detected", 1.0),
        ]
    }
    catalog = [{"model": "m", "version": "v1", "task": "regression"}]
    raw = RawRefresh(Selection("m", "v1"), 0.0, catalog, {"instant": instant}, {}, 8)
    view = build_view(raw)
    assert view["multivariate"] == {
        "method": "pca",
        "error": 1.58,
        "lower": 1.05,
        "upper": 1.11,
        "detected": 1.0,
        "samples": None,  # no window size in this answer: the guard cannot grey it
        "guarded": False,
    }
    text = str(_multivariate_card(view["multivariate"]))
    assert "1.580" in text and "1.050" in text and "1.110" in text and "drifted" in text
    empty = build_view(RawRefresh(Selection("m", "v1"), 0.0, catalog, {"instant": None}, {}, 8))
    assert "no figure" in str(_multivariate_card(empty["multivariate"]))
