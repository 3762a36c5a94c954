"""Shift-aware CBPE in the collector: the live sample and the refit job.

The live sample is checked against a numpy concatenation of everything appended (exactly the
last N rows, in order, whatever the batch sizes); the rest runs an in-process hub (the real
:class:`~modelmeter.service.hub.Hub` on a real SQLite store in ``tmp_path``, no HTTP): the
sample follows the version's lifecycle, and :meth:`Hub.refit_shift` (the job's step for one
version) applies a fit, discards it when the spec changes while it fits, and counts a failing
fit without raising. tests/test_shift_e2e.py runs the job in the real collector process.

The seeded stream (also used by the e2e test): the model's score is a logistic regression on
x1 and region only; the outcome also depends on x2, which the live inputs move (mean 0 in the
reference, ``x2_mean`` live), so the score's calibration changes with the inputs.
"""

from __future__ import annotations

import argparse
import io
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelmeter.engine import FeatureSpec, MonitorConfig
from modelmeter.service.cli import configure
from modelmeter.service.hub import Hub
from modelmeter.service.shift import LiveSample
from modelmeter.settings import Settings
from modelmeter.spec import load_spec
from modelmeter.store import Store

REGIONS = np.array(["a", "b", "c"], dtype=object)
SHIFTED = 1.5  # the live mean of x2


# ------------------------------------------------------------------ the seeded shift stream


def shift_rows(
    rng: np.random.Generator, n: int, x2_mean: float
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Features and true labels (0/1): P(y | x1, x2, region) fixed, x2's mean moves."""
    x1 = rng.normal(size=n)
    x2 = rng.normal(x2_mean, 1.0, n)
    region = REGIONS[rng.choice(3, n, p=[0.5, 0.3, 0.2])]
    effect = np.select([region == "b", region == "c"], [0.5, -0.5], 0.0)
    p1 = 1 / (1 + np.exp(-(1.8 * x1 + 1.5 * x2 + effect - 0.2)))
    y = (rng.random(n) < p1).astype(int)
    return {"x1": x1, "x2": x2, "region": region}, y


class ShiftModel:
    """A logistic regression on x1 and region only: its score cannot see x2."""

    def __init__(self, seed: int = 0) -> None:
        features, y = shift_rows(np.random.default_rng(seed), 20_000, 0.0)
        self.model = LogisticRegression(max_iter=1000).fit(self.design(features), y)

    @staticmethod
    def design(f: dict[str, np.ndarray]) -> np.ndarray:
        return np.column_stack([f["x1"], f["region"] == "b", f["region"] == "c"]).astype(float)

    def scores(self, f: dict[str, np.ndarray]) -> np.ndarray:
        p: np.ndarray = self.model.predict_proba(self.design(f))[:, 1]
        return p


def shift_spec(reference_path: str | None = None, window: str = "10m") -> dict[str, Any]:
    reference: dict[str, Any] = {"score": "score"}
    if reference_path is not None:
        reference["path"] = reference_path
    return {
        "task": "binary",
        "classes": ["0", "1"],
        "positive_class": "1",
        "features": [
            {"name": "x1", "type": "numeric"},
            {"name": "x2", "type": "numeric"},
            {"name": "region", "type": "categorical", "categories": list(REGIONS)},
        ],
        "window": {"length": window, "bucket": "10s"},
        "min_samples": 20,
        "reference": reference,
    }


def shift_reference_csv(model: ShiftModel, n: int = 10_000, seed: int = 1) -> bytes:
    """Reference rows from the unshifted inputs: features, prediction, label, score."""
    features, y = shift_rows(np.random.default_rng(seed), n, 0.0)
    score = model.scores(features)
    out = io.StringIO()
    out.write("x1,x2,region,prediction,label,score\n")
    for i in range(n):
        out.write(
            f"{features['x1'][i]:.6f},{features['x2'][i]:.6f},{features['region'][i]},"
            f"{int(score[i] >= 0.5)},{y[i]},{score[i]:.6f}\n"
        )
    return out.getvalue().encode()


def shift_events(
    model: ShiftModel, start: int, n: int, seed: int, x2_mean: float, ts: float | None = None
) -> list[dict[str, Any]]:
    """``n`` prediction events ``s{start}..`` with scores; the true label under ``_label``."""
    features, y = shift_rows(np.random.default_rng(seed), n, x2_mean)
    score = model.scores(features)
    out = []
    for i in range(n):
        event: dict[str, Any] = {
            "id": f"s{start + i}",
            "features": {
                "x1": float(features["x1"][i]),
                "x2": float(features["x2"][i]),
                "region": str(features["region"][i]),
            },
            "prediction": int(score[i] >= 0.5),
            "score": float(score[i]),
            "_label": str(y[i]),
        }
        if ts is not None:
            event["timestamp"] = ts
        out.append(event)
    return out


def strip(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "_label"} for e in batch]


