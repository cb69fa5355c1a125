"""qf.ratelimit: token buckets by key on an injected clock (the sidecar's rate limit and the console's throttle)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qf.ratelimit import TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_one_token_per_interval() -> None:
    clock = Clock()
    buckets = TokenBuckets(3, 0.5, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(2.0)
    assert buckets.wait("a") == pytest.approx(2.0), "waiting takes nothing"
    assert buckets.take("b") == 0.0, "keys are independent"
    clock.now = 1.5
    assert buckets.take("a") == pytest.approx(0.5), "a refused take spends nothing"
    clock.now = 2.0
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0


def test_keys_are_bounded_least_recently_used_first() -> None:
    clock = Clock()
    buckets = TokenBuckets(1, 1.0, clock=clock, max_keys=3)
    for key in "abcde":
        assert buckets.take(key) == 0.0
    assert len(buckets) == 3
    assert buckets.wait("e") > 0, "kept: its token is spent"
    assert buckets.wait("a") == 0.0, "forgotten, which is the same as full"


def test_a_bad_bucket_is_refused() -> None:
    with pytest.raises(ValueError, match="token bucket"):
        TokenBuckets(0.5, 1.0)
    with pytest.raises(ValueError, match="token bucket"):
        TokenBuckets(1, 0.0)


@given(capacity=st.integers(1, 20), rate=st.floats(0.01, 100), steps=st.lists(st.floats(0, 10), max_size=60))
def test_never_more_than_capacity_plus_refill(capacity: int, rate: float, steps: list[float]) -> None:
    """Over any sequence of takes at any times, the tokens granted never exceed capacity + rate x elapsed."""
    clock = Clock()
    buckets = TokenBuckets(capacity, rate, clock=clock)
    granted = 0
    for step in steps:
        clock.now += step
        granted += buckets.take("k") == 0.0
    assert granted <= capacity + rate * clock.now + 1e-9
