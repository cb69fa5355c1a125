"""A circuit breaker: fail fast while a dependency is known to be down.

During a database outage every experiment call would otherwise wait for the
pool's timeout (seconds, longer than a gate caller's deadline) and tie up a
worker thread meanwhile. Once a call has found the database unreachable, the
breaker opens: calls are refused at once, except one probe per
``retry_seconds`` that tries the database; its success closes the breaker.

Written here rather than taken from ``pybreaker`` because that library's
async support is Tornado-only and its failure counting is not what is wanted
(one unreachable answer is enough to know). All methods run on the event
loop's thread, so no lock is needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Breaker:
    """Closed (calls pass), or open (calls refused, but one probe per ``retry_seconds``)."""

    def __init__(self, retry_seconds: float = 1.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._open = False
        self._probing = False
        self._next_probe = 0.0

    @property
    def is_open(self) -> bool:
        return self._open

    def allow(self) -> bool:
        """May a call go ahead? While open: only one probe at a time, at most one per ``retry_seconds``."""
        if not self._open:
            return True
        if self._probing or self._clock() < self._next_probe:
            return False
        self._probing = True
        return True

    def succeeded(self) -> None:
        self._open = self._probing = False

    def failed(self) -> None:
        self._open, self._probing = True, False
        self._next_probe = self._clock() + self.retry_seconds

    def released(self) -> None:
        """The call ended without telling whether the dependency is up (another error): let the next probe go."""
        self._probing = False
