"""Acknowledged means durable: the collector is SIGKILLed at seeded random moments while a
client process sends batches (and retries until acknowledged); afterwards every event counts
exactly once and the served metrics equal scikit-learn's on the acknowledged events."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from prometheus_client.parser import text_string_to_metric_families
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
)

from durability_client import BATCH, MODEL, batch_events
from helpers import free_port, wait_until
from service_support import collector, spec_dict, write_reference

BATCHES = 120
KILLS = 6
SEED = 20240501
CLIENT = Path(__file__).parent / "durability_client.py"


def parse_metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(metrics: dict[Any, float], name: str, **labels: str) -> float:
    return metrics[(name, frozenset(labels.items()))]


def expected() -> dict[str, Any]:
    """The offline computation from the acknowledged events (all BATCHES, by design)."""
    y_pred, y_true, latency = [], [], []
    for k in range(BATCHES):
        for i, e in enumerate(batch_events(k)):
            latency.append(e["latency_seconds"])
            if i % 5 != 4:
                y_pred.append(str(e["prediction"]))
                y_true.append(e["_label"])
    return {
        "n": BATCHES * BATCH,
        "unlabeled": BATCHES * BATCH // 5,
        "confusion": confusion_matrix(y_true, y_pred, labels=["0", "1"]),
        "accuracy": accuracy_score(y_true, y_pred),
        "precision": precision_score(y_true, y_pred, pos_label="1"),
        "recall": recall_score(y_true, y_pred, pos_label="1"),
        "f1": f1_score(y_true, y_pred, pos_label="1"),
        "latency_sum": float(np.sum(latency)),
    }


def check(url: str, want: dict[str, Any]) -> None:
    m = parse_metrics(httpx.get(f"{url}/metrics", timeout=10).text)
    mv = {"model": MODEL, "version": "default"}
    assert value(m, "model_predictions_total", **mv) == want["n"]
    for p, predicted in enumerate(["0", "1"]):
        for a, actual in enumerate(["0", "1"]):
            got = value(m, "model_labeled_predictions_total", predicted_class=predicted,
                        actual_class=actual, **mv)  # fmt: skip
            assert got == want["confusion"][a, p], (predicted, actual)
    for name, key in (("model_accuracy", "accuracy"), ("model_precision", "precision"),
                      ("model_recall", "recall"), ("model_f1_score", "f1")):  # fmt: skip
        assert abs(value(m, name, **mv) - want[key]) < 1e-12, name
    assert value(m, "model_prediction_latency_seconds_count", **mv) == want["n"]
    assert abs(value(m, "model_prediction_latency_seconds_sum", **mv) - want["latency_sum"]) < 1e-9
    assert value(m, "model_pending_labels", model=MODEL) == want["unlabeled"]
    snapshot = httpx.get(f"{url}/v1/models/{MODEL}", timeout=10).json()["snapshots"]["default"]
    assert snapshot["predictions_total"] == want["n"]
    confusion = {(c["predicted"], c["actual"]): c["count"] for c in snapshot["confusion_total"]}
    for p, predicted in enumerate(["0", "1"]):
        for a, actual in enumerate(["0", "1"]):
            assert confusion.get((predicted, actual), 0) == want["confusion"][a, p]
    assert abs(snapshot["realized"]["accuracy"] - want["accuracy"]) < 1e-12


def test_sigkill_loses_no_acknowledged_event_and_counts_none_twice(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    reference = write_reference(tmp_path)
    port, data = free_port(), tmp_path / "data"
    env = {"MODELMETER_CHECKPOINT_INTERVAL": "0.2s", "MODELMETER_LOG_LEVEL": "warning"}

    def start() -> Any:
        return collector(tmp_path, env=env, data_dir=data, port=port).start()

    proc = start()
    spec = orjson.dumps(spec_dict(str(reference)) | {"window": {"length": "30m", "bucket": "1m"}})
    put = httpx.put(f"{proc.url}/v1/models/{MODEL}", content=spec,
                    headers={"content-type": "application/json"})  # fmt: skip
    assert put.status_code == 201, put.text
    acks = tmp_path / "acks.txt"
    acks.touch()
    client = subprocess.Popen(
        [sys.executable, str(CLIENT), proc.url, str(BATCHES), str(acks)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    acked: Callable[[], int] = lambda: len(acks.read_text().splitlines())  # noqa: E731
    kills = 0
    try:
        # Kill points in the first half of the 2 * BATCHES + 1 requests: the rest is ample
        # margin, so the client cannot finish before the last kill however fast the machine.
        for point in sorted(rng.sample(range(10, BATCHES), KILLS)):
            wait_until(lambda p=point: acked() >= p or client.poll() is not None, timeout=60,
                       what=f"{point} acknowledged requests")  # fmt: skip
            if client.poll() is not None:
                break
            time.sleep(rng.uniform(0.0, 0.03))  # the random moment: inside a later request
            proc.kill()
            kills += 1
            proc = start()
        output = client.communicate(timeout=90)[0].decode()
        assert client.returncode == 0, output
        assert kills == KILLS, "the client finished before every kill; raise BATCHES"
        assert acked() == 1 + 2 * BATCHES
        want = expected()
        check(proc.url, want)
        proc.kill()  # once more after the traffic: checkpoint + log replay alone
        proc = start()
        check(proc.url, want)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        proc.stop()
