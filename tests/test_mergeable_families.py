"""The counters a Prometheus merges over collectors (issue 13, deploy/prometheus/rules/merged.yml):
fed straight to the engine, the window's count of every drift bin equals the increase of its
counter over the window; PSI, Jensen-Shannon, the estimated figures and the mean reconstruction
error recomputed from counter differences and the reference-ratio gauges, as the rules do,
equal the engine's; every series is there (at 0) from the version's first prediction; the
counters survive a checkpoint, and a checkpoint written before them loads them at 0."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelmeter.engine import ModelMonitor, MonitorConfig, PredictionBatch, ReferenceData, Snapshot
from modelmeter.engine.state import ADDED_TOTALS
from modelmeter.exposition import CollectorState, ModelState, build_registry, render
from modelmeter.spec import ModelSpec, load_spec

T0 = 1_700_000_000.0  # a multiple of the bucket: window edges are bucket edges
EPS = 1e-4  # PSI_EPSILON, as the rules write it
CITIES = ("paris", "rome", "oslo", "lima")
CLASSES = ("red", "green", "blue")
Metrics = dict[tuple[str, frozenset[tuple[str, str]]], float]


def spec_of(task: str) -> ModelSpec:
    classes = {"binary": "classes: ['no', 'yes']\n", "multiclass": "classes: [red, green, blue]\n"}
    return load_spec(
        f"task: {task}\n{classes.get(task, '')}"
        "features: [{name: x, type: numeric, range: [-3, 3]}, {name: y, type: numeric},"
        " {name: city, type: categorical}]\n"
        "window: {length: 5m, bucket: 10s}\nmin_samples: 50\n"
    )


def config_of(spec: ModelSpec, **changes: Any) -> MonitorConfig:
    # 3 of the 4 reference cities: the fourth is in the reference's "other" bin
    return dataclasses.replace(spec.monitor_config(), max_categories=3, **changes)


def outputs(task: str, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[Any, ...]:
    """(predictions, labels, scores) of a model on features x, y."""
    n = x.shape[0]
    if task == "regression":
        prediction = np.round(x + 0.5 * y, 3)  # ties: fewer distinct output quantiles
        return prediction, prediction + rng.normal(0, 0.5, n), None
    if task == "binary":
        p = 1 / (1 + np.exp(-2 * (x + y)))
        classes = np.array(["no", "yes"], dtype=object)
        actual = classes[(rng.random(n) < p).astype(int)]
        return classes[(p > 0.5).astype(int)], actual, p
    logits = np.column_stack([x, y, -x - y])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    names = np.array(CLASSES, dtype=object)
    actual = names[[rng.choice(3, p=row) for row in p]]
    return names[p.argmax(axis=1)], actual, p


def reference_of(task: str, rng: np.random.Generator, n: int = 5_000) -> ReferenceData:
    x = rng.normal(size=n)
    y = np.round(rng.gamma(1.5, 1.0, size=n))  # coinciding quantiles: fewer bins
    city = rng.choice(np.array(CITIES, dtype=object), size=n, p=[0.4, 0.3, 0.2, 0.1])
    city[rng.random(n) < 0.05] = None
    predictions, labels, scores = outputs(task, x, y, rng)
    return ReferenceData({"x": x, "y": y, "city": city}, predictions, labels, scores)


def stream(
    task: str, rng: np.random.Generator, n: int, start: float, stop: float, shift: float
) -> PredictionBatch:
    """Events in [start, stop) with every kind of trouble: missing, infinite, out-of-range,
    wrong-type and unseen values, errored predictions, predictions without scores."""
    x = rng.normal(shift, 1.0 + shift / 2, size=n)
    x[rng.random(n) < 0.03] = np.nan
    x[rng.random(n) < 0.01] = np.inf
    y = np.round(rng.gamma(1.5 + shift, 1.0, size=n))
    city = rng.choice(np.array([*CITIES, "zurich"], dtype=object), size=n)
    city[rng.random(n) < 0.04] = None
    predictions, _, scores = outputs(task, np.nan_to_num(x, posinf=3.0), y, rng)
    errored = rng.random(n) < 0.02
    if task == "regression":
        predictions = np.where(errored, np.nan, predictions)
    else:
        predictions = np.where(errored, "", predictions).astype(object)
        unscored = rng.random(n) < 0.05
        scores = np.where(unscored if scores.ndim == 1 else unscored[:, None], np.nan, scores)
    wrong = rng.random(n) < 0.02  # finite values marked wrong type: in no bin
    return PredictionBatch(
        timestamps=np.sort(rng.uniform(start, stop, size=n)),
        features={"x": x, "y": y, "city": city},
        predictions=predictions,
        scores=scores,
        wrong_type={"x": wrong},
    )


def feed(monitor: ModelMonitor, task: str, seed: int, start: float, shift: float) -> None:
    """About 9,000 events over 200 s in batches of 1 to 5,000 (the matrix is cut in chunks of
    4,096); ``y`` comes once as an object column with a string (the slow path)."""
    rng = np.random.default_rng(seed)
    t = start
    for size in (1, 1, 7, 40, 300, 2_000, 5_000, 1, 900, 600):
        batch = stream(task, rng, size, t, t + 20.0, shift)
        if size == 40:
            y = batch.features["y"].astype(object)
            y[3] = "seven"
            batch = dataclasses.replace(batch, features={**batch.features, "y": y})
        monitor.observe(batch, now=t + 20.0)
        t += 20.0


def metrics(spec: ModelSpec, snap: Snapshot) -> Metrics:
    state = CollectorState(models=(ModelState("m", spec, {"v1": snap}),))
    text = render(build_registry(lambda: state)).decode()
    out: Metrics = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def family(m: Metrics, name: str, **match: str) -> dict[str, float]:
    """The samples of one family whose labels include ``match``, by their ``bin`` or by
    ``class/outcome``."""
    out = {}
    for (sample, labels), value in m.items():
        found = dict(labels)
        if sample == name and match.items() <= found.items():
            out[found.get("bin") or f"{found.get('class')}/{found.get('outcome')}"] = value
    return out


def psi_as_the_rules(counts: dict[str, float], reference: dict[str, float]) -> float:
    """merged.yml's PSI: the observed bins' terms, less their empty-window terms, plus every
    reference bin's empty-window term."""
    total = sum(counts.values())

    def term(q: float, p: float) -> float:
        q, p = max(q, EPS), max(p, EPS)
        return (q - p) * math.log(q / p)

    observed = sum(
        term(n / total, reference[b]) - term(0.0, reference[b]) for b, n in counts.items()
    )
    return observed + sum(term(0.0, p) for p in reference.values())


