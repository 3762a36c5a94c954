"""The SDK's logger (``modelmeter.sdk``) and its rate limit: a model service's log must not
fill up with one warning per event while the collector is down."""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger("modelmeter.sdk")


class RateLimitedLog:
    """Log a warning per key at most once every ``interval`` seconds, counting the rest.

    >>> log = RateLimitedLog(interval=60)
    >>> log.warning("full", "modelmeter: queue full")  # logged
    >>> log.warning("full", "modelmeter: queue full")  # suppressed, counted
    >>> log.suppressed("full")
    1
    """

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

    def suppressed(self, key: str) -> int:
        """Messages of ``key`` held back since the last one logged."""
        with self._lock:
            return self._suppressed.get(key, 0)
