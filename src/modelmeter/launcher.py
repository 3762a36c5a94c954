"""Run the whole local stack: ``modelmeter up``.

Starts, in order, the collector, Alertmanager, Prometheus, the dashboard and (with ``--demo``)
the demo model service with its traffic; waits until each answers; prints the URLs; and on
Ctrl-C or SIGTERM stops them all (SIGTERM, wait, SIGKILL). If one of them dies, the others are
stopped and the command exits non-zero with the last lines of its log.

This run's Prometheus and Alertmanager configuration is rendered from ``deploy/`` into
``DATA_DIR/run/`` (ports and webhook URL substituted); the data of the collector, Prometheus
and Alertmanager persist in ``DATA_DIR``.

>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> configure(parser)
>>> args = parser.parse_args(["--prometheus-port", "19090", "--no-dashboard"])
>>> args.prometheus_port, args.alertmanager_port, args.dashboard
(19090, 9093, False)
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import re
import secrets
import shutil
import signal
import sys
import sysconfig
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from modelmeter.procs import Child, ChildDied, http_ready, port_is_free, wait_ready
from modelmeter.settings import is_loopback, parse_bool, parse_tokens
from modelmeter.units import parse_duration, prometheus_duration

__all__ = [
    "StackError",
    "collector_auth",
    "configure",
    "deploy_dir",
    "render_alertmanager",
    "render_prometheus",
    "run",
]

DEB_PACKAGES = "apt-get install -y --no-install-recommends prometheus prometheus-alertmanager"
READY_TIMEOUT = 60.0
#: In DATA_DIR: the write token generated for a collector on a non-loopback address.
WRITE_TOKEN_FILE = "write-token"
# Children whose normal end (exit code 0) does not stop the stack.
MAY_FINISH = frozenset({"demo"})


class StackError(RuntimeError):
    """A problem found before or while starting the stack; the message says what to do."""


def deploy_dir() -> Path:
    """The ``deploy/`` directory: in the source tree, else as a wheel installs it.

    >>> (deploy_dir() / "prometheus" / "prometheus.yml").is_file()
    True
    """
    here = Path(__file__).resolve()
    installed = Path(sysconfig.get_path("data")) / "share" / "modelmeter" / "deploy"
    candidates = [here.parents[2] / "deploy", installed]
    for candidate in candidates:
        if (candidate / "prometheus" / "prometheus.yml").is_file():
            return candidate
    raise StackError(
        "cannot find the deploy/ directory (prometheus.yml, rules, alertmanager.yml) next to "
        f"the modelmeter package; looked in {', '.join(map(str, candidates))}"
    )


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the flags of ``modelmeter up``."""
    env_port = os.environ.get("PORT")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address the dashboard listens on (0.0.0.0 to reach it from other machines); "
        "the collector, Prometheus and Alertmanager listen on 127.0.0.1 unless --collector-host",
    )
    parser.add_argument(
        "--collector-host",
        default="127.0.0.1",
        help="address the collector listens on; on a non-loopback address without "
        f"MODELMETER_WRITE_TOKENS a write token is generated into DATA_DIR/{WRITE_TOKEN_FILE}",
    )
    parser.add_argument(
        "--allow-open",
        action="store_true",
        help="let the collector take writes without a token on a non-loopback "
        "--collector-host (anyone who reaches it can register models and send events) "
        "[env MODELMETER_ALLOW_OPEN]",
    )
    parser.add_argument(
        "--dashboard-port",
        type=int,
        default=int(env_port) if env_port and env_port.isdigit() else 8050,
        help="dashboard port [env PORT]",
    )
    parser.add_argument("--prometheus-port", type=int, default=9090, help="Prometheus port")
    parser.add_argument("--alertmanager-port", type=int, default=9093, help="Alertmanager port")
    parser.add_argument("--collector-port", type=int, default=8000, help="collector port")
    parser.add_argument(
        "--no-dashboard", dest="dashboard", action="store_false", help="do not start the dashboard"
    )
    parser.add_argument(
        "--demo", action="store_true", help="also run the demo model service and its traffic"
    )
    parser.add_argument(
        "--demo-port", type=int, default=8001, help="port of the demo model service (--demo)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("modelmeter-data"),
        help="where the collector, Prometheus and Alertmanager keep their data",
    )
    parser.add_argument(
        "--max-alert-for",
        default=None,
        metavar="DURATION",
        help="shorten every alert rule's `for:` to at most this (e.g. 1m) in this run's copy of "
        "the rules; --demo sets 1m, because its replay compresses years into minutes",
    )
    parser.add_argument(
        "--webhook-url",
        default=None,
        help="where Alertmanager posts alerts (default: the URL in deploy/alertmanager/"
        "alertmanager.yml, http://127.0.0.1:5001/)",
    )


