"""The chain's price feeds in ``qf.price_feeds``: which feed prices which token, and with how many decimals.

A chain's configuration names its feeds (token -> AggregatorV3 feed).
:func:`indexer.app.build_indexer` records them here once per start, before the
loop indexes the feeds' ``AnswerUpdated`` events; ``qf.token_price_usd``
(``sql/repeatable/10_token_price_usd.sql``) finds a token's feed here and
divides the feed's answer by its unit (10^decimals).

The decimals are read from each feed (``decimals()``), so they are chain data:
:func:`indexer.sanitise.abi_uint` keeps them to 0..36, and a feed whose answer
does not fit is left out, not fatal (:func:`record_price_feeds`).
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from qf_sentinel.indexer.metrics import SanitisedValues
from qf_sentinel.indexer.ports import Node
from qf_sentinel.indexer.sanitise import FEED_DECIMALS_MAX, Clean, Sanitised, abi_uint
from qf_sentinel.qf.db import connect
from qf_sentinel.qf.errors import RpcError
from qf_sentinel.qf.eth import to_hex

log = structlog.get_logger()

#: Selector of AggregatorV3's ``decimals()``.
DECIMALS_SELECTOR = "0x313ce567"

#: One row of qf.price_feeds: (chain_id, token, feed, decimals).
FeedRow = tuple[int, bytes, bytes, int]


def record_price_feeds(
    url: str, chain_id: int, feeds: dict[bytes, bytes], rpc: Node, sanitised: SanitisedValues
) -> None:
    """Write the token -> feed map (with each feed's decimals, read from it) to qf.price_feeds.

    A feed whose decimals() reverts or answers something that is not 0..36 is left out, logged and
    counted (``price_feeds.decimals``): its answers are still indexed, but price nothing (donations in its
    token are unpriced, as without a feed). A feed's answer must not stop the indexer from starting.
    """
    rows = []
    for token, feed in feeds.items():
        decimals = feed_decimals(rpc, feed)
        if decimals.value is None:
            sanitised.report([Sanitised("price_feeds.decimals", to_hex(feed), decimals.reasons)])
            log.warning("price_feed_unusable", feed=to_hex(feed), token=to_hex(token), reasons=list(decimals.reasons))
            continue
        rows.append((chain_id, token, feed, decimals.value))
    if not rows:
        return
    store_price_feeds(url, rows)
    log.info("price_feeds", feeds={to_hex(t): to_hex(f) for t, f in feeds.items()})


def feed_decimals(rpc: Node, feed: bytes) -> Clean[int | None]:
    """The feed's ``decimals()`` if it is 0..36; None (with the reasons) if it reverts or answers anything else."""
    try:
        answer = rpc.call("eth_call", [{"to": to_hex(feed), "data": DECIMALS_SELECTOR}, "latest"])
    except RpcError:
        answer = None
    return abi_uint(answer, max_value=FEED_DECIMALS_MAX)


def store_price_feeds(url: str, rows: Sequence[FeedRow]) -> None:
    """Upsert the rows: a token's feed (and its decimals) is what the configuration says now."""
    with connect(url) as conn:
        conn.cursor().executemany(
            "INSERT INTO qf.price_feeds (chain_id, token, feed, decimals) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (chain_id, token) DO UPDATE SET feed = EXCLUDED.feed, decimals = EXCLUDED.decimals",
            rows,
        )
