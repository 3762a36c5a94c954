"""Fast in-process checks of the collector app (TestClient), settings and the command line.
The behaviour over HTTP is tested against the real process in the other test_service_*."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import orjson
import pytest

from modelmeter.service import create_app
from modelmeter.service.cli import configure
from modelmeter.settings import Settings

with warnings.catch_warnings():  # starlette 1.x warns that it prefers httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient
from service_support import events, spec_dict, without_labels, write_reference


def test_settings_from_env_and_overrides() -> None:
    env = {
        "MODELMETER_WRITE_TOKENS": "a, b,,",
        "MODELMETER_MAX_BODY_BYTES": "1MiB",
        "MODELMETER_PROTECT_METRICS": "yes",
        "MODELMETER_CHECKPOINT_INTERVAL": "250ms",
    }
    s = Settings.from_env(env, port=9100, host=None)
    assert s.write_tokens == ("a", "b") and s.max_body_bytes == 1 << 20
    assert s.protect_metrics and s.checkpoint_interval_seconds == 0.25
    assert s.port == 9100 and s.host == "127.0.0.1"
    with pytest.raises(ValueError, match=r"MODELMETER_LABEL_TTL='soon'.*7d"):
        Settings.from_env({"MODELMETER_LABEL_TTL": "soon"})
    with pytest.raises(ValueError, match="MODELMETER_SQLITE_SYNCHRONOUS"):
        Settings.from_env({"MODELMETER_SQLITE_SYNCHRONOUS": "OFF"})


def test_help_lists_every_setting_with_env_and_default() -> None:
    parser = argparse.ArgumentParser()
    configure(parser)
    text = parser.format_help()
    for _, env, _, _ in Settings.describe():
        assert env in text
    args = parser.parse_args(["--port", "9", "--label-ttl", "2h", "--no-protect-metrics"])
    assert args.port == 9 and args.label_ttl_seconds == 7200.0 and args.protect_metrics is False


def test_restart_in_process_restores_state(tmp_path: Path) -> None:
    ref = write_reference(tmp_path)
    settings = Settings(data_dir=tmp_path / "data", reference_dir=tmp_path)
    batch = without_labels(events(0, 40, seed=2))
    with TestClient(create_app(settings)) as client:
        r = client.put("/v1/models/m", content=orjson.dumps(spec_dict(str(ref))),
                       headers={"content-type": "application/json"})  # fmt: skip
        assert r.status_code == 201
        assert client.post("/v1/models/m/predictions", json={"predictions": batch}).json()[
            "accepted"] == 40  # fmt: skip
        before = client.get("/v1/models/m").json()["snapshots"]["default"]["predictions_total"]
    with TestClient(create_app(settings)) as client:  # checkpoint at shutdown, restore at start
        assert client.get("/readyz").json() == {"status": "ready"}
        after = client.get("/v1/models/m").json()["snapshots"]["default"]
        assert after["predictions_total"] == before == 40
        again = client.post("/v1/models/m/predictions", json={"predictions": batch}).json()
        assert again == {"accepted": 0, "duplicates": 40, "rejected": []}
        schema = client.get("/openapi.json").json()
        assert "/v1/models/{model}/predictions" in schema["paths"]
        assert client.get("/metrics").headers["content-type"].startswith("text/plain")


def test_protected_metrics_accept_write_tokens_when_no_read_token(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, reference_dir=tmp_path, write_tokens=("w",), protect_metrics=True
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"authorization": "Bearer x"}).status_code == 403
        assert client.get("/metrics", headers={"authorization": "Bearer w"}).status_code == 200
        assert client.get("/v1/models").status_code == 200  # reads stay open without read tokens


def test_ttl_expiry_forgets_waiting_predictions_and_their_ids(tmp_path: Path) -> None:
    import time

    ref = write_reference(tmp_path)
    app = create_app(
        Settings(data_dir=tmp_path / "data", reference_dir=tmp_path, label_ttl_seconds=60.0)
    )
    batch = without_labels(events(0, 10, seed=5))
    with TestClient(app) as client:
        r = client.put("/v1/models/m", content=orjson.dumps(spec_dict(str(ref))),
                       headers={"content-type": "application/json"})  # fmt: skip
        assert r.status_code == 201
        client.post("/v1/models/m/predictions", json={"predictions": batch})
        client.post("/v1/models/m/labels", json={"labels": [{"id": "unknown", "label": 1}]})
        assert client.get("/v1/models/m").json()["pending_labels"] == 10
        expired = app.state.hub.expire(time.time() + 61)
        assert (expired.predictions, expired.labels) == ({"m": 10}, {"m": 1})
        assert client.get("/v1/models/m").json()["pending_labels"] == 0
        again = client.post("/v1/models/m/predictions", json={"predictions": batch}).json()
        assert again["accepted"] == 10  # past the TTL an id is new again


def test_idle_versions_retire_and_their_late_labels_are_counted(tmp_path: Path) -> None:
    import time

    ref = write_reference(tmp_path)
    settings = Settings(data_dir=tmp_path / "data", reference_dir=tmp_path, version_idle_seconds=60)
    app = create_app(settings)
    with TestClient(app) as client:
        r = client.put("/v1/models/m", content=orjson.dumps(spec_dict(str(ref))),
                       headers={"content-type": "application/json"})  # fmt: skip
        assert r.status_code == 201
        hub = app.state.hub
        t = time.time()
        for version, start, now in (("v1", 0, t), ("v2", 100, t + 30)):
            batch = without_labels(events(start, 10, seed=1))
            for event in batch:
                event["version"] = version
            assert hub.ingest_predictions("m", {"predictions": batch}, now)["accepted"] == 10
        hub.expire(t + 65)  # v1 idle for 65 s, v2 for 35 s
        assert sorted(client.get("/v1/models/m").json()["snapshots"]) == ["v2"]
        text = client.get("/metrics").text
        assert 'modelmeter_versions_retired_total{model="m",reason="idle"} 1.0' in text
        assert 'version="v1"' not in text
        assert client.get("/v1/models/m").json()["pending_labels"] == 10
        body = client.post("/v1/models/m/labels", json={"labels": [{"id": "e0", "label": 1}]})
        assert body.json()["retired"] == 1