@dataclass(frozen=True)
class Plan:
    """The ports, paths and programs of one run, resolved before anything starts."""

    host: str
    collector_host: str
    collector_port: int
    prometheus_port: int
    alertmanager_port: int
    dashboard_port: int | None
    demo: bool
    demo_port: int
    data_dir: Path
    webhook_url: str | None
    max_alert_for: str | None
    prometheus_bin: str
    alertmanager_bin: str
    allow_open: bool = False
    #: The write token generated for this run's collector (see :func:`collector_auth`).
    write_token: str | None = None

    @property
    def collector_url(self) -> str:
        return f"http://{_client_host(self.collector_host)}:{self.collector_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.alertmanager_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{_client_host(self.host)}:{self.dashboard_port}"


def _client_host(bind: str) -> str:
    return "127.0.0.1" if bind in {"0.0.0.0", "", "::"} else bind


def _find_binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise StackError(
        f"{' / '.join(names)} not found on PATH: install it (Debian: {DEB_PACKAGES}; "
        "elsewhere: https://prometheus.io/download/)"
    )


def _module_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


def plan_from(args: argparse.Namespace) -> Plan:
    """Check binaries and ports; raise StackError with a one-line fix for the first problem."""
    prometheus_bin = _find_binary("prometheus")
    alertmanager_bin = _find_binary("prometheus-alertmanager", "alertmanager")
    dashboard_port: int | None = args.dashboard_port if args.dashboard else None
    ports = [
        ("collector", args.collector_host, args.collector_port, "--collector-port"),
        ("Prometheus", "127.0.0.1", args.prometheus_port, "--prometheus-port"),
        ("Alertmanager", "127.0.0.1", args.alertmanager_port, "--alertmanager-port"),
    ]
    if dashboard_port is not None:
        ports.append(("dashboard", args.host, dashboard_port, "--dashboard-port"))
    if args.demo:
        ports.append(("demo model service", "127.0.0.1", args.demo_port, "--demo-port"))
    seen: dict[int, str] = {}
    for name, host, port, flag in ports:
        if not 0 < port < 65536:
            raise StackError(f"{flag} {port} is not a TCP port (1-65535)")
        if port in seen:
            raise StackError(f"{name} and {seen[port]} both use port {port}; change {flag}")
        seen[port] = name
        if not port_is_free(host, port):
            raise StackError(
                f"port {port} on {host} ({name}) is already in use; stop what uses it or "
                f"choose another port with {flag}"
            )
    return Plan(
        host=args.host,
        collector_host=args.collector_host,
        collector_port=args.collector_port,
        prometheus_port=args.prometheus_port,
        alertmanager_port=args.alertmanager_port,
        dashboard_port=dashboard_port,
        demo=args.demo,
        demo_port=args.demo_port,
        data_dir=Path(args.data_dir).resolve(),
        webhook_url=args.webhook_url,
        max_alert_for=_duration_arg(args.max_alert_for or ("1m" if args.demo else None)),
        prometheus_bin=prometheus_bin,
        alertmanager_bin=alertmanager_bin,
        allow_open=bool(getattr(args, "allow_open", False)),
    )


_FOR_LINE = re.compile(r"(?m)^(\s*for:\s*)(\S+)")


