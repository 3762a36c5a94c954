"""One model spread over two collectors: the dashboard shows the merged figures, not a share.

Real programs on loopback, nothing mocked: two collectors hold model ``m`` (the same spec and
reference), each event goes to the collector its prediction id is routed to (the SDK's
rendezvous hashing, ``modelmeter.sdk.routing.Router``), one Prometheus scrapes both in one job
with the shipped recording rules (recording.yml, merged.yml), and the dashboard's real refresh
(``fetch_refresh`` + ``build_view``) reads Prometheus.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import service_support as support
from helpers import (
    DEPLOY,
    collector_process,
    prom_query,
    prometheus_process,
    require_binary,
    running,
    wait_until,
)
from modelmeter.dashboard.queries import CALLS_PER_REFRESH, PromClient, Selection, fetch_refresh
from modelmeter.dashboard.view import build_view

pytestmark = pytest.mark.e2e

MODEL = "m"
N_EVENTS = 300


def _register(url: str) -> None:
    support.register_upload(url, MODEL)


def _send(url: str, batch: list[dict[str, Any]]) -> None:
    predictions = [
        {**{k: v for k, v in e.items() if k != "_label"}, "label": e["_label"]} for e in batch
    ]
    response = httpx.post(
        f"{url}/v1/models/{MODEL}/predictions", json={"predictions": predictions}, timeout=30.0
    )
    assert response.status_code == 200, response.text


def _config(ports: list[int]) -> str:
    targets = ", ".join(f"'127.0.0.1:{port}'" for port in ports)
    return (
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "rule_files:\n  - rules/*.yml\n"
        "scrape_configs:\n  - job_name: modelmeter\n    static_configs:\n"
        f"      - targets: [{targets}]\n"
    )


def _view(prom_url: str) -> tuple[int, dict[str, Any]]:
    client = PromClient(prom_url, timeout=3.0)
    try:
        raw = fetch_refresh(client, Selection(None, None), time.time())
        assert not raw.errors, raw.errors
        return raw.calls, build_view(raw)
    finally:
        client.close()


def _scalar(prom_url: str, expr: str) -> float | None:
    result = prom_query(prom_url, expr)
    return float(result[0]["value"][1]) if result else None


def test_a_model_spread_over_two_collectors_shows_the_merged_figures(tmp_path: Path) -> None:
    from sklearn.metrics import accuracy_score

    from modelmeter.sdk.routing import Router

    require_binary("prometheus")
    for i in (1, 2):
        (tmp_path / f"c{i}").mkdir()
    collectors = [collector_process(tmp_path / f"c{i}") for i in (1, 2)]
    rules = [DEPLOY / "prometheus" / "rules" / name for name in ("recording.yml", "merged.yml")]
    with running(*collectors):
        urls = [c.url for c in collectors]  # type: ignore[attr-defined]
        for url in urls:
            _register(url)
        prometheus = prometheus_process(
            tmp_path,
            _config([c.port for c in collectors]),
            rules,  # type: ignore[attr-defined]
        )
        with running(prometheus):
            prom_url = prometheus.url  # type: ignore[attr-defined]
            wait_until(
                lambda: _scalar(prom_url, 'count(up{job="modelmeter"} == 1)') == 2,
                timeout=30,
                what="both collectors scraped by Prometheus",
            )
            everything = support.events(0, N_EVENTS, seed=7)
            router = Router(urls)
            shares = [[e for e in everything if router.index(e["id"]) == i] for i in (0, 1)]
            assert all(len(share) > N_EVENTS // 4 for share in shares)
            for url, share in zip(urls, shares, strict=True):
                _send(url, share)

            labeled = (
                f'sum(model_classification_outcomes_total{{model="{MODEL}", outcome=~"tp|fn"}})'
            )
            wait_until(
                lambda: (
                    _scalar(prom_url, f'model:window_predictions:sum{{model="{MODEL}"}}')
                    == N_EVENTS
                    and _scalar(prom_url, labeled) == N_EVENTS
                    and _scalar(prom_url, f'model:label_coverage:ratio{{model="{MODEL}"}}') == 1
                    and _scalar(prom_url, f'model:collector_instances:count{{model="{MODEL}"}}')
                    == 2
                    and _scalar(prom_url, f'count(model_feature:psi:window5m{{model="{MODEL}"}})')
                    == 4  # the drift rules evaluated too (they follow the counts by a cycle)
                ),
                timeout=60,
                what="every event of both collectors scraped and merged by the rules",
            )
            calls, view = _view(prom_url)

    assert calls == CALLS_PER_REFRESH
    assert [r["model"] for r in view["catalog"]] == [MODEL]  # one model, not one per collector
    assert view["model"] == MODEL
    assert view["collectors"] == 2 and view["merged"] is True
    assert "merged over 2 collectors" in view["merged_note"]
    cards = {c["metric"]: c for c in view["cards"]}
    y_true = [e["_label"] for e in everything]
    y_pred = [str(e["prediction"]) for e in everything]
    expected = accuracy_score(y_true, y_pred)
    assert cards["accuracy"]["realized"] == pytest.approx(expected, abs=1e-9)
    assert cards["accuracy"]["source"] == "merged over 2 collectors"
    assert cards["accuracy"]["predictions"] == N_EVENTS
    assert cards["accuracy"]["labeled"] == N_EVENTS
    assert view["window"]["predictions"] == N_EVENTS
    assert view["window"]["labeled"] == N_EVENTS
    assert view["labels"]["coverage"] == pytest.approx(1.0)
    # The shares' own accuracies differ from the merged one: the view did not pick a share.
    share_accuracy = [
        accuracy_score([e["_label"] for e in s], [str(e["prediction"]) for e in s]) for s in shares
    ]
    assert all(abs(a - expected) > 1e-9 for a in share_accuracy)
    # The drift table is one row per feature from the merged rules (PSI, Jensen-Shannon).
    drift = {d["feature"]: d for d in view["drift"]}
    assert set(drift) == {"x1", "x2", "x3", "station"}
    assert all(d["psi"] is not None and d["ks_binned"] is None for d in drift.values())
    assert cards["accuracy"]["estimated"] is not None
    # the page says so: the accuracy card's sample line names the merge
    from modelmeter.dashboard.panels import render_view

    rendered = str(render_view(view)["cards"][0])
    assert "merged over 2 collectors" in rendered
