"""What one ``modelmeter up`` runs: its ports, paths and binaries, checked before anything
starts (:class:`Plan`), the collector's write token, and the command line of each child.

>>> plan = Plan("127.0.0.1", "0.0.0.0", 8000, 9090, 9093, None, False, 8001,
...             Path("/tmp/d"), None, None, "prometheus", "alertmanager")
>>> plan.collector_url, [child.name for child, _ in build_children(plan, Path("/tmp/d/run"))]
('http://127.0.0.1:8000', ['collector', 'alertmanager', 'prometheus'])
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import secrets
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from modelmeter.procs import Child, port_is_free
from modelmeter.settings import is_loopback, parse_bool, parse_tokens
from modelmeter.units import prometheus_duration

__all__ = [
    "DEB_PACKAGES",
    "WRITE_TOKEN_FILE",
    "Plan",
    "StackError",
    "build_children",
    "client_host",
    "collector_auth",
    "note",
    "plan_from",
    "scrape_token",
]

DEB_PACKAGES = "apt-get install -y --no-install-recommends prometheus prometheus-alertmanager"
#: In DATA_DIR: the write token generated for a collector on a non-loopback address.
WRITE_TOKEN_FILE = "write-token"


class StackError(RuntimeError):
    """A problem found before or while starting the stack; the message says what to do."""


def note(message: str) -> None:
    print(f"modelmeter up: {message}", flush=True)


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
        return f"http://{client_host(self.collector_host)}:{self.collector_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.alertmanager_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{client_host(self.host)}:{self.dashboard_port}"


def client_host(bind: str) -> str:
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


def _duration_arg(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return prometheus_duration(value)
    except ValueError as exc:
        raise StackError(f"--max-alert-for: {exc}") from None


def _modelmeter(command: str, *args: str) -> list[str]:
    """The command line of a ``modelmeter`` subcommand run by this interpreter."""
    return [sys.executable, "-m", "modelmeter", command, *args]


def build_children(plan: Plan, run_dir: Path) -> list[tuple[Child, str | None]]:
    """The programs to start, in order, each with its readiness URL (None: alive is enough)."""
    data = plan.data_dir
    collector = _modelmeter(
        "collector", "--host", plan.collector_host, "--port", str(plan.collector_port),
        "--data-dir", str(data / "collector"), *(["--allow-open"] if plan.allow_open else []),
    )  # fmt: skip
    alertmanager = [
        plan.alertmanager_bin,
        f"--config.file={run_dir / 'alertmanager.yml'}",
        f"--storage.path={data / 'alertmanager'}",
        f"--web.listen-address=127.0.0.1:{plan.alertmanager_port}",
        "--cluster.listen-address=",
    ]
    prometheus = [
        plan.prometheus_bin,
        f"--config.file={run_dir / 'prometheus.yml'}",
        f"--storage.tsdb.path={data / 'prometheus'}",
        f"--web.listen-address=127.0.0.1:{plan.prometheus_port}",
        "--web.enable-lifecycle",
        "--rules.alert.resend-delay=2s",
    ]
    tokens = {"MODELMETER_WRITE_TOKENS": plan.write_token} if plan.write_token else None
    children: list[tuple[Child, str | None]] = [
        (Child("collector", collector, env=tokens), f"{plan.collector_url}/readyz"),
        (Child("alertmanager", alertmanager), f"{plan.alertmanager_url}/-/ready"),
        (Child("prometheus", prometheus, cwd=str(run_dir)), f"{plan.prometheus_url}/-/ready"),
    ]
    if plan.dashboard_port is not None:
        port = str(plan.dashboard_port)
        dashboard = _modelmeter(
            "dashboard", "--host", plan.host, "--port", port, "--prom-url", plan.prometheus_url
        )
        env = {"PROM_URL": plan.prometheus_url, "PORT": port}
        children.append((Child("dashboard", dashboard, env=env), f"{plan.dashboard_url}/healthz"))
    if plan.demo:
        demo = _modelmeter(
            "demo", "--collector-url", plan.collector_url, "--model-port", str(plan.demo_port),
            "--data-dir", str(plan.data_dir), "--loop",
        )  # fmt: skip
        children.append((Child("demo", demo, env=_demo_token(plan)), None))
    return children


def _write_tokens(plan: Plan) -> tuple[str, ...]:
    """The collector's write tokens in this run: from the environment, else the generated one."""
    tokens = parse_tokens(os.environ.get("MODELMETER_WRITE_TOKENS", ""))
    if not tokens and plan.write_token:
        tokens = (plan.write_token,)
    return tokens


def scrape_token(plan: Plan) -> str | None:
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
        note(
            f"the collector listens on {plan.collector_host} with the write token in {path} "
            "(set MODELMETER_WRITE_TOKENS to choose your own)"
        )
    else:
        token = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        note(
            f"the collector listens on {plan.collector_host} and MODELMETER_WRITE_TOKENS is "
            f"unset: generated a write token into {path}: {token} -- model services send it as "
            "'Authorization: Bearer <token>' (SDK: MODELMETER_TOKEN); set "
            "MODELMETER_WRITE_TOKENS to choose your own, or pass --allow-open to run open"
        )
    return dataclasses.replace(plan, write_token=token)
