"""The login throttle: failed logins are counted per client address and for everyone together.

Each client may fail ``QF_CONSOLE_LOGIN_FAILURES`` times, an allowance that
refills evenly over ``QF_CONSOLE_LOGIN_WINDOW_SECONDS``; all clients together
``QF_CONSOLE_LOGIN_GLOBAL_FAILURES`` times over the same window (a guesser
spread over many addresses). While either allowance is spent, a login attempt
is refused with 429 and Retry-After before its token is even compared, so
guessing is slowed whether or not a guess would have been right. Successful
logins are not counted. The counts live in the process (:mod:`qf.ratelimit`);
a restart forgets them, which costs a guesser one window at most.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from qf_sentinel.qf.ratelimit import TokenBuckets

_EVERYONE = "*"


class LoginThrottle:
    def __init__(self, per_client: int, everyone: int, window_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        window = max(window_seconds, 1.0)
        self._clients = TokenBuckets(per_client, per_client / window, clock=clock)
        self._everyone = TokenBuckets(everyone, everyone / window, clock=clock)

    def retry_after(self, client: str) -> int | None:
        """Whole seconds this client must wait before it may try to log in, or None if it may now."""
        wait = max(self._clients.wait(client), self._everyone.wait(_EVERYONE))
        return math.ceil(wait) if wait > 0 else None

    def failed(self, client: str) -> None:
        """Count a failed login of ``client``."""
        self._clients.take(client)
        self._everyone.take(_EVERYONE)
