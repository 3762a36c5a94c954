"""The bounded in-memory queue between the caller's threads and the sender thread.

Predictions and labels wait in two queues of at most ``max_queue`` events each (a full
prediction queue never takes the room of labels). A call that finds no room waits up to
``block_timeout`` seconds, then drops its events; every lost event is counted, both in the
stats and in the drop report sent to the collector. The sender takes batches of at most
``batch_size`` events, and a label only once every prediction queued before it was taken.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from modelmeter.sdk.events import Block, Single
from modelmeter.sdk.logs import RateLimitedLog

# a queued label: (id, label, timestamp, predictions enqueued before it)
_Label = tuple[str, Any, float, int]


class EventQueue:
    """Two bounded queues (predictions, labels), their counts and the sender's wake-up.

    >>> q = EventQueue(max_queue=2, batch_size=10, block_timeout=0, log=RateLimitedLog())
    >>> for i in range(3):
    ...     q.put(("p%d" % i, 0.0, {}, 0, None, None, None, None, None, "v"), 1)
    >>> q.stats()
    {'sent': 0, 'dropped': 1, 'rejected': 0, 'retried': 0, 'queued': 2}
    >>> n, items = q.take_predictions()
    >>> n, [item[0] for item in items]
    (2, ['p0', 'p1'])
    >>> q.acknowledged(n, rejected=0)
    >>> q.stats()["sent"], q.is_idle()
    (2, True)
    """

    def __init__(
        self,
        max_queue: int,
        batch_size: int,
        block_timeout: float,
        log: RateLimitedLog,
        url: str = "",
    ) -> None:
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.block_timeout = block_timeout
        self._log = log
        self._url = url
        self._predictions: deque[Single | Block] = deque()
        self._labels: deque[_Label] = deque()
        self._n_predictions = 0  # events in self._predictions (a block counts its rows)
        self._enqueued = 0  # predictions ever queued; always _taken + _n_predictions
        self._taken = 0  # predictions ever taken by the sender
        self._in_flight = 0  # events taken from the queue, not yet settled
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)  # callers waiting for room
        self._idle = threading.Condition(threading.Lock())  # flush() waiting for an empty queue
        self.wake = threading.Event()  # data to send (a full batch) or a flush
        self.closed = threading.Event()  # nothing more is queued or sent
        self._counts = {"sent": 0, "dropped": 0, "rejected": 0, "retried": 0}
        self._lost = {"predictions": 0, "labels": 0}  # reported as resources.dropped

    # ------------------------------------------------------------------ caller's side

    def put(self, item: Single | Block, n: int, block_timeout: float | None = None) -> None:
        """Queue ``n`` predictions (one tuple or a block), waiting up to ``block_timeout``
        (the queue's unless given) for room; dropped (and counted) when there is none or the
        client is closed."""
        wait = self.block_timeout if block_timeout is None else block_timeout
        with self._lock:
            if self._n_predictions + n > self.max_queue and wait > 0:
                deadline = time.monotonic() + wait
                while self._n_predictions + n > self.max_queue:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._space.wait(remaining):
                        break
            dropped = self._n_predictions + n > self.max_queue or self.closed.is_set()
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
                self._url,
            )
        elif full and not self.wake.is_set():
            self.wake.set()

    def put_labels(self, items: list[tuple[str, Any, float]]) -> None:
        """Queue labels ``(id, label, timestamp)``; those without room are dropped (never
        waited for: labels come from a batch job more often than from the model's thread)."""
        with self._lock:
            room = max(self.max_queue - len(self._labels), 0)
            if self.closed.is_set():
                room = 0
            if room < len(items):
                self._lose("labels", len(items) - room)
                items = items[:room]
                self._log.warning("full", "modelmeter: queue full, dropping events")
            mark = self._enqueued
            self._labels.extend([(pid, label, ts, mark) for pid, label, ts in items])
            full = len(self._labels) >= self.batch_size
        if full:
            self.wake.set()

    def drop(self, kind: str, n: int) -> None:
        """Count ``n`` events of ``kind`` lost before they were queued."""
        with self._lock:
            self._lose(kind, n)

    def _lose(self, kind: str, n: int, outcome: str = "dropped") -> None:
        """Count ``n`` lost events of ``kind`` (hold the lock): in stats and in the report."""
        self._counts[outcome] += n
        self._lost[kind] += n

    # ------------------------------------------------------------------ sender's side

    def take_predictions(self) -> tuple[int, list[Single | Block]]:
        """Take one batch of predictions: (events taken, the tuples and blocks), a block cut
        where the batch is full (its rest stays first in the queue)."""
        items: list[Single | Block] = []
        with self._lock:
            n = 0
            while self._predictions and n < self.batch_size:
                item = self._predictions.popleft()
                if isinstance(item, Block) and n + len(item.ids) > self.batch_size:
                    item, rest = item.split(self.batch_size - n)
                    self._predictions.appendleft(rest)
                items.append(item)
                n += len(item.ids) if isinstance(item, Block) else 1
            self._n_predictions -= n
            self._taken += n
            self._in_flight += n
            if n:
                self._space.notify_all()
        return n, items

    def take_labels(self) -> list[tuple[str, Any, float]]:
        """Take one batch of the labels logged after every prediction taken so far."""
        with self._lock:
            taken: list[tuple[str, Any, float]] = []
            while self._labels and len(taken) < self.batch_size:
                if self._labels[0][3] > self._taken:  # a prediction before it is still queued
                    break
                pid, label, ts, _ = self._labels.popleft()
                taken.append((pid, label, ts))
            self._in_flight += len(taken)
        return taken

    def settle(self, n: int, outcome: str, kind: str | None = None) -> None:
        """``n`` in-flight events are done: ``outcome`` in stats; lost ones (a ``kind``) in
        the report too."""
        with self._lock:
            self._in_flight -= n
            if kind is None:
                self._counts[outcome] += n
            else:
                self._lose(kind, n, outcome)

    def acknowledged(self, n: int, rejected: int) -> None:
        """The collector answered 2xx for ``n`` in-flight events, refusing ``rejected``."""
        with self._lock:
            self._in_flight -= n
            self._counts["rejected"] += rejected
            self._counts["sent"] += n - rejected

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def lost(self) -> dict[str, int]:
        """Events lost per kind so far (the drop report)."""
        with self._lock:
            return dict(self._lost)

    def notify_idle(self) -> None:
        """The sender is done with a round: wake ``wait_idle``."""
        with self._idle:
            self._idle.notify_all()

    # ------------------------------------------------------------------ controls

    def stats(self) -> dict[str, int]:
        with self._lock:
            out = dict(self._counts)
            out["queued"] = self._n_predictions + len(self._labels) + self._in_flight
        return out

    def is_idle(self) -> bool:
        """Nothing queued and nothing in flight."""
        with self._lock:
            return not self._predictions and not self._labels and self._in_flight == 0

    def wait_idle(self, timeout: float, alive: Callable[[], bool]) -> bool:
        """Wait up to ``timeout`` s for ``is_idle`` (while the sender is ``alive``)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while True:
                if self.is_idle():
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not alive():
                    return self.is_idle()
                self._idle.wait(min(remaining, 0.05))

    def discard(self) -> None:
        """Count what is still queued as dropped and forget it (the client is closing)."""
        with self._lock:
            self._lose("predictions", self._n_predictions)
            self._lose("labels", len(self._labels))
            self._predictions.clear()
            self._labels.clear()
            self._taken += self._n_predictions
            self._n_predictions = 0


def total(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    """The sum of count dicts (several collectors' queues), keys in the first one's order.

    >>> total([{"sent": 1, "dropped": 0}, {"sent": 2, "dropped": 5}])
    {'sent': 3, 'dropped': 5}
    """
    out: dict[str, int] = {}
    for one in counts:
        for key, value in one.items():
            out[key] = out.get(key, 0) + value
    return out
