"""Run the whole local stack: ``modelmeter up``.

Starts, in order, the collector, Alertmanager, Prometheus, the dashboard and (with ``--demo``)
the demo model service with its traffic; waits until each answers; prints the URLs; and on
Ctrl-C or SIGTERM stops them all (SIGTERM, wait, SIGKILL). If one of them dies, the others are
stopped and the command exits non-zero with the last lines of its log.

This run's Prometheus and Alertmanager configuration is rendered from ``deploy/`` into
``DATA_DIR/run/`` (ports and webhook URL substituted); the data of the collector, Prometheus
and Alertmanager persist in ``DATA_DIR``.

The plan of a run (ports, binaries, token, children) is :mod:`modelmeter.stack_plan`; the
configuration it renders, :mod:`modelmeter.stack_config`; this module parses the flags and
supervises the children.

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
import signal
import sys
import threading
import time
from functools import partial
from pathlib import Path
from types import FrameType

from modelmeter.procs import Child, ChildDied, http_ready, wait_ready
from modelmeter.stack_config import (
    cap_alert_for,
    deploy_dir,
    render_alertmanager,
    render_prometheus,
    write_run_configs,
)
from modelmeter.stack_plan import (
    WRITE_TOKEN_FILE,
    Plan,
    StackError,
    build_children,
    collector_auth,
    note,
    plan_from,
)

__all__ = [
    "WRITE_TOKEN_FILE",
    "Plan",
    "StackError",
    "build_children",
    "cap_alert_for",
    "collector_auth",
    "configure",
    "deploy_dir",
    "plan_from",
    "render_alertmanager",
    "render_prometheus",
    "run",
    "write_run_configs",
]

READY_TIMEOUT = 60.0
# Children whose normal end (exit code 0) does not stop the stack.
MAY_FINISH = frozenset({"demo"})


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


def _module_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


class _Stop(Exception):
    """Raised in the main thread by the SIGTERM handler."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def run(args: argparse.Namespace) -> int:
    """Start the stack and supervise it until Ctrl-C, SIGTERM or a child's death."""
    try:
        plan = plan_from(args)
        deploy = deploy_dir()
    except StackError as exc:
        print(f"modelmeter up: {exc}", file=sys.stderr)
        return 2
    if plan.dashboard_port is not None and not _module_available("modelmeter.dashboard.cli"):
        note("the dashboard (modelmeter.dashboard) is not installed; running without it")
        plan = dataclasses.replace(plan, dashboard_port=None)
    if plan.demo and not _module_available("modelmeter.demo.cli"):
        note("the demo (modelmeter.demo) is not installed; running without it")
        plan = dataclasses.replace(plan, demo=False)
    plan.data_dir.mkdir(parents=True, exist_ok=True)
    plan = collector_auth(plan)
    run_dir = write_run_configs(plan, deploy)
    note(f"configuration of this run in {run_dir}")
    if plan.max_alert_for:
        note(f"alert rules wait at most {plan.max_alert_for} (for:) before firing in this run")

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
                        note(f"{child.name} finished; the rest keeps running")
                        watched.remove(child)
                        continue
                    raise ChildDied(child)
            time.sleep(0.2)
    except (KeyboardInterrupt, _Stop):
        note("stopping")
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
        note("stopped")
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
