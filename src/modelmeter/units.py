"""Durations and sizes, read and written the same way everywhere (spec, settings, launcher).

A duration is a number of seconds, or one or more ``<number><unit>`` parts with the units
``ms s m h d w y`` (``250ms``, ``5m``, ``1h30m``, ``7d``). A size is a whole number of bytes
with an optional unit (``512KiB``, ``10MiB``, ``1GB``). Stdlib only: every layer imports it.

>>> parse_duration("1h30m"), format_duration(5400), parse_size("10MiB")
(5400.0, '1h30m', 10485760)
"""

from __future__ import annotations

import math
import re

__all__ = ["format_duration", "parse_duration", "parse_size", "prometheus_duration"]

_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
    "y": 31536000.0,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
# Prometheus' own duration syntax: whole numbers, units largest first, each at most once.
_PROMETHEUS = re.compile(r"(?:\d+y)?(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?(?:\d+ms)?")
_SIZE = re.compile(r"\s*(\d+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
}
_EXPECTED = "expected a duration like '30s', '5m', '1h' or '7d'"


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_duration(value: str | float) -> float:
    """Seconds in a duration: ``30s``, ``5m``, ``1h``, ``7d``, ``1w``, ``250ms``, ``1h30m``.

    A bare number (or numeric text) is seconds. Raises ``ValueError`` on anything else or on a
    negative or infinite value; the message says what is expected.

    >>> parse_duration("5m"), parse_duration("1h30m"), parse_duration("250ms"), parse_duration(7)
    (300.0, 5400.0, 0.25, 7.0)
    >>> parse_duration(" 1.5 "), parse_duration("7d")
    (1.5, 604800.0)
    >>> parse_duration("5 minutes")
    Traceback (most recent call last):
    ...
    ValueError: expected a duration like '30s', '5m', '1h' or '7d', got '5 minutes'
    """
    if isinstance(value, bool):
        raise ValueError(f"{_EXPECTED}, got {_show(value)}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            parts = _PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(f"{_EXPECTED}, got {_show(value)}") from None
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    else:
        raise ValueError(f"{_EXPECTED}, got {_show(value)}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"expected a finite, non-negative duration, got {_show(value)}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest duration text for ``seconds``; :func:`parse_duration` reads it back.

    >>> format_duration(300), format_duration(5400), format_duration(604800), format_duration(0.25)
    ('5m', '1h30m', '7d', '250ms')
    """
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def prometheus_duration(text: str) -> str:
    """``text`` if Prometheus reads it as a duration (``30s``, ``1h30m``), else ``ValueError``.

    >>> prometheus_duration("1h30m")
    '1h30m'
    >>> prometheus_duration("1.5m")
    Traceback (most recent call last):
    ...
    ValueError: expected a Prometheus duration like '30s', '1m' or '1h30m', got '1.5m'
    """
    if not text or not _PROMETHEUS.fullmatch(text):
        raise ValueError(
            f"expected a Prometheus duration like '30s', '1m' or '1h30m', got {text!r}"
        )
    return text


def parse_size(text: str) -> int:
    """Bytes in ``text``: a whole number with an optional unit (``KiB``, ``MiB``, ``MB``...).

    >>> parse_size("1024"), parse_size("2KiB"), parse_size("1MB")
    (1024, 2048, 1000000)
    """
    match = _SIZE.fullmatch(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a size; write e.g. 1048576, 512KiB or 10MiB")
    return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]
