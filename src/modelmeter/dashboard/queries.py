"""The dashboard's Prometheus HTTP client: a fixed, small set of calls per refresh.

One refresh issues at most :data:`CALLS_PER_REFRESH` HTTP calls, whatever the number of
models, versions or features: every per-feature or per-series figure comes from one regex or
``by (...)`` query, and derived figures are folded into one query with ``or`` and a
``mm_series`` label. Every call has a timeout; calls run in parallel on a bounded pool.

Only the standard HTTP API is used (``/api/v1/query``, ``/api/v1/query_range``,
``/api/v1/alerts``), so any Prometheus-compatible store works (VictoriaMetrics too).

>>> sel = Selection(model="churn", version="v2", range_key="1h")
>>> [call.key for call in build_plan(sel, now=1_700_000_000.0)]
['instant', 'derived', 'perf', 'ops', 'drift', 'resources']
>>> build_plan(sel, now=1_700_000_000.0)[2].params["step"]
'24'
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

__all__ = [
    "BAND_METRICS",
    "CALLS_PER_REFRESH",
    "RANGES",
    "PromCall",
    "PromClient",
    "PromError",
    "PromUnavailable",
    "RawRefresh",
    "Selection",
    "build_catalog_plan",
    "build_plan",
    "fetch_refresh",
]

RANGES: dict[str, int] = {"15m": 900, "1h": 3600, "6h": 21600, "24h": 86400}
"""Selectable time ranges (label -> seconds)."""

MAX_POINTS = 150
"""Most points per series in a range query (the step grows with the range)."""

CALLS_PER_REFRESH = 8
"""HTTP calls of one refresh: catalog and alerts, then six model queries."""

PERF_METRICS = (
    "model_accuracy",
    "model_precision",
    "model_recall",
    "model_f1_score",
    "model_estimated_accuracy",
    "model_estimated_precision",
    "model_estimated_recall",
    "model_estimated_f1_score",
    "model_mean_absolute_error",
    "model_root_mean_squared_error",
    "model_estimated_mean_absolute_error",
    "model_estimated_root_mean_squared_error",
)
BAND_METRICS = tuple(
    f"model_estimated_{metric}_{bound}"
    for metric in ("accuracy", "precision", "recall", "f1_score")
    for bound in ("lower", "upper")
)
"""The estimate's 95 % band (classification): fetched in the same ``perf`` range query."""
DRIFT_TOP = 6
"""Drift history is fetched for the features with the highest PSI in the range (and output)."""


class PromUnavailable(Exception):
    """Prometheus could not be reached (connection refused, timeout, 5xx)."""


class PromError(Exception):
    """Prometheus answered but refused the call (bad query, endpoint not served)."""


@dataclass(frozen=True)
class Selection:
    """What the user looks at: model, version and time range (a key of :data:`RANGES`)."""

    model: str | None
    version: str | None
    range_key: str = "15m"

    def __post_init__(self) -> None:
        if self.range_key not in RANGES:
            raise ValueError(f"range {self.range_key!r} is not one of {', '.join(RANGES)}")

    @property
    def range_seconds(self) -> int:
        return RANGES[self.range_key]

    @property
    def step_seconds(self) -> int:
        """Range-query step: at most :data:`MAX_POINTS` points, never below 1 s."""
        return max(1, math.ceil(self.range_seconds / MAX_POINTS))


@dataclass(frozen=True)
class PromCall:
    """One HTTP call: a name for its result, the API path and the query parameters."""

    key: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)


def _quote(value: str) -> str:
    """A PromQL string literal (label values come from Prometheus itself, but be safe)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _regex_escape(value: str) -> str:
    special = set(".^$*+?()[]{}|\\")
    return "".join("\\" + c if c in special else c for c in value)


def selector(sel: Selection) -> str:
    """Label matchers for the selected model and version.

    The version matcher also matches series without a version label (thresholds, window).

    >>> selector(Selection("m", "v1.0"))
    'model="m", version=~"v1\\\\\\\\.0|"'
    """
    model = sel.model or ""
    version = _regex_escape(sel.version or "")
    return f"model={_quote(model)}, version=~{_quote(version + '|')}"


def tagged(expr: str, name: str) -> str:
    """``expr`` with the label ``mm_series="name"`` added, so several can be joined by ``or``."""
    return f'label_replace({expr}, "mm_series", "{name}", "", "")'


def union(parts: Mapping[str, str]) -> str:
    """One query returning every expression of ``parts``, each tagged with its key."""
    return " or ".join(tagged(expr, name) for name, expr in parts.items())


COLLECTOR = "and on (instance, job) modelmeter_models"


def _collector_parts(window: str) -> dict[str, str]:
    """The collector's own CPU and memory: process metrics of the targets with modelmeter_models."""
    return {
        "collector_cpu": f"rate(process_cpu_seconds_total[{window}]) {COLLECTOR}",
        "collector_memory": f"process_resident_memory_bytes {COLLECTOR}",
    }