# ------------------------------------------------------------------ the live sample


def test_live_sample_keeps_exactly_the_last_rows_in_order_and_is_bounded() -> None:
    config = MonitorConfig(
        task="binary",
        classes=("0", "1"),
        features=(FeatureSpec("x", "numeric"), FeatureSpec("c", "categorical")),
    )
    capacity = 1000
    sample = LiveSample(config, capacity)
    assert sample.nbytes == capacity * 2 * 8  # rows x features x 8 bytes, allocated once
    rng = np.random.default_rng(7)
    kept_x: list[np.ndarray] = []
    kept_c: list[np.ndarray] = []
    # sizes around the capacity: empty, small, wrapping, exactly the ring, larger than it
    sizes = [0, 1, 7, 999, 1, 1000, 250, 2500, 3, 640, 360, 1, 0, 1200, 17]
    sizes += list(rng.integers(1, 400, size=60))
    for step, n in enumerate(sizes):
        x = rng.normal(size=n)
        c = np.array([f"v{v}" if v else None for v in rng.integers(0, 5, n)], dtype=object)
        keep = None if step % 3 else rng.random(n) < 0.7  # some batches: only scored rows
        sample.append({"x": x, "c": c}, keep)
        kept_x.append(x if keep is None else x[keep])
        kept_c.append(c if keep is None else c[keep])
        all_x, all_c = np.concatenate(kept_x), np.concatenate(kept_c)
        rows = sample.rows()
        np.testing.assert_array_equal(rows["x"], all_x[-capacity:])
        assert rows["c"].tolist() == all_c[-capacity:].tolist()
        assert len(sample) == min(capacity, all_x.size) == rows["x"].size
        assert sample.appended == all_x.size
        assert rows["x"].dtype == np.float64 and rows["c"].dtype == object
    assert sample.nbytes == capacity * 2 * 8  # bounded: never grows
    rows = sample.rows()
    rows["x"][:] = 0.0  # a copy: the ring is not changed through it
    assert not np.array_equal(sample.rows()["x"], rows["x"])


# ------------------------------------------------------------------ in-process hub


@pytest.fixture(scope="module")
def model() -> ShiftModel:
    return ShiftModel(seed=0)


@pytest.fixture(scope="module")
def reference(model: ShiftModel) -> bytes:
    return shift_reference_csv(model, n=10_000, seed=1)


def open_hub(tmp_path: Path, **settings: Any) -> Hub:
    values = {"data_dir": tmp_path / "data", "max_versions": 3, **settings}
    config = Settings(**values)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    hub = Hub(config, Store(config.database_path))
    hub.load()
    return hub


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    found = open_hub(tmp_path, shift_sample_rows=2000)
    yield found
    found.store.close()


def register(hub: Hub, reference: bytes, window: str = "10m", name: str = "m") -> None:
    hub.register(name, load_spec(shift_spec(window=window)), reference, "reference.csv")


def send(hub: Hub, batch: list[dict[str, Any]], name: str = "m") -> None:
    body = hub.ingest_predictions(name, {"predictions": strip(batch)}, time.time())
    assert body["accepted"] == len(batch) and not body["rejected"], body


def versioned(batch: list[dict[str, Any]], version: str) -> list[dict[str, Any]]:
    return [{**e, "id": f"{version}-{e['id']}", "version": version} for e in batch]


