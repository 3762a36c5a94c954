"""Scale-out, end to end: two collector shards behind one Prometheus equal one collector.

Real programs on loopback, nothing mocked:

* three collectors: shards ``a`` and ``b`` share the labeled traffic of one binary model
  (scikit-learn's logistic regression on scikit-learn's bundled breast-cancer data); the third
  gets all of it;
* Prometheus #1 runs the shipped two-collector config (``deploy/multi/prometheus.yml``, ports and
  intervals substituted) with the shipped rules (``deploy/prometheus/rules``) and remote_writes to
  a real VictoriaMetrics; Prometheus #2 runs the same rules on the single collector (its own
  Prometheus, because the recording rules sum every instance of a model);
* the recording-rule accuracy ``model:accuracy:ratio_rate5m`` over the two shards equals the single
  collector's and scikit-learn's ``accuracy_score`` on the events; the cumulative counters equal it
  exactly; VictoriaMetrics answers with the very samples Prometheus recorded.

Tolerances: the counter ratios are exact. ``rate()`` extrapolates a series to the window edges;
with the warm-up below, every series of one collector gets the same factor, so the single
collector's rule value equals scikit-learn's to 1e-9. The two shards are scraped at different
instants and get factors that differ by at most about two scrape intervals (2 s) over a series
life of at least ``SETTLE_SECONDS`` (10 s): the sharded value must lie between the accuracies
obtained by weighting one shard's counts by 1 - 0.2 and by 1 + 0.2 against the other's.
"""

from __future__ import annotations

import csv
import io
import itertools
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from helpers import (
    DEPLOY,
    collector_process,
    prom_query,
    prometheus_process,
    require_binary,
    running,
    victoria_metrics,
    wait_until,
)

pytestmark = pytest.mark.e2e

MODEL = "breast-cancer"
FEATURES = ("mean radius", "mean texture", "mean smoothness", "mean concave points", "worst radius")
RULE = "model:accuracy:ratio_rate5m"
# Largest relative difference of rate() extrapolation between the two shards (docstring).
SHARD_SKEW = 0.2
# Seconds of 1 s evaluations after the last increment before reading the rule (see docstring).
SETTLE_SECONDS = 10


def _name(feature: str) -> str:
    return feature.replace(" ", "_")


