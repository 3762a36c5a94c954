"""Run the collector (ingestion API and /metrics): ``modelmeter collector``.

Every flag has a ``MODELMETER_*`` environment variable; a flag wins over the variable.

The collector runs as **one process with one worker** on purpose: each model's window state
(confusion counts, drift histograms, ...) lives in that process's memory, guarded by one lock,
and is checkpointed to its SQLite store. Several workers would each see part of the traffic and
export conflicting series. To handle more traffic or more models, run more collectors and
assign each model to one of them (shard by model); Prometheus scrapes them all and the
recording rules sum their counters.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelmeter.settings import Settings, parse_duration, parse_size, parse_tokens

__all__ = ["configure", "is_loopback", "open_start_refusal", "run"]

_FLAG_CASTS: dict[str, Callable[[str], Any]] = {
    "host": str,
    "port": int,
    "data_dir": Path,
    "write_tokens": parse_tokens,
    "read_tokens": parse_tokens,
    "reference_dir": Path,
    "label_ttl_seconds": parse_duration,
    "max_body_bytes": parse_size,
    "max_events": int,
    "max_models": int,
    "max_versions": int,
    "max_replicas": int,
    "version_idle_seconds": parse_duration,
    "max_model_state_bytes": parse_size,
    "max_model_series": int,
    "max_categories": int,
    "max_reference_bytes": parse_size,
    "store_budget_bytes": parse_size,
    "max_wal_bytes": parse_size,
    "replica_idle_seconds": parse_duration,
    "checkpoint_interval_seconds": parse_duration,
    "sqlite_synchronous": str.upper,
    "log_level": str,
}
_FLAG_NAMES = {
    "label_ttl_seconds": "--label-ttl",
    "replica_idle_seconds": "--replica-idle",
    "version_idle_seconds": "--version-idle",
    "store_budget_bytes": "--store-budget",
    "checkpoint_interval_seconds": "--checkpoint-interval",
}


def configure(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting; the help text names its environment variable and default."""
    if parser.description is None:
        parser.description = __doc__
    for name, env, default, help_text in Settings.describe():
        flag = _FLAG_NAMES.get(name, "--" + name.replace("_", "-"))
        if name in ("protect_metrics", "allow_open", "debug_endpoints"):
            parser.add_argument(
                flag,
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=f"{help_text} [env {env}; default {default}]",
            )
            continue
        shown = default or "(empty: open)"
        parser.add_argument(
            flag,
            dest=name,
            type=_FLAG_CASTS[name],
            default=argparse.SUPPRESS,
            metavar=env.removeprefix("MODELMETER_"),
            help=f"{help_text} [env {env}; default {shown}]",
        )


def is_loopback(host: str) -> bool:
    """``host`` is reachable only from this machine (``localhost``, 127.0.0.0/8, ``::1``).

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("::1")
    (True, True, True)
    >>> is_loopback("0.0.0.0"), is_loopback(""), is_loopback("10.0.0.5"), is_loopback("db")
    (False, False, False, False)
    """
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def open_start_refusal(settings: Settings) -> str | None:
    """Why the collector must not start with ``settings``, or ``None``.

    On a non-loopback address without write tokens anyone who reaches the port could register
    models and send events: the operator must set tokens or say so with ``--allow-open``.

    >>> open_start_refusal(Settings(host="127.0.0.1")) is None
    True
    >>> open_start_refusal(Settings(host="0.0.0.0", write_tokens=("t",))) is None
    True
    >>> open_start_refusal(Settings(host="0.0.0.0", allow_open=True)) is None
    True
    >>> print(open_start_refusal(Settings(host="0.0.0.0")))
    refusing to listen on 0.0.0.0 without write tokens: ... set MODELMETER_WRITE_TOKENS ...
    """
    if is_loopback(settings.host) or settings.write_tokens or settings.allow_open:
        return None
    return (
        f"refusing to listen on {settings.host or 'every interface'} without write tokens: "
        "anyone who reaches the port could register models and send events. "
        "set MODELMETER_WRITE_TOKENS (or --write-tokens) to one or more secret tokens, e.g. "
        "MODELMETER_WRITE_TOKENS=$(python -c 'import secrets; print(secrets.token_hex(32))'), "
        "or start it open on purpose with --allow-open (MODELMETER_ALLOW_OPEN=true)"
    )


def run(args: argparse.Namespace) -> int:
    """Serve the collector with uvicorn until SIGINT/SIGTERM (then checkpoint and exit 0)."""
    import uvicorn

    from modelmeter.service.app import create_app

    names = [row[0] for row in Settings.describe()]
    try:
        settings = Settings.from_env(**{n: getattr(args, n, None) for n in names})
    except ValueError as exc:
        print(f"modelmeter collector: {exc}")
        return 2
    refusal = open_start_refusal(settings)
    if refusal is not None:
        print(f"modelmeter collector: {refusal}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        workers=1,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0
