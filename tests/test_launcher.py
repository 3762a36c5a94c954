"""``modelmeter up`` as a process: the real collector, Prometheus, Alertmanager and dashboard.

Each test starts the launcher on free loopback ports with its own data directory, and checks
that every component answers, that SIGTERM (or a dying child) leaves no process behind (psutil
over all descendants), and that a busy port or a missing binary is a one-line error.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from helpers import free_port, http_ok, prom_query, require_binary, wait_until

pytestmark = pytest.mark.e2e

HAS_DASHBOARD = importlib.util.find_spec("modelmeter.dashboard.cli") is not None


class Up:
    """A running ``modelmeter up`` with its ports, output file and process."""

    def __init__(
        self,
        tmp: Path,
        *extra: str,
        dashboard: bool = HAS_DASHBOARD,
        env: dict[str, str] | None = None,
    ) -> None:
        self.env = {**os.environ, **(env or {})}
        self.ports = {
            name: free_port() for name in ("collector", "prometheus", "alertmanager", "dashboard")
        }
        self.data_dir = tmp / "data"
        self.log = tmp / "up.log"
        self.argv = [
            sys.executable, "-m", "modelmeter", "up",
            "--data-dir", str(self.data_dir),
            "--collector-port", str(self.ports["collector"]),
            "--prometheus-port", str(self.ports["prometheus"]),
            "--alertmanager-port", str(self.ports["alertmanager"]),
            "--dashboard-port", str(self.ports["dashboard"]),
            *([] if dashboard else ["--no-dashboard"]),
            *extra,
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def start(self) -> Up:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self.env,
            )

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"modelmeter up exited {self.proc.returncode}")
            return "modelmeter is up" in self.output()

        try:
            wait_until(up, timeout=120, what="modelmeter up to print its URLs")
        except AssertionError as exc:
            self.stop()
            raise AssertionError(f"{exc}\n--- output ---\n{self.output()[-4000:]}") from None
        return self

    def descendants(self) -> list[psutil.Process]:
        assert self.proc is not None
        return psutil.Process(self.proc.pid).children(recursive=True)

    def stop(self) -> None:
        """Only for cleanup after a failure: SIGKILL the launcher's group if it is still there."""
        if self.proc is not None and self.proc.poll() is None:
            for child in self.descendants():
                child.kill()
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    require_binary("prometheus")
    require_binary("prometheus-alertmanager", "alertmanager")
    stack = Up(tmp_path, "--webhook-url", "http://127.0.0.1:5999/hook")
    yield stack.start()
    stack.stop()


def assert_all_gone(processes: list[psutil.Process]) -> None:
    def gone() -> bool:
        return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes)

    wait_until(gone, timeout=15, what="every child of modelmeter up to exit")


def test_up_runs_every_component_and_sigterm_leaves_nothing(up: Up) -> None:
    assert http_ok(f"{up.url('collector')}/readyz")
    assert http_ok(f"{up.url('prometheus')}/-/ready")
    assert http_ok(f"{up.url('alertmanager')}/-/ready")
    if HAS_DASHBOARD:
        assert http_ok(f"{up.url('dashboard')}/")
    # Prometheus scrapes this run's collector and loaded the shipped rules.
    wait_until(
        lambda: prom_query(up.url("prometheus"), 'up{job="modelmeter"} == 1'),
        timeout=60,
        what="Prometheus to scrape the collector",
    )
    groups = httpx.get(f"{up.url('prometheus')}/api/v1/rules", timeout=5).json()["data"]["groups"]
    alerts = {
        rule["name"] for group in groups for rule in group["rules"] if rule["type"] == "alerting"
    }
    assert {"LowModelAccuracy", "CriticalModelAccuracy", "CollectorDown"} <= alerts
    # Prometheus sends to this run's Alertmanager, which posts to the --webhook-url.
    wait_until(
        lambda: httpx.get(f"{up.url('prometheus')}/api/v1/alertmanagers", timeout=5).json()["data"][
            "activeAlertmanagers"
        ],
        timeout=30,
        what="Prometheus to discover Alertmanager",
    )
    status = httpx.get(f"{up.url('alertmanager')}/api/v2/status", timeout=5).json()
    assert "http://127.0.0.1:5999/hook" in status["config"]["original"]
    # Every component's log line is prefixed with its name.
    output = up.output()
    for name in ("collector", "prometheus", "alertmanager"):
        assert f"[{name}] " in output
    assert (up.data_dir / "run" / "prometheus.yml").is_file()

    children = up.descendants()
    assert len(children) >= 3 + HAS_DASHBOARD
    assert up.proc is not None
    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(timeout=60) == 0, up.output()[-3000:]
    assert_all_gone(children)
    assert "modelmeter up: stopped" in up.output()
    # The data persist for the next run.
    assert (up.data_dir / "prometheus").is_dir()
    assert (up.data_dir / "collector").is_dir()


