"""The dashboard without a browser: formatting, empty states, settings, auth, tick skipping."""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dash.exceptions import PreventUpdate

from dashboard_support import empty_answers
from helpers import ManagedProcess, free_port, wait_until
from modelmeter.dashboard import format as fmt
from modelmeter.dashboard.app import Fetcher, create_app
from modelmeter.dashboard.cli import configure, settings_from
from modelmeter.dashboard.layout import GRAPHS, IDS, build_layout
from modelmeter.dashboard.panels import NO_MODEL, _since, drift_status, render_view
from modelmeter.dashboard.queries import (
    PromClient,
    PromUnavailable,
    RawRefresh,
    Selection,
)
from modelmeter.dashboard.view import _drift, build_view


def test_formatting_never_turns_missing_into_zero() -> None:
    for f in (fmt.ratio, fmt.delta, fmt.percent, fmt.count, fmt.rate, fmt.seconds, fmt.bytes_):
        assert f(None) == "—"
    assert fmt.ratio(0.0) == "0.000"
    assert fmt.seconds(0.5) == "500.0 ms" and fmt.seconds(90) == "90.0 s"
    assert fmt.seconds(600) == "10.0 min" and fmt.seconds(7200) == "2.0 h"
    assert fmt.bytes_(512) == "512 B" and fmt.bytes_(1536) == "1.5 KiB"
    assert fmt.rate(0.25) == "0.250/s" and fmt.rate(0) == "0.0/s"
    assert fmt.ago(10_000, 10_000 - 7200) == "2.0 h ago"


def test_since_reads_prometheus_timestamps_with_nanoseconds() -> None:
    assert _since("2026-01-02T03:04:05.123456789Z", 1767323045.0 + 65).startswith(
        "since 2026-01-02 03:04:05 UTC (1 min ago)"
    )
    assert _since(None, 0.0) == ""


def test_no_model_says_what_to_do() -> None:
    view = build_view(RawRefresh(Selection(None, None), 1.0, [], {"alerts": None}, {}, 2))
    out = render_view(view)
    assert out["main_hidden"] and not out["empty_hidden"]
    assert NO_MODEL in str(out["empty"]) and "README, Quick start" in NO_MODEL


def test_a_model_without_data_shows_hints_in_every_panel() -> None:
    catalog = [{"model": "m", "version": "v1", "task": "binary"}]
    view = build_view(RawRefresh(Selection("m", "v1"), 1.0, catalog, empty_answers(), {}, 8))
    out = render_view(view)
    assert not out["main_hidden"]
    text = str(out)
    for hint in (
        "waiting for ≥",
        "No active alerts for m",
        "No drift figures yet",
        "No data-quality figures yet",
        "No labels yet",
        "No serving replica",
    ):
        assert hint in text, hint
    for graph in GRAPHS:
        figure = out["figures"][graph]
        assert figure["data"] == []
        assert figure["layout"]["annotations"][-1]["text"]  # the empty message
        assert figure["layout"]["uirevision"] == "m|v1|15m"


def test_alert_store_without_alerts_api_is_explained() -> None:
    catalog = [{"model": "m", "version": "v1", "task": "binary"}]
    answers = empty_answers() | {"alerts": None}
    view = build_view(RawRefresh(Selection("m", "v1"), 1.0, catalog, answers, {"alerts": "404"}, 8))
    assert "does not serve /api/v1/alerts" in str(render_view(view)["alerts"])


def test_layout_has_every_component_the_callbacks_use() -> None:
    text = str(build_layout(2.0))
    for component_id in [*IDS.values(), *GRAPHS]:
        assert f"'{component_id}'" in text, component_id


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    configure(parser)
    return parser.parse_args(list(argv))


def test_settings_environment_and_flags() -> None:
    s = settings_from(_args(), {"PROM_URL": "http://vm:8428", "PORT": "9000"})
    assert (s.prom_url, s.port, s.host, s.refresh_seconds) == (
        "http://vm:8428",
        9000,
        "127.0.0.1",
        2.0,
    )
    s = settings_from(_args("--port", "8123", "--host", "0.0.0.0"), {"PORT": "9000"})
    assert (s.port, s.host) == (8123, "0.0.0.0")
    with pytest.raises(ValueError, match="PORT='x'"):
        settings_from(_args(), {"PORT": "x"})
    with pytest.raises(ValueError, match="MODELMETER_DASHBOARD_PASSWORD"):
        settings_from(_args(), {"MODELMETER_DASHBOARD_USER": "ops"})
    with pytest.raises(ValueError, match="MODELMETER_DASHBOARD_REFRESH"):
        settings_from(_args(), {"MODELMETER_DASHBOARD_REFRESH": "soon"})


