"""Stored funding back as a :class:`~qf.funding.graph.FundingGraph` (what features and the console read), and
asking for a wallet's funding to be found.

:func:`load_graph` reads the rows and the labels in one repeatable-read snapshot, so they agree.
:func:`request_funding` queues wallets for the funding worker (``indexer.funding``), as the sidecar may for the
wallets it is asked about: searched at depth 1 up to the indexer's checkpoint, found on its next round.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from qf_sentinel.qf.funding.graph import FundingGraph, FundingRow
from qf_sentinel.qf.funding.sources import read_sources

# What any new reason to search a wallet does to its queue row (qf.funding_wallets AS w): a shallower depth,
# more tokens (searched again from the start: those rows are new), a later bound; any of them makes it due now.
MERGE_QUEUE = sql.SQL("""
ON CONFLICT (chain_id, wallet) DO UPDATE SET
    depth = least(w.depth, EXCLUDED.depth),
    tokens = (SELECT coalesce(array_agg(DISTINCT t ORDER BY t), '{}') FROM unnest(w.tokens || EXCLUDED.tokens) AS t),
    until_block = greatest(w.until_block, EXCLUDED.until_block),
    searched_to_block = CASE WHEN EXCLUDED.tokens <@ w.tokens THEN w.searched_to_block END,
    status = CASE WHEN NOT EXCLUDED.tokens <@ w.tokens OR EXCLUDED.depth < w.depth
                    OR EXCLUDED.until_block > coalesce(w.searched_to_block, -1) THEN 'pending' ELSE w.status END,
    next_attempt_at = CASE WHEN NOT EXCLUDED.tokens <@ w.tokens OR EXCLUDED.depth < w.depth
                    OR EXCLUDED.until_block > coalesce(w.searched_to_block, -1) THEN '-infinity'
                           ELSE w.next_attempt_at END
""")

_REQUEST = (
    sql.SQL("""
    INSERT INTO qf.funding_wallets AS w (chain_id, wallet, depth, reason, tokens, until_block)
    SELECT %s, x, 1, 'requested', '{}', c.checkpoint_block
    FROM unnest(%s::bytea[]) AS x, qf.chains c WHERE c.chain_id = %s AND c.checkpoint_block IS NOT NULL
    ORDER BY x
    """)
    + MERGE_QUEUE
)


def request_funding(conn: psycopg.Connection[Any], chain_id: int, wallets: Sequence[bytes]) -> int:
    """Queue ``wallets`` (20-byte addresses) for the funding worker, up to the indexer's checkpoint; returns how
    many queue rows were added or made due (none before the chain is indexed)."""
    if not wallets:
        return 0
    return conn.execute(_REQUEST, (chain_id, sorted(set(wallets)), chain_id)).rowcount


def read_funding(conn: psycopg.Connection[Any], chain_id: int) -> list[FundingRow]:
    """Every row of qf.wallet_funding for ``chain_id``."""
    rows = conn.execute(
        "SELECT wallet, asset, funder, amount, block_number, extract(epoch FROM block_time)::float8, depth, method, "
        "tx_hash, funder_is_contract FROM qf.wallet_funding WHERE chain_id = %s ORDER BY block_number, wallet, asset",
        (chain_id,),
    ).fetchall()
    return [
        FundingRow(
            bytes(w),
            bytes(a),
            bytes(f),
            int(amount),
            int(block),
            float(t),
            int(depth),
            str(method),
            bytes(tx) if tx is not None else None,
            contract,
        )
        for w, a, f, amount, block, t, depth, method, tx, contract in rows
    ]


def load_graph(conn: psycopg.Connection[Any], chain_id: int) -> FundingGraph:
    """The chain's funding rows and known sources, read in one snapshot (ends any transaction open on ``conn``)."""
    conn.commit()  # the snapshot must start with this function's first query
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return FundingGraph(read_funding(conn, chain_id), read_sources(conn, chain_id))
