"""Run the live dashboard on a Prometheus (or any Prometheus-compatible) query URL.

Settings come from the environment, overridden by flags: ``PROM_URL``
(http://localhost:9090), ``PORT`` (8050), ``MODELMETER_DASHBOARD_HOST`` (127.0.0.1),
``MODELMETER_DASHBOARD_REFRESH`` (2s), and optional basic auth with
``MODELMETER_DASHBOARD_USER`` and ``MODELMETER_DASHBOARD_PASSWORD``.

>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> configure(parser)
>>> args = parser.parse_args(["--prom-url", "http://prom:9090", "--refresh", "5s"])
>>> s = settings_from(args, environ={})
>>> s.prom_url, s.host, s.port, s.refresh_seconds
('http://prom:9090', '127.0.0.1', 8050, 5.0)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from modelmeter.units import parse_duration

__all__ = ["DashboardSettings", "configure", "run", "settings_from"]


@dataclass(frozen=True)
class DashboardSettings:
    """Everything ``modelmeter dashboard`` needs."""

    prom_url: str = "http://localhost:9090"
    host: str = "127.0.0.1"
    port: int = 8050
    refresh_seconds: float = 2.0
    timeout_seconds: float = 1.5
    user: str | None = None
    password: str | None = None


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the dashboard's flags (unset flags fall back to the environment, then defaults)."""
    flags = (
        ("--prom-url", str, "Prometheus query URL [env PROM_URL, default http://localhost:9090]"),
        (
            "--host",
            str,
            "interface to listen on [env MODELMETER_DASHBOARD_HOST, default 127.0.0.1]",
        ),
        ("--port", int, "TCP port [env PORT, default 8050]"),
        ("--refresh", str, "refresh interval [env MODELMETER_DASHBOARD_REFRESH, default 2s]"),
        ("--timeout", str, "timeout of one Prometheus call [default 1.5s]"),
    )
    for flag, cast, text in flags:
        parser.add_argument(flag, type=cast, default=argparse.SUPPRESS, help=text)


def _env_float_duration(environ: Mapping[str, str], name: str, default: float) -> float:
    if name not in environ:
        return default
    try:
        return parse_duration(environ[name])
    except ValueError as exc:
        raise ValueError(f"environment variable {name}={environ[name]!r}: {exc}") from None


def settings_from(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> DashboardSettings:
    """Flags win over environment variables, which win over defaults."""
    env = os.environ if environ is None else environ
    flag = vars(args)
    port_text = env.get("PORT", "8050")
    try:
        port = int(flag.get("port", port_text))
    except ValueError:
        raise ValueError(f"environment variable PORT={port_text!r} is not a TCP port") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is not a TCP port (0-65535)")
    refresh = (
        parse_duration(flag["refresh"])
        if "refresh" in flag
        else _env_float_duration(env, "MODELMETER_DASHBOARD_REFRESH", 2.0)
    )
    if refresh <= 0:
        raise ValueError("the refresh interval must be above 0 s; use e.g. 2s")
    user, password = env.get("MODELMETER_DASHBOARD_USER"), env.get("MODELMETER_DASHBOARD_PASSWORD")
    if bool(user) != bool(password):
        raise ValueError(
            "set both MODELMETER_DASHBOARD_USER and MODELMETER_DASHBOARD_PASSWORD, or neither"
        )
    return DashboardSettings(
        prom_url=flag.get("prom_url") or env.get("PROM_URL", "http://localhost:9090"),
        host=flag.get("host") or env.get("MODELMETER_DASHBOARD_HOST", "127.0.0.1"),
        port=port,
        refresh_seconds=refresh,
        timeout_seconds=parse_duration(flag["timeout"]) if "timeout" in flag else 1.5,
        user=user or None,
        password=password or None,
    )


def run(args: argparse.Namespace) -> int:
    """Serve the dashboard until Ctrl-C."""
    try:
        settings = settings_from(args)
    except ValueError as exc:
        print(f"modelmeter dashboard: {exc}", file=sys.stderr)
        return 2
    from modelmeter.dashboard.app import create_app

    auth = (settings.user, settings.password) if settings.user and settings.password else None
    app = create_app(
        settings.prom_url,
        refresh_seconds=settings.refresh_seconds,
        timeout=settings.timeout_seconds,
        basic_auth=auth,
    )
    print(
        f"modelmeter dashboard on http://{settings.host}:{settings.port} "
        f"(Prometheus {settings.prom_url}, refresh {settings.refresh_seconds:g} s"
        f"{', basic auth' if auth else ''})",
        flush=True,
    )
    # waitress: a production WSGI server (Flask's own server says it is for development only).
    from waitress import serve

    serve(app.server, host=settings.host, port=settings.port, threads=8, ident="modelmeter")
    return 0


if __name__ == "__main__":  # python -m modelmeter.dashboard.cli (same as modelmeter dashboard)
    _parser = argparse.ArgumentParser(prog="python -m modelmeter.dashboard.cli")
    configure(_parser)
    sys.exit(run(_parser.parse_args()))
