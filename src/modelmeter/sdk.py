"""The modelmeter SDK: report predictions and labels from a model service, without slowing it.

``Client`` queues events in memory (bounded) and a background daemon thread sends them in
batches to the collector's HTTP API, retrying with exponential backoff and jitter when the
collector is unreachable or overloaded. ``monitor`` wraps a scikit-learn style estimator so
that every ``predict``/``predict_proba`` call is reported.

The caller's thread only appends to a queue: no JSON, no I/O, no exception ever reaches the
model service. What cannot be delivered is counted in ``client.stats``, logged
(rate-limited) and reported to the collector with the next predictions request
(``resources.dropped``, exported as ``modelmeter_client_dropped_events_total``).

Examples
--------
>>> import modelmeter
>>> client = modelmeter.Client("http://127.0.0.1:9", model="iris", flush_interval=60)
>>> pid = client.log_prediction({"petal_length": 1.4}, prediction="setosa", id="p-1")
>>> pid
'p-1'
>>> client.log_label("p-1", "setosa")
>>> client.stats["queued"]
2
>>> client.close(timeout=0)
False
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import os
import random
import re
import socket
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import numpy as np
import orjson

try:
    import psutil
except ImportError:  # a dependency, but the SDK still works without it (no CPU and memory)
    psutil = None  # type: ignore[assignment]

__all__ = ["Client", "MonitoredEstimator", "monitor"]

logger = logging.getLogger("modelmeter.sdk")

_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_REPLICA_CHARS = re.compile(r"[^A-Za-z0-9_.:-]")
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_MISSING = object()


def replica_name(hostname: str | None = None, pid: int | None = None) -> str:
    """``hostname-pid`` cut to the ``[A-Za-z0-9_.:-]{1,64}`` the collector accepts.

    >>> replica_name("web 1.example", 42)
    'web_1.example-42'
    >>> len(replica_name("h" * 100, 7))
    64
    """
    host = _REPLICA_CHARS.sub("_", hostname if hostname is not None else socket.gethostname())
    suffix = f"-{pid if pid is not None else os.getpid()}"
    return (host[: 64 - len(suffix)] or "host") + suffix


def _plain(value: Any) -> Any:
    """A JSON-friendly Python scalar for numpy scalars (``np.int64(1)`` -> ``1``)."""
    return value.item() if isinstance(value, np.generic) else value


class _RateLimitedLog:
    """Log a warning per key at most once every ``interval`` seconds, counting the rest."""

    def __init__(self, interval: float = 30.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            message += f" ({suppressed} similar messages suppressed)"
        logger.warning(message, *args)


class _ResourceSampler:
    """CPU ratio (1.0 = one core) and RSS of this process, sampled at most once per second.

    Without psutil ``sample()`` is None; ``replica`` is this process's name either way.
    """

    def __init__(self, min_interval: float = 1.0) -> None:
        self.min_interval = min_interval
        self.replica = replica_name()
        self._process = psutil.Process() if psutil is not None else None
        if self._process is not None:
            self._process.cpu_percent(None)  # first call starts the measurement interval
        self._last_time = -float("inf")
        self._last: dict[str, Any] | None = None

    def sample(self) -> dict[str, Any] | None:
        if self._process is None:
            return None
        now = time.monotonic()
        if self._last is None or now - self._last_time >= self.min_interval:
            try:
                with self._process.oneshot():
                    cpu = self._process.cpu_percent(None) / 100.0
                    rss = self._process.memory_info().rss
            except psutil.Error:  # pragma: no cover - the process always sees itself
                return self._last
            self._last = {"replica": self.replica, "cpu_ratio": cpu, "memory_bytes": int(rss)}
            self._last_time = now
        return self._last


@dataclass
class _Block:
    """Predictions queued by one call: rows of features plus outputs, expanded off-thread."""

    ids: list[str]
    timestamp: float
    feature_names: Sequence[str] | None  # None: ``rows`` holds mappings
    rows: Any  # 2-D array / list of sequences, or a sequence of mappings
    predictions: Any  # sequence, or None for error events
    probabilities: Any  # (n, k) array with ``classes``, sequence of mappings/lists, or None
    classes: Sequence[Any] | None
    scores: Any
    latency_seconds: float | Sequence[float] | None
    error: str | None
    labels: Any
    version: str
    argmax: bool = False  # prediction = the class of the highest probability (off-thread)

    def split(self, k: int) -> tuple[_Block, _Block]:
        """The first ``k`` rows and the rest (so no request outgrows ``batch_size``)."""
        latency = self.latency_seconds
        per_row = latency is not None and not isinstance(latency, (int, float))

        def part(value: Any, head: bool) -> Any:
            return None if value is None else value[:k] if head else value[k:]

        first, rest = (
            dataclasses.replace(
                self,
                ids=part(self.ids, head),
                rows=part(self.rows, head),
                predictions=part(self.predictions, head),
                probabilities=part(self.probabilities, head),
                scores=part(self.scores, head),
                latency_seconds=part(latency, head) if per_row else latency,
                labels=part(self.labels, head),
            )
            for head in (True, False)
        )
        return first, rest

    def events(self) -> list[dict[str, Any]]:
        n = len(self.ids)
        latencies = self.latency_seconds
        out: list[dict[str, Any]] = []
        for i in range(n):
            row = self.rows[i]
            if self.feature_names is None:
                features = dict(row)
            else:
                values = row.tolist() if isinstance(row, np.ndarray) else list(row)
                features = dict(zip(self.feature_names, values, strict=True))
            event: dict[str, Any] = {
                "id": self.ids[i],
                "timestamp": self.timestamp,
                "features": features,
                "prediction": None if self.predictions is None else _plain(self.predictions[i]),
                "version": self.version,
            }
            if self.argmax and self.classes is not None and self.probabilities is not None:
                event["prediction"] = _plain(self.classes[int(np.argmax(self.probabilities[i]))])
            if self.probabilities is not None:
                probs = self.probabilities[i]
                if self.classes is not None:
                    event["probabilities"] = {
                        str(_plain(c)): float(p) for c, p in zip(self.classes, probs, strict=True)
                    }
                else:
                    event["probabilities"] = (
                        probs.tolist() if isinstance(probs, np.ndarray) else probs
                    )
            if self.scores is not None:
                event["score"] = float(self.scores[i])
            if latencies is not None:
                event["latency_seconds"] = float(
                    latencies if isinstance(latencies, (int, float)) else latencies[i]
                )
            if self.error is not None:
                event["error"] = self.error
            if self.labels is not None:
                event["label"] = _plain(self.labels[i])
            out.append(event)
        return out


# A single prediction is queued as a plain tuple (cheapest to build on the caller's thread):
# (id, timestamp, features, prediction, probabilities, score, latency, error, label, version)
_Single = tuple[str, float, Any, Any, Any, Any, Any, Any, Any, str]


def _single_event(item: _Single) -> dict[str, Any]:
    pid, ts, features, prediction, probabilities, score, latency, error, label, version = item
    event: dict[str, Any] = {
        "id": pid,
        "timestamp": ts,
        "features": dict(features),
        "prediction": _plain(prediction),
        "version": version,
    }
    if probabilities is not None:
        if isinstance(probabilities, Mapping):
            event["probabilities"] = {str(_plain(k)): float(v) for k, v in probabilities.items()}
        else:
            event["probabilities"] = [float(p) for p in probabilities]
    if score is not None:
        event["score"] = float(score)
    if latency is not None:
        event["latency_seconds"] = float(latency)
    if error is not None and error is not False:
        event["error"] = error
    if label is not _MISSING:
        event["label"] = _plain(label)
    return event


def _restart_after_fork(ref: weakref.ReferenceType[Client]) -> None:
    client = ref()
    if client is not None and not client._closed.is_set():
        client._start()


class Client:
    """Send prediction and label events to a modelmeter collector, in the background.

    Parameters
    ----------
    url: the collector's base URL, e.g. ``http://127.0.0.1:8000``.
    model: the registered model name (``PUT /v1/models/{model}`` first).
    version: model version reported with every prediction.
    token: bearer token when the collector requires one for writes.
    batch_size: events per request; a full batch is sent at once.
    flush_interval: seconds between sends of a partial batch.
    max_queue: events held in memory at most, for predictions and for labels separately (a
        full prediction queue never takes the room of labels); more are dropped.
    timeout: seconds for one HTTP request.
    block_timeout: seconds a caller may wait for room in a full queue (0: drop at once).
    max_backoff: longest pause between two retries, in seconds.

    ``stats`` counts events: ``sent`` (acknowledged by the collector), ``dropped`` (queue
    full, not encodable, or undeliverable at exit), ``rejected`` (refused by the collector with
    a 4xx or per event), ``retried`` (requests repeated after a connection error, 429 or 5xx)
    and ``queued`` (waiting now).

    The client reports its losses to the collector: ``reported_drops`` (per kind, cumulative
    since the client started: the ``dropped`` events plus those refused by a 4xx answer to the
    whole request) travels as ``resources.dropped`` with every predictions request, and the
    collector exports it as ``modelmeter_client_dropped_events_total{model, replica, kind}``.
    Events the collector rejects one by one (its ``rejected`` list) are the collector's own
    count and are not reported again. Labels travel in their own requests, which carry no
    report: a label dropped while no predictions are sent is reported with the next
    predictions request.

    Sending order: the sender sends a batch of predictions, then at most one batch of the
    labels whose predictions have already been sent (every prediction logged before the label
    through this client), and so on. A label therefore waits for the predictions queued before
    it, never for the ones queued after it: sustained prediction traffic cannot starve labels,
    and a label usually finds its prediction at the collector (one that arrives first is held
    there as pending and joined later).

    At interpreter exit the client flushes for up to 2 s (``close`` for longer). In a forked
    child (pre-forking servers) it starts over with an empty queue and its own sender.

    Examples
    --------
    >>> client = Client("http://127.0.0.1:9", model="m", max_queue=1, flush_interval=60)
    >>> _ = client.log_prediction({"x": 1.0}, prediction=1)
    >>> _ = client.log_prediction({"x": 2.0}, prediction=0)   # the queue is full: dropped
    >>> client.stats["dropped"]
    1
    >>> client.close(timeout=0)
    False
    """

    def __init__(
        self,
        url: str,
        model: str,
        version: str = "default",
        token: str | None = None,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_queue: int = 100_000,
        timeout: float = 5.0,
        block_timeout: float = 0.0,
        max_backoff: float = 10.0,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {url!r}")
        if not model:
            raise ValueError("model must be a non-empty name (the name used in PUT /v1/models)")
        for name, value in [("batch_size", batch_size), ("max_queue", max_queue)]:
            if int(value) < 1:
                raise ValueError(f"{name} must be at least 1, got {value!r}")
        for name, fvalue in [
            ("flush_interval", flush_interval),
            ("timeout", timeout),
            ("block_timeout", block_timeout),
            ("max_backoff", max_backoff),
        ]:
            if not float(fvalue) >= 0:
                raise ValueError(f"{name} must be a number of seconds >= 0, got {fvalue!r}")
        self.url = url.rstrip("/")
        self.model = model
        self.version = version
        self.batch_size = int(batch_size)
        self.flush_interval = float(flush_interval)
        self.max_queue = int(max_queue)
        self.timeout = float(timeout)
        self.block_timeout = float(block_timeout)
        self.max_backoff = float(max_backoff)

        self._headers = {"Content-Type": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._counts = {"sent": 0, "dropped": 0, "rejected": 0, "retried": 0}
        self._lost = {"predictions": 0, "labels": 0}
        self._start()
        atexit.register(self._atexit)
        # a pre-forking server (gunicorn --preload) forks after the client exists: the child
        # gets a fresh queue and its own sender thread
        os.register_at_fork(after_in_child=partial(_restart_after_fork, weakref.ref(self)))

    def _start(self) -> None:
        """(Re)create the queue, the locks and the sender thread (also in a forked child)."""
        self._predictions: deque[_Single | _Block] = deque()
        # (id, label, timestamp, predictions enqueued before it: sent once that many are taken)
        self._labels: deque[tuple[str, Any, float, int]] = deque()
        self._n_predictions = 0  # events in self._predictions (a block counts its rows)
        self._enqueued = 0  # predictions ever queued; always _taken + _n_predictions
        self._taken = 0  # predictions ever taken by the sender
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)  # callers waiting for room
        self._idle = threading.Condition(threading.Lock())  # flush() waiting for an empty queue
        self._wake = threading.Event()  # data to send (a full batch) or a flush
        self._retry_now = threading.Event()  # flush() or close(): stop waiting to retry
        self._closed = threading.Event()
        self._in_flight = 0  # events taken from the queue, not yet settled
        self._counts = dict.fromkeys(self._counts, 0)
        self._lost = dict.fromkeys(self._lost, 0)  # reported as resources.dropped
        self._log = _RateLimitedLog()
        self._sampler = _ResourceSampler()
        self._thread = threading.Thread(target=self._run, name="modelmeter-sdk", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"Client(url={self.url!r}, model={self.model!r}, version={self.version!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ caller's thread

    def log_prediction(
        self,
        features: Mapping[str, Any],
        prediction: Any,
        *,
        probabilities: Mapping[Any, float] | Sequence[float] | None = None,
        score: float | None = None,
        latency_seconds: float | None = None,
        error: bool | str | None = None,
        label: Any = _MISSING,
        id: str | None = None,
        timestamp: float | None = None,
        version: str | None = None,
    ) -> str:
        """Queue one prediction; return its id (give it to ``log_label`` later).

        >>> c = Client("http://127.0.0.1:9", model="m", flush_interval=60)
        >>> len(c.log_prediction({"x": 1.0}, 1, probabilities={0: 0.3, 1: 0.7}))
        32
        >>> c.close(timeout=0)
        False
        """
        try:
            pid = id if id is not None else uuid.uuid4().hex
            item = (
                pid,
                time.time() if timestamp is None else timestamp,
                features,
                prediction,
                probabilities,
                score,
                latency_seconds,
                error,
                label,
                self.version if version is None else version,
            )
            self._enqueue(item, 1)
            return pid
        except Exception as exc:  # never raise into the model service
            self._drop("predictions", 1)
            self._log.warning("internal", "modelmeter: dropped a prediction: %r", exc)
            return id or ""

    def log_predictions(
        self,
        features: Any,
        predictions: Sequence[Any] | np.ndarray | None,
        *,
        probabilities: Any = None,
        classes: Sequence[Any] | None = None,
        scores: Sequence[float] | np.ndarray | None = None,
        latency_seconds: float | Sequence[float] | None = None,
        error: str | None = None,
        labels: Sequence[Any] | None = None,
        ids: Sequence[str] | None = None,
        feature_names: Sequence[str] | None = None,
        timestamp: float | None = None,
        version: str | None = None,
    ) -> list[str]:
        """Queue a batch of predictions; return their ids in row order.

        ``features`` is a pandas DataFrame, a 2-D array with ``feature_names``, or a sequence
        of mappings. ``probabilities`` is an ``(n, k)`` array in ``classes`` order (as from
        ``predict_proba`` and ``estimator.classes_``), or one mapping/list per row.
        ``latency_seconds`` is one value for the whole call or one per row; ``error`` marks
        every row as failed (``predictions`` may then be None).

        >>> c = Client("http://127.0.0.1:9", model="m", flush_interval=60)
        >>> ids = c.log_predictions([[1.0, 2.0], [3.0, 4.0]], [0, 1], feature_names=["a", "b"])
        >>> len(ids), c.stats["queued"]
        (2, 2)
        >>> c.close(timeout=0)
        False
        """
        return self._log_rows(
            features,
            predictions,
            probabilities=probabilities,
            classes=classes,
            scores=scores,
            latency_seconds=latency_seconds,
            error=error,
            labels=labels,
            ids=ids,
            feature_names=feature_names,
            timestamp=timestamp,
            version=version,
        )

    def _log_rows(
        self,
        features: Any,
        predictions: Sequence[Any] | np.ndarray | None,
        *,
        probabilities: Any = None,
        classes: Sequence[Any] | None = None,
        scores: Sequence[float] | np.ndarray | None = None,
        latency_seconds: float | Sequence[float] | None = None,
        error: str | None = None,
        labels: Sequence[Any] | None = None,
        ids: Sequence[str] | None = None,
        feature_names: Sequence[str] | None = None,
        timestamp: float | None = None,
        version: str | None = None,
        argmax: bool = False,
    ) -> list[str]:
        try:
            names, rows = _feature_rows(features, feature_names)
            n = len(rows)
            id_list = list(ids) if ids is not None else [uuid.uuid4().hex for _ in range(n)]
            if len(id_list) != n:
                raise ValueError(f"{len(id_list)} ids for {n} rows")
            if predictions is not None and len(predictions) != n:
                raise ValueError(f"{len(predictions)} predictions for {n} rows")
            block = _Block(
                ids=id_list,
                timestamp=time.time() if timestamp is None else timestamp,
                feature_names=names,
                rows=rows,
                predictions=predictions,
                probabilities=probabilities,
                classes=classes,
                scores=scores,
                latency_seconds=latency_seconds,
                error=error,
                labels=labels,
                version=self.version if version is None else version,
                argmax=argmax,
            )
            if n:
                self._enqueue(block, n)
            return id_list
        except Exception as exc:  # never raise into the model service
            self._log.warning("internal", "modelmeter: dropped a batch of predictions: %r", exc)
            with contextlib.suppress(Exception):
                self._drop("predictions", len(features))
            return list(ids) if ids is not None else []

    def log_label(self, id: str, label: Any, timestamp: float | None = None) -> None:
        """Queue the true label of the prediction ``id``."""
        self.log_labels([(id, label)], timestamp=timestamp)

    def log_labels(
        self, labels: Iterable[tuple[str, Any]] | Mapping[str, Any], timestamp: float | None = None
    ) -> None:
        """Queue many labels: ``(id, label)`` pairs or a mapping id -> label.

        >>> c = Client("http://127.0.0.1:9", model="m", flush_interval=60)
        >>> c.log_labels({"a": 1, "b": 0}); c.stats["queued"]
        2
        >>> c.close(timeout=0)
        False
        """
        try:
            pairs = labels.items() if isinstance(labels, Mapping) else labels
            ts = time.time() if timestamp is None else timestamp
            items = [(str(pid), label, ts) for pid, label in pairs]
            with self._lock:
                room = max(self.max_queue - len(self._labels), 0)
                if self._closed.is_set():
                    room = 0
                if room < len(items):
                    self._lose("labels", len(items) - room)
                    items = items[:room]
                    self._log.warning("full", "modelmeter: queue full, dropping events")
                mark = self._enqueued
                self._labels.extend([(pid, label, ts, mark) for pid, label, ts in items])
                full = len(self._labels) >= self.batch_size
            if full:
                self._wake.set()
        except Exception as exc:  # never raise into the model service
            self._log.warning("internal", "modelmeter: dropped labels: %r", exc)
            with contextlib.suppress(Exception):
                self._drop("labels", len(labels))  # type: ignore[arg-type]

    def _enqueue(self, item: _Single | _Block, n: int) -> None:
        with self._lock:
            if self._n_predictions + n > self.max_queue and self.block_timeout > 0:
                deadline = time.monotonic() + self.block_timeout
                while self._n_predictions + n > self.max_queue:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._space.wait(remaining):
                        break
            dropped = self._n_predictions + n > self.max_queue or self._closed.is_set()
            if dropped:
                self._lose("predictions", n)
            else:
                self._predictions.append(item)
                self._n_predictions += n
                self._enqueued += n
            full = self._n_predictions >= self.batch_size
        if dropped:
            self._log.warning(
                "full",
                "modelmeter: queue full (%d events), dropping predictions; is the collector at "
                "%s reachable?",
                self.max_queue,
                self.url,
            )
        elif full and not self._wake.is_set():
            self._wake.set()

    def _count(self, key: str, n: int) -> None:
        with self._lock:
            self._counts[key] += n

    def _drop(self, kind: str, n: int) -> None:
        with self._lock:
            self._lose(kind, n)

    def _lose(self, kind: str, n: int, outcome: str = "dropped") -> None:
        """Count ``n`` lost events of ``kind`` (hold the lock): in stats and in the report."""
        self._counts[outcome] += n
        self._lost[kind] += n

    # ------------------------------------------------------------------ public controls

    @property
    def stats(self) -> dict[str, int]:
        """Counts of events: sent, dropped, rejected, retried (requests), queued."""
        with self._lock:
            out = dict(self._counts)
            out["queued"] = self._n_predictions + len(self._labels) + self._in_flight
        return out

    @property
    def reported_drops(self) -> dict[str, int]:
        """Events lost per kind since the client started, as reported to the collector.

        The ``dropped`` events plus those refused by a 4xx answer to their whole request; not
        the ones the collector rejected one by one (it counts those itself).

        >>> c = Client("http://127.0.0.1:9", model="m", max_queue=1, flush_interval=60)
        >>> c.log_labels({"a": 1, "b": 0})
        >>> c.reported_drops
        {'predictions': 0, 'labels': 1}
        >>> c.close(timeout=0)
        False
        """
        with self._lock:
            return dict(self._lost)

    def flush(self, timeout: float = 10.0) -> bool:
        """Send everything queued now (retrying at once); True when all was settled in time.

        Settled means acknowledged, or refused by the collector (4xx): nothing left to send.
        """
        deadline = time.monotonic() + timeout
        self._wake.set()  # send now; a sender waiting to retry retries now, once
        self._retry_now.set()
        with self._idle:
            while True:
                if self._is_idle():
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return self._is_idle()
                self._idle.wait(min(remaining, 0.05))

    def close(self, timeout: float = 5.0) -> bool:
        """Flush (up to ``timeout`` s), then stop the sender; what is left counts as dropped."""
        done = self.flush(timeout) if self._thread.is_alive() else self._is_idle()
        self._closed.set()
        self._wake.set()
        self._retry_now.set()
        self._thread.join(timeout=max(timeout, 0.1) + self.timeout)
        with self._lock:
            self._lose("predictions", self._n_predictions)
            self._lose("labels", len(self._labels))
            self._predictions.clear()
            self._labels.clear()
            self._taken += self._n_predictions
            self._n_predictions = 0
        with contextlib.suppress(Exception):
            atexit.unregister(self._atexit)
        return done

    def _atexit(self) -> None:
        if not self._closed.is_set():
            self.close(timeout=2.0)  # bounded: the interpreter must be able to exit

    def _is_idle(self) -> bool:
        with self._lock:
            return not self._predictions and not self._labels and self._in_flight == 0

    # ------------------------------------------------------------------ sender thread

    def _run(self) -> None:
        client = httpx.Client(timeout=self.timeout, headers=self._headers)
        try:
            while not self._closed.is_set():
                self._wake.wait(self.flush_interval)
                self._wake.clear()
                if self._closed.is_set():
                    break
                try:
                    self._drain(client)
                except Exception as exc:  # the sender must survive anything
                    self._log.warning("internal", "modelmeter: sender error: %r", exc)
                with self._idle:
                    self._idle.notify_all()
        finally:
            client.close()

    def _drain(self, client: httpx.Client) -> None:
        """Send every queued event: a batch of predictions, then a batch of the labels whose
        predictions are sent, and again, until both queues are empty.

        A label waits at most for the predictions queued before it (so it usually finds its
        prediction at the collector), never behind a stream of newer ones.
        """
        while not self._closed.is_set():
            taken = False
            for kind, take in (
                ("predictions", self._take_predictions),
                ("labels", self._take_labels),
            ):
                n, events = take()
                taken = taken or n > 0
                if not events:
                    continue
                try:
                    self._send(client, kind, events)
                except Exception:
                    self._settle(len(events), "dropped", kind)
                    raise
            if not taken:
                return

    def _take_predictions(self) -> tuple[int, list[dict[str, Any]]]:
        """Take one batch of predictions: (events taken, the events that could be encoded)."""
        items: list[_Single | _Block] = []
        with self._lock:
            n = 0
            while self._predictions and n < self.batch_size:
                item = self._predictions.popleft()
                if isinstance(item, _Block) and n + len(item.ids) > self.batch_size:
                    item, rest = item.split(self.batch_size - n)
                    self._predictions.appendleft(rest)
                items.append(item)
                n += len(item.ids) if isinstance(item, _Block) else 1
            self._n_predictions -= n
            self._taken += n
            self._in_flight += n
            if n:
                self._space.notify_all()
        events: list[dict[str, Any]] = []
        for item in items:
            if isinstance(item, _Block):
                try:
                    events.extend(item.events())
                except Exception as exc:
                    self._settle(len(item.ids), "dropped", "predictions")
                    self._log.warning("convert", "modelmeter: could not encode rows: %r", exc)
            else:
                events.append(_single_event(item))
        return n, events

    def _take_labels(self) -> tuple[int, list[dict[str, Any]]]:
        """Take one batch of the labels logged after every prediction taken so far."""
        with self._lock:
            taken: list[tuple[str, Any, float, int]] = []
            while self._labels and len(taken) < self.batch_size:
                if self._labels[0][3] > self._taken:  # a prediction before it is still queued
                    break
                taken.append(self._labels.popleft())
            self._in_flight += len(taken)
        events = [{"id": pid, "label": _plain(lab), "timestamp": ts} for pid, lab, ts, _ in taken]
        return len(taken), events

    def _settle(self, n: int, outcome: str, kind: str | None = None) -> None:
        """``n`` in-flight events are done: ``outcome`` in stats; lost ones (a ``kind``) in
        the report too."""
        with self._lock:
            self._in_flight -= n
            if kind is None:
                self._counts[outcome] += n
            else:
                self._lose(kind, n, outcome)

    def _resources(self) -> dict[str, Any] | None:
        """The ``resources`` of a predictions body: CPU and memory when sampled, and the drop
        report (zeros too, so the collector's counter starts at 0 and its first rise shows),
        or the drop report alone once something was lost."""
        sample = self._sampler.sample()
        with self._lock:
            lost = dict(self._lost)
        if sample is None:
            if not any(lost.values()):
                return None
            sample = {"replica": self._sampler.replica}
        return {**sample, "dropped": lost}

    def _send(self, client: httpx.Client, kind: str, events: list[dict[str, Any]]) -> None:
        """POST one batch until it is acknowledged or refused (or the client closes)."""
        url = f"{self.url}/v1/models/{self.model}/{kind}"
        attempt = 0
        while True:
            body: dict[str, Any] = {kind: events}
            if kind == "predictions":
                resources = self._resources()
                if resources is not None:
                    body["resources"] = resources
            problem: str
            try:
                content = orjson.dumps(body, option=_JSON_OPTIONS)
            except TypeError:  # orjson.JSONEncodeError: drop the events it cannot encode
                events = self._encodable(kind, events)
                if not events:
                    return
                continue
            try:
                response = client.post(url, content=content)
            except httpx.HTTPError as exc:
                problem = f"cannot reach the collector at {self.url} ({type(exc).__name__})"
            else:
                status = response.status_code
                if status < 300:
                    self._acknowledged(kind, events, response)
                    return
                if status not in _RETRY_STATUS:  # refused as a whole: lost, and reported
                    self._settle(len(events), "rejected", kind)
                    self._log.warning(
                        f"status-{status}",
                        "modelmeter: the collector refused %d %s with HTTP %d: %s "
                        "(not retried; check the model name, spec and token)",
                        len(events),
                        kind,
                        status,
                        _detail(response),
                    )
                    return
                problem = f"the collector answered HTTP {status}: {_detail(response)}"
            if self._closed.is_set():
                self._settle(len(events), "dropped", kind)
                return
            delay = min(self.max_backoff, 0.1 * 2 ** min(attempt, 20)) * random.uniform(0.5, 1.0)
            self._log.warning(
                "retry",
                "modelmeter: %s; retrying %d %s in %.1f s",
                problem,
                len(events),
                kind,
                delay,
            )
            attempt += 1
            # only flush() or close() cut the wait short (new events do not)
            if self._retry_now.wait(delay):
                self._retry_now.clear()
            self._count("retried", 1)

    def _encodable(self, kind: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        good: list[dict[str, Any]] = []
        for event in events:
            try:
                orjson.dumps(event, option=_JSON_OPTIONS)
            except TypeError as exc:
                self._settle(1, "dropped", kind)
                self._log.warning(
                    "encode", "modelmeter: dropped event %s: %s", event.get("id", "?"), exc
                )
            else:
                good.append(event)
        return good

    def _acknowledged(
        self, kind: str, events: list[dict[str, Any]], response: httpx.Response
    ) -> None:
        rejected: list[Any] = []
        with contextlib.suppress(ValueError, AttributeError):
            rejected = list(response.json().get("rejected") or [])
        with self._lock:
            self._in_flight -= len(events)
            self._counts["rejected"] += len(rejected)
            self._counts["sent"] += len(events) - len(rejected)
        if rejected:
            first = rejected[0]
            index = first.get("index") if isinstance(first, Mapping) else None
            error = first.get("error") if isinstance(first, Mapping) else first
            event_id = (
                events[index]["id"] if isinstance(index, int) and index < len(events) else "?"
            )
            self._log.warning(
                f"rejected-{kind}",
                "modelmeter: the collector rejected %d of %d %s; first: id %s: %s",
                len(rejected),
                len(events),
                kind,
                event_id,
                error,
            )


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail if detail is not None else response.text[:300])


_columns_cache: tuple[Any, list[str]] | None = None


def _feature_rows(features: Any, feature_names: Sequence[str] | None) -> tuple[Any, Any]:
    """(names, rows) for a DataFrame, a 2-D array (with names) or a sequence of mappings."""
    global _columns_cache
    columns = getattr(features, "columns", None)
    if columns is not None and hasattr(features, "to_numpy"):  # pandas DataFrame
        if feature_names is not None:
            return list(feature_names), features.to_numpy(copy=True)
        cached = _columns_cache  # one-row frames sliced from one frame share their columns
        if cached is None or cached[0] is not columns:
            cached = _columns_cache = (columns, [str(c) for c in columns])
        return cached[1], features.to_numpy(copy=True)
    if isinstance(features, np.ndarray):
        array = np.array(features if features.ndim == 2 else features.reshape(1, -1))
        if feature_names is not None:
            return list(feature_names), array
        return [f"x{i}" for i in range(array.shape[1])], array
    rows = list(features)
    if rows and isinstance(rows[0], Mapping):
        return None, rows
    if feature_names is None:
        raise ValueError("feature_names are needed when features are plain rows")
    return list(feature_names), rows


class MonitoredEstimator:
    """An estimator whose ``predict``/``predict_proba`` report every row to modelmeter.

    Made by ``monitor``; every other attribute is the wrapped estimator's. ``last_ids``
    holds the prediction ids of the latest call (give them to ``log_label``).
    """

    def __init__(
        self, estimator: Any, client: Client, feature_names: Sequence[str] | None = None
    ) -> None:
        if not hasattr(estimator, "predict") and not hasattr(estimator, "predict_proba"):
            raise TypeError(f"{type(estimator).__name__} has neither predict nor predict_proba")
        self.estimator = estimator
        self.client = client
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.last_ids: list[str] = []
        self._classes_source: Any = None
        self._classes_list: list[Any] | None = None

    def __repr__(self) -> str:
        return f"monitor({self.estimator!r}, {self.client!r})"

    def __getattr__(self, name: str) -> Any:
        if name == "estimator":  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.estimator, name)

    def predict(self, X: Any, *, return_ids: bool = False) -> Any:
        """``estimator.predict(X)``, reported; with ``return_ids`` also the prediction ids.

        For a classifier with ``predict_proba`` the probabilities are computed too (they feed
        the estimated performance); call ``predict_proba`` instead to run the model once.
        """
        return self._call(X, proba=False, return_ids=return_ids)

    def predict_proba(self, X: Any, *, return_ids: bool = False) -> Any:
        """``estimator.predict_proba(X)``, reported with the predicted class of each row."""
        return self._call(X, proba=True, return_ids=return_ids)

    def _names(self, X: Any) -> Sequence[str] | None:
        if self.feature_names is not None:
            return self.feature_names
        if hasattr(X, "columns"):
            return None  # _feature_rows reads the DataFrame columns
        names = getattr(self.estimator, "feature_names_in_", None)
        return [str(n) for n in names] if names is not None else None

    def _classes(self) -> list[Any] | None:
        classes = getattr(self.estimator, "classes_", None)
        if classes is not self._classes_source:  # refitted (or first call)
            self._classes_source = classes
            self._classes_list = None if classes is None else list(classes)
        return self._classes_list

    def _call(self, X: Any, proba: bool, return_ids: bool) -> Any:
        est = self.estimator
        classes = self._classes()
        start = time.perf_counter()
        try:
            if proba:
                result = probabilities = est.predict_proba(X)
                latency = time.perf_counter() - start
                predictions = None  # the argmax class, computed by the sender thread
            else:
                result = predictions = est.predict(X)
                latency = time.perf_counter() - start
                probabilities = None
                if classes is not None and hasattr(est, "predict_proba"):
                    probabilities = est.predict_proba(X)  # feeds the estimated performance
        except Exception as exc:
            self.last_ids = self.client.log_predictions(
                X,
                None,
                latency_seconds=time.perf_counter() - start,
                error=f"{type(exc).__name__}: {exc}"[:500],
                feature_names=self._names(X),
            )
            raise
        self.last_ids = self.client._log_rows(
            X,
            predictions,
            probabilities=probabilities,
            classes=classes,
            latency_seconds=latency,
            feature_names=self._names(X),
            argmax=proba and classes is not None,
        )
        return (result, self.last_ids) if return_ids else result


def monitor(
    estimator: Any, client: Client, feature_names: Sequence[str] | None = None
) -> MonitoredEstimator:
    """Wrap ``estimator`` so that its predictions are reported through ``client``.

    Each ``predict``/``predict_proba`` call is timed; every row is logged with its features,
    prediction and class probabilities; an exception is logged as one error event per row and
    re-raised. Feature names come from ``feature_names``, the DataFrame's columns or
    ``estimator.feature_names_in_``.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    >>> client = Client("http://127.0.0.1:9", model="m", flush_interval=60)
    >>> wrapped = monitor(model, client, feature_names=["x"])
    >>> predictions, ids = wrapped.predict([[0.5], [2.5]], return_ids=True)
    >>> predictions.tolist(), len(ids), client.stats["queued"]
    ([0, 1], 2, 2)
    >>> client.close(timeout=0)
    False
    """
    return MonitoredEstimator(estimator, client, feature_names)
