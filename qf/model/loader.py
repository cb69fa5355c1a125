"""Read one chain's donations and labels from the indexed tables, in one repeatable-read transaction.

The only I/O of the train/serve contract: training and the sidecar load their
datasets here, so donations and labels always describe the same moment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import psycopg

from qf_sentinel.qf.errors import DataError
from qf_sentinel.qf.eth import to_hex
from qf_sentinel.qf.model.dataset import Dataset, assemble_dataset
from qf_sentinel.qf.model.live import Contribution


def load_dataset(conn: psycopg.Connection[Any], chain_id: int) -> Dataset:
    """Read one chain's donations and labels (ends any transaction open on ``conn`` first)."""
    conn.commit()  # the repeatable-read snapshot must start with this function's first query
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    try:
        return _load(conn, chain_id)
    finally:
        conn.rollback()


def _load(conn: psycopg.Connection[Any], chain_id: int) -> Dataset:
    with conn.cursor(binary=True) as cur:
        rows = cur.execute(
            """
            SELECT a.sender, s.pool_id::text, a.recipient_id, a.token,
                   a.amount::float8 / 10::float8 ^ t.decimals,
                   CASE WHEN t.decimals IS NOT NULL
                        THEN (a.amount %% (5 * 10::numeric ^ (t.decimals - 1)) = 0)::int::float8 END,
                   extract(epoch FROM a.block_time)::float8, a.block_number, a.log_index, a.tx_nonce,
                   a.gas_price::float8
            FROM qf.allocated a
            JOIN qf.donation_strategies s ON s.chain_id = a.chain_id AND s.address = a.contract
            LEFT JOIN qf.tokens t ON t.chain_id = a.chain_id AND t.address = a.token
            WHERE a.chain_id = %s
            ORDER BY a.block_number, a.log_index
            """,
            (chain_id,),
        ).fetchall()
        labels = cur.execute(
            """
            SELECT DISTINCT ON (address) address, is_sybil, pattern, source
            FROM qf.labels WHERE chain_id = %s
            ORDER BY address, created_at DESC, source
            """,
            (chain_id,),
        ).fetchall()
    if not rows:
        raise DataError(f"chain {chain_id} has no donations: index a round first (`qf index`)")
    columns = list(zip(*rows, strict=True))
    senders = [to_hex(bytes(b)) for b in columns[0]]
    projects = [f"{pool}:0x{bytes(r).hex()}" for pool, r in zip(columns[1], columns[2], strict=True)]
    tokens = [bytes(t) for t in columns[3]]
    by_address = {to_hex(bytes(a)): (bool(s), str(p), str(src)) for a, s, p, src in labels}
    sources = dict(
        conn.execute("SELECT source, count(*) FROM qf.labels WHERE chain_id = %s GROUP BY 1 ORDER BY 1", (chain_id,))
        .fetchall()
    )
    return assemble_dataset(
        chain_id,
        senders=senders,
        projects=projects,
        tokens=tokens,
        amount=np.array(columns[4], dtype=np.float64),
        round_amount=np.array(columns[5], dtype=np.float64),
        time=np.array(columns[6], dtype=np.float64),
        block=np.array(columns[7], dtype=np.int64),
        log_index=np.array(columns[8], dtype=np.int64),
        nonce=np.array(columns[9], dtype=np.int64),
        gas_price=np.array(columns[10], dtype=np.float64),
        labels=by_address,
        label_sources={str(k): int(v) for k, v in sources.items()},
    )


_CONTRIBUTIONS = """
    SELECT a.sender, s.pool_id::text, a.recipient_id,
           a.amount::float8 / 10::float8 ^ t.decimals,
           CASE WHEN t.decimals IS NOT NULL
                THEN (a.amount %% (5 * 10::numeric ^ (t.decimals - 1)) = 0) END,
           extract(epoch FROM a.block_time)::float8, a.block_number, a.tx_nonce, a.block_hash, a.token, a.chain_id
    FROM qf.allocated a
    JOIN qf.donation_strategies s ON s.chain_id = a.chain_id AND s.address = a.contract
    LEFT JOIN qf.tokens t ON t.chain_id = a.chain_id AND t.address = a.token
"""


