"""The page skeleton: header with the selectors, the banner, and empty panels to fill.

The layout is static; callbacks fill it from the view in the ``dcc.Store``. Component ids are
module constants so the app, the tests and the benchmark name the same things. The same page
serves ``/glossary`` (the metric glossary, :mod:`.glossary`): a callback on the URL shows it
instead of the dashboard.

>>> page = build_layout(refresh_seconds=2.0)
>>> page.id
'page'
"""

from __future__ import annotations

from typing import Any

from dash import dcc, html

from modelmeter.dashboard.queries import RANGES

__all__ = ["GRAPHS", "IDS", "build_layout"]

IDS = {
    "url": "url",
    "dashboard": "dashboard-page",
    "glossary": "glossary-page",
    "glossary_content": "glossary-content",
    "glossary_scroll": "glossary-scroll",
    "tick": "tick",
    "store": "view-store",
    "model": "model-select",
    "version": "version-select",
    "range": "range-select",
    "banner": "banner",
    "status": "status",
    "empty": "empty-state",
    "main": "main",
    "cards": "cards",
    "alerts": "alerts",
    "ops": "ops",
    "drift_table": "drift-table",
    "quality": "quality-table",
    "labels": "labels-panel",
    "resources": "resources-table",
    "segment": "segment-select",
    "segments": "segments-table",
}
GRAPHS = (
    "perf-graph",
    "throughput-graph",
    "latency-graph",
    "drift-graph",
    "cpu-graph",
    "memory-graph",
)
_GRAPH_CONFIG: Any = {"displaylogo": False, "displayModeBar": "hover", "responsive": True}


def _panel(title: str, *children: Any, wide: bool = False, panel_id: str = "") -> html.Section:
    classes = "panel panel-wide" if wide else "panel"
    return html.Section(
        [html.H2(title, className="panel-title"), *children],
        className=classes,
        id=panel_id or f"panel-{title.lower().replace(' ', '-')}",
    )


def _graph(graph_id: str) -> dcc.Graph:
    return dcc.Graph(id=graph_id, config=_GRAPH_CONFIG, className="graph")


def _header() -> html.Header:
    return html.Header(
        [
            html.Div(
                [html.Span("◉", className="logo-dot"), html.H1("modelmeter")],
                className="brand",
            ),
            html.Div(
                [
                    html.Label("Model", htmlFor=IDS["model"], className="select-label"),
                    dcc.Dropdown(id=IDS["model"], clearable=False, className="select select-model"),
                    html.Label("Version", htmlFor=IDS["version"], className="select-label"),
                    dcc.Dropdown(
                        id=IDS["version"], clearable=False, className="select select-version"
                    ),
                    dcc.RadioItems(
                        id=IDS["range"],
                        options=[{"label": k, "value": k} for k in RANGES],
                        value="15m",
                        className="range",
                        inputClassName="range-input",
                        labelClassName="range-option",
                    ),
                ],
                className="selectors",
            ),
            html.Div("connecting…", id=IDS["status"], className="status"),
        ],
        className="header",
    )


def _glossary_page() -> html.Div:
    """The glossary page (hidden on the dashboard): its own header and the rendered file."""
    return html.Div(
        [
            html.Header(
                [
                    html.Div(
                        [html.Span("◉", className="logo-dot"), html.H1("modelmeter glossary")],
                        className="brand",
                    ),
                    html.A("← dashboard", href="/", className="glossary-back"),
                ],
                className="glossary-header",
            ),
            html.Div(id=IDS["glossary_content"], className="glossary"),
            dcc.Store(id=IDS["glossary_scroll"]),
        ],
        id=IDS["glossary"],
        hidden=True,
    )


def build_layout(refresh_seconds: float) -> html.Div:
    """The whole page; ``refresh_seconds`` sets the interval of the data refresh."""
    main = html.Main(
        [
            html.Div(id=IDS["cards"], className="cards"),
            _panel("Active alerts", html.Div(id=IDS["alerts"]), wide=True),
            _panel("Traffic and latency", html.Div(id=IDS["ops"], className="ops")),
            _panel("Labels", html.Div(id=IDS["labels"]), panel_id="panel-labels"),
            _panel(
                "Performance history (realized solid, estimated dotted)",
                _graph("perf-graph"),
                wide=True,
                panel_id="panel-performance",
            ),
            _panel(
                "Predictions and errors per second",
                _graph("throughput-graph"),
                panel_id="panel-throughput",
            ),
            _panel("Latency p50 / p95 / p99", _graph("latency-graph"), panel_id="panel-latency"),
            _panel(
                "Drift per feature (PSI)", html.Div(id=IDS["drift_table"]), panel_id="panel-drift"
            ),
            _panel(
                "Drift history (most drifted features in the range)",
                _graph("drift-graph"),
                panel_id="panel-drift-history",
            ),
            _panel(
                "Data quality (share of window predictions)",
                html.Div(id=IDS["quality"]),
                panel_id="panel-quality",
            ),
            _panel("Processes now", html.Div(id=IDS["resources"]), panel_id="panel-processes"),
            _panel("CPU (1.0 = one core)", _graph("cpu-graph"), panel_id="panel-cpu"),
            _panel("Memory", _graph("memory-graph"), panel_id="panel-memory"),
            _panel(
                "Segments (performance per value)",
                dcc.Dropdown(
                    id=IDS["segment"],
                    clearable=False,
                    placeholder="segment feature",
                    className="select select-segment",
                ),
                html.Div(id=IDS["segments"]),
                wide=True,
                panel_id="panel-segments",
            ),
        ],
        id=IDS["main"],
        className="grid",
    )
    dashboard = html.Div(
        [
            _header(),
            html.Div(
                "Disconnected from Prometheus — showing the last data received; "
                "reconnecting by itself.",
                id=IDS["banner"],
                className="banner",
                hidden=True,
                role="alert",
            ),
            html.Div(id=IDS["empty"], className="empty-state", hidden=True),
            main,
        ],
        id=IDS["dashboard"],
    )
    return html.Div(
        [
            dcc.Location(id=IDS["url"], refresh=False),
            dcc.Interval(id=IDS["tick"], interval=int(refresh_seconds * 1000), n_intervals=0),
            dcc.Store(id=IDS["store"]),
            dashboard,
            _glossary_page(),
        ],
        id="page",
        className="page",
    )
