"""The short soak (bench/soak.py): the real collector under traffic, releases and two kill -9.

Sized for a 2-core CI machine: 6 models at 300 events/s for 60 s, versions every 8 s with
MODELMETER_MAX_VERSIONS=3 (so versions retire), two kill -9 restarts. Asserts what the
benchmark proves (every acknowledged event counted by the engine and in the store), that
both restarts happened, that versions retired, and a generous bound on memory. No slope is
asserted: over one minute on a shared machine, timing noise dominates.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "soak.py"
RSS_LIMIT_MIB = 600


def load_soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_soak", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_soak"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def summary() -> dict[str, Any]:
    soak = load_soak()
    config = soak.SoakConfig(
        duration=60.0,
        models=6,
        rate=300.0,
        rotate_every=8.0,
        max_versions=3,
        restarts=2,
        sample_every=2.0,
        quiet=True,
    )
    result: dict[str, Any] = soak.run(config)
    print(soak.report(result))
    return result


@pytest.mark.e2e
def test_no_acknowledged_event_is_lost(summary: dict[str, Any]) -> None:
    assert not summary["fatal"], summary["fatal"]
    assert summary["acked_events"] > 5000
    assert summary["unproven_events"] == 0
    assert summary["lost"] == 0, [r for r in summary["per_version"] if r["lost"]]
    assert summary["labels_counted_equal_for_live_versions"]


@pytest.mark.e2e
def test_both_restarts_happened(summary: dict[str, Any]) -> None:
    assert len(summary["restarts"]) == 2
    assert len(set(summary["collector_pids"])) == 3


@pytest.mark.e2e
def test_versions_retired(summary: dict[str, Any]) -> None:
    retired = summary["versions_retired_metric"]
    if retired is None:  # a collector without the counter: from the live versions
        retired = summary["versions_retired_seen"]
    assert retired >= 1
    assert summary["versions_live_at_end"] <= 6 * 3


@pytest.mark.e2e
def test_memory_bounded_after_warm_up(summary: dict[str, Any]) -> None:
    peaks = [r["rss_after_warmup_max_mib"] for r in summary["rss"] if r["rss_after_warmup_max_mib"]]
    assert peaks, summary["rss"]
    assert max(peaks) < RSS_LIMIT_MIB
