"""Realized metrics served by the real collector equal scikit-learn's on the same labeled events
(binary, multiclass with a multipart upload, regression); labels arrive before and after their
predictions; resources per replica; the /metrics text parses and carries no unknown names."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from prometheus_client.parser import text_string_to_metric_families
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
)

from service_support import collector, events, spec_dict, without_labels, write_reference

JSON = {"content-type": "application/json"}
TOL = 1e-12


def metrics(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def get(m: dict[Any, float], name: str, **labels: str) -> float:
    return m[(name, frozenset(labels.items()))]


def multiclass_reference(n: int = 300, seed: int = 4) -> tuple[bytes, np.random.Generator]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    logits = np.column_stack([x[:, 0], x[:, 1], -x[:, 0] - x[:, 1]])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    out = io.StringIO()
    out.write("a,b,prediction,label,p_red,p_green,p_blue\n")
    names = np.array(["red", "green", "blue"])
    for i in range(n):
        label = names[rng.choice(3, p=p[i])]
        out.write(f"{x[i, 0]:.6f},{x[i, 1]:.6f},{names[p[i].argmax()]},{label},"
                  f"{p[i, 0]:.6f},{p[i, 1]:.6f},{1 - p[i, 0] - p[i, 1]:.6f}\n")  # fmt: skip
    return out.getvalue().encode(), rng


def test_binary_realized_metrics_equal_sklearn(tmp_path: Path) -> None:
    ref = write_reference(tmp_path)
    with collector(tmp_path) as proc, httpx.Client(base_url=proc.url, timeout=10) as c:
        spec = spec_dict(str(ref)) | {"window": {"length": "1h", "bucket": "1m"}}
        assert c.put("/v1/models/bin", content=orjson.dumps(spec), headers=JSON).status_code == 201
        evs = events(0, 600, seed=11)
        early = [{"id": e["id"], "label": e["_label"]} for e in evs[:100]]  # before predictions
        assert c.post("/v1/models/bin/labels", json={"labels": early}).json()["pending"] == 100
        body = {
            "predictions": [{k: v for k, v in e.items() if k != "_label"} for e in evs],
            "resources": {"replica": "pod-1", "cpu_ratio": 0.25, "memory_bytes": 123456789},
        }
        assert c.post("/v1/models/bin/predictions", content=orjson.dumps(body),
                      headers=JSON).json()["accepted"] == 600  # fmt: skip
        late = [{"id": e["id"], "label": e["_label"]} for e in evs[100:500]]
        assert c.post("/v1/models/bin/labels", json={"labels": late}).json()["matched"] == 400
        y_true = [e["_label"] for e in evs[:500]]
        y_pred = [str(e["prediction"]) for e in evs[:500]]
        m = metrics(proc.url)
        mv = {"model": "bin", "version": "default"}
        assert abs(get(m, "model_accuracy", **mv) - accuracy_score(y_true, y_pred)) < TOL
        assert (
            abs(get(m, "model_precision", **mv) - precision_score(y_true, y_pred, pos_label="1"))
            < TOL
        )
        assert abs(get(m, "model_recall", **mv) - recall_score(y_true, y_pred, pos_label="1")) < TOL
        assert abs(get(m, "model_f1_score", **mv) - f1_score(y_true, y_pred, pos_label="1")) < TOL
        assert get(m, "model_window_labeled_predictions", **mv) == 500
        assert get(m, "model_pending_labels", model="bin") == 100
        assert abs(get(m, "model_label_coverage_ratio", **mv) - 500 / 600) < TOL
        assert get(m, "model_serving_cpu_ratio", replica="pod-1", **mv) == 0.25
        assert get(m, "model_serving_memory_bytes", replica="pod-1", **mv) == 123456789


def test_multiclass_upload_and_regression_equal_sklearn(tmp_path: Path) -> None:
    ref_bytes, rng = multiclass_reference()
    spec = {
        "task": "multiclass",
        "classes": ["red", "green", "blue"],
        "features": [{"name": "a", "type": "numeric"}, {"name": "b", "type": "numeric"}],
        "reference": {"probabilities": ["p_red", "p_green", "p_blue"]},
        "window": {"length": "1h", "bucket": "1m"},
        "min_samples": 10,
    }
    reg_ref = tmp_path / "reg.csv"
    x = rng.normal(size=200)
    reg_ref.write_text("x,prediction,label\n" + "".join(
        f"{v:.6f},{2 * v:.6f},{2 * v + rng.normal(0, 0.3):.6f}\n" for v in x))  # fmt: skip
    reg_spec = {"task": "regression", "features": [{"name": "x", "type": "numeric"}],
                "reference": {"path": str(reg_ref)}, "min_samples": 10,
                "window": {"length": "1h", "bucket": "1m"}}  # fmt: skip
    with collector(tmp_path) as proc, httpx.Client(base_url=proc.url, timeout=10) as c:
        files = {"spec": ("spec.json", orjson.dumps(spec)), "reference": ("ref.csv", ref_bytes)}
        created = c.put("/v1/models/multi", files=files)
        assert created.status_code == 201, created.text
        assert c.put("/v1/models/multi", files=files).status_code == 200  # replaced
        yaml_spec = orjson.dumps(reg_spec)  # JSON is YAML too
        put = c.put(
            "/v1/models/reg", content=yaml_spec, headers={"content-type": "application/yaml"}
        )
        assert put.status_code == 201, put.text

        names = ["red", "green", "blue"]
        n = 400
        probs = rng.dirichlet([2, 2, 2], size=n)
        preds = [names[i] for i in probs.argmax(axis=1)]
        truth = [names[rng.choice(3, p=p)] for p in probs]
        evs = [
            {
                "id": f"m{i}",
                "features": {"a": float(rng.normal()), "b": float(rng.normal())},
                "prediction": preds[i],
                "probabilities": dict(zip(names, probs[i].tolist(), strict=True)),
                "version": "v2",
            }
            for i in range(n)
        ]
        assert c.post("/v1/models/multi/predictions", json={"predictions": evs}).json()[
            "accepted"] == n  # fmt: skip
        labels = [{"id": f"m{i}", "label": truth[i]} for i in range(n)]
        assert c.post("/v1/models/multi/labels", json={"labels": labels}).json()["matched"] == n

        xr = rng.normal(size=300)
        yp = 2 * xr
        yt = 2 * xr + rng.normal(0, 0.5, size=300)
        revs = [{"id": f"r{i}", "features": {"x": float(xr[i])}, "prediction": float(yp[i]),
                 "label": float(yt[i])} for i in range(300)]  # fmt: skip
        assert c.post("/v1/models/reg/predictions", json={"predictions": revs}).json()[
            "accepted"] == 300  # fmt: skip

        m = metrics(proc.url)
        mv = {"model": "multi", "version": "v2"}
        assert abs(get(m, "model_accuracy", **mv) - accuracy_score(truth, preds)) < TOL
        p, r, f, _ = precision_recall_fscore_support(truth, preds, labels=names, average="macro")
        assert abs(get(m, "model_precision", **mv) - p) < TOL
        assert abs(get(m, "model_recall", **mv) - r) < TOL
        assert abs(get(m, "model_f1_score", **mv) - f) < TOL
        pc, rc, fc, _ = precision_recall_fscore_support(truth, preds, labels=names)
        for i, cls in enumerate(names):
            assert abs(get(m, "model_class_precision", **mv, **{"class": cls}) - pc[i]) < TOL
            assert abs(get(m, "model_class_recall", **mv, **{"class": cls}) - rc[i]) < TOL
            assert abs(get(m, "model_class_f1_score", **mv, **{"class": cls}) - fc[i]) < TOL
        rv = {"model": "reg", "version": "default"}
        assert abs(get(m, "model_mean_absolute_error", **rv) - mean_absolute_error(yt, yp)) < 1e-9
        rmse = float(np.sqrt(mean_squared_error(yt, yp)))
        assert abs(get(m, "model_root_mean_squared_error", **rv) - rmse) < 1e-9
        listing = c.get("/v1/models").json()["models"]
        assert [(x["model"], x["versions"]) for x in listing] == [
            ("multi", ["v2"]), ("reg", ["default"])]  # fmt: skip


MERGED = (
    "model_feature_bin_observations_total",
    "model_prediction_bin_observations_total",
    "model_estimated_outcomes_total",
    "model_multivariate_reconstruction_error_sum_total",
    "model_multivariate_reconstruction_rows_total",
    "model_feature_reference_ratio",
    "model_prediction_reference_ratio",
)


def merged(
    m: dict[Any, float], **match: str
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The samples of the families merged over collectors (deploy/prometheus/rules/merged.yml)."""
    return {
        key: value
        for key, value in m.items()
        if key[0] in MERGED and match.items() <= dict(key[1]).items()
    }


