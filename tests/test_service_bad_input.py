"""Bad input against the real collector process: a clear 4xx (or a per-event rejection with
its index and reason), never a 5xx, good events kept, and no new /metrics series."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from service_support import (
    collector,
    events,
    metric_series,
    sample,
    spec_dict,
    without_labels,
    write_reference,
)

JSON = {"content-type": "application/json"}
MODEL = "m1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("bad-input")
    ref = write_reference(tmp)
    proc = collector(tmp)
    with proc:
        client = httpx.Client(base_url=proc.url, timeout=10.0)
        r = client.put(f"/v1/models/{MODEL}", content=orjson.dumps(spec_dict(str(ref))),
                       headers=JSON)  # fmt: skip
        assert r.status_code == 201, r.text
        warm = events(0, 300, seed=3)
        r = client.post(f"/v1/models/{MODEL}/predictions", headers=JSON,
                        content=orjson.dumps({"predictions": without_labels(warm)}))  # fmt: skip
        assert r.json()["accepted"] == 300
        labels = [{"id": e["id"], "label": e["_label"]} for e in warm]
        r = client.post(f"/v1/models/{MODEL}/labels", json={"labels": labels})
        assert r.json()["matched"] == 300
        proc.client = client
        yield proc
        client.close()


def _series(server: Any) -> set[str]:
    response = server.client.get("/metrics")
    assert response.status_code == 200
    return metric_series(response.text)


def _post(server: Any, path: str, body: bytes, headers: dict[str, str] | None = None) -> Any:
    before = _series(server)
    response = server.client.post(path, content=body, headers=headers or JSON)
    assert response.status_code < 500, response.text
    assert _series(server) == before, "bad input created or removed /metrics series"
    return response


def _good(start: int, n: int = 2) -> list[dict[str, Any]]:
    return without_labels(events(start, n, seed=start))


PRED = f"/v1/models/{MODEL}/predictions"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"predictions": [', "line 1, column 18 (byte 17)"),
        (b'{"predictions": [{"id": "a", "features": {"x1": NaN}}]}', "(byte 48)"),
        (b'{"predictions": [{"id": "a", "features": {"x1": Infinity}}]}', "(byte 48)"),
        (b'{"predictions": [{"id": "a", "features": {"x1": 1e999}}]}', "(byte 48)"),
        (b'{"predictions": [{"id": "a",}]}', "(byte 27)"),
        (b"\xff\xfe", "byte"),
    ],
)
def test_malformed_json_is_400_with_position(server: Any, body: bytes, where: str) -> None:
    response = _post(server, PRED, body)
    assert response.status_code == 400
    assert "malformed JSON" in response.json()["detail"]
    assert where in response.json()["detail"]


def test_wrong_content_type_is_415(server: Any) -> None:
    body = orjson.dumps({"predictions": _good(10_000)})
    response = _post(server, PRED, body, {"content-type": "text/plain"})
    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]


@pytest.mark.parametrize(
    ("doc", "status", "words"),
    [
        ([], 422, "JSON object"),
        ({}, 422, "no 'predictions' field"),
        ({"predictions": {"id": "a"}}, 422, "must be a list"),
        ({"predictions": []}, 422, "is empty"),
        ({"predictions": [{"id": "x"}], "resources": {"replica": "bad replica!"}}, 422, "replica"),
        ({"predictions": [{"id": "x"}], "resources": "r1"}, 422, "'resources' must be an object"),
    ],
)
def test_envelope_errors_are_4xx(server: Any, doc: Any, status: int, words: str) -> None:
    response = _post(server, PRED, orjson.dumps(doc))
    assert response.status_code == status
    assert words in response.json()["detail"]


def test_unknown_model_is_404(server: Any) -> None:
    body = orjson.dumps({"predictions": _good(20_000)})
    for path in ("/v1/models/nope/predictions", "/v1/models/nope/labels", "/v1/models/nope"):
        response = server.client.post(path, content=body, headers=JSON)
        if path.endswith("nope"):
            response = server.client.get(path)
        assert response.status_code == 404, path
        assert "PUT /v1/models/nope" in response.json()["detail"]


def _mixed(bad: list[Any], start: int) -> tuple[dict[str, Any], int]:
    good = _good(start, 2)
    return {"predictions": [good[0], *bad, good[1]]}, len(bad)


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ({"features": {}, "prediction": 1}, "'id' is missing"),
        ({"id": 7, "features": {}, "prediction": 1}, "'id' must be a string"),
        ({"id": "q", "features": {}, "prediction": "maybe"}, "not one of the model's classes"),
        ({"id": "q", "features": {}, "prediction": 1, "timestamp": "yesterday"}, "RFC 3339"),
        ({"id": "q", "features": {}, "prediction": 1, "timestamp": True}, "Unix seconds"),
        ({"id": "q", "features": [1, 2], "prediction": 1}, "'features' must be an object"),
        ({"id": "q", "features": {}, "prediction": 1, "score": 1.5}, "probability"),
        ({"id": "q", "features": {}, "prediction": 1, "probabilities": [0.2]}, "2 classes"),
        ({"id": "q", "features": {}, "prediction": 1, "probabilities": {"0": 0.9, "1": 0.9}},
         "sum to"),
        ({"id": "q", "features": {}, "prediction": 1, "latency_seconds": -1}, "latency"),
        ({"id": "q", "features": {}, "prediction": 1, "version": "v 1"}, "'version'"),
        ({"id": "q", "features": {}, "prediction": 1, "label": "2"}, "'label' '2'"),
        ("not an object", "JSON object"),
    ],
)  # fmt: skip
def test_bad_event_rejected_alone_with_index(server: Any, bad: Any, words: str) -> None:
    start = 30_000 + abs(hash(words)) % 10_000 * 3
    doc, _ = _mixed([bad], start)
    response = _post(server, PRED, orjson.dumps(doc))
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 2
    assert [r["index"] for r in body["rejected"]] == [1]
    assert words in body["rejected"][0]["error"]


def test_duplicate_ids_in_one_batch_reject_the_later_ones(server: Any) -> None:
    good = _good(50_000, 3)
    doc = {"predictions": [good[0], good[1], dict(good[0]), good[2], dict(good[1])]}
    body = _post(server, PRED, orjson.dumps(doc)).json()
    assert body["accepted"] == 3
    assert [r["index"] for r in body["rejected"]] == [2, 4]
    assert "duplicate id 'e50000' (first at index 0)" in body["rejected"][0]["error"]
    # a retry of the same request is idempotent: nothing counted twice
    retry = _post(server, PRED, orjson.dumps(doc)).json()
    assert retry["accepted"] == 0 and retry["duplicates"] == 3


@pytest.mark.parametrize(
    ("features", "issue"),
    [
        ({"x1": "NaN"}, "wrong_type"),
        ({"x1": "inf"}, "wrong_type"),
        ({"x1": "12.5"}, "wrong_type"),
        ({"x1": True}, "wrong_type"),
        ({"x1": 1e308}, "out_of_range"),
        ({"x1": -1.7976931348623157e308}, "out_of_range"),
        ({"x1": 123456789012345678901234567890}, "out_of_range"),
        ({"station": "zzz"}, "unseen_category"),
        ({"station": [1]}, "wrong_type"),
        ({"x1": None}, "missing"),
    ],
)
def test_feature_value_problems_are_data_quality(
    server: Any, features: dict[str, Any], issue: str
) -> None:
    feature = next(iter(features))
    series = (
        f'model_feature_quality_issues_total{{feature="{feature}",issue="{issue}",'
        f'model="{MODEL}",version="default"}}'
    )
    before = sample(server.client.get("/metrics").text, series) or 0.0
    event = _good(60_000 + abs(hash(str(features))) % 10_000 * 2, 1)[0]
    event["features"] = {**event["features"], **features}
    # stdlib json: orjson refuses to *write* integers beyond 64 bits
    body = _post(server, PRED, json.dumps({"predictions": [event]}).encode()).json()
    assert body == {"accepted": 1, "duplicates": 0, "rejected": []}
    after = sample(server.client.get("/metrics").text, series)
    assert after == before + 1


def test_unknown_features_are_counted_not_exported(server: Any) -> None:
    series = f'model_unknown_features_total{{model="{MODEL}",version="default"}}'
    before = sample(server.client.get("/metrics").text, series)
    event = _good(80_000, 1)[0]
    event["features"] = {**event["features"], "brand_new_feature": 1.0, "another": "x"}
    body = _post(server, PRED, orjson.dumps({"predictions": [event]})).json()
    assert body["accepted"] == 1
    text = server.client.get("/metrics").text
    assert sample(text, series) == (before or 0) + 2
    assert "brand_new_feature" not in text


def test_labels_for_unknown_ids_wait_and_unseen_classes_are_rejected(server: Any) -> None:
    path = f"/v1/models/{MODEL}/labels"
    doc = {"labels": [{"id": "never-seen", "label": 1}, {"id": "e0", "label": "purple"},
                      {"id": "x"}, {"label": 1}]}  # fmt: skip
    body = _post(server, path, orjson.dumps(doc)).json()
    assert body["pending"] == 1
    assert [r["index"] for r in body["rejected"]] == [1, 2, 3]
    assert "'purple' is not one of the model's classes" in body["rejected"][0]["error"]
    assert "'label' is missing" in body["rejected"][1]["error"]
    again = _post(server, path, orjson.dumps({"labels": [{"id": "never-seen", "label": 1}]}))
    assert again.json()["duplicates"] == 1


def test_spec_with_errors_is_422_naming_the_field(server: Any) -> None:
    bad = {"task": "binary", "classes": [0, 1], "features": [{"name": "x", "type": "float"}]}
    response = server.client.put("/v1/models/m2", content=orjson.dumps(bad), headers=JSON)
    assert response.status_code == 422
    assert "features[0].type" in response.json()["detail"]
    response = server.client.put("/v1/models/m2", content=b"task: [", headers={
        "content-type": "application/yaml"})  # fmt: skip
    assert response.status_code == 422
    assert "YAML" in response.json()["detail"]
    missing = spec_dict("/nonexistent/reference.csv")
    response = server.client.put("/v1/models/m2", content=orjson.dumps(missing), headers=JSON)
    assert response.status_code == 422
    assert "reference.path" in response.json()["detail"]
    response = server.client.put("/v1/models/bad name!", content=b"{}", headers=JSON)
    assert response.status_code in (404, 422)
    assert server.client.get("/v1/models").json()["models"][0]["model"] == MODEL
    assert len(server.client.get("/v1/models").json()["models"]) == 1


def test_json_snapshot_has_nulls_not_nan(server: Any) -> None:
    body = server.client.get(f"/v1/models/{MODEL}")
    assert body.status_code == 200
    assert b"NaN" not in body.content
    snapshot = body.json()["snapshots"]["default"]
    assert snapshot["predictions_total"] >= 300


def test_limits_and_tokens(tmp_path: Path) -> None:
    ref = write_reference(tmp_path)
    env = {
        "MODELMETER_WRITE_TOKENS": "w-token",
        "MODELMETER_READ_TOKENS": "r-token",
        "MODELMETER_PROTECT_METRICS": "true",
        "MODELMETER_MAX_BODY_BYTES": "20000",
        "MODELMETER_MAX_EVENTS": "50",
        "MODELMETER_MAX_MODELS": "1",
    }
    with collector(tmp_path, env=env) as proc:
        c = httpx.Client(base_url=proc.url, timeout=10.0)
        w = {"authorization": "Bearer w-token", **JSON}
        r = {"authorization": "Bearer r-token"}
        spec = orjson.dumps(spec_dict(str(ref)))
        assert c.put("/v1/models/m1", content=spec, headers=JSON).status_code == 401
        wrong = {"authorization": "Bearer r-token", **JSON}
        assert c.put("/v1/models/m1", content=spec, headers=wrong).status_code == 403
        assert c.put("/v1/models/m1", content=spec, headers=w).status_code == 201
        assert c.put("/v1/models/m2", content=spec, headers=w).status_code == 409
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"authorization": "Bearer nope"}).status_code == 403
        before = metric_series(c.get("/metrics", headers=r).text)
        assert c.get("/v1/models", headers=r).status_code == 200
        assert c.get("/v1/models").status_code == 401
        body = orjson.dumps({"predictions": _good(0, 200)})
        big = c.post("/v1/models/m1/predictions", content=body, headers=w)
        assert big.status_code == 413 and "MODELMETER_MAX_BODY_BYTES" in big.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: the streamed size is checked
            for i in range(0, len(body), 4096):
                yield body[i : i + 4096]

        streamed = c.post("/v1/models/m1/predictions", content=chunks(), headers=w)
        assert streamed.status_code == 413
        many = orjson.dumps({"predictions": [{"id": str(i)} for i in range(51)]})
        too_many = c.post("/v1/models/m1/predictions", content=many, headers=w)
        assert too_many.status_code == 413 and "MODELMETER_MAX_EVENTS" in too_many.text
        assert metric_series(c.get("/metrics", headers=r).text) == before
        ok = c.post("/v1/models/m1/predictions", content=orjson.dumps(
            {"predictions": _good(0, 5)}), headers=w)  # fmt: skip
        assert ok.json()["accepted"] == 5
        c.close()


def test_at_most_ten_live_versions_and_32_replicas_become_labels(server: Any) -> None:
    """Runs last in this module: it adds (bounded) version and replica series on purpose."""
    batch = _good(90_000, 12)
    for i, event in enumerate(batch):
        event["version"] = f"v{i}"
    before = server.client.get(f"/v1/models/{MODEL}").json()["snapshots"]
    assert list(before) == ["default"]
    body = server.client.post(PRED, content=orjson.dumps({"predictions": batch}), headers=JSON)
    result = body.json()
    # "default" retires to make room; a batch alone cannot hold more than the limit
    assert result["accepted"] == 10
    assert [r["index"] for r in result["rejected"]] == [10, 11]
    assert "this batch alone has more than 10 versions" in result["rejected"][0]["error"]
    assert "MODELMETER_MAX_VERSIONS" in result["rejected"][0]["error"]
    live = server.client.get(f"/v1/models/{MODEL}").json()["snapshots"]
    assert sorted(live) == sorted(f"v{i}" for i in range(10))
    text = server.client.get("/metrics").text
    retired = f'modelmeter_versions_retired_total{{model="{MODEL}",reason="capacity"}}'
    assert sample(text, retired) == 1.0
    assert f'model_info{{model="{MODEL}",task="binary",version="default"}}' not in text
    for r in range(40):
        resources = {"replica": f"pod-{r}", "cpu_ratio": 0.5, "memory_bytes": 1e8}
        doc = {"predictions": _good(95_000 + r, 1), "resources": resources}
        assert server.client.post(PRED, content=orjson.dumps(doc), headers=JSON).status_code == 200
    text = server.client.get("/metrics").text
    assert sum(line.startswith("model_serving_cpu_ratio{") for line in text.splitlines()) == 32
    assert len(server.client.get(f"/v1/models/{MODEL}").json()["snapshots"]) == 10


def test_reference_path_outside_the_reference_dir_is_refused(tmp_path: Path) -> None:
    allowed = tmp_path / "references"
    allowed.mkdir()
    inside = write_reference(allowed)
    outside = write_reference(tmp_path)
    with collector(tmp_path, env={"MODELMETER_REFERENCE_DIR": str(allowed)}) as proc:
        c = httpx.Client(base_url=proc.url, timeout=10.0)
        for path in (str(outside), "../" + outside.name, "/etc/passwd"):
            response = c.put("/v1/models/m1", content=orjson.dumps(spec_dict(path)), headers=JSON)
            assert response.status_code == 422, path
            assert "MODELMETER_REFERENCE_DIR" in response.json()["detail"], path
        assert c.get("/v1/models").json()["models"] == []
        relative = orjson.dumps(spec_dict(inside.name))
        assert c.put("/v1/models/m1", content=relative, headers=JSON).status_code == 201
        absolute = orjson.dumps(spec_dict(str(inside)))
        assert c.put("/v1/models/m2", content=absolute, headers=JSON).status_code in (200, 201)


def test_same_spec_again_keeps_state_and_delete_forgets_the_model(tmp_path: Path) -> None:
    ref = write_reference(tmp_path)
    spec = orjson.dumps(spec_dict(str(ref)))
    batch = without_labels(events(0, 40, seed=8))
    data_dir = tmp_path / "data"

    def total(c: httpx.Client) -> int:
        return int(c.get("/v1/models/m").json()["snapshots"]["default"]["predictions_total"])

    with collector(tmp_path, data_dir=data_dir) as proc:
        c = httpx.Client(base_url=proc.url, timeout=10.0)
        assert c.put("/v1/models/m", content=spec, headers=JSON).status_code == 201
        assert c.post("/v1/models/m/predictions", json={"predictions": batch}).status_code == 200
        assert total(c) == 40
        # A model service registering at every start changes nothing.
        assert c.put("/v1/models/m", content=spec, headers=JSON).status_code == 200
        assert total(c) == 40
        # A changed spec replaces the state (documented counter reset).
        changed = orjson.dumps(spec_dict(str(ref), min_samples=30))
        assert c.put("/v1/models/m", content=changed, headers=JSON).status_code == 200
        assert total(c) == 0
        assert 'model="m"' in c.get("/metrics").text
        assert c.delete("/v1/models/m").status_code == 204
        assert c.get("/v1/models/m").status_code == 404
        assert c.delete("/v1/models/m").status_code == 404
        assert 'model="m"' not in c.get("/metrics").text
        assert c.get("/v1/models").json()["models"] == []
    with collector(tmp_path, data_dir=data_dir) as proc:  # the deletion is durable
        c = httpx.Client(base_url=proc.url, timeout=10.0)
        assert c.get("/v1/models").json()["models"] == []
        assert c.put("/v1/models/m", content=spec, headers=JSON).status_code == 201
        again = c.post("/v1/models/m/predictions", json={"predictions": batch}).json()
        assert again["accepted"] == 40  # the deleted model's ids are forgotten too