class Traffic:
    """The model, its reference data and the labeled events, all real and seeded."""

    def __init__(self) -> None:
        from sklearn.datasets import load_breast_cancer
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import train_test_split

        data = load_breast_cancer()
        columns = [list(data.feature_names).index(f) for f in FEATURES]
        x, y = data.data[:, columns], data.target
        x_train, x_rest, y_train, y_rest = train_test_split(
            x, y, train_size=200, random_state=0, stratify=y
        )
        x_ref, x_events, y_ref, y_events = train_test_split(
            x_rest, y_rest, train_size=150, random_state=0, stratify=y_rest
        )
        model = LogisticRegression(max_iter=5000).fit(x_train, y_train)
        self.low, self.high = x.min(axis=0), x.max(axis=0)
        self.x_ref, self.y_ref = x_ref, y_ref
        self.pred_ref = model.predict(x_ref)
        self.score_ref = model.predict_proba(x_ref)[:, 1]
        self.x, self.y = x_events, y_events
        self.pred = model.predict(x_events)
        self.score = model.predict_proba(x_events)[:, 1]

    def spec_yaml(self) -> str:
        spec = {
            "task": "binary",
            "classes": ["0", "1"],
            "positive_class": "1",
            "features": [
                {"name": _name(f), "type": "numeric", "range": [float(lo), float(hi)]}
                for f, lo, hi in zip(FEATURES, self.low, self.high, strict=True)
            ],
            "reference": {
                "path": "reference.csv",
                "prediction": "prediction",
                "label": "label",
                "score": "score",
            },
            "window": {"length": "5m", "bucket": "10s"},
            "min_samples": 10,
        }
        return yaml.safe_dump(spec, sort_keys=False)

    def reference_csv(self) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([*(_name(f) for f in FEATURES), "prediction", "label", "score"])
        for row, pred, label, score in zip(
            self.x_ref, self.pred_ref, self.y_ref, self.score_ref, strict=True
        ):
            writer.writerow(
                [*(repr(float(v)) for v in row), int(pred), int(label), repr(float(score))]
            )
        return out.getvalue().encode()

    def event(self, i: int) -> dict[str, Any]:
        return {
            "id": f"event-{i}",
            "features": {_name(f): float(v) for f, v in zip(FEATURES, self.x[i], strict=True)},
            "prediction": str(int(self.pred[i])),
            "score": float(self.score[i]),
            "label": str(int(self.y[i])),
        }

    def phases(self) -> tuple[list[int], list[int], list[int], list[int]]:
        """Events of (warm-up a, warm-up b, measured a, measured b).

        The warm-up must reach Prometheus before the measured traffic because ``rate()`` cannot
        see increments made before a series' first scrape; so each warm-up holds two events of
        every (prediction, label) pair (every ``model_classification_outcomes_total`` series
        then exists), plus a third of the other events: a counter whose first value is small
        next to its increase is extrapolated differently by ``rate()`` (the clamp at zero), which
        would skew the ratio of rates away from the exact ratio.
        """
        warm_a: list[int] = []
        warm_b: list[int] = []
        for pred, label in itertools.product((0, 1), (0, 1)):
            found = [int(i) for i in np.flatnonzero((self.pred == pred) & (self.y == label))]
            assert len(found) >= 4, f"need 4 events predicted {pred} labeled {label}"
            warm_a += found[0:2]
            warm_b += found[2:4]
        rest = [i for i in range(len(self.y)) if i not in set(warm_a) | set(warm_b)]
        extra, measured = rest[: len(rest) // 3], rest[len(rest) // 3 :]
        return warm_a + extra[0::2], warm_b + extra[1::2], measured[0::2], measured[1::2]


def register(collector_url: str, traffic: Traffic) -> None:
    response = httpx.put(
        f"{collector_url}/v1/models/{MODEL}",
        files={
            "spec": ("spec.yaml", traffic.spec_yaml(), "application/yaml"),
            "reference": ("reference.csv", traffic.reference_csv(), "text/csv"),
        },
        timeout=30.0,
    )
    assert response.status_code in (200, 201), response.text


def send(collector_url: str, traffic: Traffic, indices: Sequence[int]) -> None:
    response = httpx.post(
        f"{collector_url}/v1/models/{MODEL}/predictions",
        json={"predictions": [traffic.event(i) for i in indices]},
        timeout=30.0,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == len(indices), body


def prometheus_config(targets: Sequence[tuple[int, str]], remote_write_url: str | None) -> str:
    """The shipped deploy/multi/prometheus.yml with test ports and 1 s intervals."""
    config = yaml.safe_load((DEPLOY / "multi" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = ["rules/*.yml"]  # prometheus_process copies the rules there
    config.pop("alerting", None)
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "modelmeter"
    job["static_configs"] = [
        {"targets": [f"127.0.0.1:{port}"], "labels": {"shard": shard}} for port, shard in targets
    ]
    if remote_write_url is None:
        config.pop("remote_write", None)
    else:
        (write,) = config["remote_write"]
        write["url"] = remote_write_url
        write.setdefault("queue_config", {})["batch_send_deadline"] = "1s"
    return yaml.safe_dump(config, sort_keys=False)


def scalar(url: str, expr: str) -> float | None:
    result = prom_query(url, expr)
    if not result:
        return None
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def prom_query_at(url: str, expr: str, at: float) -> list[dict[str, Any]]:
    """Instant query at time ``at`` (Unix s) on Prometheus or VictoriaMetrics."""
    response = httpx.get(
        f"{url}/api/v1/query", params={"query": expr, "time": f"{at:.3f}"}, timeout=5.0
    )
    response.raise_for_status()
    result = response.json()["data"]["result"]
    assert len(result) == 1, result
    return list(result)


def raw_samples(url: str, expr: str, at: float) -> dict[int, float]:
    """Raw samples (ms timestamp -> value) of a range selector, as stored."""
    result = prom_query_at(url, expr, at)
    return {round(float(t) * 1000): float(v) for t, v in result[0]["values"]}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    require_binary("prometheus")
    rules = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
    assert rules, "no rule files in deploy/prometheus/rules"
    shard_a = collector_process(tmp_path / "a")
    shard_b = collector_process(tmp_path / "b")
    single = collector_process(tmp_path / "single")
    vm = victoria_metrics(tmp_path)
    with running(shard_a, shard_b, single, vm):
        prom_multi = prometheus_process(
            tmp_path / "multi",
            prometheus_config(
                [(shard_a.port, "a"), (shard_b.port, "b")],  # type: ignore[attr-defined]
                f"{vm.url}/api/v1/write",  # type: ignore[attr-defined]
            ),
            rules,
        )
        prom_single = prometheus_process(
            tmp_path / "single-prom",
            prometheus_config([(single.port, "all")], None),  # type: ignore[attr-defined]
            rules,
        )
        with running(prom_multi, prom_single):
            yield {
                "a": shard_a.url,  # type: ignore[attr-defined]
                "b": shard_b.url,  # type: ignore[attr-defined]
                "single": single.url,  # type: ignore[attr-defined]
                "prom_multi": prom_multi.url,  # type: ignore[attr-defined]
                "prom_single": prom_single.url,  # type: ignore[attr-defined]
                "vm": vm.url,  # type: ignore[attr-defined]
            }


def test_two_shards_equal_one_collector_and_sklearn(stack: dict[str, Any]) -> None:
    from sklearn.metrics import accuracy_score

    traffic = Traffic()
    warm_a, warm_b, rest_a, rest_b = traffic.phases()
    for url in (stack["a"], stack["b"], stack["single"]):
        register(url, traffic)

    selector = f'model_classification_outcomes_total{{model="{MODEL}"}}'
    # Warm-up: every outcome series exists (and is scraped) before the measured traffic.
    send(stack["a"], traffic, warm_a)
    send(stack["b"], traffic, warm_b)
    send(stack["single"], traffic, warm_a + warm_b)
    for prom, instances in ((stack["prom_multi"], 2), (stack["prom_single"], 1)):
        wait_until(
            lambda prom=prom, n=instances: scalar(prom, f"count({selector} > 0)") == 6 * n,
            timeout=40,
            what=f"6 outcome series per collector scraped by {prom}",
        )

    send(stack["a"], traffic, rest_a)
    send(stack["b"], traffic, rest_b)
    send(stack["single"], traffic, rest_a + rest_b)

    everything = warm_a + warm_b + rest_a + rest_b
    exact_all = accuracy_score(traffic.y[everything], traffic.pred[everything])
    measured = rest_a + rest_b
    exact_measured = accuracy_score(traffic.y[measured], traffic.pred[measured])
    correct = int((traffic.y[everything] == traffic.pred[everything]).sum())

    tp = f'sum(model_classification_outcomes_total{{model="{MODEL}", outcome="tp"}})'
    labeled = f'sum(model_classification_outcomes_total{{model="{MODEL}", outcome=~"tp|fn"}})'
    for prom in (stack["prom_multi"], stack["prom_single"]):
        wait_until(
            lambda prom=prom: (
                scalar(prom, tp) == correct and scalar(prom, labeled) == len(everything)
            ),
            timeout=30,
            what=f"every labeled event counted in {prom}",
        )
        # Exact: the summed counters are scikit-learn's accuracy on every event.
        counters = scalar(prom, f"{tp} / {labeled}")
        assert counters == pytest.approx(exact_all, abs=1e-12)

    # The recording rule, evaluated after the last increment was scraped.
    done = time.time()
    rule = f'{RULE}{{model="{MODEL}"}}'
    values = {}
    for name in ("prom_multi", "prom_single"):
        prom = stack[name]
        wait_until(
            lambda prom=prom: (scalar(prom, f"timestamp({rule})") or 0) > done + SETTLE_SECONDS,
            timeout=30,
            what=f"{RULE} evaluated in {name}",
        )
        values[name] = scalar(prom, rule)
    print(
        f"accuracy: sklearn {exact_measured:.6f} (measured traffic), two shards "
        f"{values['prom_multi']:.6f}, single collector {values['prom_single']:.6f}"
    )
    assert values["prom_single"] == pytest.approx(exact_measured, rel=1e-9, abs=1e-9)
    correct_a = float((traffic.y[rest_a] == traffic.pred[rest_a]).sum())
    correct_b = float((traffic.y[rest_b] == traffic.pred[rest_b]).sum())
    low, high = sorted(
        (correct_a * w + correct_b) / (len(rest_a) * w + len(rest_b))
        for w in (1 - SHARD_SKEW, 1 + SHARD_SKEW)
    )
    print(f"two-shard bound for a {SHARD_SKEW:.0%} extrapolation skew: [{low:.6f}, {high:.6f}]")
    assert low - 1e-9 <= values["prom_multi"] <= high + 1e-9, (low, high)
    assert values["prom_multi"] == pytest.approx(values["prom_single"], abs=high - low)

    # VictoriaMetrics holds what Prometheus wrote: the same counters, the same rule samples.
    vm = stack["vm"]
    wait_until(
        lambda: scalar(vm, f"{tp} / {labeled}") == scalar(stack["prom_multi"], f"{tp} / {labeled}"),
        timeout=30,
        what="VictoriaMetrics to hold the final counters",
    )
    at = time.time()
    wait_until(
        lambda: (
            max(raw_samples(vm, f"{rule}[2m]", at))
            >= max(raw_samples(stack["prom_multi"], f"{rule}[2m]", at))
        ),
        timeout=30,
        what=f"VictoriaMetrics to receive the {RULE} samples",
    )
    from_prom = raw_samples(stack["prom_multi"], f"{rule}[2m]", at)
    from_vm = raw_samples(vm, f"{rule}[2m]", at)
    common = sorted(set(from_prom) & set(from_vm))
    assert len(common) >= 3, (len(from_prom), len(from_vm))
    for t in common:
        assert from_vm[t] == pytest.approx(from_prom[t], rel=1e-12), t
    # And the same instant query, at a sample's timestamp, gets the same answer from both.
    last = common[-1] / 1000
    answers = [
        float(prom_query_at(url, rule, last)[0]["value"][1]) for url in (stack["prom_multi"], vm)
    ]
    assert answers[1] == pytest.approx(answers[0], rel=1e-12)
