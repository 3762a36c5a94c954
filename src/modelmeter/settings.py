"""Settings of the collector: ``MODELMETER_*`` environment variables, overridden by flags.

Every setting has a default, an explicit cast and one environment variable; a bad value fails
at startup with a message naming the variable and what it accepts.

>>> s = Settings.from_env({"MODELMETER_PORT": "9000", "MODELMETER_LABEL_TTL": "2h"})
>>> s.port, s.label_ttl_seconds
(9000, 7200.0)
>>> parse_duration("5m"), parse_size("10MiB")
(300.0, 10485760)
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelmeter.units import format_duration, parse_duration, parse_size

_SYNC_MODES = ("FULL", "NORMAL")
_DEFAULT_DATA_DIR = Path("modelmeter-data")


def parse_bool(text: str) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off`` (any case)."""
    value = str(text).strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"{text!r} is not a boolean; write true or false")


def parse_tokens(text: str) -> tuple[str, ...]:
    """Comma-separated tokens; blanks dropped. An empty tuple means "open"."""
    return tuple(t.strip() for t in str(text).split(",") if t.strip())


def optional_path(text: str) -> Path | None:
    """A directory; an empty value means unset (never the working directory)."""
    return Path(text) if str(text).strip() else None


def _positive_int(text: str) -> int:
    value = int(str(text).strip())
    if value < 1:
        raise ValueError(f"{text!r} must be a positive integer")
    return value


def _port(text: str) -> int:
    value = int(str(text).strip())
    if not 0 <= value <= 65535:
        raise ValueError(f"{text!r} is not a TCP port (0-65535)")
    return value


#: the live sample's bounds: at least the rows a refit needs (ShiftSettings.min_live_rows)
SHIFT_SAMPLE_ROWS_RANGE = (500, 100_000)


def parse_sample_rows(text: str) -> int:
    """MODELMETER_SHIFT_SAMPLE_ROWS: a whole number of rows in 500..100,000.

    >>> parse_sample_rows("5000"), parse_sample_rows("20_000")
    (5000, 20000)
    >>> parse_sample_rows("100")
    Traceback (most recent call last):
    ...
    ValueError: '100' is not in 500-100000 (rows of the live sample)
    """
    low, high = SHIFT_SAMPLE_ROWS_RANGE
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number of rows ({low}-{high})") from None
    if not low <= value <= high:
        raise ValueError(f"{text!r} is not in {low}-{high} (rows of the live sample)")
    return value


def _sync_mode(text: str) -> str:
    value = str(text).strip().upper()
    if value not in _SYNC_MODES:
        raise ValueError(f"{text!r} is not one of {', '.join(_SYNC_MODES)}")
    return value


def _setting(env: str, cast: Callable[[str], Any], default: Any, help: str) -> Any:
    return field(default=default, metadata={"env": env, "cast": cast, "help": help})


