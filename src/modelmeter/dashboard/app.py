"""The Dash app: one interval-driven fetch into a ``dcc.Store``, then renders from the store.

A slow Prometheus never piles up work: the interval is disabled while a fetch runs (Dash's
``running``), the server skips a tick while the same selection is being fetched, and viewers
of the same selection share one fetch. When Prometheus cannot be reached the page keeps what
it shows (``no_update``) and raises the "Disconnected from Prometheus" banner, which goes away
by itself on the next successful refresh.

The same page serves the metric glossary at ``/glossary`` (docs/metrics.md, see
:mod:`.glossary`); there the refresh queries nothing.

>>> app = create_app("http://127.0.0.1:9090", refresh_seconds=2.0)
>>> app.title
'modelmeter'
"""

from __future__ import annotations

import base64
import hmac
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import dash
from dash import Input, Output, State, no_update
from dash.exceptions import PreventUpdate
from flask import Response, request

from modelmeter.dashboard.glossary import glossary_children, is_glossary
from modelmeter.dashboard.layout import GRAPHS, IDS, build_layout
from modelmeter.dashboard.panels import render_view, segment_options, segment_table
from modelmeter.dashboard.queries import PromClient, PromUnavailable, Selection, fetch_refresh
from modelmeter.dashboard.view import build_view

__all__ = ["Fetcher", "create_app"]

ASSETS = Path(__file__).parent / "assets"

# Scroll to the glossary entry the URL names once every section's markdown is rendered: the
# text arrives from a callback (and dcc.Markdown loads lazily), after the browser's own scroll
# to the fragment, and the sections above the target change height as they render.
_SCROLL_TO_ANCHOR = """
function(children) {
    const id = decodeURIComponent((window.location.hash || "").slice(1));
    if (!id || !children) { return window.dash_clientside.no_update; }
    let tries = 0;
    const go = function () {
        const root = document.getElementById("glossary-content");
        const total = root ? root.querySelectorAll(".glossary-section").length : 0;
        const done = root ? root.querySelectorAll(".glossary-section .glossary-text").length : 0;
        const target = document.getElementById(id);
        if (target && total > 0 && done >= total) { target.scrollIntoView(); return; }
        if (tries++ < 200) { setTimeout(go, 50); }
        else if (target) { target.scrollIntoView(); }
    };
    go();
    return id;
}
"""