def test_sample_follows_the_version_lifecycle(
    hub: Hub, model: ShiftModel, reference: bytes
) -> None:
    register(hub, reference)
    batch = shift_events(model, 0, 1500, seed=3, x2_mean=SHIFTED)
    for version in ("v1", "v2"):
        send(hub, versioned(batch[:900], version))
        send(hub, versioned(batch[900:], version))
    entry = hub.models["m"]
    assert set(entry.samples) == {"v1", "v2"}
    sampled = entry.samples["v1"].rows()
    np.testing.assert_array_equal(sampled["x2"], [e["features"]["x2"] for e in batch])
    assert sampled["region"].tolist() == [e["features"]["region"] for e in batch]
    assert entry.samples["v1"].capacity == 2000

    unscored = [{k: v for k, v in e.items() if k != "score"} for e in batch[:10]]
    send(hub, versioned(unscored, "v3"))  # no scores: nothing to calibrate, nothing sampled
    assert "v3" not in entry.samples and entry.samples["v1"].appended == 1500

    hub.retire_version("m", "v1", time.time())  # retirement drops it
    assert set(entry.samples) == {"v2"}
    later = shift_events(model, 20_000, 100, seed=11, x2_mean=SHIFTED)
    send(hub, versioned(later, "v1"))  # a version that comes back starts from zero
    assert len(entry.samples["v1"]) == 100

    spec = shift_spec(window="5m")  # a changed spec drops every version's sample
    hub.register("m", load_spec(spec), reference, "reference.csv")
    assert hub.models["m"] is not entry and not hub.models["m"].samples
    send(hub, versioned(later[:50], "v2"))
    assert len(hub.models["m"].samples["v2"]) == 50
    assert hub.shift_candidates() == []  # fewer than min_live_rows (500)

    hub.delete("m")  # a deleted model takes its samples along
    assert "m" not in hub.models


def test_no_sample_when_shift_aware_cbpe_is_off(
    tmp_path: Path, model: ShiftModel, reference: bytes
) -> None:
    hub = open_hub(tmp_path, shift_refit_interval_seconds=0.0)
    try:
        register(hub, reference)
        send(hub, shift_events(model, 0, 600, seed=3, x2_mean=SHIFTED))
        assert hub.models["m"].samples == {} and hub.shift_candidates() == []
    finally:
        hub.store.close()


def test_sample_is_rebuilt_from_the_log_on_restart(
    tmp_path: Path, model: ShiftModel, reference: bytes
) -> None:
    hub = open_hub(tmp_path)
    register(hub, reference)
    batch = shift_events(model, 0, 700, seed=3, x2_mean=SHIFTED)
    send(hub, batch)
    hub.store.close()  # no checkpoint: the restart replays the whole log
    again = open_hub(tmp_path)
    try:
        rows = again.models["m"].samples["default"].rows()
        np.testing.assert_array_equal(rows["x1"], [e["features"]["x1"] for e in batch])
    finally:
        again.store.close()


def test_refit_applies_the_fit_and_waits_for_new_rows(
    hub: Hub, model: ShiftModel, reference: bytes
) -> None:
    register(hub, reference)
    send(hub, shift_events(model, 0, 2000, seed=4, x2_mean=SHIFTED))
    before = hub.describe("m", time.time())["snapshots"]["default"]  # cached snapshot
    assert before["estimation_shift_aware"] is False
    assert hub.shift_candidates() == [("m", "default")]
    assert hub.refit_shift("m", "default") == "applied"
    status = hub.models["m"].shift_status["default"]
    assert status.applied and status.reason is None and status.refits == 1
    assert status.live_rows == 2000 and 0 < status.seconds < 10
    assert status.auc > 0.7 and status.effective_rows >= 200
    after = hub.describe("m", time.time())["snapshots"]["default"]
    assert after["estimation_shift_aware"] is True  # not the cached plain snapshot
    assert after["estimation_auc"] == pytest.approx(status.auc)
    assert after["estimation_effective_rows"] == pytest.approx(status.effective_rows)
    assert dict(hub.shift_refit_counts) == {("m", "applied"): 1}
    assert hub.timings["shift_refits"] == 1 and hub.timings["shift_refit_seconds"] > 0
    assert hub.shift_candidates() == []  # nothing new since: no refit
    send(hub, shift_events(model, 5000, 10, seed=5, x2_mean=SHIFTED))
    assert hub.shift_candidates() == [("m", "default")]


def test_refit_that_finds_no_shift_keeps_plain_cbpe_with_its_reason(
    hub: Hub, model: ShiftModel, reference: bytes
) -> None:
    register(hub, reference)
    send(hub, shift_events(model, 0, 1500, seed=6, x2_mean=0.0))
    assert hub.refit_shift("m", "default") == "fallback"
    snap = hub.describe("m", time.time())["snapshots"]["default"]
    assert snap["estimation_shift_aware"] is False
    assert snap["estimation_reason"].startswith("no shift to correct")
    assert hub.models["m"].shift_status["default"].reason == snap["estimation_reason"]