def js_as_the_rules(counts: dict[str, float], reference: dict[str, float]) -> float:
    total = sum(counts.values())
    divergence = sum(reference.values())
    for b, n in counts.items():
        q, p = n / total, reference[b]
        term = p * math.log2(max(2 * p, 1e-300) / max(q + p, 1e-300))
        term += q * math.log2(max(2 * q, 1e-300) / max(q + p, 1e-300))
        divergence += term - p
    return math.sqrt(max(divergence / 2, 0.0))


def window_bins(monitor: ModelMonitor) -> dict[str, list[float]]:
    """The window's count of every drift bin as the engine's drift figures read it."""
    ring = monitor._state.ring
    features = monitor._features
    out = {}
    counts, _ = features.numeric.window_rows(ring)
    for j, (spec, binning) in enumerate(
        zip(features.numeric.specs, features.numeric.binnings, strict=True)
    ):
        out[spec.name] = counts[j, : binning.n_bins].tolist()
    counts = features.categorical.window_rows(ring)
    for j, (spec, b) in enumerate(
        zip(features.categorical.specs, features.categorical.binnings, strict=True)
    ):
        out[spec.name] = counts[j, : b.n_bins].tolist()
    out[""] = ring.window("output")[:-1].tolist()  # the output's bins, errored ones left out
    return out


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_window_figures_are_counter_differences(task: str) -> None:
    spec = spec_of(task)
    monitor = ModelMonitor(config_of(spec), reference_of(task, np.random.default_rng(1)))
    feed(monitor, task, seed=2, start=T0, shift=0.0)
    before = metrics(spec, monitor.snapshot(T0 + 200.0))
    feed(monitor, task, seed=3, start=T0 + 1_000.0, shift=0.8)  # the first events have expired
    now = T0 + 1_200.0
    snap = monitor.snapshot(now)
    after = metrics(spec, snap)
    window = window_bins(monitor)
    drifts = {**snap.drift, "": snap.prediction_drift}
    for feature, drift in drifts.items():
        if feature:
            name, ratio, match = (
                "model_feature_bin",
                "model_feature_reference_ratio",
                {"feature": feature},
            )
        else:
            name, ratio, match = "model_prediction_bin", "model_prediction_reference_ratio", {}
        old = family(before, f"{name}_observations_total", **match)
        new = family(after, f"{name}_observations_total", **match)
        reference = family(after, ratio, **match)
        assert list(new) == list(reference)  # the same bins on both sides, every one
        assert math.isclose(sum(reference.values()), 1.0, rel_tol=1e-12)
        delta = {b: new[b] - old[b] for b in new}
        assert list(delta.values()) == window[feature], feature  # exact counts
        assert sum(delta.values()) == drift.samples
        assert abs(psi_as_the_rules(delta, reference) - drift.psi) < 1e-12, feature
        assert abs(js_as_the_rules(delta, reference) - drift.jensen_shannon) < 1e-12, feature
    assert snap.drift["x"].drifted and snap.drift["y"].psi > 0.1
    x_bins = family(after, "model_feature_bin_observations_total", feature="x")
    assert list(x_bins) == [str(i) for i in range(12)]  # 10 quantile bins, under, over
    assert len(family(after, "model_feature_bin_observations_total", feature="y")) < 12
    assert list(family(after, "model_feature_reference_ratio", feature="city")) == [
        "oslo",
        "paris",
        "rome",
        "other",  # lima, the fourth city of the reference, and zurich, unseen
    ]
    mv = snap.multivariate
    assert mv is not None and mv.samples > 0
    rows = family(after, "model_multivariate_reconstruction_rows_total")
    errors = family(after, "model_multivariate_reconstruction_error_sum_total")
    old_rows = family(before, "model_multivariate_reconstruction_rows_total")
    old_errors = family(before, "model_multivariate_reconstruction_error_sum_total")
    [(key, value)] = rows.items()
    assert value - old_rows[key] == mv.samples
    mean = (errors[key] - old_errors[key]) / (value - old_rows[key])
    assert math.isclose(mean, mv.error, rel_tol=1e-12)
    if task != "regression":
        check_estimated(before, after, snap)
    else:
        assert not family(after, "model_estimated_outcomes_total")


