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
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelmeter.settings import (
    Settings,
    open_start_refusal,
    optional_path,
    parse_sample_rows,
    parse_tokens,
)
from modelmeter.units import parse_duration, parse_size

__all__ = ["configure", "run"]

_FLAG_CASTS: dict[str, Callable[[str], Any]] = {
    "host": str,
    "port": int,
    "data_dir": Path,
    "write_tokens": parse_tokens,
    "read_tokens": parse_tokens,
    "reference_dir": optional_path,
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
    "shift_refit_interval_seconds": parse_duration,
    "shift_sample_rows": parse_sample_rows,
    "sqlite_synchronous": str.upper,
    "log_level": str,
}
_FLAG_NAMES = {
    "label_ttl_seconds": "--label-ttl",
    "replica_idle_seconds": "--replica-idle",
    "version_idle_seconds": "--version-idle",
    "store_budget_bytes": "--store-budget",
    "checkpoint_interval_seconds": "--checkpoint-interval",
    "shift_refit_interval_seconds": "--shift-refit-interval",
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
