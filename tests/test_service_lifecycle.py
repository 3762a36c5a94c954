"""Day 30 against the real collector: releases, changed specs, concurrent registration, limits.

Every test starts ``python -m modelmeter collector`` on 127.0.0.1 and speaks HTTP to it.
Realized figures are compared with scikit-learn on the events the test sent.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sklearn.metrics import accuracy_score

from helpers import wait_until
from service_support import collector, events, sample, spec_dict, without_labels, write_reference

JSON = {"content-type": "application/json"}


def _register(c: httpx.Client, model: str, spec: dict[str, Any]) -> httpx.Response:
    return c.put(f"/v1/models/{model}", content=orjson.dumps(spec), headers=JSON)


def _post(c: httpx.Client, model: str, kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    r = c.post(f"/v1/models/{model}/{kind}", content=orjson.dumps({kind: items}), headers=JSON)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _predict(c: httpx.Client, model: str, batch: list[dict[str, Any]]) -> dict[str, Any]:
    return _post(c, model, "predictions", batch)


def _label(c: httpx.Client, model: str, labels: list[dict[str, Any]]) -> dict[str, Any]:
    return _post(c, model, "labels", labels)


def _metric(c: httpx.Client, series: str) -> float | None:
    return sample(c.get("/metrics").text, series)


def test_twelve_releases_are_all_monitored_exactly(tmp_path: Path) -> None:
    ref = write_reference(tmp_path)
    with collector(tmp_path) as proc, httpx.Client(base_url=proc.url, timeout=10) as c:
        assert _register(c, "m", spec_dict(str(ref))).status_code == 201
        sent: dict[str, list[dict[str, Any]]] = {}
        for release in range(1, 13):
            version = f"v{release}"
            batch = events(release * 1000, 200, seed=release)
            for event in batch:
                event["version"] = version
            sent[version] = batch
            assert _predict(c, "m", without_labels(batch))["accepted"] == 200
            labeled = batch[:-1]  # the last one's label comes late (below)
            labels = [{"id": e["id"], "label": e["_label"]} for e in labeled]
            assert _label(c, "m", labels)["matched"] == 199
            expected = accuracy_score(
                [e["_label"] for e in labeled], [str(e["prediction"]) for e in labeled]
            )
            got = _metric(c, f'model_accuracy{{model="m",version="{version}"}}')
            assert got == pytest.approx(expected, abs=1e-12), version
            total = _metric(c, f'model_predictions_total{{model="m",version="{version}"}}')
            assert total == 200.0
        live = c.get("/v1/models/m").json()["snapshots"]
        assert sorted(live, key=lambda v: int(v[1:])) == [f"v{i}" for i in range(3, 13)]
        text = c.get("/metrics").text
        assert sample(text, 'modelmeter_versions_retired_total{model="m",reason="capacity"}') == 2
        assert 'version="v1"' not in text and 'version="v2"' not in text
        # a late label for a retired release is counted as such, never an error
        late = [{"id": sent["v1"][-1]["id"], "label": "1"}]
        body = _label(c, "m", late)
        assert (body["matched"], body["retired"], body["rejected"]) == (0, 1, [])
        retired = 'modelmeter_ingest_events_total{kind="labels",model="m",outcome="retired"}'
        assert _metric(c, retired) == 1.0
        # a version retired by hand leaves /metrics; another DELETE of it is a 404
        assert c.delete("/v1/models/m/versions/v3").status_code == 204
        assert c.delete("/v1/models/m/versions/v3").status_code == 404
        text = c.get("/metrics").text
        assert 'version="v3"' not in text
        assert sample(text, 'modelmeter_versions_retired_total{model="m",reason="manual"}') == 1


def test_live_versions_survive_a_restart_and_retired_ones_stay_retired(tmp_path: Path) -> None:
    ref = write_reference(tmp_path)
    env = {"MODELMETER_MAX_VERSIONS": "2"}
    data = tmp_path / "data"
    with collector(tmp_path, env=env, data_dir=data) as proc:
        c = httpx.Client(base_url=proc.url, timeout=10)
        assert _register(c, "m", spec_dict(str(ref))).status_code == 201
        for release in (1, 2, 3):
            batch = without_labels(events(release * 1000, 50, seed=release))
            for event in batch:
                event["version"] = f"v{release}"
            assert _predict(c, "m", batch)["accepted"] == 50
        port = proc.port
    with collector(tmp_path, env=env, data_dir=data, port=port) as proc:
        c = httpx.Client(base_url=proc.url, timeout=10)
        assert sorted(c.get("/v1/models/m").json()["snapshots"]) == ["v2", "v3"]
        assert _metric(c, 'model_predictions_total{model="m",version="v3"}') == 50.0
        # predictions of the retired v1 no longer wait for labels
        assert c.get("/v1/models/m").json()["pending_labels"] == 100
        assert _label(c, "m", [{"id": "e1000", "label": "0"}])["retired"] == 1


def test_changed_spec_applies_or_rejects_every_later_label(tmp_path: Path) -> None:
    """Classes change from 0/1 to 1/2: a stored prediction of class 0 cannot be scored any
    more, one of class 1 can; waiting labels are checked when their prediction arrives."""
    ref = write_reference(tmp_path)
    with collector(tmp_path) as proc, httpx.Client(base_url=proc.url, timeout=10) as c:
        assert _register(c, "m", spec_dict(str(ref))).status_code == 201
        batch = events(0, 100, seed=7)
        assert _predict(c, "m", without_labels(batch))["accepted"] == 100
        early = _label(c, "m", [{"id": "later-0", "label": "0"}, {"id": "later-1", "label": "1"}])
        assert early["pending"] == 2
        changed = spec_dict(str(ref)) | {"window": {"length": "10m", "bucket": "10s"}}
        changed["classes"] = ["1", "2"]
        changed["positive_class"] = "1"
        changed["reference"] = {"path": str(_relabel(ref, tmp_path / "ref2.csv")), "score": "score"}
        r = _register(c, "m", changed)
        assert r.status_code == 200, r.text
        labels = [{"id": e["id"], "label": "1"} for e in batch]
        body = _label(c, "m", labels)
        fits = [e for e in batch if e["prediction"] == 1]
        assert body["matched"] == len(fits)
        assert len(body["rejected"]) == len(batch) - len(fits)
        assert all("earlier spec" in r["error"] for r in body["rejected"])
        text = c.get("/metrics").text
        counted = sample(
            text,
            'model_labeled_predictions_total{actual_class="1",model="m",predicted_class="1",'
            'version="default"}',
        )
        assert counted == len(fits)
        rejected = 'modelmeter_ingest_events_total{kind="labels",model="m",outcome="rejected"}'
        assert sample(text, rejected) == len(batch) - len(fits)
        # the waiting labels meet their predictions: "0" no longer fits, "1" does
        late = [
            {"id": "later-0", "features": {}, "prediction": 1},
            {"id": "later-1", "features": {}, "prediction": 1},
        ]
        body = _predict(c, "m", late)
        assert body["accepted"] == 2
        assert [r["id"] for r in body["rejected_labels"]] == ["later-0"]
        assert _metric(c, rejected) == len(batch) - len(fits) + 1
        assert (
            _metric(
                c,
                'model_labeled_predictions_total{actual_class="1",model="m",predicted_class="1",'
                'version="default"}',
            )
            == len(fits) + 1
        )


def _relabel(ref: Path, out: Path) -> Path:
    """The reference with class "0" renamed "2" in the prediction and label columns."""
    lines = ref.read_text().splitlines()
    header = lines[0].split(",")
    columns = [header.index("prediction"), header.index("label")]
    rows = [lines[0]]
    for line in lines[1:]:
        cells = line.split(",")
        for j in columns:
            cells[j] = "2" if cells[j] == "0" else cells[j]
        rows.append(",".join(cells))
    out.write_text("\n".join(rows) + "\n")
    return out


def test_identical_concurrent_puts_during_ingestion_never_reset_state(tmp_path: Path) -> None:
    ref = write_reference(tmp_path)
    spec = spec_dict(str(ref))
    with collector(tmp_path) as proc, httpx.Client(base_url=proc.url, timeout=30) as c:
        assert _register(c, "m", spec).status_code == 201
        acknowledged = 0
        stop = threading.Event()
        errors: list[str] = []

        def register_repeatedly() -> None:
            with httpx.Client(base_url=proc.url, timeout=30) as own:
                while not stop.is_set():
                    r = _register(own, "m", spec)
                    if r.status_code != 200:
                        errors.append(r.text)

        threads = [threading.Thread(target=register_repeatedly) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for i in range(30):
                acknowledged += _predict(c, "m", without_labels(events(i * 100, 100, seed=i)))[
                    "accepted"
                ]
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert errors == []
        assert acknowledged == 3000
        assert _metric(c, 'model_predictions_total{model="m",version="default"}') == 3000.0


def test_a_spec_too_large_for_its_state_or_series_is_refused(tmp_path: Path) -> None:
    ref = write_reference(tmp_path)
    env = {"MODELMETER_MAX_MODEL_STATE_BYTES": "1MiB", "MODELMETER_MAX_MODEL_SERIES": "3000"}
    with collector(tmp_path, env=env) as proc, httpx.Client(base_url=proc.url, timeout=10) as c:
        fine = spec_dict(str(ref))
        assert _register(c, "ok", fine).status_code == 201
        fine_bucket = fine | {"window": {"length": "10m", "bucket": "1s"}}
        r = _register(c, "state", fine_bucket)
        assert r.status_code == 422
        detail = r.json()["detail"]
        assert "bytes of window state per version" in detail
        assert "MODELMETER_MAX_MODEL_STATE_BYTES" in detail
        assert "at 10 live versions" in detail
        assert c.get("/v1/models/state").status_code == 404
    with collector(tmp_path, env={"MODELMETER_MAX_MODEL_SERIES": "1000"}) as proc:
        c = httpx.Client(base_url=proc.url, timeout=10)
        r = _register(c, "series", spec_dict(str(ref)))
        assert r.status_code == 422
        assert "MODELMETER_MAX_MODEL_SERIES" in r.json()["detail"]


def test_reference_vocabularies_are_capped(tmp_path: Path) -> None:
    """A categorical feature without spec categories keeps its most frequent values."""
    ref = write_reference(tmp_path)
    lines = ref.read_text().splitlines()
    station = lines[0].split(",").index("station")
    rows = [lines[0]]
    for i, line in enumerate(lines[1:]):
        cells = line.split(",")
        # 200 x "common"; s1, s3 ... s99 twice, s101 ... s299 once
        cells[station] = f"s{i % 300}" if i % 2 else "common"
        rows.append(",".join(cells))
    (tmp_path / "wide.csv").write_text("\n".join(rows) + "\n")
    spec = spec_dict(str(tmp_path / "wide.csv"))
    del spec["features"][-1]["categories"]
    env = {"MODELMETER_MAX_CATEGORIES": "5"}
    with collector(tmp_path, env=env) as proc, httpx.Client(base_url=proc.url, timeout=10) as c:
        assert _register(c, "m", spec).status_code == 201
        batch = without_labels(events(0, 100, seed=2))
        # kept: common, then the values seen twice by name: s1, s11, s13, s15
        values = ["common", "common", "s1", "s7"]
        for i, event in enumerate(batch):
            event["features"]["station"] = values[i % 4]
        assert _predict(c, "m", batch)["accepted"] == 100
        snap = c.get("/v1/models/m").json()["snapshots"]["default"]
        assert snap["quality_window_ratio"]["station"]["unseen_category"] == 0.25


def test_store_gauges_and_the_budget_expire_the_oldest_and_keep_ingesting(
    tmp_path: Path,
) -> None:
    ref = write_reference(tmp_path)
    env = {"MODELMETER_STORE_BUDGET": "600KiB", "MODELMETER_CHECKPOINT_INTERVAL": "0.2s"}
    with collector(tmp_path, env=env) as proc, httpx.Client(base_url=proc.url, timeout=10) as c:
        assert _register(c, "m", spec_dict(str(ref))).status_code == 201
        for i in range(40):
            batch = without_labels(events(i * 500, 500, seed=i))
            assert _predict(c, "m", batch)["accepted"] == 500
        expired = 'modelmeter_expired_events_total{kind="predictions",model="m",reason="budget"}'

        def shrunk() -> bool:
            value = _metric(c, expired)
            used = _metric(c, "modelmeter_store_bytes")
            return value is not None and value > 0 and used is not None and used < 600 * 1024

        wait_until(shrunk, 30.0, what="the store back within its budget")
        text = c.get("/metrics").text
        assert sample(text, "modelmeter_store_budget_bytes") == 600 * 1024
        assert sample(text, "modelmeter_store_wal_bytes") is not None
        pending = sample(text, 'model_pending_labels{model="m"}')
        assert pending is not None and pending + (sample(text, expired) or 0) == 20_000
        # ingestion keeps working, and the engine's counts are intact
        assert _predict(c, "m", without_labels(events(900_000, 10, seed=1)))["accepted"] == 10
        assert _metric(c, 'model_predictions_total{model="m",version="default"}') == 20_010.0
