"""Replay a stream to the model service at a set speed; deliver its true labels later.

Time is compressed: one row (one day of weather) every ``1/speed`` seconds, so a drift that
took years shows in minutes. The ``LabelFeeder`` sends each true label by prediction id
``delay`` seconds after the prediction, as a real label source would.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from modelmeter.demo.data import DemoData
from modelmeter.sdk import Client

__all__ = ["LabelFeeder", "ReplayStats", "Replayer"]

MAX_ROWS_PER_REQUEST = 200
MIN_REQUEST_INTERVAL = 0.05  # at high speed, rows due within 50 ms go in one request


class LabelFeeder:
    """A thread that logs ``(id, label)`` pairs through ``client`` once they are ``delay`` old."""

    def __init__(self, client: Client, delay: float, stop: threading.Event) -> None:
        if delay < 0:
            raise ValueError(f"label delay must be >= 0 seconds, got {delay}")
        self.client = client
        self.delay = delay
        self._stop = stop
        self._pending: deque[tuple[float, Sequence[str], Sequence[Any]]] = deque()
        self._ready = threading.Condition()
        self.delivered = 0
        self._thread = threading.Thread(target=self._run, name="demo-labels", daemon=True)

    def start(self) -> LabelFeeder:
        self._thread.start()
        return self

    def add(self, ids: Sequence[str], labels: Sequence[Any]) -> None:
        with self._ready:
            self._pending.append((time.monotonic() + self.delay, ids, labels))
            self._ready.notify()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._ready:
                if not self._pending:
                    self._ready.wait(0.2)
                    continue
                due, ids, labels = self._pending[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._ready.wait(min(wait, 0.2))
                    continue
                self._pending.popleft()
            self.client.log_labels(list(zip(ids, labels, strict=True)))
            self.delivered += len(ids)

    def join(self, timeout: float = 5.0) -> None:
        with self._ready:
            self._ready.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)


@dataclass
class ReplayStats:
    """What the replayer saw: rows sent, failed requests, recent hits (prediction == label)."""

    sent: int = 0
    failed: int = 0
    recent: deque[bool] = field(default_factory=lambda: deque(maxlen=500))

    @property
    def recent_accuracy(self) -> float:
        return float(np.mean(self.recent)) if self.recent else float("nan")


class Replayer:
    """Send rows ``start..stop`` of ``data`` to ``service_url`` at ``speed`` rows per second."""

    def __init__(
        self,
        service_url: str,
        data: DemoData,
        speed: float,
        feeder: LabelFeeder,
        stop: threading.Event,
        start: int | None = None,
        end: int | None = None,
        loop: bool = False,
        progress: Callable[[str], None] = print,
        progress_every: float = 5.0,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0 rows per second, got {speed}")
        self.service_url = service_url.rstrip("/")
        self.data = data
        self.speed = float(speed)
        self.feeder = feeder
        self.start = data.replay_start if start is None else start
        self.end = len(data) if end is None else min(end, len(data))
        if not 0 <= self.start < self.end:
            raise ValueError(f"replay rows {self.start}..{self.end} are empty")
        self.loop = loop
        self.progress = progress
        self.progress_every = progress_every
        self.stats = ReplayStats()
        self._stop = stop
        self._columns = [str(c) for c in data.frame.columns]
        self._values = data.frame.to_numpy()

    def run(self) -> ReplayStats:
        with httpx.Client(timeout=10.0) as http:
            while not self._stop.is_set():
                self._one_pass(http)
                if not self.loop:
                    break
                self.progress("replay: end of the stream, starting again (--loop)")
        return self.stats

    def _one_pass(self, http: httpx.Client) -> None:
        t0 = time.monotonic()
        row = self.start
        last_progress = t0
        announced = {r for r in self.data.drift_rows if r <= row}
        last_send = -float("inf")
        while row < self.end and not self._stop.is_set():
            now = time.monotonic()
            due = min(self.end, self.start + int((now - t0) * self.speed) + 1)
            next_due = t0 + (row - self.start) / self.speed
            if due <= row or now < last_send + MIN_REQUEST_INTERVAL:
                wake = max(next_due, last_send + MIN_REQUEST_INTERVAL)
                self._stop.wait(max(0.0, wake - now))
                continue
            last_send = now
            upto = min(due, row + MAX_ROWS_PER_REQUEST)
            self._send(http, row, upto)
            for at, what in self.data.drift_rows.items():
                if row <= at < upto and at not in announced:
                    announced.add(at)
                    self.progress(f"replay: row {at:,}: {what} (known drift point)")
            row = upto
            if now - last_progress >= self.progress_every:
                last_progress = now
                self._print_progress(row)
        self._print_progress(row)

    def _print_progress(self, row: int) -> None:
        done = (row - self.start) / (self.end - self.start)
        self.progress(
            f"replay: row {row:,} of {self.end:,} ({done:.0%}), {self.speed:g} rows/s, "
            f"accuracy of the last {len(self.stats.recent)} rows "
            f"{self.stats.recent_accuracy:.2f}, failed requests {self.stats.failed}"
        )

    def _send(self, http: httpx.Client, lo: int, hi: int) -> None:
        rows = [dict(zip(self._columns, v, strict=True)) for v in self._values[lo:hi].tolist()]
        try:
            response = http.post(f"{self.service_url}/predict", json={"rows": rows})
            response.raise_for_status()
            body = response.json()
        except httpx.HTTPError as exc:
            self.stats.failed += 1
            if self.stats.failed in (1, 10, 100) or self.stats.failed % 1000 == 0:
                self.progress(f"replay: the model service failed ({exc!r}); continuing")
            return
        labels = self.data.labels[lo:hi].tolist()
        self.feeder.add(body["ids"], labels)
        self.stats.sent += hi - lo
        self.stats.recent.extend(
            int(p) == y for p, y in zip(body["predictions"], labels, strict=True)
        )
