"""When to try a pointer again: exponential backoff with jitter, never sooner than half the step.

Pure. The fetcher passes the failure count and its own random source, so a
test can check the schedule without waiting. Unlike the RPC edge's full
jitter (``indexer.retry``), the delay here has a floor: a gateway that is down,
or a CID that nobody pins, is retried minutes to hours later, never in a loop.
The formula is :func:`qf.backoff.delay` with half jitter; this module holds the policy's settings.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from qf_sentinel.qf import backoff

#: A floor under any configured step (QF_IPFS_RETRY_BASE_SECONDS=0 must not make a loop).
MIN_STEP_SECONDS = 1.0
#: The longest wait of a worker (metadata, funding) for its database or node to come back.
OUTAGE_MAX_WAIT_SECONDS = 60.0
#: At most this many doublings of the poll interval (a short poll backs off to less than the most).
OUTAGE_MAX_DOUBLINGS = 6


def outage_wait_seconds(outages: int, poll_seconds: float) -> float:
    """A worker's wait after ``outages`` failed rounds in a row: its poll interval, doubling, no jitter (one thread)."""
    return backoff.delay(outages, first=poll_seconds, cap=OUTAGE_MAX_WAIT_SECONDS, max_doublings=OUTAGE_MAX_DOUBLINGS)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Step after the first failure, doubling per failure up to ``max_seconds``."""

    base_seconds: float = 60.0
    max_seconds: float = 6 * 3600.0

    def step_seconds(self, attempts: int) -> float:
        """The un-jittered wait after ``attempts`` failures (counted from 1); at least a second, whatever is set."""
        return backoff.ceiling(attempts, first=self.base_seconds, cap=self.max_seconds, floor=MIN_STEP_SECONDS)

    def delay_seconds(self, attempts: int, rng: random.Random) -> float:
        """Uniform in [step/2, step]: spread out, so many pointers failing at once do not return at once."""
        return backoff.delay(attempts, first=self.base_seconds, cap=self.max_seconds, floor=MIN_STEP_SECONDS,
                             jitter="half", rng=rng)  # fmt: skip

    def next_attempt(self, now: datetime, attempts: int, rng: random.Random) -> datetime:
        return now + timedelta(seconds=self.delay_seconds(attempts, rng))
