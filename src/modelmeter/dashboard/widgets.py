"""The small building blocks of the panels: a status level, a stat tile, a table.

>>> level_of(0.7, 0.8, 0.6, lower_is_bad=True), level_of(None, 1, 2), level_of(3.0, 1.0, 2.0)
('warning', 'none', 'critical')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dash import html

__all__ = ["html_table", "level_of", "stat_tile"]


def level_of(
    value: float | None, warning: float | None, critical: float | None, lower_is_bad: bool = False
) -> str:
    """``ok``, ``warning``, ``critical`` or ``none`` for a value against two thresholds."""
    if value is None:
        return "none"

    def beyond(limit: float | None) -> bool:
        return limit is not None and (value < limit if lower_is_bad else value > limit)

    if beyond(critical):
        return "critical"
    if beyond(warning):
        return "warning"
    return "ok"


def stat_tile(
    label: str, value: str, level: str = "none", stat_id: str = "", note: str | None = None
) -> html.Div:
    """A figure with its label; ``note`` (e.g. "n = 37 < 100") greys the figure: it is
    below its sample guard and not compared with a threshold."""
    children = [
        html.Div(
            value, className="stat-value stat-guarded" if note else "stat-value", id=stat_id or None
        ),
        html.Div(label, className="stat-label"),
    ]
    if note:
        children.append(html.Div(note, className="stat-note", id=f"{stat_id}-guard"))
    return html.Div(children, className=f"stat stat-{level}")


def html_table(header: Sequence[Any], rows: Sequence[html.Tr], empty: str) -> Any:
    """A table; a header cell is text or a component (a glossary link)."""
    if not rows:
        return html.P(empty, className="muted")
    return html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in header])), html.Tbody(list(rows))],
        className="table",
    )
