"""Token buckets by key, over an injectable clock: the sidecar's per-client rate limit and the console's login
throttle take from the same primitive.

Each key (a client name, an address, or one key for everyone) has a bucket of
``capacity`` tokens that refills at ``refill_per_second``; a call takes a token
when one is there and otherwise says how long until one will be. Past
``max_keys`` the least recently used buckets are forgotten (a forgotten bucket
is a full one), so a flood of new keys (spoofed addresses behind a proxy)
cannot grow memory without bound.

(``indexer.retry.TokenBucket`` paces one endpoint by reserving ahead and
returning a wait; that is a different policy, kept with the retry rules.)
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBuckets:
    """One bucket per key; thread-safe."""

    def __init__(self, capacity: float, refill_per_second: float, *, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000) -> None:  # fmt: skip
        if capacity < 1 or refill_per_second <= 0:
            raise ValueError("a token bucket needs room for one token and a positive refill rate")
        self.capacity = capacity
        self.refill_per_second = refill_per_second
        self._clock = clock
        self._max_keys = max_keys
        #: key -> (tokens, when last updated), least recently used first
        self._state: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, last = self._state.get(key, (self.capacity, now))
        return min(self.capacity, tokens + max(now - last, 0.0) * self.refill_per_second)

    def wait(self, key: str) -> float:
        """Seconds until ``key`` has a token (0 when it has one now); takes nothing."""
        with self._lock:
            tokens = self._level(key, self._clock())
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.refill_per_second

    def take(self, key: str) -> float:
        """Take a token of ``key``: 0 when taken, else the seconds until one is there (nothing is taken)."""
        now = self._clock()
        with self._lock:
            tokens = self._level(key, now)
            if tokens < 1.0:
                self._store(key, tokens, now)
                return (1.0 - tokens) / self.refill_per_second
            self._store(key, tokens - 1.0, now)
            return 0.0

    def _store(self, key: str, tokens: float, now: float) -> None:
        self._state[key] = (tokens, now)
        self._state.move_to_end(key)
        while len(self._state) > self._max_keys:
            self._state.popitem(last=False)

    def __len__(self) -> int:
        return len(self._state)
