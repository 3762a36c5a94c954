"""The sender thread: batches from the queue to the collector, retried until settled.

One sender (thread, connection, resource sampler) per collector: a collector that is down
holds up its own queue only.

Each round sends a batch of predictions, then at most one batch of the labels whose
predictions have been taken, and again until both queues are empty. A request is repeated
with exponential backoff and jitter after a connection error, a 429 or a 5xx; any other
4xx refuses it as a whole (lost, counted as rejected and reported); a 2xx acknowledges it,
minus the events the collector rejected one by one. Every predictions request carries
``resources``: this process's CPU and memory and the cumulative drop report of its queue
(the events routed to this collector: with several collectors, none is counted twice).
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from modelmeter.sdk.encoding import ENCODE_ERRORS, dumps
from modelmeter.sdk.events import Block, plain, single_event
from modelmeter.sdk.logs import RateLimitedLog
from modelmeter.sdk.queue import EventQueue
from modelmeter.sdk.resources import ResourceSampler
from modelmeter.sdk.transport import TRANSPORT_ERRORS, Transport

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


def _detail(body: bytes) -> str:
    """The ``detail`` of an error answer, else the start of its body.

    >>> _detail(b'{"detail": "unknown model"}'), _detail(b"Bad Gateway")
    ('unknown model', 'Bad Gateway')
    """
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail if detail is not None else body.decode("utf-8", "replace")[:300])


class Sender:
    """The daemon thread that sends what ``queue`` holds to the collector at ``url``."""

    def __init__(
        self,
        queue: EventQueue,
        url: str,
        model: str,
        headers: Mapping[str, str],
        timeout: float,
        flush_interval: float,
        max_backoff: float,
        log: RateLimitedLog,
        name: str = "modelmeter-sdk",
    ) -> None:
        self.queue = queue
        self.url = url
        self.timeout = timeout
        self.flush_interval = flush_interval
        self.max_backoff = max_backoff
        self._headers = dict(headers)
        self._path = f"/v1/models/{quote(model, safe=':')}/"
        self._log = log
        self._sampler = ResourceSampler()
        self.retry_now = threading.Event()  # flush() or close(): stop waiting to retry
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def hurry(self) -> None:
        """Send now; a request waiting to be retried is retried now, once."""
        self.queue.wake.set()
        self.retry_now.set()

    def _run(self) -> None:
        transport = Transport(self.url, self._headers, self.timeout)
        try:
            while not self.queue.closed.is_set():
                self.queue.wake.wait(self.flush_interval)
                self.queue.wake.clear()
                if self.queue.closed.is_set():
                    break
                try:
                    self._drain(transport)
                except Exception as exc:  # the sender must survive anything
                    self._log.warning("internal", "modelmeter: sender error: %r", exc)
                self.queue.notify_idle()
        finally:
            transport.close()

    def _drain(self, transport: Transport) -> None:
        """Send every queued event: a batch of predictions, then a batch of the labels whose
        predictions are sent, and again, until both queues are empty.

        A label waits at most for the predictions queued before it (so it usually finds its
        prediction at the collector), never behind a stream of newer ones.
        """
        while not self.queue.closed.is_set():
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
                    self._send(transport, kind, events)
                except Exception:
                    self.queue.settle(len(events), "dropped", kind)
                    raise
            if not taken:
                return

    def _take_predictions(self) -> tuple[int, list[dict[str, Any]]]:
        """Take one batch of predictions: (events taken, the events that could be made)."""
        n, items = self.queue.take_predictions()
        events: list[dict[str, Any]] = []
        for item in items:
            if isinstance(item, Block):
                try:
                    events.extend(item.events())
                except Exception as exc:
                    self.queue.settle(len(item.ids), "dropped", "predictions")
                    self._log.warning("convert", "modelmeter: could not encode rows: %r", exc)
            else:
                events.append(single_event(item))
        return n, events

    def _take_labels(self) -> tuple[int, list[dict[str, Any]]]:
        taken = self.queue.take_labels()
        events = [{"id": pid, "label": plain(label), "timestamp": ts} for pid, label, ts in taken]
        return len(taken), events

    def _resources(self) -> dict[str, Any] | None:
        """The ``resources`` of a predictions body: CPU and memory when sampled, and the drop
        report (zeros too, so the collector's counter starts at 0 and its first rise shows),
        or the drop report alone once something was lost."""
        sample = self._sampler.sample()
        lost = self.queue.lost()
        if sample is None:
            if not any(lost.values()):
                return None
            sample = {"replica": self._sampler.replica}
        return {**sample, "dropped": lost}

    def _send(self, transport: Transport, kind: str, events: list[dict[str, Any]]) -> None:
        """POST one batch until it is acknowledged or refused (or the client closes)."""
        path = self._path + kind
        attempt = 0
        while True:
            body: dict[str, Any] = {kind: events}
            if kind == "predictions":
                resources = self._resources()
                if resources is not None:
                    body["resources"] = resources
            problem: str
            try:
                content = dumps(body)
            except ENCODE_ERRORS:  # drop the events that cannot be encoded, send the rest
                events = self._encodable(kind, events)
                if not events:
                    return
                continue
            try:
                status, answer = transport.post(path, content)
            except TRANSPORT_ERRORS as exc:
                problem = f"cannot reach the collector at {self.url} ({type(exc).__name__})"
            else:
                if status < 300:
                    self._acknowledged(kind, events, answer)
                    return
                if status not in RETRY_STATUS:  # refused as a whole: lost, and reported
                    self.queue.settle(len(events), "rejected", kind)
                    self._log.warning(
                        f"status-{status}",
                        "modelmeter: the collector refused %d %s with HTTP %d: %s "
                        "(not retried; check the model name, spec and token)",
                        len(events),
                        kind,
                        status,
                        _detail(answer),
                    )
                    return
                problem = f"the collector answered HTTP {status}: {_detail(answer)}"
            if self.queue.closed.is_set():
                self.queue.settle(len(events), "dropped", kind)
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
            if self.retry_now.wait(delay):
                self.retry_now.clear()
            self.queue.count("retried", 1)

    def _encodable(self, kind: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The events that can be encoded; the others are dropped (counted and logged)."""
        good: list[dict[str, Any]] = []
        for event in events:
            try:
                dumps(event)
            except ENCODE_ERRORS as exc:
                self.queue.settle(1, "dropped", kind)
                self._log.warning(
                    "encode", "modelmeter: dropped event %s: %s", event.get("id", "?"), exc
                )
            else:
                good.append(event)
        if len(good) == len(events):  # the body failed, not one event: do not loop forever
            self.queue.settle(len(good), "dropped", kind)
            self._log.warning("encode", "modelmeter: could not encode %d %s", len(good), kind)
            return []
        return good

    def _acknowledged(self, kind: str, events: list[dict[str, Any]], answer: bytes) -> None:
        rejected: list[Any] = []
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            rejected = list(json.loads(answer).get("rejected") or [])
        self.queue.acknowledged(len(events), len(rejected))
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