def _ops_parts(s: str, window: str) -> dict[str, str]:
    latency = f"sum by (le) (rate(model_prediction_latency_seconds_bucket{{{s}}}[{window}]))"
    return {
        "predictions_rate": f"sum(rate(model_predictions_total{{{s}}}[{window}]))",
        "errors_rate": f"sum(rate(model_prediction_errors_total{{{s}}}[{window}]))",
        "latency_p50": f"histogram_quantile(0.5, {latency})",
        "latency_p95": f"histogram_quantile(0.95, {latency})",
        "latency_p99": f"histogram_quantile(0.99, {latency})",
    }


MERGED_OUTCOMES = "merged_outcomes"
"""``mm_series`` of the realized outcomes per (class, outcome) summed over collectors."""


def window_count(counter: str, window: str = "5m") -> str:
    """The exact count of ``counter`` in the last ``window``: its value now minus its value at
    the window start, per series (no rate() extrapolation), as in deploy/.../merged.yml.

    A series born in the window counts from 0, one reset in the window from its reset.
    """
    now = f"last_over_time({counter}[{window}])"
    before = f"last_over_time({counter}[1h] offset {window})"
    return f"((({now} - {before}) >= 0 unless resets({counter}[{window}]) > 0) or {now})"


def _merged_outcomes(s: str) -> str:
    """Realized one-vs-rest outcomes per class in the 5m window, summed over every collector.

    The realized recording rules (recording.yml) are ratios of rate()s, which extrapolate each
    collector's series by its own scrape offsets: mixed over collectors they are not the ratio
    of the events. These exact counts are (the view computes accuracy ... from them).
    """
    counter = f"model_classification_outcomes_total{{{s}}}"
    return f"sum by (class, outcome) ({window_count(counter)})"


def _drift_query(s: str, sel: Selection) -> str:
    """PSI history of the :data:`DRIFT_TOP` features with the highest PSI in the range, and of
    the output: a bounded number of series whatever the number of features."""
    psi = f'model_feature_drift{{{s}, statistic="psi"}}'
    top = f"topk({DRIFT_TOP}, max_over_time({psi}[{sel.range_seconds}s] @ end()))"
    return f'({psi} and on (feature) {top}) or model_prediction_drift{{{s}, statistic="psi"}}'


def build_catalog_plan(sel: Selection, now: float) -> list[PromCall]:
    """Phase one: the models seen in the range (from ``model_info``) and the alerts."""
    catalog = f"max by (model, version, task) (last_over_time(model_info[{sel.range_seconds}s]))"
    return [
        PromCall("catalog", "/api/v1/query", {"query": catalog, "time": f"{now:.3f}"}),
        PromCall("alerts", "/api/v1/alerts"),
    ]


def build_plan(sel: Selection, now: float) -> list[PromCall]:
    """Phase two: the six queries of the selected model, independent of its feature count."""
    s = selector(sel)
    step = sel.step_seconds
    window = f"{max(60, 2 * step)}s"
    instant_time = {"time": f"{now:.3f}"}
    span = {
        "start": f"{now - sel.range_seconds:.3f}",
        "end": f"{now:.3f}",
        "step": str(step),
    }
    label_delay = f"sum by (le) (rate(model_label_delay_seconds_bucket{{{s}}}[5m]))"
    derived = {
        **_ops_parts(s, "1m"),
        # latencies behind the percentiles: the p95 tile's sample guard (as HighPredictionLatency)
        "latency_samples": (
            f"sum({window_count(f'model_prediction_latency_seconds_count{{{s}}}', '1m')})"
        ),
        "label_delay_p50": f"histogram_quantile(0.5, {label_delay})",
        "label_delay_p95": f"histogram_quantile(0.95, {label_delay})",
        **_collector_parts("1m"),
        MERGED_OUTCOMES: _merged_outcomes(s),
    }
    resources = {
        "serving_cpu": f"model_serving_cpu_ratio{{{s}}}",
        "serving_memory": f"model_serving_memory_bytes{{{s}}}",
        **_collector_parts(window),
    }
    names = "|".join(PERF_METRICS + BAND_METRICS)
    return [
        PromCall(
            "instant",
            "/api/v1/query",
            {"query": f'{{__name__=~"model_.+|model:.+", {s}}}', **instant_time},
        ),
        PromCall("derived", "/api/v1/query", {"query": union(derived), **instant_time}),
        PromCall("perf", "/api/v1/query_range", {"query": f'{{__name__=~"{names}", {s}}}', **span}),
        PromCall("ops", "/api/v1/query_range", {"query": union(_ops_parts(s, window)), **span}),
        PromCall("drift", "/api/v1/query_range", {"query": _drift_query(s, sel), **span}),
        PromCall("resources", "/api/v1/query_range", {"query": union(resources), **span}),
    ]


