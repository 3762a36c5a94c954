"""Fixtures shared by the whole suite (the helpers themselves live in tests/helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import ManagedProcess, collector_process


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[ManagedProcess]:
    """A real collector process on a free loopback port, with its own data directory.

    ``collector.url`` is its base URL; the process is stopped after the test.
    """
    proc = collector_process(tmp_path)
    with proc:
        yield proc
