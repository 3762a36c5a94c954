"""Supervision of child processes for ``modelmeter up``: start, prefix logs, wait, stop.

Each child runs in its own process group, so stopping it also stops anything it started. Its
output is read line by line by a thread, printed with a ``[name]`` prefix and kept (the last
lines) for the error message if it dies.

>>> import sys
>>> child = Child("echo", [sys.executable, "-c", "print('hello')"], echo=False)
>>> child.start().wait(timeout=10)
0
>>> child.stop()
0
>>> list(child.tail())
['hello']
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO

import httpx

__all__ = ["Child", "ChildDied", "http_ready", "port_is_free", "wait_ready"]


class ChildDied(RuntimeError):
    """A supervised child exited; carries its name, exit code and last log lines."""

    def __init__(self, child: Child) -> None:
        self.child = child
        self.returncode = child.returncode
        lines = "\n".join(f"  {line}" for line in child.tail())
        super().__init__(
            f"{child.name} exited with code {child.returncode}; its last log lines:\n{lines}"
        )


class Child:
    """One supervised program.

    Parameters
    ----------
    name: short name, used as the log prefix ``[name]``.
    argv: the command.
    env: extra environment variables.
    tail_lines: how many of the last output lines to keep for error messages.
    echo: print the prefixed lines to ``out`` (default stdout).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        tail_lines: int = 30,
        echo: bool = True,
        out: TextIO | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env or {})
        self.cwd = cwd
        self.echo = echo
        self._out = out
        self._tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    def __repr__(self) -> str:
        state = "not started" if self._proc is None else f"pid {self._proc.pid}"
        if self._proc is not None and self._proc.poll() is not None:
            state += f", exited {self._proc.returncode}"
        return f"Child({self.name!r}, {state})"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def tail(self) -> tuple[str, ...]:
        """The last lines the child printed."""
        return tuple(self._tail)

    def start(self) -> Child:
        """Start the program in a new process group, its output piped to the prefix thread."""
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            cwd=self.cwd,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._pump, name=f"log-{self.name}", daemon=True)
        self._reader.start()
        return self

    def _pump(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        out = self._out or sys.stdout
        for raw in self._proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            self._tail.append(line)
            if self.echo:
                with contextlib.suppress(ValueError, OSError):  # stdout closed at exit
                    print(f"[{self.name}] {line}", file=out, flush=True)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the program to exit (and its output to be read); return its exit code."""
        assert self._proc is not None
        code = self._proc.wait(timeout=timeout)
        if self._reader is not None:
            self._reader.join(timeout=2)
        return code

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process group, wait up to ``timeout`` s, then SIGKILL it."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self._proc.wait(timeout=10)
        # Leftovers of the group (a grandchild that ignored SIGTERM) go too.
        self._signal(signal.SIGKILL)
        if self._reader is not None:
            self._reader.join(timeout=2)
        return self._proc.returncode

    def _signal(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)


def http_ready(url: str) -> bool:
    """True when GET ``url`` answers 2xx (no proxy, 2 s timeout)."""
    try:
        return httpx.get(url, timeout=2.0, trust_env=False).is_success
    except httpx.HTTPError:
        return False


def wait_ready(
    child: Child,
    ready: Callable[[], bool],
    timeout: float,
    what: str,
    interval: float = 0.2,
) -> None:
    """Poll ``ready`` until true; ChildDied if the child exits, TimeoutError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        if not child.alive():
            child.wait(timeout=5)
            raise ChildDied(child)
        if ready():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{child.name} did not become ready within {timeout:.0f} s ({what})")
        time.sleep(interval)


def port_is_free(host: str, port: int) -> bool:
    """True when a TCP server could bind ``host:port`` right now.

    >>> with socket.socket() as s:
    ...     s.bind(("127.0.0.1", 0)); s.listen()
    ...     port_is_free("127.0.0.1", s.getsockname()[1])
    False
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
