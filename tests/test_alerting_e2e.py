"""Alerting end to end: collector, Prometheus, Alertmanager, a webhook; real programs on loopback.

* The collector monitors the example breast-cancer model (``examples/binary-spec.yaml``: a
  scikit-learn logistic regression on scikit-learn's bundled Wisconsin data, with its reference
  outputs), with a 20 s window in 1 s buckets, min_samples 20 and the default accuracy thresholds
  (warning 0.80, critical 0.70).
* Traffic replays the model's real reference outputs with their real labels, choosing rows the
  model got right or wrong so that every batch has an exact accuracy (0.75, then 0.50, then 1).
* Prometheus scrapes and evaluates every second, with the shipped rule files; the only change to
  the alert rules is ``for`` (1 s here, so the test takes seconds, not minutes); the expressions
  are the shipped ones, and the test checks that.
* Alertmanager runs the shipped configuration with the webhook URL of a tiny HTTP server in this
  test and short group timers.

Every wait has a deadline (no fixed sleeps). The first test waits until LowModelAccuracy, then
CriticalModelAccuracy fire in Prometheus and reach the webhook, until Alertmanager inhibits the
warning, and until good predictions resolve both and the resolutions reach the webhook. The
second kills the collector (SIGKILL, as a crash): CollectorDown fires and is delivered; the
collector restarts on the same data, CollectorDown resolves and is delivered, and the prediction
counter continues from its value before the crash (Prometheus sees no counter reset).
"""

from __future__ import annotations

import csv
import itertools
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from helpers import (
    DEPLOY,
    REPO,
    ManagedProcess,
    alertmanager_process,
    collector_process,
    prom_alerts,
    prom_query,
    prometheus_process,
    running,
    wait_until,
)
from modelmeter.launcher import render_alertmanager, render_prometheus

pytestmark = pytest.mark.e2e

MODEL = "breast-cancer"
EXAMPLES = REPO / "examples"
BATCH = 20  # events per batch; the accuracy of every batch is exact
PERIOD = 0.5  # seconds between batches: 40 events/s, 800 in the 20 s window
DEADLINE = 60.0


# --- configuration ---------------------------------------------------------------------------


