"""``Client``: what a model service calls to report predictions and labels.

Every ``log_*`` call only appends to a bounded queue (no JSON, no I/O) and never raises; a
background thread (``sender``) sends the queue to the collector. With several collectors for
one model, each event goes to the queue (and sender thread) of the collector its prediction
id is routed to (``routing``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import time
import uuid
import weakref
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from modelmeter.sdk.events import MISSING, Block, feature_rows
from modelmeter.sdk.logs import RateLimitedLog
from modelmeter.sdk.queue import EventQueue, total
from modelmeter.sdk.routing import Router
from modelmeter.sdk.sender import Sender
from modelmeter.sdk.transport import parse_url

if TYPE_CHECKING:
    import numpy as np


def _restart_after_fork(ref: weakref.ReferenceType[Client]) -> None:
    client = ref()
    if client is not None and not client._queue.closed.is_set():
        client._start()


class Client:
    """Send prediction and label events to a modelmeter collector, in the background.

    Parameters
    ----------
    url: the collector's base URL, e.g. ``http://127.0.0.1:8000``; or a list of the base URLs
        of the collectors the model is spread over: each event then goes to the collector its
        prediction id is routed to (rendezvous hashing, ``modelmeter.sdk.routing``), so that
        a label reaches the collector that holds its prediction.
    model: the registered model name (``PUT /v1/models/{model}`` first).
    version: model version reported with every prediction.
    token: bearer token when the collector requires one for writes.
    batch_size: events per request; a full batch is sent at once.
    flush_interval: seconds between sends of a partial batch.
    max_queue: events held in memory at most, for predictions and for labels separately (a
        full prediction queue never takes the room of labels), per collector; more are
        dropped.
    timeout: seconds for one HTTP request (connect, and each read or write).
    block_timeout: seconds a caller may wait for room in a full queue (0: drop at once).
    max_backoff: longest pause between two retries, in seconds.

    Nothing the client does raises into the caller after construction: what cannot be
    delivered is counted in ``stats``, logged (rate-limited) and reported to the collector
    (``reported_drops``).

    Sending order: a batch of predictions, then at most one batch of the labels whose
    predictions have been sent, and so on (``modelmeter.sdk.sender``): labels never starve
    behind sustained prediction traffic, and usually find their prediction at the collector.

    Each collector has its own queue and sender thread: one that is down has its events
    retried (never sent elsewhere) while the others carry on. ``stats`` and
    ``reported_drops`` are totals; ``collector_stats`` has them per collector, and each
    collector is told the drops of the events routed to it.

    HTTP is the standard library's ``http.client``: one keep-alive connection per collector,
    HTTPS with the system's CA store (``SSL_CERT_FILE``/``SSL_CERT_DIR``), ``HTTP(S)_PROXY``
    and ``NO_PROXY`` from the environment (see ``modelmeter.sdk.transport``). JSON goes
    through orjson when it is installed, else the standard library's ``json``.

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
        url: str | Sequence[str],
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
        urls = [url] if isinstance(url, str) else list(url)
        if not urls:
            raise ValueError("url must be a collector URL or a non-empty list of them")
        for one in urls:
            if not isinstance(one, str) or not one.startswith(("http://", "https://")):
                raise ValueError(f"url must start with http:// or https://, got {one!r}")
            parse_url(one)
        if not model:
            raise ValueError("model must be a non-empty name (the name used in PUT /v1/models)")
        if token is not None and any(c in token for c in "\r\n\0"):
            raise ValueError("token must not contain line breaks or NUL")
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
        self.urls = tuple(one.rstrip("/") for one in urls)
        self.url = self.urls[0]  # the only one, for one collector
        # None for one collector: every event goes to it, nothing is hashed
        self._router = Router(self.urls) if len(self.urls) > 1 else None
        self.model = model
        self.version = version
        self.batch_size = int(batch_size)
        self.flush_interval = float(flush_interval)
        self.max_queue = int(max_queue)
        self.timeout = float(timeout)
        self.block_timeout = float(block_timeout)
        self.max_backoff = float(max_backoff)

        self._headers = {"Content-Type": "application/json", "User-Agent": "modelmeter-sdk"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._start()
        atexit.register(self._atexit)
        # a pre-forking server (gunicorn --preload) forks after the client exists: the child
        # gets a fresh queue and its own sender thread
        os.register_at_fork(after_in_child=partial(_restart_after_fork, weakref.ref(self)))

    def _start(self) -> None:
        """(Re)create the queues, their counts and the sender threads (also in a forked
        child): one of each per collector, each with its own rate-limited log."""
        self._log = RateLimitedLog()
        self._queues: list[EventQueue] = []
        self._senders: list[Sender] = []
        for i, url in enumerate(self.urls):
            log = RateLimitedLog()
            queue = EventQueue(self.max_queue, self.batch_size, self.block_timeout, log, url)
            name = "modelmeter-sdk" if len(self.urls) == 1 else f"modelmeter-sdk-{i + 1}"
            sender = Sender(
                queue,
                url,
                self.model,
                self._headers,
                self.timeout,
                self.flush_interval,
                self.max_backoff,
                log,
                name,
            )
            self._queues.append(queue)
            self._senders.append(sender)
        # the first collector's: events lost before they could be routed are counted there
        self._queue = self._queues[0]
        for sender in self._senders:
            sender.start()

    def __repr__(self) -> str:
        url = self.url if len(self.urls) == 1 else list(self.urls)
        return f"Client(url={url!r}, model={self.model!r}, version={self.version!r})"

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
        label: Any = MISSING,
        id: str | None = None,
        timestamp: float | None = None,
        version: str | None = None,
    ) -> str:
        """Queue one prediction; return its id (give it to ``log_label`` later).

        >>> c = Client("http://127.0.0.1:9", model="m", flush_interval=60)
        >>> len(c.log_prediction({"x": 1.0}, 1, probabilities={0: 0.3, 1: 0.7}))
        32
        >>> c.log_prediction({"x": 2.0}, 0, score=0.1, latency_seconds=0.004, id="req-7")
        'req-7'
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
            router = self._router
            queue = self._queue if router is None else self._queues[router.index(pid)]
            queue.put(item, 1)
            return pid
        except Exception as exc:  # never raise into the model service
            self._queue.drop("predictions", 1)
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

        ``features`` is a pandas DataFrame, a 2-D array or plain rows (lists) with
        ``feature_names``, or a sequence of mappings. ``probabilities`` is an ``(n, k)`` array
        (or list of lists) in ``classes`` order (as from ``predict_proba`` and
        ``estimator.classes_``), or one mapping/list per row. ``latency_seconds`` is one value
        for the whole call or one per row; ``error`` marks every row as failed
        (``predictions`` may then be None). Without ``predictions``, ``probabilities`` and
        ``classes`` give each row's prediction: the class of the highest probability (found
        by the sender thread, not the caller's).

        >>> c = Client("http://127.0.0.1:9", model="m", flush_interval=60)
        >>> ids = c.log_predictions([[1.0, 2.0], [3.0, 4.0]], [0, 1], feature_names=["a", "b"])
        >>> len(ids), c.stats["queued"]
        (2, 2)
        >>> c.log_predictions([{"a": 5.0}], ["yes"], probabilities=[[0.2, 0.8]],
        ...                   classes=["no", "yes"], ids=["r-1"])
        ['r-1']
        >>> c.close(timeout=0)
        False
        """
        try:
            names, rows = feature_rows(features, feature_names)
            n = len(rows)
            id_list = list(ids) if ids is not None else [uuid.uuid4().hex for _ in range(n)]
            if len(id_list) != n:
                raise ValueError(f"{len(id_list)} ids for {n} rows")
            if predictions is not None and len(predictions) != n:
                raise ValueError(f"{len(predictions)} predictions for {n} rows")
            block = Block(
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
            )
            router = self._router
            if n and router is None:
                self._queue.put(block, n)
            elif n and router is not None:  # each collector's rows: block_timeout in all
                deadline = time.monotonic() + self.block_timeout
                parts = router.partition(id_list)
                for queue, positions in zip(self._queues, parts, strict=True):
                    if positions:
                        wait = max(deadline - time.monotonic(), 0.0)
                        queue.put(block.select(positions), len(positions), wait)
            return id_list
        except Exception as exc:  # never raise into the model service
            self._log.warning("internal", "modelmeter: dropped a batch of predictions: %r", exc)
            with contextlib.suppress(Exception):
                self._queue.drop("predictions", len(features))
            return list(ids) if ids is not None else []

    def log_label(self, id: str, label: Any, timestamp: float | None = None) -> None:
        """Queue the true label of the prediction ``id``.

        >>> c = Client("http://127.0.0.1:9", model="m", flush_interval=60)
        >>> pid = c.log_prediction({"x": 1.0}, "spam")
        >>> c.log_label(pid, "ham")
        >>> c.stats["queued"]
        2
        >>> c.close(timeout=0)
        False
        """
        self.log_labels([(id, label)], timestamp=timestamp)

    def log_labels(
        self, labels: Iterable[tuple[str, Any]] | Mapping[str, Any], timestamp: float | None = None
    ) -> None:
        """Queue many labels: ``(id, label)`` pairs or a mapping id -> label.

        >>> c = Client("http://127.0.0.1:9", model="m", flush_interval=60)
        >>> c.log_labels({"a": 1, "b": 0}); c.stats["queued"]
        2
        >>> c.log_labels([("c", 1)], timestamp=1_700_000_000.0); c.stats["queued"]
        3
        >>> c.close(timeout=0)
        False
        """
        try:
            pairs = labels.items() if isinstance(labels, Mapping) else labels
            ts = time.time() if timestamp is None else timestamp
            items = [(str(pid), label, ts) for pid, label in pairs]
            router = self._router
            if router is None:
                self._queue.put_labels(items)
                return
            for queue, part in zip(self._queues, router.group(items), strict=True):
                if part:
                    queue.put_labels(part)
        except Exception as exc:  # never raise into the model service
            self._log.warning("internal", "modelmeter: dropped labels: %r", exc)
            with contextlib.suppress(Exception):
                self._queue.drop("labels", len(labels))  # type: ignore[arg-type]

    # ------------------------------------------------------------------ public controls

    @property
    def stats(self) -> dict[str, int]:
        """Counts of events since the client started (or forked).

        ``sent``: acknowledged by the collector; ``dropped``: queue full, not encodable, or
        undeliverable at close or exit; ``rejected``: refused by the collector (a 4xx for the
        whole request, or one by one); ``retried``: requests repeated after a connection
        error, 429 or 5xx; ``queued``: waiting now, or in flight.

        >>> c = Client("http://127.0.0.1:9", model="m", flush_interval=60)
        >>> c.stats
        {'sent': 0, 'dropped': 0, 'rejected': 0, 'retried': 0, 'queued': 0}
        >>> c.log_label("p-1", 1); c.close(timeout=0)  # nobody listens: the label is lost
        False
        >>> c.stats["dropped"], c.stats["queued"]
        (1, 0)
        """
        return total(q.stats() for q in self._queues)

    @property
    def collector_stats(self) -> dict[str, dict[str, int]]:
        """``stats`` per collector URL (in the order given): the events routed to each.

        >>> c = Client(["http://127.0.0.1:9", "http://127.0.0.1:10/"], model="m")
        >>> c.log_labels({"a": 1, "b": 0, "c": 1})
        >>> {url: s["queued"] for url, s in c.collector_stats.items()}
        {'http://127.0.0.1:9': 2, 'http://127.0.0.1:10': 1}
        >>> c.close(timeout=0)
        False
        """
        return {url: q.stats() for url, q in zip(self.urls, self._queues, strict=True)}

    @property
    def reported_drops(self) -> dict[str, int]:
        """Events lost per kind since the client started, as reported to the collector.

        The ``dropped`` events plus those refused by a 4xx answer to their whole request; not
        the ones the collector rejected one by one (it counts those itself). The counts travel
        as ``resources.dropped`` with every predictions request, and the collector exports
        them as ``modelmeter_client_dropped_events_total{model, replica, kind}``; a label
        dropped while no predictions are sent is reported with the next predictions request.

        >>> c = Client("http://127.0.0.1:9", model="m", max_queue=1, flush_interval=60)
        >>> c.log_labels({"a": 1, "b": 0})
        >>> c.reported_drops
        {'predictions': 0, 'labels': 1}
        >>> c.close(timeout=0)
        False
        """
        return total(q.lost() for q in self._queues)

    def flush(self, timeout: float = 10.0) -> bool:
        """Send everything queued now (retrying at once); True when all was settled in time.

        Settled means acknowledged, or refused by the collector (4xx): nothing left to send.
        Blocks the caller for up to ``timeout`` seconds; the events stay queued when it
        returns False.

        >>> c = Client("http://127.0.0.1:9", model="m", flush_interval=60)
        >>> c.flush()  # nothing queued
        True
        >>> _ = c.log_prediction({"x": 1.0}, 1)
        >>> c.flush(timeout=0.2), c.stats["queued"]  # nobody listens on port 9
        (False, 1)
        >>> c.close(timeout=0)
        False
        """
        for sender in self._senders:
            sender.hurry()
        deadline = time.monotonic() + timeout
        done = True
        for queue, sender in zip(self._queues, self._senders, strict=True):
            remaining = max(deadline - time.monotonic(), 0.0)
            done = queue.wait_idle(remaining, sender.is_alive) and done
        return done

    def close(self, timeout: float = 5.0) -> bool:
        """Flush (up to ``timeout`` s), then stop the sender; what is left counts as dropped.

        Returns what ``flush`` returned: True when everything was settled. Later ``log_*``
        calls are counted as dropped. A client is also a context manager that closes on exit.

        >>> with Client("http://127.0.0.1:9", model="m") as c:
        ...     pass
        >>> c.close()  # closing again is harmless
        True
        >>> c.log_prediction({"x": 1.0}, 1, id="late"), c.stats["dropped"]
        ('late', 1)
        """
        done = self.flush(timeout)  # a queue whose sender is gone: whether it is empty
        for queue, sender in zip(self._queues, self._senders, strict=True):
            queue.closed.set()
            sender.hurry()
        deadline = time.monotonic() + max(timeout, 0.1) + self.timeout
        for sender in self._senders:  # each may be in a request: at most ``timeout`` more
            sender.join(timeout=max(deadline - time.monotonic(), 0.0))
        for queue in self._queues:
            queue.discard()
        with contextlib.suppress(Exception):
            atexit.unregister(self._atexit)
        return done

    def _atexit(self) -> None:
        if not self._queue.closed.is_set():
            self.close(timeout=2.0)  # bounded: the interpreter must be able to exit