def test_a_dying_child_stops_everything_with_its_last_lines(up: Up) -> None:
    children = up.descendants()
    collector = next(p for p in children if "collector" in p.cmdline())
    collector.kill()
    assert up.proc is not None
    assert up.proc.wait(timeout=60) == 1
    output = up.output()
    assert "collector exited with code -9; its last log lines:" in output
    assert_all_gone(children)


def busy_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_busy_port_is_a_one_line_error(tmp_path: Path) -> None:
    require_binary("prometheus")
    require_binary("prometheus-alertmanager", "alertmanager")
    with busy_socket() as sock:
        port = sock.getsockname()[1]
        stack = Up(tmp_path, "--prometheus-port", str(port))
        result = subprocess.run(stack.argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"port {port}" in lines[0] and "--prometheus-port" in lines[0]
    assert not (stack.data_dir / "run").exists()  # nothing was started or written


def test_missing_binary_says_what_to_install(tmp_path: Path) -> None:
    stack = Up(tmp_path)
    env = {**os.environ, "PATH": str(tmp_path / "empty-bin")}
    result = subprocess.run(stack.argv, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "prometheus not found on PATH" in lines[0]
    assert "apt-get install" in lines[0]


def test_demo_sends_real_traffic_through_the_stack(tmp_path: Path) -> None:
    require_binary("prometheus")
    require_binary("prometheus-alertmanager", "alertmanager")
    # With tokens on and /metrics protected, the launcher hands the demo a write token and
    # Prometheus a read token (else no model_predictions_total below).
    tokens = {
        "MODELMETER_WRITE_TOKENS": "demo-secret,other",
        "MODELMETER_READ_TOKENS": "r",
        "MODELMETER_PROTECT_METRICS": "true",
    }
    stack = Up(tmp_path, "--demo", "--demo-port", str(free_port()), dashboard=False, env=tokens)
    stack.start()
    try:
        wait_until(
            lambda: httpx.get(
                f"{stack.url('collector')}/v1/models",
                headers={"authorization": "Bearer r"},
                timeout=5,
            ).json()["models"],
            timeout=60,
            what="the demo to register its model",
        )
        wait_until(
            lambda: prom_query(stack.url("prometheus"), "model_predictions_total > 0"),
            timeout=90,
            what="Prometheus to scrape the demo's predictions",
        )
        children = stack.descendants()
        assert any("demo" in p.cmdline() for p in children)
        assert stack.proc is not None
        # Ctrl-C (SIGINT), as a user stops `make demo`; the shell that started the test may
        # have left SIGINT ignored in children, and the launcher must stop anyway.
        stack.proc.send_signal(signal.SIGINT)
        assert stack.proc.wait(timeout=60) == 0, stack.output()[-3000:]
        assert_all_gone(children)
        assert "[demo] " in stack.output()
    finally:
        stack.stop()
