"""Segments through the real collector: labels that arrive later (after a restart, from the
store) are attributed to their prediction's segment value, per-segment figures equal
scikit-learn's, bad segment values never create series, and the series stay within the
documented bound."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from modelmeter.exposition import series_bound
from modelmeter.spec import load_spec
from service_support import collector, events, spec_dict, write_reference

JSON = {"content-type": "application/json"}
TOL = 1e-12
BAD = ["zz", 'quo"te', "x" * 60, 7, None]  # unseen, needing escapes, long, a number, missing


def samples(url: str) -> list[tuple[str, dict[str, str], float]]:
    text = httpx.get(f"{url}/metrics").text
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def test_segment_figures_through_the_collector(tmp_path: Path) -> None:
    ref = write_reference(tmp_path)
    spec = spec_dict(str(ref)) | {
        "window": {"length": "1h", "bucket": "1m"},
        "segments": ["station"],
    }
    evs = events(0, 900, seed=21)
    for i, event in enumerate(evs):
        if i % 9 == 0:
            event["features"]["station"] = BAD[(i // 9) % len(BAD)]
    station = {e["id"]: e["features"]["station"] for e in evs}
    data = tmp_path / "data"
    with (
        collector(tmp_path, data_dir=data) as proc,
        httpx.Client(base_url=proc.url, timeout=10) as c,
    ):
        put = c.put("/v1/models/seg", content=orjson.dumps(spec), headers=JSON)
        assert put.status_code == 201, put.text
        # the first 200 come with their label (the same-request path), the rest without
        body = [
            {k: v for k, v in e.items() if k != "_label"}
            | ({"label": e["_label"]} if i < 200 else {})
            for i, e in enumerate(evs)
        ]
        posted = c.post("/v1/models/seg/predictions", content=orjson.dumps({"predictions": body}),
                        headers=JSON).json()  # fmt: skip
        assert posted["accepted"] == 900, posted
    # a restart: the later labels find their prediction's segment codes in the store
    with (
        collector(tmp_path, data_dir=data) as proc,
        httpx.Client(base_url=proc.url, timeout=10) as c,
    ):
        late = [{"id": e["id"], "label": e["_label"]} for e in evs[200:700]]
        assert c.post("/v1/models/seg/labels", json={"labels": late}).json()["matched"] == 500
        got = samples(proc.url)
    labeled = evs[:700]
    values: dict[str, Any] = {
        "a": lambda v: v == "a",
        "b": lambda v: v == "b",
        "c": lambda v: v == "c",
        "other": lambda v: v not in ("a", "b", "c"),
    }
    by_series = {(n, lab.get("value")): v for n, lab, v in got if lab.get("segment") == "station"}
    for value, member in values.items():
        rows = [e for e in labeled if member(station[e["id"]])]
        y_true = [e["_label"] for e in rows]
        y_pred = [str(e["prediction"]) for e in rows]
        assert len(rows) >= 20  # min_samples: the figures are there
        checks = {
            "model_segment_accuracy": accuracy_score(y_true, y_pred),
            "model_segment_precision": precision_score(y_true, y_pred, pos_label="1"),
            "model_segment_recall": recall_score(y_true, y_pred, pos_label="1"),
            "model_segment_f1_score": f1_score(y_true, y_pred, pos_label="1"),
        }
        for name, expected in checks.items():
            assert abs(by_series[(name, value)] - expected) < TOL, (name, value)
        made = sum(1 for e in evs if member(station[e["id"]]))
        assert by_series[("model_segment_window_predictions", value)] == made
        assert by_series[("model_segment_window_labeled_predictions", value)] == len(rows)
        coverage = by_series[("model_segment_label_coverage_ratio", value)]
        assert abs(coverage - len(rows) / made) < TOL
        assert 0 <= by_series[("model_segment_estimated_accuracy", value)] <= 1
    # segment label values are the vocabulary plus other, never what traffic sent
    seen = {lab["value"] for _, lab, _ in got if "segment" in lab}
    assert seen == {"a", "b", "c", "other"}
    assert {lab["segment"] for _, lab, _ in got if "segment" in lab} == {"station"}
    series = [(n, lab) for n, lab, _ in got if lab.get("model") == "seg"]
    assert len(series) <= series_bound(load_spec(orjson.dumps(spec)), versions=1, replicas=0)