def load_contributions(
    conn: psycopg.Connection[Any], chain_id: int, *, after_block: int | None = None
) -> tuple[list[Contribution], tuple[int, bytes] | None]:
    """The chain's donations as the gate's :class:`~qf.model.live.Contribution` rows, in chain order.

    Only blocks after ``after_block`` when given (the sidecar's incremental
    update). Also returns ``(block, block hash)`` of the last row, the cursor the
    next update starts from and checks for a reorg (:func:`cursor_holds`).
    Keys are those :func:`load_dataset` gives (``0x`` addresses, ``pool:0xrecipient``),
    so the sidecar and training key the same wallet and project alike.
    """
    with conn.cursor(binary=True) as cur:
        rows = cur.execute(
            _CONTRIBUTIONS + "WHERE a.chain_id = %s AND a.block_number > %s ORDER BY a.block_number, a.log_index",
            (chain_id, -1 if after_block is None else after_block),
        ).fetchall()
    conn.commit()
    out = [_contribution(row, qualify=False) for row in rows]
    cursor = (int(rows[-1][6]), bytes(rows[-1][8])) if rows else None
    return out, cursor


def load_elsewhere(
    conn: psycopg.Connection[Any], chain_id: int, *, after: Mapping[int, int] | None = None
) -> tuple[list[Contribution], dict[int, tuple[int, bytes]]]:
    """Every *other* chain's donations, in time order: the same wallets' history elsewhere.

    A donor is an address on every chain (as a round across chains counts it), so
    what a wallet gave on other chains is its history here too. Projects and
    pools of other chains are keyed ``chain/pool:0xrecipient`` and ``chain/pool``,
    apart from this chain's, so they never mix into this chain's project and
    pool state. ``after`` maps a chain to the last block already applied; returns
    the rows and each chain's new cursor ``(block, block hash)``.
    """
    chains = sorted((after or {}).items())
    with conn.cursor(binary=True) as cur:
        rows = cur.execute(
            _CONTRIBUTIONS + "LEFT JOIN unnest(%s::bigint[], %s::bigint[]) AS done(chain_id, block) "
            "ON done.chain_id = a.chain_id "
            "WHERE a.chain_id <> %s AND a.block_number > coalesce(done.block, -1) "
            "ORDER BY a.block_time, a.chain_id, a.block_number, a.log_index",
            ([c for c, _ in chains], [b for _, b in chains], chain_id),
        ).fetchall()
    conn.commit()
    cursors: dict[int, tuple[int, bytes]] = {}
    for row in rows:
        chain, block = int(row[10]), int(row[6])
        if chain not in cursors or block >= cursors[chain][0]:
            cursors[chain] = (block, bytes(row[8]))
    return [_contribution(row, qualify=True) for row in rows], cursors


def _contribution(row: tuple[Any, ...], *, qualify: bool) -> Contribution:
    sender, pool, recipient, amount, round_flag, time, block, nonce, _, token, chain = row
    pool_key = f"{chain}/{pool}" if qualify else str(pool)
    return Contribution(
        donor=to_hex(bytes(sender)), project=f"{pool_key}:0x{bytes(recipient).hex()}", pool=pool_key,
        amount=float(amount) if amount is not None else float("nan"), time=float(time), nonce=int(nonce),
        round_amount=None if round_flag is None else bool(round_flag), block=int(block), token=bytes(token),
    )  # fmt: skip


def cursor_holds(conn: psycopg.Connection[Any], chain_id: int, cursor: tuple[int, bytes]) -> bool:
    """Whether the block a live state last applied is still indexed with the same hash (no reorg went below it)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM qf.allocated WHERE chain_id = %s AND block_number = %s AND block_hash = %s)",
        (chain_id, cursor[0], cursor[1]),
    ).fetchone()
    conn.commit()
    return bool(row and row[0])
