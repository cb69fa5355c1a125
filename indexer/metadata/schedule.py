"""When to try a pointer again: exponential backoff with jitter, never sooner than half the step.

Pure. The fetcher passes the failure count and its own random source, so a
test can check the schedule without waiting. Unlike the RPC edge's full
jitter (``indexer.retry``), the delay here has a floor: a gateway that is down,
or a CID that nobody pins, is retried minutes to hours later, never in a loop.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

#: A floor under any configured step (QF_IPFS_RETRY_BASE_SECONDS=0 must not make a loop).
MIN_STEP_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Step after the first failure, doubling per failure up to ``max_seconds``."""

    base_seconds: float = 60.0
    max_seconds: float = 6 * 3600.0

    def step_seconds(self, attempts: int) -> float:
        """The un-jittered wait after ``attempts`` failures (counted from 1); at least a second, whatever is set."""
        step = min(self.max_seconds, self.base_seconds * 2.0 ** min(max(attempts, 1) - 1, 64))
        return max(step, MIN_STEP_SECONDS)

    def delay_seconds(self, attempts: int, rng: random.Random) -> float:
        """Uniform in [step/2, step]: spread out, so many pointers failing at once do not return at once."""
        step = self.step_seconds(attempts)
        return step / 2 + rng.random() * step / 2

    def next_attempt(self, now: datetime, attempts: int, rng: random.Random) -> datetime:
        return now + timedelta(seconds=self.delay_seconds(attempts, rng))
