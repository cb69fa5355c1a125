"""Stored funding back as a :class:`~qf.funding.graph.FundingGraph`: what features and the console read.

One query per table, in one repeatable-read snapshot, so the rows and the labels agree.
"""

from __future__ import annotations

from typing import Any

import psycopg

from qf.funding.graph import FundingGraph, FundingRow
from qf.funding.sources import read_sources


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
