"""One model spread over three collectors, merged by Prometheus's rules, equals one collector.

Real programs on loopback, nothing mocked:

* collectors c1, c2, c3 hold model ``m``; a fourth, ``single``, holds the same spec as model
  ``m_single``. The SDK (``modelmeter.sdk.Client`` with the three URLs) routes each event by
  its prediction id (rendezvous hashing, ``modelmeter.sdk.routing``); a second client sends
  every event to ``single``;
* one Prometheus scrapes all four in one job with the shipped rules
  (``deploy/prometheus/rules/*.yml``; the two models do not mix, the rules sum by model) and
  remote_writes everything to a real VictoriaMetrics.

Traffic (tests/service_support.py's seeded binary model): phase 1 follows the reference; after a
quiet gap, phase 2 has a covariate shift in ``x3`` (+1.5 standard deviations) and its labels come
after its predictions. In phase 2 collector c2 is killed (SIGKILL) while the SDK sends, and
restarted on the same port and data directory; the SDK resends what was not acknowledged.

Checks, all exact (counts) or to 1e-9 (figures):

* the cumulative counters of the three collectors sum to the single collector's, and each
  collector counted exactly the predictions routed to it: nothing acknowledged went missing in
  the crash, nothing resent was counted twice;
* realized accuracy from the summed counters is scikit-learn's ``accuracy_score`` on every
  labeled event;
* at an instant whose 5m window starts inside the quiet gap, the merged window counts are those
  of phase 2 alone (the ``x - x offset 5m`` branch of merged.yml, across the crash), the 1h ones
  everything (the branch of series born in the window), and every merged.yml figure of ``m`` -
  PSI and Jensen-Shannon per feature and of the output, estimated accuracy/precision/recall/F1,
  mean reconstruction error - equals that of ``m_single`` to 1e-9, and the single collector's
  own engine gauges of its 5m window (model_feature_drift, model_prediction_drift,
  model_estimated_accuracy, model_multivariate_drift) to 1e-9: the rules reproduce the engine;
  feature x3 drifts and the merged flag says so;
* VictoriaMetrics holds the same recorded samples, and evaluates every merged.yml expression at
  that instant to the value Prometheus gives for it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

import service_support as support
from helpers import (
    DEPLOY,
    ManagedProcess,
    collector_process,
    free_port,
    prometheus_process,
    require_binary,
    running,
    victoria_metrics,
    wait_until,
)

pytestmark = pytest.mark.e2e

MODEL, SINGLE, VERSION = "m", "m_single", "v1"
FEATURES = ("x1", "x2", "x3", "station")
SHIFTED = "x3"
PHASE1, PHASE2 = 400, 600  # events
GAP = 30.0  # quiet seconds between the phases (the 5m window starts inside it, the rules'
# and the engine's alike: the engine's window moves in 10 s buckets)
WINDOW = 300.0  # the 5m of the rules
MERGED_RULES = DEPLOY / "prometheus" / "rules" / "merged.yml"


# ---------------------------------------------------------------- processes


def prometheus_config(ports: dict[str, int], remote_write_url: str) -> str:
    """The shipped deploy/multi/prometheus.yml: every collector in the one job, 1 s intervals."""
    config = yaml.safe_load((DEPLOY / "multi" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = ["rules/*.yml"]  # prometheus_process copies the rules there
    config.pop("alerting", None)
    (job,) = config["scrape_configs"]
    job["static_configs"] = [
        {"targets": [f"127.0.0.1:{port}"], "labels": {"shard": name}}
        for name, port in ports.items()
    ]
    (write,) = config["remote_write"]
    write["url"] = remote_write_url
    write.setdefault("queue_config", {})["batch_send_deadline"] = "1s"
    return yaml.safe_dump(config, sort_keys=False)


class Collectors:
    """c1, c2, c3 and single; c2 can be killed and started again on its port and data."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ports = {name: free_port() for name in ("c1", "c2", "c3", "single")}
        self.procs = {name: self._process(name) for name in self.ports}

    def _process(self, name: str) -> ManagedProcess:
        return collector_process(
            self.tmp / name,
            port=self.ports[name],
            data_dir=self.tmp / name / "data",
        )

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def restart(self, name: str) -> None:
        self.procs[name] = self._process(name).start()

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    require_binary("prometheus")
    rules = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
    assert MERGED_RULES in rules
    collectors = Collectors(tmp_path)
    vm = victoria_metrics(tmp_path)
    try:
        for proc in collectors.procs.values():
            proc.start()
        with running(vm):
            prom = prometheus_process(
                tmp_path / "prom",
                prometheus_config(collectors.ports, f"{vm.url}/api/v1/write"),  # type: ignore[attr-defined]
                rules,
            )
            with running(prom):
                yield {
                    "collectors": collectors,
                    "prom": prom.url,  # type: ignore[attr-defined]
                    "vm": vm.url,  # type: ignore[attr-defined]
                }
    finally:
        collectors.stop()


