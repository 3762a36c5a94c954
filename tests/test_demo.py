"""The demo's parts: the data and where it drifts, the spec, the model service, replay, CLI."""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from helpers import ManagedProcess, free_port, wait_until
from modelmeter.demo import artifacts, cli, data, measure, model, replay, service
from modelmeter.sdk import Client, monitor
from modelmeter.spec import load_reference, load_spec
from test_sdk import Recorder


@pytest.fixture(scope="module")
def rainfall() -> data.DemoData:
    return data.load("rainfall")


@pytest.fixture(scope="module")
def estimator(rainfall: data.DemoData) -> Any:
    return model.train(rainfall)


@pytest.fixture
def server() -> Any:
    rec = Recorder()
    yield rec
    rec.close()


def test_rainfall_is_the_documented_data(rainfall: data.DemoData) -> None:
    assert rainfall.frame.shape == (18_159, 8)
    assert set(np.unique(rainfall.labels)) == {0, 1}
    assert not rainfall.frame.isna().any().any()
    assert rainfall.train_rows[1] == rainfall.reference_rows[0]
    assert rainfall.replay_start == rainfall.reference_rows[1] == 4000


def test_drift_is_where_the_readme_says(rainfall: data.DemoData, estimator: Any) -> None:
    table = measure.drift_table(rainfall, estimator, chunk=1000)  # KS by scipy.stats.ks_2samp
    before, after = table.loc[:11000], table.loc[12000:17000]
    # visibility shifts at row 5,000 and stays shifted
    visibility = table["visibility"]
    assert float(visibility[4000]) < 0.15 and float(before.loc[5000:, "visibility"].min()) > 0.4
    # dew point and sea-level pressure change at row 12,000
    for feature in ("dew_point", "sea_level_pressure"):
        assert before[feature].max() < 0.1 and after[feature].min() > 0.3
    # temperature stays put
    assert table.loc[:17000, "temperature"].max() < 0.13
    # the model trained on the first rows loses accuracy after row 12,000
    assert before["accuracy"].min() > 0.72 and after["accuracy"].max() < 0.70
    assert before["accuracy"].mean() - after["accuracy"].mean() > 0.15
    text = measure.format_table(table)
    assert text.splitlines()[0].split()[:2] == ["accuracy", "temperature"]


def test_sea_stream_has_its_concept_drift() -> None:
    sea = data.load("sea")
    fitted = model.train(sea)
    predictions = fitted.predict(sea.frame)
    drift_at = next(iter(sea.drift_rows))
    early = np.mean(predictions[6000:drift_at] == sea.labels[6000:drift_at])
    late = np.mean(predictions[drift_at + 500 :] == sea.labels[drift_at + 500 :])
    assert early > 0.9 and early - late > 0.08


def test_unknown_dataset() -> None:
    with pytest.raises(ValueError, match="rainfall, sea"):
        data.load("iris")


def test_spec_and_reference_load_with_the_spec_loader(
    tmp_path: Path, rainfall: data.DemoData, estimator: Any
) -> None:
    reference = model.reference_frame(estimator, rainfall)
    train = rainfall.frame.iloc[slice(*rainfall.train_rows)]
    accuracy = float((reference["prediction"] == reference["label"]).mean())
    files, written = artifacts.ensure_artifacts(
        tmp_path, reference, train, "2m", "5s", 50, reference_accuracy=accuracy
    )
    assert written and files.exist()
    spec = load_spec(files.spec_path.read_text())
    assert spec.window_seconds == 120 and spec.bucket_seconds == 5
    assert spec.thresholds["accuracy_warning"] == round(accuracy - 0.07, 2)
    ref = load_reference(spec, base_dir=tmp_path)
    assert len(ref.labels) == 1500
    assert ref.scores is not None
    np.testing.assert_allclose(ref.scores, reference["score"], rtol=1e-12)
    # a second run keeps the files (edits survive)
    files.spec_path.write_text(files.spec_path.read_text() + "# edited\n")
    again, written = artifacts.ensure_artifacts(tmp_path, reference, train, "9m", "9s", 9)
    assert not written and again.spec_path.read_text().endswith("# edited\n")
    assert repr(again) == f"DemoArtifacts({str(tmp_path)!r})"


