"""Labels in daily batches, end to end: the real collector and Prometheus with the shipped rules.

A model's labels arrive once per (simulated) day, the common case for fraud or credit models.
Realized performance has its own window (spec ``performance.window``) sized to that cadence, so
``model_accuracy`` is there between the batches, not for one short window after each.

* A "day" is 12 s of wall-clock time. Predictions stream all day (the seeded binary model of
  tests/service_support.py); at the end of each day the labels of that day's predictions
  arrive in one batch. The short window (drift, operations) is 5 s; ``performance.window`` is 14 s
  in 1 s buckets: one day's batch and the first seconds of the next.
* Day 0's labels are good (95 % right), day 1's bad (40 %), day 2's good again. The labels are
  chosen per prediction so that each batch has that share right; the accuracy the collector
  reports is checked against ``sklearn.metrics.accuracy_score`` (and precision, recall, F1)
  on exactly the batches in the performance window, identified by the window's sample size.
* Prometheus scrapes and evaluates every second with the shipped alerts.yml (``for`` set to 1 s,
  expressions unchanged) and recording.yml.

Checked: ``model_accuracy`` has a sample at every second from the first batch to the end, while
the short window's label count falls to 0 between batches; every observed value equals
scikit-learn on the labels of the performance window; ``LowModelAccuracy`` fires after the bad
batch, stays firing without a gap until the good batch, and resolves once the bad batch has left
the performance window.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from helpers import (
    DEPLOY,
    ManagedProcess,
    free_port,
    prom_alerts,
    prom_query,
    prometheus_process,
    running,
    wait_until,
)
from modelmeter.launcher import render_prometheus
from service_support import collector, events, reference_csv, spec_dict
from test_alerting_e2e import fast_alert_rules

pytestmark = pytest.mark.e2e

MODEL = "credit"
DAY = 12.0  # seconds of wall-clock time per simulated day
PER_SECOND = 10  # predictions per second
ACCURACY = (0.95, 0.40, 0.95)  # share of right labels in the batch of day 0, 1, 2


def spec() -> dict[str, Any]:
    """The seeded binary spec with a 5 s window and a 14 s performance window."""
    doc = spec_dict(min_samples=20)
    doc["window"] = {"length": "5s", "bucket": "1s"}
    doc["performance"] = {"window": "14s", "bucket": "1s"}
    doc["thresholds"] = {"accuracy_warning": 0.8, "accuracy_critical": 0.3}
    return doc


@dataclass
class Day:
    """One simulated day: its predictions, the labels chosen for them, when they arrived."""

    number: int
    predicted: list[str] = field(default_factory=list)
    labels: list[dict[str, str]] = field(default_factory=list)
    arrived: float | None = None

    def truth(self) -> list[str]:
        return [label["label"] for label in self.labels]


@dataclass
class Stack:
    collector: ManagedProcess
    prom: str

    @property
    def url(self) -> str:
        return str(self.collector.url)  # type: ignore[attr-defined]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    proc = collector(tmp_path)
    rules = tmp_path / "rules-src"
    rules.mkdir()
    (rules / "alerts.yml").write_text(fast_alert_rules())
    config = render_prometheus(
        (DEPLOY / "prometheus" / "prometheus.yml").read_text(),
        f"127.0.0.1:{proc.port}",
        f"127.0.0.1:{free_port()}",  # no Alertmanager: the alerts are read from Prometheus
        scrape_interval="1s",
        scrape_timeout="1s",
        evaluation_interval="1s",
    )
    prometheus = prometheus_process(
        tmp_path,
        config,
        rule_files=[rules / "alerts.yml", DEPLOY / "prometheus" / "rules" / "recording.yml"],
    )
    with running(proc, prometheus):
        import yaml

        response = httpx.put(
            f"{proc.url}/v1/models/{MODEL}",
            files={
                "spec": ("spec.yaml", yaml.safe_dump(spec()), "application/yaml"),
                "reference": ("reference.csv", reference_csv(), "text/csv"),
            },
            timeout=30.0,
        )
        assert response.status_code in (200, 201), response.text
        yield Stack(proc, prometheus.url)  # type: ignore[attr-defined]


def scrape(url: str) -> dict[str, float]:
    """The model's accuracy figures and sample sizes from one /metrics scrape."""
    text = httpx.get(f"{url}/metrics", timeout=10.0).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or f'model="{MODEL}"' not in line:
            continue
        name = line.split("{", 1)[0]
        if name in (
            "model_accuracy",
            "model_precision",
            "model_recall",
            "model_f1_score",
            "model_performance_window_labels",
            "model_window_labeled_predictions",
        ):
            out[name] = float(line.rsplit(" ", 1)[1])
    return out


def expected(days: list[Day]) -> dict[str, float]:
    """scikit-learn's figures on the labels of ``days`` (positive class "1")."""
    truth = [t for day in days for t in day.truth()]
    predicted = [p for day in days for p in day.predicted]
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, predicted, pos_label="1", average="binary", zero_division=np.nan
    )
    return {
        "model_accuracy": float(accuracy_score(truth, predicted)),
        "model_precision": float(precision),
        "model_recall": float(recall),
        "model_f1_score": float(f1),
    }