def test_a_spec_change_during_the_fit_discards_it(
    hub: Hub, model: ShiftModel, reference: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(hub, reference)
    send(hub, shift_events(model, 0, 1000, seed=7, x2_mean=SHIFTED))
    monitor = hub.models["m"].monitors["default"]
    real_fit = monitor.shift_fit

    def fit_while_the_spec_changes(*args: Any, **kwargs: Any) -> Any:
        fit = real_fit(*args, **kwargs)
        assert fit.applied  # a good fit, that would be used
        register(hub, reference, window="5m")  # a PUT lands while the worker fits
        send(hub, shift_events(model, 9000, 600, seed=8, x2_mean=SHIFTED))
        return fit

    monkeypatch.setattr(monitor, "shift_fit", fit_while_the_spec_changes)
    assert hub.refit_shift("m", "default") == "discarded"
    entry = hub.models["m"]
    assert entry.monitors["default"] is not monitor
    snap = hub.describe("m", time.time())["snapshots"]["default"]
    assert snap["estimation_shift_aware"] is False  # the new monitor never got the stale fit
    assert "default" not in entry.shift_status
    assert dict(hub.shift_refit_counts) == {("m", "discarded"): 1}

    hub.retire_version("m", "default", time.time())  # gone altogether: nothing to refit
    assert hub.refit_shift("m", "default") is None


def test_a_failing_refit_is_logged_counted_and_does_not_raise(
    hub: Hub,
    model: ShiftModel,
    reference: bytes,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    register(hub, reference)
    send(hub, shift_events(model, 0, 800, seed=9, x2_mean=SHIFTED))
    monitor = hub.models["m"].monitors["default"]

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("singular design")

    monkeypatch.setattr(monitor, "shift_fit", broken)
    with caplog.at_level(logging.ERROR, logger="modelmeter.collector"):
        assert hub.refit_shift("m", "default") == "failed"
    assert "shift-aware refit of m/default failed" in caplog.text
    assert "singular design" in caplog.text
    status = hub.models["m"].shift_status["default"]
    assert status.failures == 1 and status.refits == 0
    assert status.reason is not None and "singular design" in status.reason
    assert dict(hub.shift_refit_counts) == {("m", "failed"): 1}
    monkeypatch.undo()
    send(hub, shift_events(model, 5000, 10, seed=10, x2_mean=SHIFTED))
    assert hub.refit_shift("m", "default") == "applied"  # the next round works again


# ------------------------------------------------------------------ settings


def test_settings_parse_validate_and_show_in_help() -> None:
    s = Settings.from_env(
        {"MODELMETER_SHIFT_REFIT_INTERVAL": "30s", "MODELMETER_SHIFT_SAMPLE_ROWS": "20000"}
    )
    assert s.shift_refit_interval_seconds == 30.0 and s.shift_sample_rows == 20_000
    default = Settings()
    assert default.shift_refit_interval_seconds == 300.0 and default.shift_sample_rows == 5000
    off = Settings.from_env({"MODELMETER_SHIFT_REFIT_INTERVAL": "0"})
    assert off.shift_refit_interval_seconds == 0
    for bad in ("499", "100001", "5k", "-1"):
        with pytest.raises(ValueError, match=r"MODELMETER_SHIFT_SAMPLE_ROWS=.*500-100000"):
            Settings.from_env({"MODELMETER_SHIFT_SAMPLE_ROWS": bad})
    with pytest.raises(ValueError, match=r"MODELMETER_SHIFT_REFIT_INTERVAL='soon'.*5m"):
        Settings.from_env({"MODELMETER_SHIFT_REFIT_INTERVAL": "soon"})
    parser = argparse.ArgumentParser()
    configure(parser)
    text = parser.format_help()
    assert "MODELMETER_SHIFT_REFIT_INTERVAL" in text and "MODELMETER_SHIFT_SAMPLE_ROWS" in text
    args = parser.parse_args(["--shift-refit-interval", "1m", "--shift-sample-rows", "600"])
    assert args.shift_refit_interval_seconds == 60.0 and args.shift_sample_rows == 600
    with pytest.raises(SystemExit):
        parser.parse_args(["--shift-sample-rows", "50"])