def fast_alert_rules(for_: str = "1s") -> str:
    """The shipped alerts.yml with every ``for`` set to ``for_``; nothing else changes."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "rules" / "alerts.yml").read_text())
    for group in config["groups"]:
        for rule in group["rules"]:
            rule["for"] = for_
    return yaml.safe_dump(config, sort_keys=False)


def fast_alertmanager_config(webhook_url: str) -> str:
    """The shipped alertmanager.yml, posting to ``webhook_url``, with 1 s group timers."""
    text = (DEPLOY / "alertmanager" / "alertmanager.yml").read_text()
    config = yaml.safe_load(render_alertmanager(text, webhook_url))
    for route in [config["route"], *config["route"].get("routes", [])]:
        route.update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    return yaml.safe_dump(config, sort_keys=False)


def spec_for_test() -> dict[str, Any]:
    """The example spec with a small window and the default accuracy thresholds."""
    spec: dict[str, Any] = yaml.safe_load((EXAMPLES / "binary-spec.yaml").read_text())
    spec["reference"]["path"] = str(EXAMPLES / spec["reference"]["path"])
    spec["window"] = {"length": "20s", "bucket": "1s"}
    spec["min_samples"] = 20
    spec["thresholds"] = {"accuracy_warning": 0.8, "accuracy_critical": 0.7}
    return spec


# --- the webhook receiver ----------------------------------------------------------------------


class Webhook:
    """A loopback HTTP server that records every alert Alertmanager posts to it."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with webhook._lock:
                    webhook.alerts.extend(json.loads(body)["alerts"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/alerts"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Webhook:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def received(self, alertname: str, status: str) -> list[dict[str, Any]]:
        with self._lock:
            return [
                a
                for a in self.alerts
                if a["labels"].get("alertname") == alertname and a["status"] == status
            ]


# --- traffic -----------------------------------------------------------------------------------


class Traffic:
    """Posts batches of the model's real reference outputs with their real labels.

    ``wrong`` is the number of events per batch the model got wrong (its prediction differs from
    the label), so every batch's accuracy is exactly ``(BATCH - wrong) / BATCH``.
    """

    def __init__(self, collector_url: str) -> None:
        with open(EXAMPLES / "binary-reference.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        self._right = [r for r in rows if r["prediction"] == r["label"]]
        self._wrong = [r for r in rows if r["prediction"] != r["label"]]
        assert len(self._wrong) >= 5, "the example model must get some reference rows wrong"
        self.url = f"{collector_url}/v1/models/{MODEL}/predictions"
        self.wrong = 0
        self.sent = 0
        self.error: str | None = None
        self._ids = itertools.count()
        self._paused = False
        self._busy = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._client = httpx.Client(timeout=5.0)

    def _event(self, row: dict[str, str]) -> dict[str, Any]:
        features = {k: float(v) for k, v in row.items() if k.startswith("mean_")}
        return {
            "id": f"e{next(self._ids)}",
            "features": features,
            "prediction": row["prediction"],
            "score": float(row["score"]),
            "latency_seconds": 0.01,
            "label": row["label"],
        }

    def _batch(self) -> list[dict[str, Any]]:
        n = next(self._ids)
        wrong = [self._wrong[(n + i) % len(self._wrong)] for i in range(self.wrong)]
        right = [self._right[(n + i) % len(self._right)] for i in range(BATCH - self.wrong)]
        return [self._event(r) for r in wrong + right]

    def _loop(self) -> None:
        while not self._stop.wait(PERIOD):
            with self._busy:
                if self._paused:
                    continue
                try:
                    response = self._client.post(self.url, json={"predictions": self._batch()})
                except httpx.HTTPError:
                    continue
                if response.status_code != 200 or response.json()["accepted"] != BATCH:
                    self.error = f"{response.status_code} {response.text[:500]}"
                    return
                self.sent += BATCH

    def check(self) -> None:
        """Fail the test if the collector refused a batch."""
        assert self.error is None, f"the collector refused a batch: {self.error}"

    def pause(self) -> None:
        """Stop sending; returns once no batch is in flight."""
        with self._busy:
            self._paused = True

    def resume(self) -> None:
        with self._busy:
            self._paused = False

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._client.close()


# --- helpers -----------------------------------------------------------------------------------


def firing(prom_url: str, alertname: str) -> list[dict[str, Any]]:
    return [
        a
        for a in prom_alerts(prom_url)
        if a["labels"]["alertname"] == alertname and a["state"] == "firing"
    ]


def resolved(prom_url: str, alertname: str, condition: str) -> bool:
    """The alert is not firing and the PromQL ``condition`` holds."""
    return not firing(prom_url, alertname) and bool(prom_query(prom_url, condition))


def metric_value(collector_url: str, name: str) -> float:
    """A sample of the collector's /metrics for our model, read directly."""
    text = httpx.get(f"{collector_url}/metrics", timeout=5.0).text
    for line in text.splitlines():
        if line.startswith(name + "{") and f'model="{MODEL}"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} for {MODEL} not in /metrics")


def inhibited_in_alertmanager(am_url: str, alertname: str) -> bool:
    alerts = httpx.get(f"{am_url}/api/v2/alerts", timeout=5.0).json()
    return any(a["labels"]["alertname"] == alertname and a["status"]["inhibitedBy"] for a in alerts)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with Webhook() as hook:
        yield hook


# --- tests -------------------------------------------------------------------------------------


def test_fast_rules_keep_the_shipped_expressions() -> None:
    shipped = yaml.safe_load((DEPLOY / "prometheus" / "rules" / "alerts.yml").read_text())
    fast = yaml.safe_load(fast_alert_rules())
    for group, fast_group in zip(shipped["groups"], fast["groups"], strict=True):
        for rule, fast_rule in zip(group["rules"], fast_group["rules"], strict=True):
            assert fast_rule["for"] == "1s"
            assert {k: v for k, v in fast_rule.items() if k != "for"} == {
                k: v for k, v in rule.items() if k != "for"
            }


@dataclass
class Stack:
    """The running collector, Alertmanager and Prometheus of one test, plus its traffic."""

    tmp: Path
    collector: ManagedProcess
    prom: str
    am: str
    webhook: Webhook
    traffic: Traffic

    @property
    def collector_url(self) -> str:
        return str(self.collector.url)  # type: ignore[attr-defined]

    def until(self, predicate: Callable[[], Any], what: str) -> Any:
        """wait_until; a batch the collector refused is reported as the reason."""

        def check() -> Any:
            self.traffic.check()
            return predicate()

        return wait_until(check, DEADLINE, what=what)


@pytest.fixture
def stack(tmp_path: Path, webhook: Webhook) -> Iterator[Stack]:
    collector = collector_process(tmp_path, env={"MODELMETER_REFERENCE_DIR": str(EXAMPLES)})
    alertmanager = alertmanager_process(tmp_path, fast_alertmanager_config(webhook.url))
    rules_dir = tmp_path / "rules-src"
    rules_dir.mkdir()
    (rules_dir / "alerts.yml").write_text(fast_alert_rules())
    prom_config = render_prometheus(
        (DEPLOY / "prometheus" / "prometheus.yml").read_text(),
        f"127.0.0.1:{collector.port}",  # type: ignore[attr-defined]
        f"127.0.0.1:{alertmanager.port}",  # type: ignore[attr-defined]
        scrape_interval="1s",
        scrape_timeout="1s",
        evaluation_interval="1s",
    )
    prometheus = prometheus_process(
        tmp_path,
        prom_config,
        rule_files=[rules_dir / "alerts.yml", DEPLOY / "prometheus" / "rules" / "recording.yml"],
    )
    with running(collector, alertmanager, prometheus):
        response = httpx.put(
            f"{collector.url}/v1/models/{MODEL}",  # type: ignore[attr-defined]
            json=spec_for_test(),
            timeout=30.0,
        )
        assert response.status_code in (200, 201), response.text
        with Traffic(collector.url) as traffic:  # type: ignore[attr-defined]
            yield Stack(
                tmp_path,
                collector,
                prometheus.url,  # type: ignore[attr-defined]
                alertmanager.url,  # type: ignore[attr-defined]
                webhook,
                traffic,
            )


def test_accuracy_alerts_fire_inhibit_and_resolve_at_the_webhook(stack: Stack) -> None:
    prom, traffic, webhook, until = stack.prom, stack.traffic, stack.webhook, stack.until

    # 1. Accuracy 0.75: the warning fires, the critical alert does not.
    traffic.wrong = 5
    low = until(lambda: firing(prom, "LowModelAccuracy"), what="LowModelAccuracy")
    assert low[0]["labels"]["model"] == MODEL
    assert float(low[0]["value"]) == pytest.approx(0.75)
    assert not firing(prom, "CriticalModelAccuracy")
    sent = until(
        lambda: webhook.received("LowModelAccuracy", "firing"),
        what="LowModelAccuracy at the webhook",
    )
    assert sent[0]["labels"]["severity"] == "warning"
    assert "accuracy 75%" in sent[0]["annotations"]["summary"]
    assert "below the warning threshold 80%" in sent[0]["annotations"]["description"]

    # 2. Accuracy 0.50: the critical alert fires, is delivered, and inhibits the warning.
    traffic.wrong = 10
    until(lambda: firing(prom, "CriticalModelAccuracy"), what="CriticalModelAccuracy")
    critical = until(
        lambda: webhook.received("CriticalModelAccuracy", "firing"),
        what="CriticalModelAccuracy at the webhook",
    )
    assert critical[0]["labels"]["severity"] == "critical"
    assert critical[0]["labels"]["model"] == MODEL
    until(
        lambda: inhibited_in_alertmanager(stack.am, "LowModelAccuracy"),
        what="Alertmanager to inhibit LowModelAccuracy",
    )

    # 3. Good predictions: both resolve, and the resolutions reach the webhook.
    traffic.wrong = 0
    recovered = f'model_accuracy{{model="{MODEL}"}} >= 0.8'
    for name in ("CriticalModelAccuracy", "LowModelAccuracy"):
        until(partial(resolved, prom, name, recovered), what=f"{name} to resolve")
        until(
            partial(webhook.received, name, "resolved"),
            what=f"the resolution of {name} at the webhook",
        )


def test_collector_down_fires_and_a_restart_continues_the_counters(stack: Stack) -> None:
    prom, traffic, webhook, until = stack.prom, stack.traffic, stack.webhook, stack.until
    total = f'model_predictions_total{{model="{MODEL}"}}'
    until(lambda: prom_query(prom, f"{total} > 0"), what="Prometheus to scrape predictions")

    # The collector stops: CollectorDown fires for it and is delivered. (Another CollectorDown,
    # without an instance, may fire at Prometheus's start: absent() before the first scrape.)
    instance = stack.collector_url.removeprefix("http://")

    def down(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [a for a in alerts if a["labels"].get("instance") == instance]

    traffic.pause()
    total_before = metric_value(stack.collector_url, "model_predictions_total")
    assert total_before == traffic.sent
    stack.collector.kill()  # SIGKILL, as a crash
    until(lambda: down(firing(prom, "CollectorDown")), what="CollectorDown")
    sent = until(
        lambda: down(webhook.received("CollectorDown", "firing")),
        what="CollectorDown at the webhook",
    )
    assert sent[0]["labels"]["severity"] == "critical"

    # It restarts on the same data: CollectorDown resolves, the counter continues (no reset).
    restarted = collector_process(
        stack.tmp,
        port=stack.collector.port,  # type: ignore[attr-defined]
        data_dir=stack.tmp / "collector-data",
        env={"MODELMETER_REFERENCE_DIR": str(EXAMPLES)},
    )
    with restarted:
        assert metric_value(stack.collector_url, "model_predictions_total") == total_before
        until(lambda: not down(firing(prom, "CollectorDown")), what="CollectorDown to resolve")
        until(
            lambda: down(webhook.received("CollectorDown", "resolved")),
            what="the resolution of CollectorDown at the webhook",
        )
        traffic.resume()
        until(
            lambda: prom_query(prom, f"{total} > {total_before}"),
            what="the counter to grow past its value before the restart",
        )
        traffic.pause()
        resets = prom_query(prom, f"resets({total}[10m])")
        assert [float(r["value"][1]) for r in resets] == [0.0]
