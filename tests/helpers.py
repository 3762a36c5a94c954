"""Shared test support: free ports, deadline waits and the real programs on loopback.

Nothing here mocks a component: every process started is the real program (the collector,
Prometheus, Alertmanager), bound to 127.0.0.1 on a free port and stopped at the end.

Under ``CI=true`` a missing program is a test failure, never a skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import httpx
import pytest

T = TypeVar("T")

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"


def missing(message: str) -> NoReturn:
    """A component the test needs is not here: skip locally, fail under CI (never skip there)."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def require_binary(*names: str) -> str:
    """Return the path of the first of ``names`` on PATH; skip (or fail under CI) if none is.

    >>> require_binary("sh").endswith("sh")
    True
    """
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    message = (
        f"{' or '.join(names)} not found on PATH; install it with: apt-get install -y "
        "--no-install-recommends prometheus prometheus-alertmanager chromium chromium-driver"
    )
    missing(message)


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    predicate: Callable[[], T | bool | None],
    timeout: float = 30.0,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """Poll ``predicate`` until it returns something truthy; return it, or fail at the deadline.

    Exceptions raised by the predicate count as "not yet" (the last one is reported).

    >>> wait_until(lambda: 42, timeout=1)
    42
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value  # type: ignore[return-value]
        except Exception as exc:  # the condition may raise while a service starts
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(interval)


def http_ok(url: str, **kwargs: Any) -> bool:
    """True when GET ``url`` answers 2xx."""
    try:
        return httpx.get(url, timeout=2.0, **kwargs).is_success
    except httpx.HTTPError:
        return False


class ManagedProcess:
    """A real program started for a test: logs go to a file, stop() never leaves it behind.

    Parameters
    ----------
    name: short name used in messages.
    argv: the command.
    log_path: where stdout and stderr go (read back by ``log()`` for failure messages).
    ready_url: polled until it answers 2xx by ``start()``.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        ready_url: str | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.ready_url = ready_url
        self.env = env
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.proc = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(self.env or {})},
            cwd=self.cwd,
            start_new_session=True,
        )
        log.close()
        if self.ready_url:
            url = self.ready_url

            def ready() -> bool:
                if self.proc is not None and self.proc.poll() is not None:
                    raise AssertionError(
                        f"{self.name} exited with {self.proc.returncode}:\n{self.log()}"
                    )
                return http_ok(url)

            try:
                wait_until(ready, timeout=timeout, what=f"{self.name} at {url}")
            except AssertionError as exc:
                self.stop()
                raise AssertionError(f"{exc}\n--- {self.name} log ---\n{self.log()}") from None
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        """SIGKILL the process group, as a crash would, and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait, then SIGKILL; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def __enter__(self) -> ManagedProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def collector_process(
    tmp: Path,
    port: int | None = None,
    data_dir: Path | None = None,
    env: dict[str, str] | None = None,
) -> ManagedProcess:
    """The real collector (``python -m modelmeter collector``) on 127.0.0.1, not yet started.

    Its reference directory (MODELMETER_REFERENCE_DIR) is ``tmp`` unless ``env`` sets one, so
    a spec may name a reference file the test wrote there.
    """
    port = port or free_port()
    env = {"MODELMETER_REFERENCE_DIR": str(tmp), **(env or {})}
    data_dir = data_dir or tmp / "collector-data"
    proc = ManagedProcess(
        "collector",
        [
            sys.executable,
            "-m",
            "modelmeter",
            "collector",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        tmp / f"collector-{port}.log",
        ready_url=f"http://127.0.0.1:{port}/readyz",
        env=env,
    )
    proc.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    proc.port = port  # type: ignore[attr-defined]
    proc.reference_dir = Path(env["MODELMETER_REFERENCE_DIR"])  # type: ignore[attr-defined]
    return proc


def prometheus_process(
    tmp: Path, config_text: str, rule_files: Sequence[Path] = ()
) -> ManagedProcess:
    """The real Prometheus on 127.0.0.1 with ``config_text`` (rule files copied beside it)."""
    binary = require_binary("prometheus")
    port = free_port()
    home = tmp / f"prometheus-{port}"
    (home / "rules").mkdir(parents=True, exist_ok=True)
    for rule in rule_files:
        shutil.copy(rule, home / "rules" / rule.name)
    (home / "prometheus.yml").write_text(config_text)
    proc = ManagedProcess(
        "prometheus",
        [
            binary,
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
            "--rules.alert.resend-delay=2s",
            "--log.level=warn",
        ],
        home / "prometheus.log",
        ready_url=f"http://127.0.0.1:{port}/-/ready",
        cwd=home,
    )
    proc.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    proc.port = port  # type: ignore[attr-defined]
    return proc


def alertmanager_process(tmp: Path, config_text: str) -> ManagedProcess:
    """The real Alertmanager (Debian: prometheus-alertmanager) on 127.0.0.1, gossip off."""
    binary = require_binary("prometheus-alertmanager", "alertmanager")
    port = free_port()
    home = tmp / f"alertmanager-{port}"
    home.mkdir(parents=True, exist_ok=True)
    (home / "alertmanager.yml").write_text(config_text)
    proc = ManagedProcess(
        "alertmanager",
        [
            binary,
            f"--config.file={home / 'alertmanager.yml'}",
            f"--storage.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        home / "alertmanager.log",
        ready_url=f"http://127.0.0.1:{port}/-/ready",
    )
    proc.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    proc.port = port  # type: ignore[attr-defined]
    return proc


def victoria_metrics(tmp: Path) -> ManagedProcess:
    """A real VictoriaMetrics single node on 127.0.0.1 (not yet started), its data in ``tmp``;
    queries see samples at once (no latency offset, no cache)."""
    binary = require_binary("victoria-metrics")
    port = free_port()
    proc = ManagedProcess(
        "victoria-metrics",
        [
            binary,
            f"-storageDataPath={tmp / 'vm-data'}",
            f"-httpListenAddr=127.0.0.1:{port}",
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-loggerLevel=ERROR",
        ],
        tmp / "victoria-metrics.log",
        ready_url=f"http://127.0.0.1:{port}/health",
    )
    proc.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    return proc


def prom_query(prom_url: str, expr: str) -> list[dict[str, Any]]:
    """Instant query against a real Prometheus; returns the result vector."""
    response = httpx.get(f"{prom_url}/api/v1/query", params={"query": expr}, timeout=5.0)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def prom_alerts(prom_url: str) -> list[dict[str, Any]]:
    """The alerts Prometheus holds right now (pending and firing)."""
    response = httpx.get(f"{prom_url}/api/v1/alerts", timeout=5.0)
    response.raise_for_status()
    return list(response.json()["data"]["alerts"])


@contextlib.contextmanager
def running(*procs: ManagedProcess) -> Iterator[tuple[ManagedProcess, ...]]:
    """Start processes in order, stop them in reverse order, whatever happens."""
    started: list[ManagedProcess] = []
    try:
        for proc in procs:
            proc.start()
            started.append(proc)
        yield procs
    finally:
        for proc in reversed(started):
            proc.stop()