class Fetcher:
    """Fetch views from Prometheus, at most one fetch per selection at a time.

    A view younger than ``max_age`` seconds is served again to other viewers of the same
    selection instead of querying Prometheus twice.

    Raises :class:`PromUnavailable` from :meth:`fetch` when Prometheus cannot be reached and
    ``dash.exceptions.PreventUpdate`` when the same selection is already being fetched.
    """

    def __init__(
        self, client: PromClient, max_age: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.client = client
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._in_flight: set[Selection] = set()
        self._cache: dict[Selection, tuple[float, dict[str, Any]]] = {}

    def fetch(self, sel: Selection) -> dict[str, Any]:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(sel)
            if cached and now - cached[0] < self.max_age:
                return cached[1]
            if sel in self._in_flight:
                raise PreventUpdate  # skip this tick: the previous fetch is still running
            self._in_flight.add(sel)
        try:
            view = build_view(fetch_refresh(self.client, sel, now))
        finally:
            with self._lock:
                self._in_flight.discard(sel)
        with self._lock:
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[sel] = (now, view)
        return view


def _options(values: list[str]) -> list[dict[str, str]]:
    return [{"label": v, "value": v} for v in values]


def _install_basic_auth(server: Any, user: str, password: str) -> None:
    """Require ``user:password`` (HTTP basic auth) on every path but ``/healthz``.

    The header is compared as bytes (constant time): a non-ASCII header is a 401, never the
    ``TypeError`` that :func:`hmac.compare_digest` raises on non-ASCII ``str``.
    """
    expected = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")

    def _check() -> Response | None:
        if request.path == "/healthz":
            return None  # liveness for launchers and load balancers; shows no data
        header = request.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        given = credentials.strip().encode("utf-8", "surrogateescape")
        if scheme.lower() == "basic" and hmac.compare_digest(given, expected.encode("ascii")):
            return None
        return Response(
            "Authentication required: log in with MODELMETER_DASHBOARD_USER and its password.",
            401,
            {"WWW-Authenticate": 'Basic realm="modelmeter dashboard"'},
        )

    server.before_request(_check)


def create_app(
    prom_url: str,
    refresh_seconds: float = 2.0,
    timeout: float = 1.5,
    basic_auth: tuple[str, str] | None = None,
    prom_auth: tuple[str, str] | None = None,
    glossary: Sequence[Path] | None = None,
) -> dash.Dash:
    """Build the dashboard.

    Parameters
    ----------
    prom_url: Prometheus (or compatible) base URL, e.g. ``http://localhost:9090``.
    refresh_seconds: how often the page refreshes its data.
    timeout: seconds per Prometheus call.
    basic_auth: ``(user, password)`` required from browsers, or ``None`` for an open dashboard.
    prom_auth: ``(user, password)`` sent to Prometheus, if it needs them.
    glossary: where to read the glossary markdown (first readable path), instead of
        docs/metrics.md in the checkout or the installed copy.
    """
    if refresh_seconds <= 0:
        raise ValueError(f"refresh_seconds must be > 0, got {refresh_seconds}")
    app = dash.Dash(
        __name__,
        assets_folder=str(ASSETS),
        title="modelmeter",
        update_title="",
        serve_locally=True,
    )
    app.layout = build_layout(refresh_seconds)
    client = PromClient(prom_url, timeout=timeout, auth=prom_auth)
    fetcher = Fetcher(client, max_age=refresh_seconds / 2)
    app.server.config["modelmeter_fetcher"] = fetcher
    app.server.add_url_rule("/healthz", "healthz", lambda: Response("ok\n", 200))
    if basic_auth is not None:
        _install_basic_auth(app.server, *basic_auth)

    @app.callback(
        Output(IDS["store"], "data"),
        Output(IDS["banner"], "hidden"),
        Output(IDS["model"], "options"),
        Output(IDS["model"], "value"),
        Output(IDS["version"], "options"),
        Output(IDS["version"], "value"),
        Input(IDS["tick"], "n_intervals"),
        Input(IDS["model"], "value"),
        Input(IDS["version"], "value"),
        Input(IDS["range"], "value"),
        State(IDS["model"], "options"),
        State(IDS["version"], "options"),
        State(IDS["url"], "pathname"),
        running=[(Output(IDS["tick"], "disabled"), True, False)],
    )
    def refresh(
        _tick: int,
        model: str | None,
        version: str | None,
        range_key: str | None,
        model_options: list[dict[str, str]] | None,
        version_options: list[dict[str, str]] | None,
        pathname: str | None,
    ) -> tuple[Any, ...]:
        if is_glossary(pathname):
            raise PreventUpdate  # the glossary page shows no figures: no Prometheus calls
        sel = Selection(model, version, range_key or "15m")
        try:
            view = fetcher.fetch(sel)
        except PromUnavailable:
            return no_update, False, no_update, no_update, no_update, no_update
        models = sorted({r["model"] for r in view["catalog"]})
        versions = [r["version"] for r in view["catalog"] if r["model"] == view["model"]]
        new_models, new_versions = _options(models), _options(versions)
        return (
            view,
            True,
            new_models if new_models != model_options else no_update,
            view["model"] if view["model"] != model else no_update,
            new_versions if new_versions != version_options else no_update,
            view["version"] if view["version"] != version else no_update,
        )

    @app.callback(
        Output(IDS["segment"], "options"),
        Output(IDS["segment"], "value"),
        Output(IDS["segments"], "children"),
        Input(IDS["store"], "data"),
        Input(IDS["segment"], "value"),
        State(IDS["segment"], "options"),
    )
    def segments(
        view: dict[str, Any] | None, segment: str | None, options: list[dict[str, str]] | None
    ) -> tuple[Any, ...]:
        """The segment selector and its table, from the view (no Prometheus call of its own)."""
        if not view or view.get("model") is None:
            raise PreventUpdate
        new_options = segment_options(view)
        names = [o["value"] for o in new_options]
        chosen = segment if segment in names else (names[0] if names else None)
        return (
            new_options if new_options != options else no_update,
            chosen if chosen != segment else no_update,
            segment_table(view, chosen),
        )

    @app.callback(
        Output(IDS["glossary_content"], "children"),
        Output(IDS["glossary"], "hidden"),
        Output(IDS["dashboard"], "hidden"),
        Input(IDS["url"], "pathname"),
    )
    def route(pathname: str | None) -> tuple[Any, ...]:
        """``/glossary`` shows the glossary (read on each visit), any other path the dashboard."""
        if is_glossary(pathname):
            return glossary_children(glossary), False, True
        return no_update, True, False

    app.clientside_callback(  # type: ignore[no-untyped-call]
        _SCROLL_TO_ANCHOR,
        Output(IDS["glossary_scroll"], "data"),
        Input(IDS["glossary_content"], "children"),
    )

    graph_outputs = [Output(g, "figure") for g in GRAPHS]
    panel_keys = ("cards", "alerts", "ops", "drift_table", "quality", "labels", "resources")

    @app.callback(
        Output(IDS["status"], "children"),
        Output(IDS["empty"], "children"),
        Output(IDS["empty"], "hidden"),
        Output(IDS["main"], "hidden"),
        *[Output(IDS[k], "children") for k in panel_keys],
        *graph_outputs,
        Input(IDS["store"], "data"),
    )
    def render(view: dict[str, Any] | None) -> tuple[Any, ...]:
        if not view:
            raise PreventUpdate
        out = render_view(view)
        head = (out["status"], out["empty"], out["empty_hidden"], out["main_hidden"])
        if out["main_hidden"]:
            return head + (no_update,) * (len(panel_keys) + len(GRAPHS))
        figures = out["figures"]
        return head + tuple(out[k] for k in panel_keys) + tuple(figures[g] for g in GRAPHS)

    return app