def check_estimated(before: Metrics, after: Metrics, snap: Snapshot) -> None:
    """merged.yml's estimated figures from window counts of the estimated outcomes."""
    old = family(before, "model_estimated_outcomes_total")
    new = family(after, "model_estimated_outcomes_total")
    w = {key: new[key] - old[key] for key in new}
    assert snap.estimated is not None
    classes = list(snap.estimated.per_class)
    assert len(w) == 3 * len(classes)
    tp = sum(w[f"{c}/tp"] for c in classes)
    assert math.isclose(tp / (tp + sum(w[f"{c}/fn"] for c in classes)), snap.estimated.accuracy)
    for c, figures in snap.estimated.per_class.items():
        tp_c, fp_c, fn_c = w[f"{c}/tp"], w[f"{c}/fp"], w[f"{c}/fn"]
        assert abs(tp_c / (tp_c + fp_c) - figures.precision) < 1e-12
        assert abs(tp_c / (tp_c + fn_c) - figures.recall) < 1e-12
        assert abs(2 * tp_c / (2 * tp_c + fp_c + fn_c) - figures.f1) < 1e-12


def test_every_series_is_there_at_zero_from_the_first_prediction() -> None:
    spec = spec_of("multiclass")
    monitor = ModelMonitor(config_of(spec), reference_of("multiclass", np.random.default_rng(1)))
    m = metrics(spec, monitor.snapshot(T0))
    for feature, bins in (("x", 12), ("city", 4)):
        counts = family(m, "model_feature_bin_observations_total", feature=feature)
        assert len(counts) == bins and set(counts.values()) == {0.0}
    assert list(family(m, "model_prediction_bin_observations_total")) == [*CLASSES, "other"]
    outcomes = family(m, "model_estimated_outcomes_total")
    assert len(outcomes) == 9 and set(outcomes.values()) == {0.0}
    assert family(m, "model_multivariate_reconstruction_rows_total") == {"None/None": 0.0}
    ratios = family(m, "model_prediction_reference_ratio")
    assert ratios["other"] == 0.0 and math.isclose(sum(ratios.values()), 1.0)