def test_basic_auth_protects_every_page() -> None:
    app = create_app("http://127.0.0.1:9", basic_auth=("ops", "s3cret"))
    client = app.server.test_client()
    denied = client.get("/")
    assert denied.status_code == 401
    assert "Basic" in denied.headers["WWW-Authenticate"]
    assert client.get("/", headers={"Authorization": "Basic b3BzOndyb25n"}).status_code == 401
    ok = client.get("/", headers={"Authorization": "Basic b3BzOnMzY3JldA=="})  # ops:s3cret
    assert ok.status_code == 200 and b"modelmeter" in ok.data
    assert client.get("/healthz").status_code == 200  # for launchers: no data, no auth
    assert create_app("http://127.0.0.1:9").server.test_client().get("/").status_code == 200


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers: a hung Prometheus."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    sock.close()


def test_a_hung_prometheus_times_out_and_ticks_do_not_pile_up(silent_server: str) -> None:
    client = PromClient(silent_server, timeout=0.5)
    fetcher = Fetcher(client, max_age=1.0)
    sel = Selection("m", "v1")
    outcome: list[BaseException] = []

    def slow_fetch() -> None:
        try:
            fetcher.fetch(sel)
        except BaseException as exc:
            outcome.append(exc)

    started = time.monotonic()
    first = threading.Thread(target=slow_fetch)
    first.start()
    while client.calls < 2:  # the first fetch is waiting on the silent server
        time.sleep(0.01)
    with pytest.raises(PreventUpdate):  # the next tick is skipped, not queued
        fetcher.fetch(sel)
    first.join()
    elapsed = time.monotonic() - started
    assert isinstance(outcome[0], PromUnavailable) and "Timeout" in str(outcome[0])
    assert elapsed < 1.5  # one timeout (calls run in parallel), not one per call
    assert client.calls == 2
    client.close()


def test_the_command_serves_the_page_with_basic_auth(tmp_path: Path) -> None:
    port = free_port()
    env = {
        "PROM_URL": f"http://127.0.0.1:{free_port()}",
        "PORT": str(port),
        "MODELMETER_DASHBOARD_USER": "ops",
        "MODELMETER_DASHBOARD_PASSWORD": "s3cret",
    }
    argv = [sys.executable, "-m", "modelmeter.dashboard.cli", "--refresh", "1s"]
    with ManagedProcess("dashboard", argv, tmp_path / "dashboard.log", env=env) as proc:
        url = f"http://127.0.0.1:{port}/"
        wait_until(
            lambda: httpx.get(url, timeout=2).status_code == 401,
            timeout=30,
            what="the dashboard to answer 401 without credentials",
        )
        page = httpx.get(url, auth=("ops", "s3cret"), timeout=5)
        assert page.status_code == 200 and "<title>modelmeter</title>" in page.text
        assert "on http://127.0.0.1:" in proc.log() and "basic auth" in proc.log()


def test_drift_rows_follow_the_feature_drift_rule() -> None:
    # FeatureDrift fires on PSI over the threshold AND a significant test: the table agrees.
    psi = {"a": 0.05, "b": 0.5, "c": 0.3, "d": 0.12}
    detected = {"a": 1.0, "b": 0.0, "c": 1.0, "d": 0.0}
    by_name = {
        "model_feature_drift": [({"feature": f, "statistic": "psi"}, v) for f, v in psi.items()],
        "model_feature_drift_detected": [({"feature": f}, v) for f, v in detected.items()],
    }
    rows = _drift(by_name, threshold=0.2)
    assert [r["feature"] for r in rows] == ["c", "b", "d", "a"]
    statuses = [drift_status(r["ratio"], r["detected"]) for r in rows]
    assert statuses == [
        ("critical", "drifted"),
        ("warning", "over threshold, not significant"),
        ("warning", "near threshold"),
        ("ok", "small shift"),
    ]


def _vector(*rows: tuple[dict[str, str], float]) -> dict[str, object]:
    return {
        "resultType": "vector",
        "result": [{"metric": m, "value": [1.0, str(v)]} for m, v in rows],
    }