class PromClient:
    """A small Prometheus HTTP API client with a timeout per call and a call counter.

    Parameters
    ----------
    url: base URL of Prometheus (or any Prometheus-compatible query API).
    timeout: seconds per call (connect and read).
    max_workers: calls run in parallel on at most this many threads.

    Examples
    --------
    >>> client = PromClient("http://127.0.0.1:9", timeout=0.2)
    >>> try:
    ...     client.call(PromCall("up", "/api/v1/query", {"query": "up"}))
    ... except PromUnavailable as exc:
    ...     print("unavailable")
    unavailable
    >>> client.calls
    1
    >>> client.close()
    """

    def __init__(
        self,
        url: str,
        timeout: float = 1.5,
        max_workers: int = 6,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._http = httpx.Client(base_url=self.url, timeout=timeout, auth=auth)
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="prom")
        self._lock = threading.Lock()
        self._calls = 0

    @property
    def calls(self) -> int:
        """HTTP calls made so far (for tests and the benchmark)."""
        return self._calls

    def call(self, call: PromCall) -> Any:
        """Run one call; return the ``data`` of the answer.

        Raises :class:`PromUnavailable` when Prometheus cannot be reached or answers 5xx, and
        :class:`PromError` when it answers with another error.
        """
        with self._lock:
            self._calls += 1
        try:
            response = self._http.get(call.path, params=dict(call.params))
        except httpx.HTTPError as exc:
            raise PromUnavailable(
                f"{self.url}{call.path}: {exc.__class__.__name__}: {exc}"
            ) from exc
        if response.status_code >= 500:  # down, starting up (503) or overloaded (timeout)
            raise PromUnavailable(
                f"{self.url}{call.path}: HTTP {response.status_code} {response.text[:200]}"
            )
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise PromError(
                f"{self.url}{call.path}: HTTP {response.status_code}, not a Prometheus API answer"
            ) from None
        if body.get("status") != "success":
            error = body.get("error", f"HTTP {response.status_code}")
            raise PromError(f"{call.key}: {error}")
        return body.get("data")

    def call_all(self, calls: Sequence[PromCall]) -> dict[str, Any]:
        """Run ``calls`` in parallel; map each key to its data or to the exception it raised."""
        futures = {c.key: self._pool.submit(self.call, c) for c in calls}
        results: dict[str, Any] = {}
        for key, future in futures.items():
            try:
                results[key] = future.result()
            except (PromUnavailable, PromError) as exc:
                results[key] = exc
        return results

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()


@dataclass
class RawRefresh:
    """What one refresh brought back: the resolved selection, data per key, errors per key."""

    selection: Selection
    now: float
    catalog: list[dict[str, str]]
    data: dict[str, Any]
    errors: dict[str, str]
    calls: int


def _catalog(data: Any) -> list[dict[str, str]]:
    rows = [
        {
            "model": r["metric"].get("model", ""),
            "version": r["metric"].get("version", "default"),
            "task": r["metric"].get("task", ""),
        }
        for r in (data or {}).get("result", [])
        if r["metric"].get("model")
    ]
    return sorted(rows, key=lambda r: (r["model"], r["version"]))


def resolve(sel: Selection, catalog: Sequence[Mapping[str, str]]) -> Selection:
    """The selection if it exists in ``catalog``, else the first model/version there is.

    >>> cat = [{"model": "a", "version": "v1"}, {"model": "b", "version": "v1"},
    ...        {"model": "b", "version": "v2"}]
    >>> resolve(Selection("b", None), cat)
    Selection(model='b', version='v2', range_key='15m')
    >>> resolve(Selection("gone", "v9"), cat).model
    'a'
    """
    if not catalog:
        return Selection(None, None, sel.range_key)
    models = [r["model"] for r in catalog]
    model = sel.model if sel.model in models else models[0]
    versions = [r["version"] for r in catalog if r["model"] == model]
    version = sel.version if sel.version in versions else versions[-1]
    return Selection(model, version, sel.range_key)


def fetch_refresh(client: PromClient, sel: Selection, now: float) -> RawRefresh:
    """One refresh: catalog and alerts, then the selected model's queries.

    Raises :class:`PromUnavailable` when Prometheus cannot be reached, so the caller can keep
    what it shows and raise the "disconnected" banner.
    """
    before = client.calls
    first = client.call_all(build_catalog_plan(sel, now))
    for value in first.values():
        if isinstance(value, PromUnavailable):
            raise value
    errors: dict[str, str] = {}
    if isinstance(first["catalog"], PromError):
        errors["catalog"] = str(first["catalog"])
        catalog: list[dict[str, str]] = []
    else:
        catalog = _catalog(first["catalog"])
    data: dict[str, Any] = {"alerts": first["alerts"]}
    resolved = resolve(sel, catalog)
    if resolved.model is not None:
        second = client.call_all(build_plan(resolved, now))
        for value in second.values():
            if isinstance(value, PromUnavailable):
                raise value
        data.update(second)
    for key, value in list(data.items()):
        if isinstance(value, Exception):
            errors[key] = str(value)
            data[key] = None
    return RawRefresh(resolved, now, catalog, data, errors, client.calls - before)
