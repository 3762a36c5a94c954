"""BucketRing: the window is exactly the sum of the adds that have not expired."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmeter.engine import BucketRing

# One operation: (time, position, weight). Times are multiples of 0.5 s so that bucket
# boundaries are hit exactly; positions index a statistic of shape (3,).
operations = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=400).map(lambda t: t / 2.0),
        st.integers(min_value=0, max_value=2),
        st.integers(min_value=1, max_value=5).map(float),
    ),
    max_size=60,
)


def reference_window(
    adds: list[tuple[float, int, float]], head: int, n_buckets: int, width: float
) -> np.ndarray:
    """Brute force: the sum of every add whose (clamped) bucket is still in the window."""
    total = np.zeros(3)
    for time, position, weight in adds:
        bucket = min(int(np.floor(time / width)), head)
        if bucket > head - n_buckets:
            total[position] += weight
    return total


@settings(max_examples=200, deadline=None)
@given(ops=operations, n_buckets=st.integers(1, 7), batch=st.integers(1, 5))
def test_window_equals_sum_of_non_expired_adds(
    ops: list[tuple[float, int, float]], n_buckets: int, batch: int
) -> None:
    width = 10.0
    ring = BucketRing(n_buckets, width, {"s": (3,)})
    applied: list[tuple[float, int, float]] = []
    totals = np.zeros(3)
    for start in range(0, len(ops), batch):
        chunk = ops[start : start + batch]
        times = np.array([t for t, _, _ in chunk])
        # The head moves like the monitor moves it without `now`: to the newest time.
        ring.advance(float(times.max()))
        slots = ring.slots(times)
        totals += ring.add(
            "s", slots, np.array([p for _, p, _ in chunk]), np.array([w for _, _, w in chunk])
        )
        head = ring.head
        assert head is not None
        # Events that were already older than the window never enter it.
        applied += [(t, p, w) for t, p, w in chunk if np.floor(t / width) > head - n_buckets]
        np.testing.assert_array_equal(
            ring.window("s"), reference_window(applied, head, n_buckets, width)
        )
    # Totals count every add, expired or not.
    expected_totals = np.zeros(3)
    for _, position, weight in ops:
        expected_totals[position] += weight
    np.testing.assert_array_equal(totals, expected_totals)


@settings(max_examples=100, deadline=None)
@given(ops=operations, later=st.integers(0, 100))
def test_advance_expires_exactly_the_old_buckets(
    ops: list[tuple[float, int, float]], later: int
) -> None:
    ring = BucketRing(5, 10.0, {"s": (3,)})
    ring.advance(200.0)  # every op time (<= 200) is at or before the head
    for time, position, weight in ops:
        ring.add("s", ring.slots(np.array([time])), np.array([position]), np.array([weight]))
    ring.advance(200.0 + later)
    head = ring.head
    assert head is not None
    expected = reference_window(ops, head, 5, 10.0)
    # Ops added when they were already too old never count, whatever happens later.
    expected -= reference_window([op for op in ops if op[0] < 160.0], head, 5, 10.0)
    np.testing.assert_array_equal(ring.window("s"), expected)


def test_future_times_go_to_the_head_bucket_and_old_times_only_to_totals() -> None:
    ring = BucketRing(3, 10.0, {"s": (1,)})
    ring.advance(100.0)  # head bucket 10; window = buckets 8, 9, 10
    slots = ring.slots(np.array([500.0, 79.9, 80.0, 105.0]))
    assert slots.tolist() == [10 % 3, 3, 8 % 3, 10 % 3]
    total = ring.add("s", slots)
    assert total.tolist() == [4.0]
    assert ring.window("s").tolist() == [3.0]
    ring.advance(129.0)  # head bucket 12: buckets 10, 11, 12 remain
    assert ring.window("s").tolist() == [2.0]
    ring.advance(50.0)  # never backwards
    assert ring.head == 12


def test_multi_dimensional_index_counts_each_row() -> None:
    ring = BucketRing(2, 1.0, {"m": (2, 3)})
    ring.advance(1.0)
    slots = ring.slots(np.array([0.5, 1.5, 1.2]))
    index = np.array([[0, 1, 2], [3, 3, 5]])  # 2 positions per event
    ring.add("m", slots, index)
    assert ring.window("m").tolist() == [[1.0, 1.0, 1.0], [2.0, 0.0, 1.0]]


def test_round_trip_through_json_is_exact() -> None:
    rng = np.random.default_rng(3)
    ring = BucketRing(4, 2.5, {"a": (2,), "b": (2, 2)})
    ring.advance(10.0)
    slots = ring.slots(rng.uniform(0, 10, 50))
    ring.add("a", slots, rng.integers(0, 2, 50), rng.random(50))
    ring.add("b", slots, rng.integers(0, 4, 50))
    data = json.loads(json.dumps(ring.to_data()))
    again = BucketRing.from_data(data, {"a": (2,), "b": (2, 2)})
    assert again.head == ring.head
    for name in ("a", "b"):
        np.testing.assert_array_equal(again.window(name), ring.window(name))
    with pytest.raises(ValueError, match="shape"):
        BucketRing.from_data(data, {"a": (3,), "b": (2, 2)})


def test_invalid_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="n_buckets"):
        BucketRing(0, 1.0, {})
    ring = BucketRing(2, 1.0, {"s": (1,)})
    with pytest.raises(ValueError, match="advance"):
        ring.slots(np.array([1.0]))
    with pytest.raises(ValueError, match="finite"):
        ring.advance(float("nan"))
