"""Token buckets over an injectable clock: the one bucket of every rate limit and pacer.

A bucket holds up to ``capacity`` tokens and refills at ``refill_per_second``.
:class:`TokenBucket` is one bucket on the caller's clock, with the two ways of
spending it: :meth:`~TokenBucket.take` refuses when there is no token (and
says how long until one: a limit), :meth:`~TokenBucket.reserve` takes one
anyway, into debt, and says how long to wait before using it (a pacer: the
RPC edge spaces the requests to one endpoint so).

:class:`TokenBuckets` keeps one bucket per key (a client name, an address,
or one key for everyone): the sidecar's per-client rate limit and the
console's login throttle. Past ``max_keys`` the least recently used buckets
are forgotten (a forgotten bucket is a full one), so a flood of new keys
(spoofed addresses behind a proxy) cannot grow memory without bound.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


def _check(capacity: float, refill_per_second: float) -> None:
    if capacity < 1 or refill_per_second <= 0:
        raise ValueError("a token bucket needs room for one token and a positive refill rate")


class TokenBucket:
    """One bucket; ``now`` comes from the caller's clock. Not thread-safe by itself.

    A bucket of one token (the default) spaces reservations exactly
    1/rate apart; a larger one lets that many through at once after a quiet spell.
    """

    __slots__ = ("_tokens", "_updated", "capacity", "refill_per_second")

    def __init__(self, refill_per_second: float, *, capacity: float = 1.0) -> None:
        _check(capacity, refill_per_second)
        self.capacity = capacity
        self.refill_per_second = refill_per_second
        self._tokens = capacity
        self._updated: float | None = None

    def level(self, now: float) -> float:
        """Tokens there at ``now`` (negative while in debt); changes nothing. A clock going back refills nothing."""
        if self._updated is None:
            return self._tokens
        return min(self.capacity, self._tokens + max(now - self._updated, 0.0) * self.refill_per_second)

    def wait(self, now: float) -> float:
        """Seconds until a token is there (0 when one is there now); takes nothing."""
        tokens = self.level(now)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.refill_per_second

    def take(self, now: float) -> float:
        """Take a token: 0 when taken, else the seconds until one is there (nothing is taken)."""
        tokens = self.level(now)
        self._tokens, self._updated = tokens, now
        if tokens < 1.0:
            return (1.0 - tokens) / self.refill_per_second
        self._tokens -= 1.0
        return 0.0

    def reserve(self, now: float) -> float:
        """Take a token even if there is none; the seconds to wait before using it (0 if one was there)."""
        self._tokens, self._updated = self.level(now), now
        # Tokens may go negative: the debt is what later callers wait out.
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.refill_per_second


class TokenBuckets:
    """One :class:`TokenBucket` per key, on the clock given; thread-safe."""

    def __init__(self, capacity: float, refill_per_second: float, *, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000) -> None:  # fmt: skip
        _check(capacity, refill_per_second)
        self.capacity = capacity
        self.refill_per_second = refill_per_second
        self._clock = clock
        self._max_keys = max_keys
        #: key -> its bucket, least recently used first
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    def _bucket(self, key: str) -> TokenBucket:
        bucket = self._buckets.get(key)
        return bucket if bucket is not None else TokenBucket(self.refill_per_second, capacity=self.capacity)

    def wait(self, key: str) -> float:
        """Seconds until ``key`` has a token (0 when it has one now); takes nothing."""
        with self._lock:
            return self._bucket(key).wait(self._clock())

    def take(self, key: str) -> float:
        """Take a token of ``key``: 0 when taken, else the seconds until one is there (nothing is taken)."""
        now = self._clock()
        with self._lock:
            bucket = self._bucket(key)
            wait = bucket.take(now)
            self._buckets[key] = bucket
            self._buckets.move_to_end(key)
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
            return wait

    def __len__(self) -> int:
        return len(self._buckets)
