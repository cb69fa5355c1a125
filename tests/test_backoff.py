"""qf.backoff: the one exponential backoff, with its floor, cap, exponent limit and three kinds of jitter."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qf_sentinel.qf.backoff import Jitter, ceiling, delay


class Highest(random.Random):
    """A random source at the top of every interval, to see the envelope."""

    def random(self) -> float:
        return 1.0

    def uniform(self, a: float, b: float) -> float:
        return b


class Lowest(random.Random):
    def random(self) -> float:
        return 0.0

    def uniform(self, a: float, b: float) -> float:
        return a


seconds = st.floats(0.0, 1e4, allow_nan=False)
positive = st.floats(1e-3, 1e4, allow_nan=False)


def test_doubles_from_first_up_to_the_cap() -> None:
    assert [delay(n, first=0.5, cap=30.0) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]


def test_the_exponent_limit_holds_a_short_first_step_below_the_cap() -> None:
    """A poll interval of 0.1 s backs off to 0.1·2^6 = 6.4 s, not to the 60 s cap."""
    assert delay(50, first=0.1, cap=60.0, max_doublings=6) == pytest.approx(6.4)
    assert delay(50, first=1.0, cap=60.0, max_doublings=6) == 60.0


def test_the_floor_wins_over_a_zero_step_and_a_low_cap() -> None:
    assert ceiling(1, first=0.0, cap=3600.0, floor=1.0) == 1.0
    assert ceiling(9, first=60.0, cap=0.5, floor=1.0) == 1.0


def test_attempts_below_one_count_as_the_first() -> None:
    assert ceiling(0, first=2.0, cap=10.0) == ceiling(-3, first=2.0, cap=10.0) == 2.0


def test_a_huge_attempt_count_does_not_overflow() -> None:
    assert delay(10**6, first=0.1, cap=5.0) == 5.0


def test_the_three_kinds_of_jitter_span_their_intervals() -> None:
    top = ceiling(3, first=1.0, cap=100.0)
    assert top == 4.0
    assert delay(3, first=1.0, cap=100.0, jitter="none", rng=Lowest()) == 4.0, "no jitter ignores the source"
    assert delay(3, first=1.0, cap=100.0, jitter="full", rng=Lowest()) == 0.0
    assert delay(3, first=1.0, cap=100.0, jitter="full", rng=Highest()) == 4.0
    assert delay(3, first=1.0, cap=100.0, jitter="half", rng=Lowest()) == 2.0
    assert delay(3, first=1.0, cap=100.0, jitter="half", rng=Highest()) == 4.0


@pytest.mark.parametrize("jitter", ["full", "half"])
def test_jitter_needs_a_random_source(jitter: Jitter) -> None:
    with pytest.raises(ValueError, match="random source"):
        delay(1, first=1.0, cap=2.0, jitter=jitter)


@given(attempt=st.integers(-5, 500), first=seconds, cap=seconds, floor=seconds, doublings=st.integers(0, 64))
def test_the_ceiling_lies_within_floor_and_cap(attempt: int, first: float, cap: float, floor: float,
                                               doublings: int) -> None:  # fmt: skip
    top = ceiling(attempt, first=first, cap=cap, floor=floor, max_doublings=doublings)
    assert floor <= top <= max(cap, floor)


@given(attempt=st.integers(1, 500), first=positive, cap=positive, floor=seconds, doublings=st.integers(0, 64))
def test_the_ceiling_never_falls_as_failures_go_on(attempt: int, first: float, cap: float, floor: float,
                                                   doublings: int) -> None:  # fmt: skip
    def top(n: int) -> float:
        return ceiling(n, first=first, cap=cap, floor=floor, max_doublings=doublings)

    assert top(attempt) <= top(attempt + 1)


@given(attempt=st.integers(1, 500), first=positive, cap=positive, floor=seconds, seed=st.integers(0, 2**32))
def test_a_jittered_delay_lies_within_its_kind_of_interval(attempt: int, first: float, cap: float, floor: float,
                                                           seed: int) -> None:  # fmt: skip
    top = ceiling(attempt, first=first, cap=cap, floor=floor)
    full = delay(attempt, first=first, cap=cap, floor=floor, jitter="full", rng=random.Random(seed))
    half = delay(attempt, first=first, cap=cap, floor=floor, jitter="half", rng=random.Random(seed))
    assert 0.0 <= full <= top
    assert top / 2 <= half <= top
    assert delay(attempt, first=first, cap=cap, floor=floor) == top


def test_jitter_spreads_many_clients() -> None:
    """Ten clients on the same retry do not all wait the same time, with either kind of jitter."""
    kinds: tuple[Jitter, ...] = ("full", "half")
    for jitter in kinds:
        waits = {delay(4, first=0.1, cap=5.0, jitter=jitter, rng=random.Random(seed)) for seed in range(10)}
        assert len(waits) == 10