def test_model_service_predicts_and_reports(
    server: Recorder, rainfall: data.DemoData, estimator: Any
) -> None:
    client = Client(server.url, "rainfall", flush_interval=60)
    features = list(rainfall.frame.columns)
    app = service.create_app(monitor(estimator, client), features)
    rows = rainfall.frame.iloc[4000:4010]
    model_service = service.ModelService(app, "127.0.0.1", free_port()).start()
    try:
        with httpx.Client(base_url=model_service.url) as http:
            response = http.post("/predict", json={"rows": rows.to_dict("records")})
            assert response.status_code == 200, response.text
            body = response.json()
            bad = http.post("/predict", json={"rows": [{"temperature": "warm"}]})
            assert bad.status_code == 422 and "temperature" in bad.json()["detail"]
            assert http.get("/healthz").json() == {"status": "ok", "rows_served": 10}
    finally:
        model_service.stop()
    assert body["predictions"] == estimator.predict(rows).tolist()
    np.testing.assert_allclose(body["scores"], estimator.predict_proba(rows)[:, 1])
    assert client.flush(timeout=10)
    events = server.events()
    assert [e["id"] for e in events] == body["ids"]
    assert events[0]["features"] == pytest.approx(rows.iloc[0].to_dict())
    assert events[0]["probabilities"]["1"] == pytest.approx(body["scores"][0])
    client.close()


def test_replay_sends_rows_and_labels_after_the_delay(
    server: Recorder, rainfall: data.DemoData, estimator: Any
) -> None:
    predictions = Client(server.url, "rainfall", flush_interval=0.1)
    labels = Client(server.url, "rainfall", flush_interval=0.1)
    stop = threading.Event()
    feeder = replay.LabelFeeder(labels, delay=0.5, stop=stop).start()
    app = service.create_app(monitor(estimator, predictions), list(rainfall.frame.columns))
    model_service = service.ModelService(app, "127.0.0.1", free_port()).start()
    lines: list[str] = []
    replayer = replay.Replayer(
        model_service.url,
        rainfall,
        400.0,
        feeder,
        stop,
        start=4950,
        end=5150,
        progress=lines.append,
    )
    try:
        stats = replayer.run()
        assert stats.sent == 200 and stats.failed == 0
        wait_until(lambda: len(server.events("labels")) == 200, timeout=10, what="200 labels")
    finally:
        stop.set()
        feeder.join()
        model_service.stop()
        predictions.close()
        labels.close()
    sent = {e["id"]: e for e in server.events()}
    got = server.events("labels")
    assert [g["label"] for g in got] == rainfall.labels[4950:5150].tolist()
    assert all(g["id"] in sent for g in got)
    assert all(g["timestamp"] - sent[g["id"]]["timestamp"] >= 0.45 for g in got)
    assert any("row 5,000: visibility shifts down" in line for line in lines)
    assert lines[-1].startswith("replay: row 5,150 of 5,150 (100%)")
    assert 0.5 < stats.recent_accuracy < 1.0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    return parser.parse_args(argv)


def test_cli_says_when_the_collector_is_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert cli.run(parse(["--collector-url", url, "--wait", "0.3"])) == 2
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0
    assert f"cannot reach the collector at {url}" in out and "--collector-url" in out


def test_cli_says_when_the_port_is_busy(
    collector: ManagedProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = parse(["--collector-url", collector.url, "--model-port", str(port)])  # type: ignore[attr-defined]
        assert cli.run(args) == 2
    out = capsys.readouterr().out
    assert f"port {port} on 127.0.0.1 is already in use" in out and "--model-port" in out


def test_measure_flag_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(parse(["--measure"])) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "visibility" in lines[0] and lines[-1].split()[0] == "18000"


def test_demo_process_stops_cleanly_on_sigterm(collector: ManagedProcess, tmp_path: Path) -> None:
    url = collector.url  # type: ignore[attr-defined]
    port = free_port()
    demo = ManagedProcess(
        "demo",
        [
            sys.executable, "-m", "modelmeter.demo.cli", "--collector-url", url,
            "--data-dir", str(tmp_path), "--model-port", str(port), "--speed", "50",
            "--label-delay", "0.5", "--loop",
        ],
        tmp_path / "demo.log",
        ready_url=f"http://127.0.0.1:{port}/healthz",
    )  # fmt: skip
    with demo:
        wait_until(
            lambda: httpx.get(f"{url}/v1/models/rainfall", timeout=5).json()["snapshots"]
            .get("default", {}).get("predictions_total", 0) >= 20,
            timeout=30,
            what="the demo's predictions at the collector",
        )  # fmt: skip
        assert demo.proc is not None
        demo.proc.send_signal(signal.SIGTERM)
        assert demo.proc.wait(timeout=20) == 0, demo.log()
    log = demo.log()
    assert "registered model 'rainfall'" in log and "stopped:" in log, log
    assert (tmp_path / "demo-rainfall" / "spec.yaml").is_file()