@dataclass(frozen=True)
class Settings:
    """Everything the collector needs; build with :meth:`from_env` or ``Settings(...)``.

    Examples
    --------
    >>> Settings(write_tokens=("s3cret",)).auth_enabled_for_writes
    True
    """

    host: str = _setting("MODELMETER_HOST", str, "127.0.0.1", "interface to listen on")
    port: int = _setting("MODELMETER_PORT", _port, 8000, "TCP port")
    data_dir: Path = _setting(  # noqa: RUF009 - Path is immutable
        "MODELMETER_DATA_DIR", Path, _DEFAULT_DATA_DIR, "directory of the SQLite store"
    )
    reference_dir: Path | None = _setting(  # noqa: RUF009 - Path is immutable
        "MODELMETER_REFERENCE_DIR",
        optional_path,
        None,
        "the only directory a registered spec's reference.path is read from (a regular file "
        "inside it; a relative path is read from it); unset: paths are refused and the "
        "reference must be uploaded (multipart field 'reference')",
    )
    write_tokens: tuple[str, ...] = _setting(
        "MODELMETER_WRITE_TOKENS",
        parse_tokens,
        (),
        "comma-separated bearer tokens for ingestion and registration (empty = open)",
    )
    read_tokens: tuple[str, ...] = _setting(
        "MODELMETER_READ_TOKENS",
        parse_tokens,
        (),
        "comma-separated bearer tokens for the JSON read API (write tokens also read; "
        "empty = open)",
    )
    protect_metrics: bool = _setting(
        "MODELMETER_PROTECT_METRICS", parse_bool, False, "require a read token on /metrics"
    )
    label_ttl_seconds: float = _setting(
        "MODELMETER_LABEL_TTL",
        parse_duration,
        7 * 86400.0,
        "how long predictions wait for labels (and labels for predictions); also the "
        "idempotence horizon for event ids",
    )
    max_body_bytes: int = _setting(
        "MODELMETER_MAX_BODY_BYTES", parse_size, 10 * 1024 * 1024, "largest request body (413)"
    )
    max_events: int = _setting(
        "MODELMETER_MAX_EVENTS", _positive_int, 10_000, "most events in one request (413)"
    )
    max_models: int = _setting(
        "MODELMETER_MAX_MODELS", _positive_int, 100, "most registered models (409)"
    )
    max_versions: int = _setting(
        "MODELMETER_MAX_VERSIONS",
        _positive_int,
        10,
        "most live versions per model; a new version beyond it retires the least recently "
        "used one (its series leave /metrics, its late labels are counted as retired)",
    )
    version_idle_seconds: float = _setting(
        "MODELMETER_VERSION_IDLE",
        parse_duration,
        7 * 86400.0,
        "a version that received no prediction for this long retires (0 = never)",
    )
    max_model_state_bytes: int = _setting(
        "MODELMETER_MAX_MODEL_STATE_BYTES",
        parse_size,
        256 * 1024**2,
        "most engine memory one model may need at MODELMETER_MAX_VERSIONS live versions "
        "(features x bins x buckets); a spec above it is refused (422)",
    )
    max_model_series: int = _setting(
        "MODELMETER_MAX_MODEL_SERIES",
        _positive_int,
        50_000,
        "most Prometheus series one model may export at MODELMETER_MAX_VERSIONS live versions "
        "and MODELMETER_MAX_REPLICAS replicas; a spec above it is refused (422)",
    )
    max_categories: int = _setting(
        "MODELMETER_MAX_CATEGORIES",
        _positive_int,
        100,
        "most categories a categorical feature takes from the reference data (the most "
        "frequent; the rest count as one 'other'); categories listed in the spec are kept",
    )
    max_reference_bytes: int = _setting(
        "MODELMETER_MAX_REFERENCE_BYTES",
        parse_size,
        64 * 1024**2,
        "largest reference file read from MODELMETER_REFERENCE_DIR (422 above it)",
    )
    max_replicas: int = _setting(
        "MODELMETER_MAX_REPLICAS", _positive_int, 32, "most serving replicas tracked per model"
    )
    replica_idle_seconds: float = _setting(
        "MODELMETER_REPLICA_IDLE",
        parse_duration,
        300.0,
        "a replica that reported no resources for this long is dropped from /metrics",
    )
    checkpoint_interval_seconds: float = _setting(
        "MODELMETER_CHECKPOINT_INTERVAL",
        parse_duration,
        5.0,
        "how often engine state is checkpointed to the store",
    )
    shift_refit_interval_seconds: float = _setting(
        "MODELMETER_SHIFT_REFIT_INTERVAL",
        parse_duration,
        300.0,
        "how often the estimated performance of a classifier with reference scores is "
        "recalibrated for the live inputs (shift-aware CBPE: the reference reweighted to look "
        "like the live sample, in a background thread, one version at a time); 0 = off: plain "
        "CBPE, no live sample kept",
    )
    shift_sample_rows: int = _setting(
        "MODELMETER_SHIFT_SAMPLE_ROWS",
        parse_sample_rows,
        5_000,
        "the live sample of shift-aware CBPE: the features of the last this many scored "
        "predictions per live version (500-100000; memory: rows x features x 8 bytes, plus "
        "the strings of categorical values); a refit waits for 500 of them and fits on at "
        "most 5000",
    )
    store_budget_bytes: int = _setting(
        "MODELMETER_STORE_BUDGET",
        parse_size,
        8 * 1024**3,
        "disk budget of the SQLite store; when reached, the oldest predictions waiting for a "
        "label expire early (counted in modelmeter_expired_events_total); 0 = no budget",
    )
    max_wal_bytes: int = _setting(
        "MODELMETER_MAX_WAL_BYTES",
        parse_size,
        64 * 1024**2,
        "the SQLite write-ahead log is checkpointed and truncated back to this size",
    )
    sqlite_synchronous: str = _setting(
        "MODELMETER_SQLITE_SYNCHRONOUS",
        _sync_mode,
        "FULL",
        "FULL: an acknowledged event survives power loss; NORMAL: faster, survives a "
        "process crash (kill -9) but the last commits may be lost on power loss",
    )
    allow_open: bool = _setting(
        "MODELMETER_ALLOW_OPEN",
        parse_bool,
        False,
        "start on a non-loopback address without MODELMETER_WRITE_TOKENS (anyone who reaches "
        "the port can register models and send events)",
    )
    debug_endpoints: bool = _setting(
        "MODELMETER_DEBUG_ENDPOINTS",
        parse_bool,
        False,
        "serve /debug/timings (per-stage ingestion seconds, for bench/ingest.py)",
    )
    log_level: str = _setting("MODELMETER_LOG_LEVEL", str, "info", "uvicorn log level")

    @property
    def auth_enabled_for_writes(self) -> bool:
        return bool(self.write_tokens)

    @property
    def database_path(self) -> Path:
        return Path(self.data_dir) / "modelmeter.sqlite3"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``MODELMETER_*`` from ``environ`` (default ``os.environ``); ``overrides`` win.

        ``overrides`` whose value is ``None`` are ignored (an unset command-line flag).
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            env = f.metadata["env"]
            if env in environ:
                raw = environ[env]
                try:
                    values[f.name] = f.metadata["cast"](raw)
                except ValueError as exc:
                    raise ValueError(f"environment variable {env}={raw!r}: {exc}") from None
        for name, value in overrides.items():
            if value is not None:
                values[name] = value
        return cls(**values)

    @classmethod
    def describe(cls) -> list[tuple[str, str, str, str]]:
        """Rows ``(field, env var, default, help)`` for ``--help`` and the README table."""
        rows = []
        for f in dataclasses.fields(cls):
            default: Any = f.default
            if default is None:
                default = "unset"
            elif isinstance(default, tuple):
                default = ",".join(default)
            elif f.metadata["cast"] is parse_duration:
                default = format_duration(float(default))
            rows.append((f.name, f.metadata["env"], str(default), f.metadata["help"]))
        return rows


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