def _duration_arg(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return prometheus_duration(value)
    except ValueError as exc:
        raise StackError(f"--max-alert-for: {exc}") from None


def cap_alert_for(rules_text: str, cap: str) -> str:
    r"""Shorten every ``for:`` in a rule file to at most ``cap``, keeping comments and layout.

    >>> print(cap_alert_for("- alert: A\n  for: 15m\n- alert: B\n  for: 30s\n", "1m"))
    - alert: A
      for: 1m
    - alert: B
      for: 30s
    <BLANKLINE>
    """
    limit = parse_duration(cap)

    def shorten(match: re.Match[str]) -> str:
        keep = parse_duration(match.group(2)) <= limit
        return match.group(1) + (match.group(2) if keep else cap)

    return _FOR_LINE.sub(shorten, rules_text)


def render_prometheus(
    template: str,
    collector_target: str,
    alertmanager_target: str,
    scrape_token_file: Path | None = None,
    **global_overrides: str,
) -> str:
    """This run's prometheus.yml: the shipped one with the collector and Alertmanager targets.

    >>> text = (deploy_dir() / "prometheus" / "prometheus.yml").read_text()
    >>> out = yaml.safe_load(render_prometheus(text, "127.0.0.1:18000", "127.0.0.1:19093"))
    >>> out["scrape_configs"][0]["static_configs"][0]["targets"]
    ['127.0.0.1:18000']
    >>> out["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    ['127.0.0.1:19093']
    """
    config: dict[str, Any] = yaml.safe_load(template)
    config["global"].update(global_overrides)
    for job in config["scrape_configs"]:
        if job["job_name"] == "modelmeter":
            job["static_configs"] = [{"targets": [collector_target]}]
            if scrape_token_file is not None:  # the collector's /metrics needs a read token
                job["authorization"] = {
                    "type": "Bearer",
                    "credentials_file": str(scrape_token_file),
                }
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [alertmanager_target]}]}]
    header = "# Rendered by modelmeter from deploy/prometheus/prometheus.yml; edit that file.\n"
    return header + yaml.safe_dump(config, sort_keys=False)


def render_alertmanager(template: str, webhook_url: str | None, **route_overrides: str) -> str:
    """This run's alertmanager.yml: every webhook receiver posts to ``webhook_url`` if given.

    >>> text = (deploy_dir() / "alertmanager" / "alertmanager.yml").read_text()
    >>> out = yaml.safe_load(render_alertmanager(text, "http://127.0.0.1:7000/hook"))
    >>> {c["url"] for r in out["receivers"] for c in r.get("webhook_configs", [])}
    {'http://127.0.0.1:7000/hook'}
    """
    config: dict[str, Any] = yaml.safe_load(template)
    if webhook_url:
        for receiver in config["receivers"]:
            for webhook in receiver.get("webhook_configs", []):
                webhook["url"] = webhook_url
    config["route"].update(route_overrides)
    header = "# Rendered by modelmeter from deploy/alertmanager/alertmanager.yml; edit that file.\n"
    return header + yaml.safe_dump(config, sort_keys=False)


def write_run_configs(plan: Plan, deploy: Path) -> Path:
    """Render this run's configuration into DATA_DIR/run/ and return that directory."""
    run_dir = plan.data_dir / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    (run_dir / "rules").mkdir(parents=True)
    for rule_file in sorted((deploy / "prometheus" / "rules").glob("*.yml")):
        text = rule_file.read_text()
        if plan.max_alert_for:
            text = cap_alert_for(text, plan.max_alert_for)
        (run_dir / "rules" / rule_file.name).write_text(text)
    token = _scrape_token(plan)
    token_file = None
    if token is not None:
        token_file = run_dir / "scrape-token"
        token_file.touch(mode=0o600)
        token_file.write_text(token)
    (run_dir / "prometheus.yml").write_text(
        render_prometheus(
            (deploy / "prometheus" / "prometheus.yml").read_text(),
            f"{_client_host(plan.collector_host)}:{plan.collector_port}",
            f"127.0.0.1:{plan.alertmanager_port}",
            token_file,
        )
    )
    (run_dir / "alertmanager.yml").write_text(
        render_alertmanager(
            (deploy / "alertmanager" / "alertmanager.yml").read_text(), plan.webhook_url
        )
    )
    return run_dir


