"""Exponential backoff: how long to wait after the n-th failure in a row, the one formula of every retry loop.

Pure. The wait doubles from ``first`` per failure up to ``cap``; the callers
differ only in the parameters, so they are parameters here rather than copies:

- ``floor``: a wait never shorter than this, whatever is configured (a zero
  setting must not make a busy loop);
- ``max_doublings``: a ceiling on the exponent, for a ``first`` that is small
  next to ``cap`` (a poll interval of 0.1 s then backs off to 6.4 s, not 60 s);
- ``jitter``: ``"none"`` (a fixed schedule: one thread waiting alone),
  ``"full"`` (uniform in [0, ceiling]: many clients of one server do not
  retry in step) or ``"half"`` (uniform in [ceiling/2, ceiling]: spread out,
  yet never sooner than half the step).

The random source is the caller's, so a test can fix it or see the envelope.
"""

from __future__ import annotations

from typing import Literal, Protocol

Jitter = Literal["none", "full", "half"]


class RandomSource(Protocol):
    """What the jitter draws from (``random.Random`` is one): ``uniform`` for full jitter, ``random`` for half."""

    def random(self) -> float: ...

    def uniform(self, a: float, b: float) -> float: ...


def ceiling(attempt: int, *, first: float, cap: float, floor: float = 0.0, max_doublings: int = 64) -> float:
    """The un-jittered wait after ``attempt`` failures (counted from 1): first·2^(attempt-1), capped, floored.

    The floor wins over the cap: a cap set below the floor still waits the floor.
    """
    step = min(cap, first * 2.0 ** min(max(attempt, 1) - 1, max_doublings))
    return float(max(step, floor))


def delay(
    attempt: int,
    *,
    first: float,
    cap: float,
    floor: float = 0.0,
    max_doublings: int = 64,
    jitter: Jitter = "none",
    rng: RandomSource | None = None,
) -> float:
    """Seconds to wait after ``attempt`` failures: the :func:`ceiling`, jittered as asked (jitter needs ``rng``)."""
    top = ceiling(attempt, first=first, cap=cap, floor=floor, max_doublings=max_doublings)
    if jitter == "none":
        return top
    if rng is None:
        raise ValueError(f"{jitter} jitter needs a random source")
    if jitter == "full":
        return rng.uniform(0.0, top)
    return top / 2 + rng.random() * top / 2
