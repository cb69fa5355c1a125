"""The RPC edge's retry policy: which failures are worth another attempt, and how long to wait.

Pure functions: :func:`classify` (retry or permanent, from the error),
:func:`backoff_delay` (full jitter, or the server's Retry-After, capped) and
:func:`retry_after_seconds` (the header, in seconds or as an HTTP date). The
requests to one endpoint are paced by :class:`qf.ratelimit.TokenBucket`.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

from qf_sentinel.qf import backoff
from qf_sentinel.qf.errors import RpcError, RpcUnavailable

Decision = Literal["retry", "permanent"]

# JSON-RPC 2.0 parse error, invalid request, method not found, invalid params:
# the request itself is wrong, so no endpoint will answer it differently.
_PERMANENT_CODES = frozenset({-32700, -32600, -32601, -32602})
# eth_getLogs range refusals: retrying the same range cannot help, splitting it can
# (the caller's job). Checked before the retriable wording, which some of them share
# ("query timeout exceeded, try a smaller block range").
_RANGE_REFUSALS = (
    "query returned more than",
    "block range",
    "range is too",
    "range too",
    "response size exceeded",
    "too many blocks",
    "exceed maximum block range",
)
_RETRIABLE_MESSAGES = (
    "rate limit",
    "rate-limit",
    "ratelimit",
    "rate exceeded",
    "too many requests",
    "capacity",
    "try again",
    "timeout",
    "timed out",
    "header not found",
    "temporarily unavailable",
)
# EIP-1474 "limit exceeded" (Infura's rate limit) and providers that echo HTTP 429.
_RETRIABLE_CODES = frozenset({-32005, 429})


def classify(error: BaseException) -> Decision:
    """Whether trying again (possibly elsewhere) can turn ``error`` into an answer."""
    if isinstance(error, RpcUnavailable):
        return "retry" if error.retriable else "permanent"
    if not isinstance(error, RpcError):
        return "permanent"
    message = error.rpc_message.lower()
    if error.code in _PERMANENT_CODES or "execution reverted" in message:
        return "permanent"
    if any(words in message for words in _RANGE_REFUSALS):
        return "permanent"
    if error.code in _RETRIABLE_CODES or any(words in message for words in _RETRIABLE_MESSAGES):
        return "retry"
    return "permanent"


def backoff_delay(
    attempt: int,
    *,
    base_seconds: float,
    max_seconds: float,
    rng: random.Random,
    retry_after_seconds: float | None = None,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (counted from 1).

    Full jitter, uniform in [0, min(max, base·2^(attempt-1))], keeps many clients
    from retrying in step. A server's Retry-After wins when given, still capped
    so that one endpoint cannot stall the indexer.
    """
    if retry_after_seconds is not None:
        return min(max(retry_after_seconds, 0.0), max_seconds)
    return backoff.delay(attempt, first=base_seconds, cap=max_seconds, jitter="full", rng=rng)


def retry_after_seconds(header: str | None, *, now: datetime) -> float | None:
    """The delay a Retry-After header asks for (delta-seconds or an HTTP date), if it parses."""
    if header is None:
        return None
    text = header.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)