def build_children(plan: Plan, run_dir: Path) -> list[tuple[Child, str | None]]:
    """The programs to start, in order, each with its readiness URL (None: alive is enough)."""
    python = sys.executable
    data = plan.data_dir
    children: list[tuple[Child, str | None]] = [
        (
            Child(
                "collector",
                [
                    python,
                    "-m",
                    "modelmeter",
                    "collector",
                    "--host",
                    plan.collector_host,
                    "--port",
                    str(plan.collector_port),
                    "--data-dir",
                    str(data / "collector"),
                    *(["--allow-open"] if plan.allow_open else []),
                ],
                env={"MODELMETER_WRITE_TOKENS": plan.write_token} if plan.write_token else None,
            ),
            f"{plan.collector_url}/readyz",
        ),
        (
            Child(
                "alertmanager",
                [
                    plan.alertmanager_bin,
                    f"--config.file={run_dir / 'alertmanager.yml'}",
                    f"--storage.path={data / 'alertmanager'}",
                    f"--web.listen-address=127.0.0.1:{plan.alertmanager_port}",
                    "--cluster.listen-address=",
                ],
            ),
            f"{plan.alertmanager_url}/-/ready",
        ),
        (
            Child(
                "prometheus",
                [
                    plan.prometheus_bin,
                    f"--config.file={run_dir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={data / 'prometheus'}",
                    f"--web.listen-address=127.0.0.1:{plan.prometheus_port}",
                    "--web.enable-lifecycle",
                    "--rules.alert.resend-delay=2s",
                ],
                cwd=str(run_dir),
            ),
            f"{plan.prometheus_url}/-/ready",
        ),
    ]
    if plan.dashboard_port is not None:
        children.append(
            (
                Child(
                    "dashboard",
                    [
                        python,
                        "-m",
                        "modelmeter",
                        "dashboard",
                        "--host",
                        plan.host,
                        "--port",
                        str(plan.dashboard_port),
                        "--prom-url",
                        plan.prometheus_url,
                    ],
                    env={"PROM_URL": plan.prometheus_url, "PORT": str(plan.dashboard_port)},
                ),
                f"{plan.dashboard_url}/healthz",
            )
        )
    if plan.demo:
        children.append(
            (
                Child(
                    "demo",
                    [
                        python,
                        "-m",
                        "modelmeter",
                        "demo",
                        "--collector-url",
                        plan.collector_url,
                        "--model-port",
                        str(plan.demo_port),
                        "--data-dir",
                        str(plan.data_dir),
                        "--loop",
                    ],
                    env=_demo_token(plan),
                ),
                None,
            )
        )
    return children


def _write_tokens(plan: Plan) -> tuple[str, ...]:
    """The collector's write tokens in this run: from the environment, else the generated one."""
    tokens = parse_tokens(os.environ.get("MODELMETER_WRITE_TOKENS", ""))
    if not tokens and plan.write_token:
        tokens = (plan.write_token,)
    return tokens


def _scrape_token(plan: Plan) -> str | None:
    """The token Prometheus sends to /metrics when the collector protects it (else None)."""
    try:
        protected = parse_bool(os.environ.get("MODELMETER_PROTECT_METRICS", ""))
    except ValueError:
        return None  # the collector refuses to start with a message that says why
    tokens = parse_tokens(os.environ.get("MODELMETER_READ_TOKENS", "")) or _write_tokens(plan)
    return tokens[0] if protected and tokens else None


def _demo_token(plan: Plan) -> dict[str, str]:
    """The demo writes to this run's collector: give it a write token when writes need one."""
    if "MODELMETER_TOKEN" in os.environ:
        return {}
    tokens = _write_tokens(plan)
    return {"MODELMETER_TOKEN": tokens[0]} if tokens else {}


