"""The circuit breaker in front of the sidecar's database calls, on a hand-driven clock."""

from __future__ import annotations

from qf_sentinel.scorer.breaker import Breaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_closed_lets_every_call_through() -> None:
    breaker = Breaker(1.0, clock=Clock())
    assert all(breaker.allow() for _ in range(5))
    assert not breaker.is_open


def test_open_refuses_all_but_one_probe_per_interval() -> None:
    clock = Clock()
    breaker = Breaker(1.0, clock=clock)
    breaker.failed()
    assert breaker.is_open
    assert not breaker.allow()
    clock.now += 1.0
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one probe at a time
    breaker.failed()
    assert not breaker.allow()
    clock.now += 0.5
    assert not breaker.allow()
    clock.now += 0.5
    assert breaker.allow()
    breaker.succeeded()
    assert not breaker.is_open
    assert breaker.allow()
    assert breaker.allow()


def test_a_probe_that_learnt_nothing_frees_the_next_one() -> None:
    clock = Clock()
    breaker = Breaker(1.0, clock=clock)
    breaker.failed()
    clock.now += 1.0
    assert breaker.allow()
    breaker.released()  # cancelled
    assert breaker.is_open
    assert breaker.allow()