# ---------------------------------------------------------------- queries


def query(url: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    params = {"query": expr}
    if at is not None:
        params["time"] = f"{at:.3f}"
    response = httpx.get(f"{url}/api/v1/query", params=params, timeout=10.0)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def by_labels(
    result: list[dict[str, Any]], keep_model: bool = False, drop: tuple[str, ...] = ()
) -> dict[tuple, float]:
    """{sorted labels (without __name__, ``drop``, and model unless ``keep_model``): value}."""
    out = {}
    for row in result:
        dropped = ("__name__", *drop) if keep_model else ("__name__", "model", *drop)
        labels = {k: v for k, v in row["metric"].items() if k not in dropped}
        key = tuple(sorted(labels.items()))
        assert key not in out, f"two series with {key}"
        out[key] = float(row["value"][1])
    return out


def scalar(url: str, expr: str, at: float | None = None) -> float | None:
    result = query(url, expr, at)
    if not result:
        return None
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def merged_and_single(url: str, record: str, at: float) -> tuple[dict, dict]:
    return (
        by_labels(query(url, f'{record}{{model="{MODEL}"}}', at)),
        by_labels(query(url, f'{record}{{model="{SINGLE}"}}', at)),
    )


# ---------------------------------------------------------------- traffic


def register(url: str, model: str) -> None:
    support.register_upload(url, model)


def phase_events(start: int, n: int, seed: int, shift: float) -> list[dict[str, Any]]:
    events = support.events(start, n, seed=seed)
    for event in events:
        event["features"][SHIFTED] += shift
    return events


def log(client: Any, events: list[dict[str, Any]]) -> None:
    for e in events:
        client.log_prediction(
            e["features"],
            e["prediction"],
            score=e["score"],
            latency_seconds=e["latency_seconds"],
            id=e["id"],
        )


def label(client: Any, events: list[dict[str, Any]]) -> None:
    for e in events:
        client.log_label(e["id"], e["_label"])


def promql_counts(url: str, family: str, model: str, by: str) -> dict[tuple, float]:
    return by_labels(query(url, f'sum by ({by}) ({family}{{model="{model}"}})'))


COUNTERS = {  # family: the labels it is summed by (besides model)
    "model_predictions_total": "model, version",
    "model_classification_outcomes_total": "model, version, class, outcome",
    "model_feature_bin_observations_total": "model, version, feature, bin",
    "model_prediction_bin_observations_total": "model, version, bin",
    "model_multivariate_reconstruction_rows_total": "model, version",
    "model_feature_quality_issues_total": "model, version, feature, issue",
}
FLOAT_COUNTERS = {  # sums of floats: equal to rounding
    "model_estimated_outcomes_total": "model, version, class, outcome",
    "model_multivariate_reconstruction_error_sum_total": "model, version",
}


def rule_exprs() -> dict[str, str]:
    return {
        rule["record"]: rule["expr"]
        for group in yaml.safe_load(MERGED_RULES.read_text())["groups"]
        for rule in group["rules"]
    }


# ---------------------------------------------------------------- the test


@pytest.mark.timeout(1500)  # the rules window is 5 minutes: about 6.5 minutes on 2 cores
def test_three_collectors_merged_by_the_rules_equal_one(stack: dict[str, Any]) -> None:
    from sklearn.metrics import accuracy_score

    from modelmeter.sdk import Client
    from modelmeter.sdk.routing import Router

    collectors: Collectors = stack["collectors"]
    prom, vm = stack["prom"], stack["vm"]
    shards = ["c1", "c2", "c3"]
    urls = [collectors.url(name) for name in shards]
    for url in urls:
        register(url, MODEL)
    register(collectors.url("single"), SINGLE)

    phase1 = phase_events(0, PHASE1, seed=11, shift=0.0)
    phase2 = phase_events(PHASE1, PHASE2, seed=12, shift=1.5)
    everything = phase1 + phase2
    router = Router(urls)
    routed = {name: 0 for name in shards}
    for e in everything:
        routed[shards[router.index(e["id"])]] += 1
    assert min(routed.values()) > len(everything) / 5, routed

    options = {"version": VERSION, "flush_interval": 0.2, "max_backoff": 0.5, "batch_size": 50}
    spread = Client(urls, model=MODEL, **options)
    single = Client(collectors.url("single"), model=SINGLE, **options)
    with contextlib.closing(spread), contextlib.closing(single):
        # Phase 1: reference-like traffic and its labels.
        for client in (spread, single):
            log(client, phase1)
            label(client, phase1)
            assert client.flush(timeout=60)
        expected_phase1 = float(PHASE1)
        for model in (MODEL, SINGLE):
            wait_until(
                lambda model=model: (
                    scalar(prom, f'sum(model_predictions_total{{model="{model}"}})')
                    == expected_phase1
                ),
                timeout=30,
                what=f"phase 1 of {model} scraped",
            )
        phase1_end = time.time() + 1.5  # the last scrape of phase-1 counts is before this
        time.sleep(GAP)

        # Phase 2: shifted traffic; c2 crashes while the SDK sends, and comes back.
        phase2_start = time.time()
        log(single, phase2)
        label(single, phase2)
        third = len(phase2) // 3
        log(spread, phase2[:third])
        time.sleep(0.3)  # some batches in flight
        collectors.procs["c2"].kill()
        log(spread, phase2[third:])
        time.sleep(2.0)  # c2's events are retried meanwhile
        collectors.restart("c2")
        label(spread, phase2)  # delayed labels, after their predictions
        assert spread.flush(timeout=90), spread.collector_stats
        assert single.flush(timeout=60), single.stats
        assert spread.stats["dropped"] == 0 and single.stats["dropped"] == 0
        assert spread.reported_drops == {"predictions": 0, "labels": 0}
        phase2_end = time.time()
    assert phase2_end - phase2_start < WINDOW - 2 * GAP, "phase 2 outlasted the window"

    # Every acknowledged prediction is counted once, on the collector it was routed to.
    total = float(len(everything))
    for name in shards:
        instance = f"127.0.0.1:{collectors.ports[name]}"
        wait_until(
            lambda instance=instance, n=routed[name]: (
                scalar(
                    prom, f'sum(model_predictions_total{{model="{MODEL}", instance="{instance}"}})'
                )
                == n
            ),
            timeout=60,
            what=f"{name}'s {routed[name]} predictions in Prometheus",
        )
    labeled = 'sum(model_classification_outcomes_total{model="{m}", outcome=~"tp|fn"})'
    for model in (MODEL, SINGLE):
        wait_until(
            lambda model=model: scalar(prom, labeled.replace("{m}", model)) == total,
            timeout=60,
            what=f"every label of {model} counted",
        )

    # The cumulative counters of the three sum to the single collector's.
    for family, by in COUNTERS.items():
        merged = promql_counts(prom, family, MODEL, by)
        one = promql_counts(prom, family, SINGLE, by)
        assert merged == one, family
        assert merged or family == "model_feature_quality_issues_total", family
    for family, by in FLOAT_COUNTERS.items():
        merged = promql_counts(prom, family, MODEL, by)
        one = promql_counts(prom, family, SINGLE, by)
        assert merged.keys() == one.keys() and merged, family
        for key, value in one.items():
            assert merged[key] == pytest.approx(value, rel=1e-12), (family, key)

    # Realized accuracy from the summed counters: scikit-learn's, exactly.
    y_true = [e["_label"] for e in everything]
    y_pred = [str(e["prediction"]) for e in everything]
    tp = scalar(prom, f'sum(model_classification_outcomes_total{{model="{MODEL}", outcome="tp"}})')
    assert tp == sum(t == p for t, p in zip(y_true, y_pred, strict=True))
    assert tp / total == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-15)

    # An instant whose 5m window starts in the quiet gap: phase 2 only.
    at = (phase1_end + phase2_start) / 2 + WINDOW
    assert phase1_end + 3.0 < at - WINDOW < phase2_start - 3.0
    wait_until(
        lambda: (
            time.time() > at + 3.0
            and (
                scalar(
                    prom,
                    f'timestamp(model_feature:psi:window5m{{model="{MODEL}", feature="x1"}})',
                    at,
                )
                or 0
            )
            > at - 1.5
        ),
        timeout=WINDOW + 60,
        interval=1.0,
        what="the rules evaluated at the chosen instant",
    )
    counts_5m = merged_and_single(prom, "model_feature:observations:window5m", at)
    counts_1h = merged_and_single(prom, "model_feature:observations:window1h", at)
    assert counts_5m[0] == counts_5m[1] and counts_1h[0] == counts_1h[1]
    for feature in FEATURES:
        key = (("feature", feature), ("version", VERSION))
        assert counts_5m[0][key] == binned(phase2, feature), feature
        assert counts_1h[0][key] == binned(everything, feature), feature
    predictions_5m = merged_and_single(prom, "model:predictions:window5m", at)
    assert predictions_5m[0] == predictions_5m[1] == {(("version", VERSION),): float(PHASE2)}

    figures = [
        "model_feature:psi:window5m",
        "model_feature:jensen_shannon:window5m",
        "model_feature:psi:window1h",
        "model_feature:jensen_shannon:window1h",
        "model_feature:drift_detected:window5m",
        "model:prediction_psi:window5m",
        "model:prediction_jensen_shannon:window5m",
        "model:prediction_psi:window1h",
        "model:estimated_accuracy:ratio_rate5m",
        "model:estimated_precision:ratio_rate5m",
        "model:estimated_recall:ratio_rate5m",
        "model:estimated_f1_score:ratio_rate5m",
        "model:estimated_accuracy:ratio_rate1h",
        "model:multivariate_reconstruction_error:mean5m",
    ]
    report = []
    for record in figures:
        merged, one = merged_and_single(prom, record, at)
        assert merged and merged.keys() == one.keys(), record
        for key, value in one.items():
            assert merged[key] == pytest.approx(value, rel=1e-9, abs=1e-9), (record, key)
            report.append(f"{record}{dict(key)}: merged {merged[key]:.12g} single {value:.12g}")
    print("\n".join(report))
    psi = merged_and_single(prom, "model_feature:psi:window5m", at)[0]
    drifted = merged_and_single(prom, "model_feature:drift_detected:window5m", at)[0]
    assert psi[(("feature", SHIFTED), ("version", VERSION))] > 0.2
    assert drifted[(("feature", SHIFTED), ("version", VERSION))] == 1
    assert scalar(prom, f'model:collector_instances:count{{model="{MODEL}"}}', at) == 3

    # And they are the engine's own figures of the single collector (its window holds phase 2).
    engine = {
        "model_feature:psi:window5m": 'model_feature_drift{statistic="psi"}',
        "model_feature:jensen_shannon:window5m": 'model_feature_drift{statistic="jensen_shannon"}',
        "model:prediction_psi:window5m": 'model_prediction_drift{statistic="psi"}',
        "model:estimated_accuracy:ratio_rate5m": "model_estimated_accuracy",
        "model:multivariate_reconstruction_error:mean5m": "model_multivariate_drift",
    }
    for record, gauge in engine.items():
        merged = merged_and_single(prom, record, at)[0]
        name, _, matchers = gauge.partition("{")
        selector = f'{name}{{model="{SINGLE}"{", " + matchers if matchers else "}"}'
        own = by_labels(
            query(prom, selector, at), drop=("instance", "job", "shard", "statistic", "method")
        )
        assert own.keys() == merged.keys(), (record, own, merged)
        for key, value in own.items():
            assert merged[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (record, key)
    assert scalar(prom, f'model:collector_instances:count{{model="{SINGLE}"}}', at) == 1

    # VictoriaMetrics: the same recorded samples, and the same value of every rule expression.
    wait_until(
        lambda: (
            (
                scalar(
                    vm,
                    f'timestamp(model_feature:psi:window5m{{model="{MODEL}", feature="x1"}})',
                    at + 5,
                )
                or 0
            )
            >= at - 1.5
        ),
        timeout=60,
        what="VictoriaMetrics to receive the recorded samples",
    )
    for record in figures:
        for model in (MODEL, SINGLE):
            selector = f'{record}{{model="{model}"}}'
            from_prom = by_labels(query(prom, selector, at))
            from_vm = by_labels(query(vm, selector, at))
            assert from_vm.keys() == from_prom.keys(), selector
            for key, value in from_prom.items():
                assert from_vm[key] == pytest.approx(value, rel=1e-12), (selector, key)
    compared = 0
    for record, expr in rule_exprs().items():
        from_prom = by_labels(query(prom, expr, at), keep_model=True)
        from_vm = by_labels(query(vm, expr, at), keep_model=True)
        assert from_vm.keys() == from_prom.keys(), record
        for key, value in from_prom.items():
            assert from_vm[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (record, key)
        compared += len(from_prom) > 0
    assert compared >= 30, compared


def binned(events: list[dict[str, Any]], feature: str) -> float:
    """Values of ``feature`` in a drift bin: missing and wrong-type values are in none."""
    values = [e["features"].get(feature) for e in events]
    if feature == "station":
        return float(sum(1 for v in values if isinstance(v, str)))
    return float(np.isfinite(np.array(values, dtype=float)).sum())
