"""Number formatting for the dashboard: one place, so every panel reads the same way.

A missing value is always drawn as an em dash, never as 0.

>>> ratio(0.91234), ratio(None), delta(0.0312), seconds(0.0042), rate(12.345)
('0.912', '—', '+0.031', '4.2 ms', '12.3/s')
>>> bytes_(786432000), percent(0.853), count(12345.0), ago(100.0, 40.0)
('750 MiB', '85.3 %', '12,345', '1 min ago')
>>> duration(172800), duration(300), duration(None)
('2d', '5m', '—')
"""

from __future__ import annotations

from modelmeter.units import format_duration

__all__ = [
    "DASH",
    "ago",
    "bytes_",
    "count",
    "delta",
    "duration",
    "percent",
    "rate",
    "ratio",
    "seconds",
]

DASH = "—"


def ratio(value: float | None, digits: int = 3) -> str:
    """A figure in [0, 1] such as accuracy, with ``digits`` decimals."""
    return DASH if value is None else f"{value:.{digits}f}"


def delta(value: float | None, digits: int = 3) -> str:
    """A signed change."""
    return DASH if value is None else f"{value:+.{digits}f}"


def percent(value: float | None, digits: int = 1) -> str:
    """A ratio as a percentage."""
    return DASH if value is None else f"{100 * value:.{digits}f} %"


def count(value: float | None) -> str:
    """A whole count with thousands separators."""
    return DASH if value is None else f"{round(value):,}"


def rate(value: float | None) -> str:
    """Events per second."""
    if value is None:
        return DASH
    return f"{value:.1f}/s" if value >= 1 or value == 0 else f"{value:.3f}/s"


def seconds(value: float | None) -> str:
    """A duration picked in ms, s, min or h."""
    if value is None:
        return DASH
    if value < 1:
        return f"{1000 * value:.1f} ms"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def duration(value: float | None) -> str:
    """A window length as the spec writes it (``5m``, ``2d``, ``1h30m``)."""
    return DASH if value is None else format_duration(value)


def bytes_(value: float | None) -> str:
    """A size in binary units."""
    if value is None:
        return DASH
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return (
                f"{value / size:.0f} {unit}"
                if value / size >= 100
                else (f"{value / size:.1f} {unit}")
            )
    return f"{value:.0f} B"


def ago(now: float, then: float) -> str:
    """How long ago ``then`` was, seen from ``now`` (Unix seconds)."""
    diff = max(0.0, now - then)
    if diff < 60:
        return f"{diff:.0f} s ago"
    if diff < 3600:
        return f"{diff // 60:.0f} min ago"
    if diff < 86400:
        return f"{diff / 3600:.1f} h ago"
    return f"{diff / 86400:.1f} d ago"
