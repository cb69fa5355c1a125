"""How many blocks to ask ``eth_getLogs`` for next, learned from the node's refusals.

Providers cap ``eth_getLogs`` by block span, by result count, by response
size or by time, and say so in free-text error messages that differ per
provider. `parse_range_hint` reads those messages (and only those: a rate
limit is not a range refusal) into a `RangeHint`; `RangePlanner` turns hints
and outcomes into the next block range. Both are pure: the fetch loop owns the
RPC calls and feeds the outcomes back::

    planner = RangePlanner.start(RangePolicy())
    while (span := planner.propose(next_block, safe_head)) is not None:
        try:
            logs = fetch(span)
        except RangeRefused as err:
            planner = planner.refused(span, RangeHint.of(err))   # raises once span is 1 block
            continue
        planner = planner.succeeded(span)
        next_block = span.to_block + 1

The planner starts at `RangePolicy.initial_blocks`, shrinks on a refusal to the
provider's suggestion when there is one and halves otherwise, remembers a
provider's stated maximum span, and doubles after a run of successes. Every
refusal of a span of n > 1 blocks leads to a span < n, so it cannot loop; a
refused single block is an error no smaller request can fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Final, NamedTuple

from qf_sentinel.indexer.errors import RangeRefused
from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.settings import default_of

__all__ = [
    "BlockRange",
    "RangeHint",
    "RangePlanner",
    "RangePolicy",
    "is_range_error",
    "parse_range_hint",
]


class BlockRange(NamedTuple):
    """Blocks ``from_block`` to ``to_block``, both included."""

    from_block: int
    to_block: int

    @property
    def blocks(self) -> int:
        return self.to_block - self.from_block + 1


@dataclass(frozen=True, slots=True)
class RangeHint:
    """What a refusal said: a range that would work, or the provider's span limit (either may be absent)."""

    suggested_to: int | None = None
    max_blocks: int | None = None

    @classmethod
    def of(cls, error: RangeRefused) -> RangeHint:
        return cls(error.suggested_to, error.max_blocks)


# -- reading providers' messages ----------------------------------------------------------

#: A rate limit or quota is not about the range: shrinking it would only burn requests.
_NOT_RANGE: Final = re.compile(
    r"rate.?limit|rate exceeded|too many requests|request count|requests? per|credits|quota|capacity",
    re.IGNORECASE,
)

_RANGE_PHRASES: Final = re.compile(
    "|".join(
        (
            r"log response size exceeded",  # Alchemy
            r"query returned more than \d+ results",  # Infura, Ankr, geth-based nodes
            r"block range (is )?too (large|wide)",  # geth/erigon, Ankr, QuickNode
            r"range too (large|wide)",
            r"exceeds? (the )?max(imum)? (block )?range",
            r"block range limit",
            r"eth_getlogs (and eth_newfilter )?(is|are) limited to",  # QuickNode
            r"query timeout exceeded",
            r"response size should not greater than",  # Ankr
            r"response size (is )?(too large|exceeded)",
            r"(exceeds|exceeded) max(imum)? results",
            r"logs matched by query exceeds limit",  # Polygon bor
            r"limit exceeded",
            r"too many blocks",
            r"requested too many blocks",
            r"max(imum)? \[from, ?to\] blocks distance",
        )
    ),
    re.IGNORECASE,
)

_SUGGESTED_RANGE: Final = re.compile(r"\[\s*(0x[0-9a-f]+)\s*,\s*(0x[0-9a-f]+)\s*\]", re.IGNORECASE)

_NUMBER = r"(\d[\d,_]*)"
_MAX_BLOCKS: Final = (
    re.compile(rf"max(?:imum)? block range:?\s*{_NUMBER}", re.IGNORECASE),  # geth-style "...: 5000"
    re.compile(rf"max(?:imum)?\s*(?:is\s*)?(?:set to\s*)?:?\s*{_NUMBER}\s*blocks", re.IGNORECASE),
    re.compile(rf"limited to an? {_NUMBER}(?: blocks?)? range", re.IGNORECASE),  # QuickNode
    re.compile(rf"blocks distance:?\s*{_NUMBER}", re.IGNORECASE),
    re.compile(rf"too many blocks.*max(?:imum)? is set to {_NUMBER}", re.IGNORECASE),
    re.compile(rf"currently limited to {_NUMBER}", re.IGNORECASE),  # anvil's trace_filter
)

#: EIP-1474 "limit exceeded": a request went over one of the node's limits.
_LIMIT_EXCEEDED_CODE: Final = -32005