def in_window(days: list[Day], labels: float) -> list[Day]:
    """The labeled days whose batches make up a performance window of ``labels`` labels: the
    newest ones (a batch enters and leaves the window whole)."""
    labeled = [day for day in days if day.arrived is not None]
    for start in range(len(labeled)):
        chosen = labeled[start:]
        if sum(len(day.labels) for day in chosen) == labels:
            return chosen
    raise AssertionError(f"no run of whole batches has {labels} labels: {labeled}")


def firing_low(prom: str) -> bool:
    return any(
        a["labels"].get("alertname") == "LowModelAccuracy"
        and a["labels"].get("model") == MODEL
        and a["state"] == "firing"
        for a in prom_alerts(prom)
    )


def steps(prom: str, expr: str, start: float, end: float) -> list[float]:
    """The timestamps (1 s steps) at which ``expr`` has a value between ``start`` and ``end``."""
    response = httpx.get(
        f"{prom}/api/v1/query_range",
        params={"query": expr, "start": start, "end": end, "step": "1s"},
        timeout=10.0,
    )
    response.raise_for_status()
    result = response.json()["data"]["result"]
    return sorted(float(t) for series in result for t, _ in series["values"])


def test_daily_label_batches_keep_accuracy_and_its_alert_between_batches(stack: Stack) -> None:
    rng = np.random.default_rng(14)
    days = [Day(n) for n in range(len(ACCURACY))]
    observed: list[tuple[dict[str, float], list[Day]]] = []
    gaps_in_short_window = 0
    client = httpx.Client(base_url=stack.url, timeout=10.0)
    start = time.time()
    sent = 0
    bad_firing = 0.0

    def send_predictions(day: Day) -> None:
        nonlocal sent
        batch = events(sent, PER_SECOND, seed=1000 + sent)
        sent += len(batch)
        body = {"predictions": [{k: v for k, v in e.items() if k != "_label"} for e in batch]}
        response = client.post(f"/v1/models/{MODEL}/predictions", json=body)
        assert response.status_code == 200 and response.json()["accepted"] == len(batch)
        right = ACCURACY[day.number]
        for event in batch:
            predicted = str(event["prediction"])
            wrong = rng.random() >= right
            label = str(1 - int(predicted)) if wrong else predicted
            day.predicted.append(predicted)
            day.labels.append({"id": event["id"], "label": label})

    def deliver(day: Day) -> None:
        response = client.post(f"/v1/models/{MODEL}/labels", json={"labels": day.labels})
        assert response.status_code == 200, response.text
        assert response.json()["matched"] == len(day.labels), response.text
        day.arrived = time.time()

    def observe() -> None:
        nonlocal gaps_in_short_window
        figures = scrape(stack.url)
        if "model_accuracy" in figures:
            window = in_window(days, figures["model_performance_window_labels"])
            observed.append((figures, window))
        if figures.get("model_window_labeled_predictions") == 0.0:
            gaps_in_short_window += 1

    # Three days of predictions; each day's labels arrive in one batch at its end.
    for day in days:
        day_end = start + (day.number + 1) * DAY
        while time.time() < day_end:
            send_predictions(day)
            if any(d.arrived is not None for d in days):
                observe()
            time.sleep(max(0.0, min(1.0, day_end - time.time())))
        deliver(day)
        if day.number == 1:
            wait_until(lambda: firing_low(stack.prom), 20.0, what="LowModelAccuracy to fire")
            bad_firing = time.time()
    assert days[2].arrived is not None and days[1].arrived is not None
    # After the last batch: the bad batch leaves the performance window, the alert resolves.
    wait_until(lambda: not firing_low(stack.prom), 40.0, what="LowModelAccuracy to resolve")
    resolved = time.time()
    observe()
    client.close()

    # Every observed figure is scikit-learn's on the labels of its performance window.
    assert len(observed) >= 15, observed
    kinds = {tuple(day.number for day in window) for _, window in observed}
    assert {(0,), (1,)} <= kinds, kinds  # after day 0 (good only) and once day 0 had left
    for figures, window in observed:
        for name, value in expected(window).items():
            assert figures[name] == pytest.approx(value, abs=1e-12), (name, window)
    # Between the batches the short window holds no labels, yet the figure is there.
    assert gaps_in_short_window >= 5

    # Prometheus: model_accuracy at every second from the first batch to the end.
    first = days[0].arrived + 3.0
    have = steps(stack.prom, f'model_accuracy{{model="{MODEL}"}}', first, resolved)
    assert len(have) >= int(resolved - first) - 1, (first, resolved, have)
    assert all(b - a <= 1.0 + 1e-6 for a, b in itertools.pairwise(have)), have

    # LowModelAccuracy fired after the bad batch and stayed firing until the good one arrived.
    firing = steps(
        stack.prom,
        f'ALERTS{{alertname="LowModelAccuracy", alertstate="firing", model="{MODEL}"}}',
        bad_firing,
        days[2].arrived,
    )
    assert firing and firing[0] <= bad_firing + 1.0, (bad_firing, firing)
    assert firing[-1] >= days[2].arrived - 1.0, (days[2].arrived, firing)
    assert all(b - a <= 1.0 + 1e-6 for a, b in itertools.pairwise(firing)), firing
    # It resolved only once day 1's batch had left the window (14 s after it arrived).
    assert resolved >= days[1].arrived + 13.0
    accuracy_now = prom_query(stack.prom, f'model_accuracy{{model="{MODEL}"}}')
    assert accuracy_now and float(accuracy_now[0]["value"][1]) >= 0.8