def by_bin(m: dict[Any, float], name: str, **match: str) -> dict[str, float]:
    return {dict(k[1])["bin"]: v for k, v in merged(m, **match).items() if k[0] == name}


def test_merged_counters_survive_sigkill_and_restart_with_a_changed_spec(tmp_path: Path) -> None:
    """Counted by the real collector: bins of the events' values, expected outcomes of every
    scored prediction; the same values after kill -9 (checkpoint + log replay); 0 after a
    changed spec restarted the version (every series still there)."""
    from helpers import free_port

    ref = write_reference(tmp_path)
    port, data = free_port(), tmp_path / "data"
    env = {"MODELMETER_CHECKPOINT_INTERVAL": "0.2s"}
    spec = spec_dict(str(ref))
    proc = collector(tmp_path, env=env, data_dir=data, port=port).start()
    try:
        c = httpx.Client(base_url=proc.url, timeout=10)
        assert c.put("/v1/models/m", content=orjson.dumps(spec), headers=JSON).status_code == 201
        assert merged(metrics(proc.url)) == {}  # no version yet
        first = events(0, 300, seed=5)
        body = {"predictions": [{k: v for k, v in e.items() if k != "_label"} for e in first]}
        assert c.post("/v1/models/m/predictions", json=body).json()["accepted"] == 300
        m = metrics(proc.url)
        mv = {"model": "m", "version": "default"}
        stations = by_bin(m, "model_feature_bin_observations_total", feature="station", **mv)
        sent = [e["features"]["station"] for e in first]
        assert stations == {s: float(sent.count(s)) for s in ("a", "b", "c")} | {"other": 0.0}
        x1 = by_bin(m, "model_feature_bin_observations_total", feature="x1", **mv)
        assert list(x1) == [str(i) for i in range(12)] and sum(x1.values()) == 300
        ratios = by_bin(m, "model_feature_reference_ratio", feature="x1", model="m")
        assert list(ratios) == list(x1) and abs(sum(ratios.values()) - 1) < TOL
        outputs = by_bin(m, "model_prediction_bin_observations_total", **mv)
        predicted = [str(e["prediction"]) for e in first]
        assert outputs == {"0": predicted.count("0"), "1": predicted.count("1"), "other": 0}
        estimated = {
            (dict(k[1])["class"], dict(k[1])["outcome"]): v
            for k, v in merged(m, **mv).items()
            if k[0] == "model_estimated_outcomes_total"
        }
        assert len(estimated) == 6  # every scored prediction adds its probabilities, 1 in all
        assert abs(sum(estimated[(cls, o)] for cls in "01" for o in ("tp", "fp")) - 300) < 1e-9
        assert get(m, "model_multivariate_reconstruction_rows_total", **mv) == 300
        time.sleep(1.0)  # a checkpoint of the first batch, then a batch in the log after it
        second = without_labels(events(300, 200, seed=6))
        assert c.post("/v1/models/m/predictions", json={"predictions": second}).json()[
            "accepted"] == 200  # fmt: skip
        before = merged(metrics(proc.url))
        assert get(before, "model_multivariate_reconstruction_rows_total", **mv) == 500
        proc.kill()
        proc = collector(tmp_path, env=env, data_dir=data, port=port).start()
        assert merged(metrics(proc.url)) == before
        changed = spec | {"min_samples": 21}
        assert c.put("/v1/models/m", content=orjson.dumps(changed), headers=JSON).status_code == 200
        reset = merged(metrics(proc.url))
        assert set(reset) == set(before)
        counters = {k: v for k, v in reset.items() if k[0].endswith("_total")}
        assert counters and set(counters.values()) == {0.0}
        c.close()
    finally:
        proc.stop()