def parse_range_hint(message: str, code: int | None, from_block: int, to_block: int) -> RangeHint | None:
    """A `RangeHint` if ``message`` (with JSON-RPC ``code``) refuses the range ``from_block..to_block``.

    ``None`` means the error is not about the range (a rate limit, a bad
    request, a node fault). A suggested range is kept only if it is a real
    shrink: it must end inside ``[from_block, to_block)``.
    """
    if _NOT_RANGE.search(message):
        return None
    if not _RANGE_PHRASES.search(message) and code != _LIMIT_EXCEEDED_CODE:
        return None
    suggested_to = None
    if found := _SUGGESTED_RANGE.search(message):
        end = int(found[2], 16)
        if from_block <= end < to_block:
            suggested_to = end
    max_blocks = None
    for pattern in _MAX_BLOCKS:
        if found := pattern.search(message):
            limit = int(found[1].replace(",", "").replace("_", ""))
            if limit > 0:
                max_blocks = limit
                break
    return RangeHint(suggested_to, max_blocks)


def is_range_error(message: str, code: int | None) -> bool:
    """True if a JSON-RPC error refuses an ``eth_getLogs`` range: asking for fewer blocks may pass."""
    return parse_range_hint(message, code, 0, 0) is not None


# -- planning -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RangePolicy:
    """Limits of the planner; built once from the settings."""

    initial_blocks: int = default_of("log_range_blocks")
    max_blocks: int = default_of("log_range_max_blocks")
    #: Consecutive successful requests before the span grows.
    grow_after: int = 3
    grow_factor: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.initial_blocks <= self.max_blocks:
            raise ConfigError(
                f"eth_getLogs range: need 1 <= initial ({self.initial_blocks}) <= max ({self.max_blocks})"
            )
        if self.grow_after < 1 or self.grow_factor < 2:
            raise ConfigError("eth_getLogs range: grow_after must be >= 1 and grow_factor >= 2")


@dataclass(frozen=True, slots=True)
class RangePlanner:
    """Immutable planner state: each outcome returns the next state."""

    policy: RangePolicy
    #: Span of the next proposal, in blocks.
    size: int
    #: Largest span worth trying: the policy's maximum, or less once a provider stated its limit.
    ceiling: int
    #: Successful requests since the last refusal or growth.
    successes: int = 0

    @classmethod
    def start(cls, policy: RangePolicy | None = None) -> RangePlanner:
        """A planner that knows nothing about the node yet."""
        policy = policy or RangePolicy()
        return cls(policy, size=policy.initial_blocks, ceiling=policy.max_blocks)

    def propose(self, next_block: int, safe_head: int) -> BlockRange | None:
        """The next range to fetch from ``next_block``, or ``None`` if it is past ``safe_head``."""
        if next_block > safe_head:
            return None
        return BlockRange(next_block, min(next_block + self.size - 1, safe_head))

    def succeeded(self, fetched: BlockRange) -> RangePlanner:
        """State after the node answered ``fetched``; grows the span after a run of successes.

        Any success counts, even a short range at the head: growth is only a
        guess, and the next refusal corrects it.
        """
        del fetched  # the outcome, not the range, decides; the parameter mirrors `refused`
        successes = self.successes + 1
        if successes < self.policy.grow_after:
            return replace(self, successes=successes)
        return replace(self, size=min(self.size * self.policy.grow_factor, self.ceiling), successes=0)

    def refused(self, rejected: BlockRange, hint: RangeHint | None = None) -> RangePlanner:
        """State after the node refused ``rejected``: a smaller span.

        Raises `RangeRefused` (not retriable) when ``rejected`` is a single
        block: nothing smaller can be asked for.
        """
        span = rejected.blocks
        if span <= 1:
            raise RangeRefused(
                "the node refuses even a single block",
                from_block=rejected.from_block,
                to_block=rejected.to_block,
            )
        ceiling = self.ceiling
        size = span // 2
        if hint is not None:
            if hint.max_blocks is not None:
                ceiling = max(1, min(ceiling, hint.max_blocks))
                if hint.max_blocks < span:
                    size = hint.max_blocks
            # The provider's own suggestion wins: it knows how dense its logs are here.
            if hint.suggested_to is not None and rejected.from_block <= hint.suggested_to < rejected.to_block:
                size = hint.suggested_to - rejected.from_block + 1
        return RangePlanner(self.policy, size=max(1, min(size, ceiling)), ceiling=ceiling)