def totals_of(snap: Snapshot) -> tuple[Any, ...]:
    mv = snap.multivariate
    assert mv is not None
    return (
        snap.feature_bins,
        snap.prediction_bins,
        snap.expected_total,
        mv.rows_total,
        mv.error_total,
    )


def test_counters_survive_a_checkpoint_exactly() -> None:
    spec = spec_of("binary")
    reference = reference_of("binary", np.random.default_rng(1))
    one = ModelMonitor(config_of(spec), reference)
    feed(one, "binary", seed=2, start=T0, shift=0.0)
    data = json.loads(json.dumps(one.to_checkpoint()))
    two = ModelMonitor.from_checkpoint(config_of(spec), reference, data)
    assert totals_of(two.snapshot(T0 + 200)) == totals_of(one.snapshot(T0 + 200))
    for monitor in (one, two):
        feed(monitor, "binary", seed=3, start=T0 + 250.0, shift=0.5)
    assert totals_of(two.snapshot(T0 + 500)) == totals_of(one.snapshot(T0 + 500))
    assert one.snapshot(T0 + 500).feature_bins["x"].counts[0] > 0  # underflow: x < min(ref)


def test_a_checkpoint_without_the_counters_loads_them_at_zero() -> None:
    spec = spec_of("multiclass")
    reference = reference_of("multiclass", np.random.default_rng(1))
    one = ModelMonitor(config_of(spec), reference)
    feed(one, "multiclass", seed=2, start=T0, shift=0.0)
    data = json.loads(json.dumps(one.to_checkpoint()))
    assert set(data["totals"]) >= ADDED_TOTALS
    old = {**data, "totals": {k: v for k, v in data["totals"].items() if k not in ADDED_TOTALS}}
    two = ModelMonitor.from_checkpoint(config_of(spec), reference, old)
    now = T0 + 200.0
    snap, fresh = two.snapshot(now), one.snapshot(now)
    assert snap.to_dict()["drift"] == fresh.to_dict()["drift"]  # the window is kept
    assert snap.estimated == fresh.estimated
    assert all(set(b.counts) == {0.0} for b in snap.feature_bins.values())
    assert set(snap.expected_total.values()) == {0.0}
    assert snap.multivariate is not None and snap.multivariate.rows_total == 0
    assert snap.predictions_total == fresh.predictions_total  # the older totals are kept
    # counting goes on from 0; a monitor without multivariate drift drops its total
    feed(two, "multiclass", seed=3, start=T0 + 1_000.0, shift=0.5)
    later = two.snapshot(T0 + 1_200.0)
    assert [sum(b.counts) for b in later.feature_bins.values()] == [
        d.samples for d in later.drift.values()
    ]
    off = config_of(spec, multivariate=None)
    three = ModelMonitor.from_checkpoint(
        off, reference, json.loads(json.dumps(two.to_checkpoint()))
    )
    assert three.snapshot(T0 + 1_200.0).feature_bins == later.feature_bins
    with pytest.raises(ValueError, match="total"):
        bad = {**data, "totals": {**data["totals"], "output": [1.0, 2.0]}}
        ModelMonitor.from_checkpoint(config_of(spec), reference, bad)