def collector_auth(plan: Plan) -> Plan:
    """``plan`` with what its collector needs to start on ``plan.collector_host``.

    On loopback, with ``MODELMETER_WRITE_TOKENS`` set, or with ``--allow-open`` /
    ``MODELMETER_ALLOW_OPEN``, nothing changes. Otherwise (a container's ``0.0.0.0`` with no
    token configured) the collector would refuse to start open: a write token is generated
    once into ``DATA_DIR/write-token`` (mode 0600), printed, and reused at every later start.
    """
    if is_loopback(plan.collector_host) or plan.allow_open:
        return plan
    if parse_tokens(os.environ.get("MODELMETER_WRITE_TOKENS", "")):
        return plan
    try:
        if parse_bool(os.environ.get("MODELMETER_ALLOW_OPEN", "")):
            return plan
    except ValueError:
        return plan  # the collector refuses to start with a message that says why
    path = plan.data_dir / WRITE_TOKEN_FILE
    token = path.read_text().strip() if path.is_file() else ""
    if token:
        _note(
            f"the collector listens on {plan.collector_host} with the write token in {path} "
            "(set MODELMETER_WRITE_TOKENS to choose your own)"
        )
    else:
        token = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        _note(
            f"the collector listens on {plan.collector_host} and MODELMETER_WRITE_TOKENS is "
            f"unset: generated a write token into {path}: {token} -- model services send it as "
            "'Authorization: Bearer <token>' (SDK: MODELMETER_TOKEN); set "
            "MODELMETER_WRITE_TOKENS to choose your own, or pass --allow-open to run open"
        )
    return dataclasses.replace(plan, write_token=token)


class _Stop(Exception):
    """Raised in the main thread by the SIGTERM handler."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def _note(message: str) -> None:
    print(f"modelmeter up: {message}", flush=True)


def run(args: argparse.Namespace) -> int:
    """Start the stack and supervise it until Ctrl-C, SIGTERM or a child's death."""
    try:
        plan = plan_from(args)
        deploy = deploy_dir()
    except StackError as exc:
        print(f"modelmeter up: {exc}", file=sys.stderr)
        return 2
    if plan.dashboard_port is not None and not _module_available("modelmeter.dashboard.cli"):
        _note("the dashboard (modelmeter.dashboard) is not installed; running without it")
        plan = dataclasses.replace(plan, dashboard_port=None)
    if plan.demo and not _module_available("modelmeter.demo.cli"):
        _note("the demo (modelmeter.demo) is not installed; running without it")
        plan = dataclasses.replace(plan, demo=False)
    plan.data_dir.mkdir(parents=True, exist_ok=True)
    plan = collector_auth(plan)
    run_dir = write_run_configs(plan, deploy)
    _note(f"configuration of this run in {run_dir}")
    if plan.max_alert_for:
        _note(f"alert rules wait at most {plan.max_alert_for} (for:) before firing in this run")

    started: list[Child] = []
    on_main = _main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_stop) if on_main else None
    # SIGINT too, explicitly: a shell starts background jobs with SIGINT ignored, and
    # `kill -INT` must still stop the stack as Ctrl-C does.
    previous_int = signal.signal(signal.SIGINT, _raise_stop) if on_main else None
    code = 0
    try:
        for child, ready_url in build_children(plan, run_dir):
            started.append(child)  # first: a signal right after the start must stop it too
            child.start()
            if ready_url is not None:
                wait_ready(child, partial(http_ready, ready_url), READY_TIMEOUT, ready_url)
        _print_urls(plan)
        watched = list(started)
        while True:
            for child in list(watched):
                if not child.alive():
                    child.wait(timeout=5)
                    if child.name in MAY_FINISH and child.returncode == 0:
                        _note(f"{child.name} finished; the rest keeps running")
                        watched.remove(child)
                        continue
                    raise ChildDied(child)
            time.sleep(0.2)
    except (KeyboardInterrupt, _Stop):
        _note("stopping")
    except (ChildDied, TimeoutError) as exc:
        print(f"modelmeter up: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        # A second Ctrl-C or SIGTERM must not interrupt the shutdown and leave orphans.
        if on_main:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        for child in reversed(started):
            child.stop()
        if on_main:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)
    if code == 0:
        _note("stopped")
    return code


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _print_urls(plan: Plan) -> None:
    lines = [
        "modelmeter is up:",
        f"  collector     {plan.collector_url}   (API docs {plan.collector_url}/docs)",
        f"  Prometheus    {plan.prometheus_url}",
        f"  Alertmanager  {plan.alertmanager_url}",
    ]
    if plan.dashboard_port is not None:
        lines.insert(1, f"  dashboard     {plan.dashboard_url}")
    if plan.demo:
        lines.append("  demo          sending its traffic to the collector")
    lines.append(f"  data          {plan.data_dir}")
    lines.append("Press Ctrl-C to stop.")
    print("\n".join(lines), flush=True)