def test_the_series_limit_counts_the_drift_bins(tmp_path: Path) -> None:
    """MODELMETER_MAX_MODEL_SERIES refuses a spec whose bound (with its bin counters and
    reference ratios) is above it: one drift bin more per feature tips it over."""
    from modelmeter.metric_table import series_bound
    from modelmeter.spec import load_spec

    ref = write_reference(tmp_path)
    fewer = spec_dict(str(ref)) | {"drift": {"bins": 9}}
    more = spec_dict(str(ref)) | {"drift": {"bins": 10}}
    bound = [series_bound(load_spec(orjson.dumps(s)), 4, 2) for s in (fewer, more)]
    assert bound[1] - bound[0] == 3 * (4 + 1)  # 3 numeric features: 4 versions and the ratios
    env = {
        "MODELMETER_MAX_MODEL_SERIES": str(bound[0]),
        "MODELMETER_MAX_VERSIONS": "4",
        "MODELMETER_MAX_REPLICAS": "2",
    }
    with collector(tmp_path, env=env) as proc, httpx.Client(base_url=proc.url, timeout=10) as c:
        refused = c.put("/v1/models/more", content=orjson.dumps(more), headers=JSON)
        assert refused.status_code == 422 and f"up to {bound[1]:,} series" in refused.text
        assert (
            c.put("/v1/models/fewer", content=orjson.dumps(fewer), headers=JSON).status_code == 201
        )