def _spread_raw(instances: int) -> RawRefresh:
    """Answers of a model whose collector gauges are shares; merged rules beside them."""
    mv = {"model": "m", "version": "v1"}
    shares = [
        ({"__name__": "model_info", **mv, "task": "binary", "instance": f"c{i}:1", "job": "j"}, 1)
        for i in range(instances)
    ]
    for i in range(instances):
        at = {**mv, "instance": f"c{i}:1", "job": "j"}
        shares += [
            ({"__name__": "model_accuracy", **at}, 0.5 + 0.1 * i),
            ({"__name__": "model_estimated_accuracy", **at}, 0.6),
            ({"__name__": "model_window_predictions", **at}, 40.0 + i),
            ({"__name__": "model_window_labeled_predictions", **at}, 20.0),
            ({"__name__": "model_feature_drift", **at, "feature": "x1", "statistic": "psi"}, 0.9),
            (
                {
                    "__name__": "model_feature_drift",
                    **at,
                    "feature": "x1",
                    "statistic": "ks_binned",
                },
                0.2,
            ),
            ({"__name__": "model_feature_drift_detected", **at, "feature": "x1"}, 1.0),
            ({"__name__": "model_multivariate_drift", **at, "method": "pca"}, 9.0),
        ]
    merged = [
        ({"__name__": "model:collector_instances:count", "model": "m"}, float(instances)),
        ({"__name__": "model_positive_class_info", **mv, "class": "1"}, 1.0),
        ({"__name__": "model_alert_threshold", "model": "m", "threshold": "drift_psi"}, 0.2),
        ({"__name__": "model:window_predictions:sum", **mv}, 81.0),
        ({"__name__": "model:window_labeled_predictions:sum", **mv}, 40.0),
        ({"__name__": "model:label_coverage:ratio", **mv}, 40 / 81),
        ({"__name__": "model:accuracy:ratio_rate5m", **mv}, 0.7),
        ({"__name__": "model:estimated_accuracy:ratio_rate5m", **mv}, 0.65),
        ({"__name__": "model_feature:psi:window5m", **mv, "feature": "x1"}, 0.1),
        ({"__name__": "model_feature:jensen_shannon:window5m", **mv, "feature": "x1"}, 0.05),
        ({"__name__": "model_feature:drift_detected:window5m", **mv, "feature": "x1"}, 0.0),
        ({"__name__": "model:multivariate_reconstruction_error:mean5m", **mv}, 1.25),
        ({"__name__": "model:prediction_psi:window5m", **mv}, 0.03),
    ]
    outcomes = [
        ({"mm_series": "merged_outcomes", "class": c, "outcome": o}, v)
        for c, o, v in (
            ("1", "tp", 18),
            ("1", "fp", 2),
            ("1", "fn", 6),
            ("0", "tp", 14),
            ("0", "fp", 6),
            ("0", "fn", 2),
        )
    ]
    data = {**empty_answers(), "instant": _vector(*shares, *merged), "derived": _vector(*outcomes)}
    catalog = [{"model": "m", "version": "v1", "task": "binary"}]
    return RawRefresh(Selection("m", "v1"), 1.0, catalog, data, {}, 8)


def test_a_spread_model_shows_the_merged_figures_not_a_share() -> None:
    view = build_view(_spread_raw(2))
    assert view["collectors"] == 2 and view["merged"] is True
    assert view["merged_note"].startswith("Figures merged over 2 collectors")
    card = {c["metric"]: c for c in view["cards"]}
    assert card["accuracy"]["realized"] == pytest.approx(32 / 40)  # the exact window counts
    assert card["precision"]["realized"] == pytest.approx(18 / 20)  # the positive class
    assert card["accuracy"]["estimated"] == 0.65
    assert card["accuracy"]["source"] == "merged over 2 collectors"
    assert view["window"]["predictions"] == 81.0 and view["window"]["labeled"] == 40.0
    assert view["labels"]["coverage"] == pytest.approx(40 / 81)
    (row,) = view["drift"]
    assert (row["psi"], row["jensen_shannon"], row["ks_binned"], row["detected"]) == (
        0.1,
        0.05,
        None,
        False,
    )
    assert view["drift_detected"] == 0.0
    assert view["multivariate"]["error"] == 1.25
    assert view["prediction_drift"] == {"psi": 0.03}
    render_view(view)  # the panels draw it


def test_a_model_on_one_collector_keeps_its_collector_gauges() -> None:
    view = build_view(_spread_raw(1))
    assert view["collectors"] == 1 and view["merged"] is False and view["merged_note"] is None
    card = {c["metric"]: c for c in view["cards"]}
    assert card["accuracy"]["realized"] == 0.5 and card["accuracy"]["source"] == "collector"
    assert view["drift"][0]["psi"] == 0.9 and view["drift"][0]["ks_binned"] == 0.2
