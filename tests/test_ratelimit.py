"""qf.ratelimit: one token bucket (take or reserve) and buckets by key, on an injected clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qf_sentinel.qf.ratelimit import TokenBucket, TokenBuckets


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


def test_one_bucket_reserves_into_debt_and_paces() -> None:
    """The pacer's spending: a reservation always takes a token, and the debt is waited out in turn."""
    bucket = TokenBucket(2.0, capacity=3)
    assert [bucket.reserve(0.0) for _ in range(5)] == pytest.approx([0.0, 0.0, 0.0, 0.5, 1.0])
    assert bucket.level(0.0) == pytest.approx(-2.0)
    assert bucket.reserve(5.0) == 0.0, "a quiet spell pays the debt and refills, up to capacity"
    assert bucket.level(5.0) == pytest.approx(2.0)


def test_one_bucket_takes_without_debt() -> None:
    bucket = TokenBucket(0.5)
    assert bucket.take(10.0) == 0.0
    assert bucket.take(10.0) == pytest.approx(2.0)
    assert bucket.wait(11.0) == pytest.approx(1.0)
    assert bucket.take(12.0) == 0.0


def test_a_clock_going_back_refills_nothing() -> None:
    bucket = TokenBucket(1.0)
    assert bucket.reserve(100.0) == 0.0
    assert bucket.reserve(50.0) == pytest.approx(1.0)


def test_one_bad_bucket_is_refused() -> None:
    with pytest.raises(ValueError, match="token bucket"):
        TokenBucket(1.0, capacity=0.5)
    with pytest.raises(ValueError, match="token bucket"):
        TokenBucket(0.0)


spending = st.tuples(st.floats(0, 10), st.sampled_from(["take", "reserve", "wait"]))


@given(capacity=st.integers(1, 20), rate=st.floats(0.01, 100), moves=st.lists(spending, max_size=60))
def test_a_bucket_never_holds_more_than_its_capacity(capacity: int, rate: float,
                                                     moves: list[tuple[float, str]]) -> None:  # fmt: skip
    """Whatever the spending, the level never exceeds capacity, and a wait is never negative."""
    bucket, now = TokenBucket(rate, capacity=capacity), 0.0
    for step, how in moves:
        now += step
        assert getattr(bucket, how)(now) >= 0.0
        assert bucket.level(now) <= capacity
