"""What the SDK says about the process it runs in: its replica name, CPU and memory.

psutil is the SDK's one dependency; without it the samples are None (the drop report still
travels, with the replica name alone).
"""

from __future__ import annotations

import os
import re
import socket
import time
from typing import Any

try:
    import psutil
except ImportError:  # a dependency, but the SDK still works without it (no CPU and memory)
    psutil = None  # type: ignore[assignment]

_REPLICA_CHARS = re.compile(r"[^A-Za-z0-9_.:-]")


def replica_name(hostname: str | None = None, pid: int | None = None) -> str:
    """``hostname-pid`` cut to the ``[A-Za-z0-9_.:-]{1,64}`` the collector accepts.

    The name a client reports its CPU, memory and drops under (``resources.replica``); by
    default this host's name and this process's id.

    >>> replica_name("web 1.example", 42)
    'web_1.example-42'
    >>> len(replica_name("h" * 100, 7))
    64
    >>> replica_name("", 7)
    'host-7'
    """
    host = _REPLICA_CHARS.sub("_", hostname if hostname is not None else socket.gethostname())
    suffix = f"-{pid if pid is not None else os.getpid()}"
    return (host[: 64 - len(suffix)] or "host") + suffix


class ResourceSampler:
    """CPU ratio (1.0 = one core) and RSS of this process, sampled at most once per second.

    Without psutil ``sample()`` is None; ``replica`` is this process's name either way.

    >>> sampler = ResourceSampler()
    >>> sample = sampler.sample()
    >>> sample is None or sorted(sample) == ["cpu_ratio", "memory_bytes", "replica"]
    True
    >>> sampler.replica == replica_name()
    True
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
