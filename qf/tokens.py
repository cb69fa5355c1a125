"""Bearer-token lookup in constant time: the sidecar's clients and the console's logins are found the same way.

Every configured token is compared with :func:`hmac.compare_digest`, all of
them on every lookup, never stopping at the first match: the time taken tells
neither which token matched nor how much of a wrong one was right. Pure (no
I/O); the tokens themselves are never logged here or returned.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import TypeVar

Who = TypeVar("Who")


def lookup(presented: bytes, tokens: Iterable[tuple[bytes, Who]]) -> Who | None:
    """Whose token ``presented`` is (the first entry whose token equals it), or None; compares every entry."""
    found: tuple[Who] | None = None
    for token, who in tokens:
        if hmac.compare_digest(presented, token) and found is None:
            found = (who,)
    return None if found is None else found[0]
