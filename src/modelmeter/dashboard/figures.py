"""Plotly figures of the dashboard: dark, quiet, and zoom that survives a refresh.

Every figure carries a ``uirevision`` tied to the model, version and range, so a zoom or a
hidden trace stays as it is across refreshes and resets only when the selection changes.

>>> fig = line_figure({}, uirevision="m|v|15m", empty="No data yet")
>>> fig["layout"]["annotations"][0]["text"]
'No data yet'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["COLORS", "PALETTE", "line_figure"]

COLORS = {
    "bg": "#0f141b",
    "panel": "#161d27",
    "grid": "#243040",
    "text": "#d5dde8",
    "muted": "#7f8ea3",
    "ok": "#3ecf8e",
    "warning": "#f5c542",
    "critical": "#ff5c5c",
    "accent": "#4ea1ff",
}
PALETTE = (
    "#4ea1ff",
    "#3ecf8e",
    "#f5a742",
    "#c084fc",
    "#ff7aa2",
    "#5eead4",
    "#facc15",
    "#a3a3ff",
)


def _translucent(color: str, alpha: float) -> str:
    """``#rrggbb`` as ``rgba(r, g, b, alpha)``.

    >>> _translucent("#4ea1ff", 0.15)
    'rgba(78, 161, 255, 0.15)'
    """
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


def _layout(uirevision: str, y_title: str, y_range: Sequence[float] | None) -> dict[str, Any]:
    yaxis: dict[str, Any] = {
        "title": {"text": y_title, "font": {"size": 12}},
        "gridcolor": COLORS["grid"],
        "zerolinecolor": COLORS["grid"],
    }
    if y_range is not None:
        yaxis["range"] = list(y_range)
    return {
        "uirevision": uirevision,
        "template": "plotly_dark",
        "paper_bgcolor": COLORS["panel"],
        "plot_bgcolor": COLORS["panel"],
        "font": {"color": COLORS["text"], "size": 13},
        "margin": {"l": 56, "r": 16, "t": 8, "b": 36},
        "height": 260,
        "hovermode": "x unified",
        "legend": {"orientation": "h", "y": -0.22, "font": {"size": 11}},
        "xaxis": {"type": "date", "gridcolor": COLORS["grid"], "title": {"text": ""}},
        "yaxis": yaxis,
    }


def line_figure(
    series: Mapping[str, Mapping[str, Sequence[Any]]],
    uirevision: str,
    empty: str,
    y_title: str = "",
    names: Mapping[str, str] | None = None,
    dashed: Sequence[str] = (),
    colors: Mapping[str, str] | None = None,
    y_range: Sequence[float] | None = None,
    scale: float = 1.0,
    thresholds: Sequence[tuple[str, float, str]] = (),
    bands: Mapping[str, tuple[Mapping[str, Sequence[Any]], Mapping[str, Sequence[Any]]]]
    | None = None,
) -> dict[str, Any]:
    """A time-series figure (a plain dict, JSON-able) from ``{key: {"t": [...], "v": [...]}}``.

    Parameters
    ----------
    series: the lines, drawn in key order.
    uirevision: keeps zoom across refreshes while it does not change.
    empty: the message drawn when there is no line at all (says what to do).
    names: display name per key; dashed: keys drawn dashed; colors: colour per key.
    scale: multiplies every value (e.g. 1000 for ms).
    thresholds: horizontal lines ``(label, y, colour)``.
    bands: ``{key: (lower, upper)}``: a light area between the two series around the line of
        ``key`` (two traces, lower then upper filled ``tonexty``, out of the legend, grouped
        with the line so hiding it hides its band); drawn under every line.
    """
    layout = _layout(uirevision, y_title, y_range)
    band_traces: list[dict[str, Any]] = []
    traces: list[dict[str, Any]] = []
    for i, (key, points) in enumerate(series.items()):
        color = (colors or {}).get(key, PALETTE[i % len(PALETTE)])
        few = sum(v is not None for v in points["v"]) <= 3
        name = (names or {}).get(key, key)
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers" if few else "lines",
                "name": name,
                "legendgroup": key,
                "x": list(points["t"]),
                "y": [None if v is None else v * scale for v in points["v"]],
                "line": {"color": color, "width": 2, "dash": "dash" if key in dashed else "solid"},
                "connectgaps": False,
            }
        )
        if key in (bands or {}):
            for bound, edge in zip(("lower", "upper"), (bands or {})[key], strict=True):
                band_traces.append(
                    {
                        "type": "scatter",
                        "mode": "lines",
                        "name": f"{name} {bound}",
                        "legendgroup": key,
                        "showlegend": False,
                        "x": list(edge["t"]),
                        "y": [None if v is None else v * scale for v in edge["v"]],
                        "line": {"color": color, "width": 0},
                        "fill": "tonexty" if bound == "upper" else "none",
                        "fillcolor": _translucent(color, 0.15),
                        "hovertemplate": f"{name} {bound}: %{{y:.3f}}<extra></extra>",
                        "connectgaps": False,
                    }
                )
    traces = band_traces + traces
    shapes, annotations = [], []
    for label, y, color in thresholds:
        shapes.append(
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "y0": y * scale,
                "y1": y * scale,
                "line": {"color": color, "width": 1, "dash": "dash"},
            }
        )
        annotations.append(
            {
                "xref": "paper",
                "x": 1,
                "y": y * scale,
                "xanchor": "right",
                "yanchor": "bottom",
                "text": label,
                "showarrow": False,
                "font": {"color": color, "size": 11},
            }
        )
    instants = {t for points in series.values() for t in points["t"]}
    if len(instants) == 1:
        # One instant only: Plotly would spread it over milliseconds; show a minute around it.
        (instant,) = instants
        layout["xaxis"]["tickformat"] = "%H:%M:%S"
        if isinstance(instant, (int, float)):  # epoch ms
            layout["xaxis"]["range"] = [instant - 30_000, instant + 30_000]
    if not traces:
        annotations.append(
            {
                "xref": "paper",
                "yref": "paper",
                "x": 0.5,
                "y": 0.5,
                "text": empty,
                "showarrow": False,
                "font": {"color": COLORS["muted"], "size": 14},
            }
        )
        layout["xaxis"]["visible"] = False
        layout["yaxis"]["visible"] = False
    layout["shapes"] = shapes
    layout["annotations"] = annotations
    return {"data": traces, "layout": layout}
