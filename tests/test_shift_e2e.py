"""Shift-aware CBPE end to end: two real collector processes fed the same covariate shift.

Both run ``python -m modelmeter collector`` on 127.0.0.1: one with
MODELMETER_SHIFT_REFIT_INTERVAL=1s (shift-aware), one with 0 (plain CBPE). The model's score
ignores x2, which moves the outcome; the live inputs move along x2 (tests/test_service_shift.py
has the seeded stream). First 5,000 shifted predictions without labels, an hour old (they fill
the live sample, not the window); once the shift-aware collector's snapshot says its refitted
calibrator is in use, a fresh window of 5,000 shifted predictions and then their labels; both
the snapshot and /metrics (model_estimation_shift_aware) then say which calibration is in use.

Tolerances: the realized accuracy of those 5,000 has a standard error of about 0.006; plain
CBPE must err by more than 0.05 from it (scikit-learn's accuracy_score on the labels sent),
the shift-aware estimate by less than half of plain CBPE's error.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sklearn.metrics import accuracy_score

from helpers import collector_process, wait_until
from test_service_shift import SHIFTED, ShiftModel, shift_events, shift_reference_csv, shift_spec
from test_service_shift import strip as without_labels

JSON = {"content-type": "application/json"}
N = 5_000


def _post(c: httpx.Client, kind: str, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), 1000):
        part = items[start : start + 1000]
        r = c.post(f"/v1/models/m/{kind}", content=orjson.dumps({kind: part}), headers=JSON)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["accepted" if kind == "predictions" else "matched"] == len(part), body


def _snapshot(c: httpx.Client) -> dict[str, Any]:
    r = c.get("/v1/models/m")
    assert r.status_code == 200, r.text
    snap: dict[str, Any] = r.json()["snapshots"]["default"]
    return snap


def _refits(c: httpx.Client) -> dict[str, float]:
    """modelmeter_shift_refits_total of model m by outcome in the collector's /metrics."""
    out = {}
    for line in c.get("/metrics").text.splitlines():
        if line.startswith("modelmeter_shift_refits_total{") and 'model="m"' in line:
            out[line.split('outcome="')[1].split('"')[0]] = float(line.rsplit(" ", 1)[1])
    return out


def _shift_aware_metric(c: httpx.Client) -> float | None:
    """model_estimation_shift_aware of model m in the collector's /metrics."""
    for line in c.get("/metrics").text.splitlines():
        if line.startswith("model_estimation_shift_aware{") and 'model="m"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.mark.e2e
def test_shift_aware_estimate_follows_a_covariate_shift_plain_cbpe_misses(tmp_path: Path) -> None:
    model = ShiftModel(seed=0)
    reference = tmp_path / "reference.csv"
    reference.write_bytes(shift_reference_csv(model, n=10_000, seed=1))
    shift = collector_process(
        tmp_path, data_dir=tmp_path / "shift", env={"MODELMETER_SHIFT_REFIT_INTERVAL": "1s"}
    )
    plain = collector_process(
        tmp_path, data_dir=tmp_path / "plain", env={"MODELMETER_SHIFT_REFIT_INTERVAL": "0"}
    )
    old = time.time() - 3600  # older than the window: counted in totals, not in the window
    unlabeled = without_labels(shift_events(model, 0, N, seed=21, x2_mean=SHIFTED, ts=old))
    fresh = shift_events(model, N, N, seed=22, x2_mean=SHIFTED)
    labels = [{"id": e["id"], "label": e["_label"]} for e in fresh]
    with shift, plain:
        clients = {
            name: httpx.Client(base_url=proc.url, timeout=30)  # type: ignore[attr-defined]
            for name, proc in (("shift", shift), ("plain", plain))
        }
        try:
            for c in clients.values():
                r = c.put("/v1/models/m", content=orjson.dumps(shift_spec(str(reference))),
                          headers=JSON)  # fmt: skip
                assert r.status_code == 201, r.text
                _post(c, "predictions", unlabeled)
            in_use = wait_until(
                lambda: (s := _snapshot(clients["shift"]))["estimation_shift_aware"] and s,
                timeout=60,
                what="the shift-aware calibrator in use",
            )
            assert in_use["estimation_auc"] > 0.7 and in_use["estimation_effective_rows"] >= 200
            assert in_use["estimation_reason"] is None
            for c in clients.values():
                _post(c, "predictions", without_labels(fresh))
                _post(c, "labels", labels)
            snaps = {name: _snapshot(c) for name, c in clients.items()}
            exported = {name: _shift_aware_metric(c) for name, c in clients.items()}
            refits = {name: _refits(c) for name, c in clients.items()}
        finally:
            for c in clients.values():
                c.close()
        assert shift.alive() and plain.alive()
        assert "failed" not in shift.log(tail=100_000)  # no refit failed

    realized = accuracy_score([e["_label"] for e in fresh], [str(e["prediction"]) for e in fresh])
    for name, snap in snaps.items():
        assert snap["window_predictions"] == N and snap["performance_labels"] == N, name
        assert snap["realized"]["accuracy"] == pytest.approx(realized, abs=1e-9), name
    assert exported == {"shift": 1.0, "plain": 0.0}  # /metrics says the same
    assert refits["shift"].get("applied", 0.0) >= 1.0 and "failed" not in refits["shift"]
    assert refits["plain"] == {}  # refits off: none counted
    assert snaps["plain"]["estimation_shift_aware"] is False
    assert snaps["plain"]["estimation_reason"] is None  # never refitted
    assert snaps["shift"]["estimation_shift_aware"] is True
    plain_error = abs(snaps["plain"]["estimated"]["accuracy"] - realized)
    shift_error = abs(snaps["shift"]["estimated"]["accuracy"] - realized)
    assert plain_error > 0.05, (plain_error, shift_error, realized)
    assert shift_error < plain_error / 2, (plain_error, shift_error, realized)
