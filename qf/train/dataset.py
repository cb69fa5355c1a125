"""The database edge of training: donors with their features and labels, and the donations.

Everything a training run reads comes through :func:`load_dataset` in one
repeatable-read transaction, so features, labels and donations describe the same
moment of the index. The rest of ``qf.train`` works on the plain arrays returned.

Labels: when several sources label an address, the most recent label wins (an
operator's imported verdict overrides the simulator's ground truth).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg
from psycopg import sql

from qf.errors import DataError

#: Columns of qf.donor_features that are features (the rest are keys and timestamps).
SQL_FEATURES: tuple[str, ...] = (
    "donation_count",
    "total_amount",
    "mean_amount",
    "amount_stddev",
    "distinct_projects",
    "distinct_pools",
    "distinct_tokens",
    "active_seconds",
    "first_nonce",
    "fresh_wallet",
    "median_gap_seconds",
    "round_amount_share",
    "same_block_codonations",
    "top_project_share",
    "gas_price_distinct",
)


@dataclass(frozen=True, slots=True)
class Donations:
    """One row per donation, donors and projects as dense indices."""

    donor: npt.NDArray[np.int64]
    project: npt.NDArray[np.int64]
    amount: npt.NDArray[np.float64]
    block: npt.NDArray[np.int64]
    #: block_number * 100_000 + log_index: chain order
    order: npt.NDArray[np.int64]
    #: pool of each project (index into ``project_ids``)
    project_pool: npt.NDArray[np.int64]
    #: "pool_id:0xrecipient" per project index
    project_ids: list[str]


@dataclass(frozen=True, slots=True)
class Dataset:
    chain_id: int
    #: one row per donor (index = donor index of ``donations``): address, SQL features, label columns
    donors: pd.DataFrame
    donations: Donations
    #: source -> number of labels read from it
    label_sources: dict[str, int]


def load_dataset(conn: psycopg.Connection[Any], chain_id: int) -> Dataset:
    """Read one chain's donor features, labels and donations (ends any transaction open on ``conn`` first)."""
    conn.commit()  # the repeatable-read snapshot must start with this function's first query
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    try:
        return _load(conn, chain_id)
    finally:
        conn.rollback()


def _load(conn: psycopg.Connection[Any], chain_id: int) -> Dataset:
    columns = sql.SQL(", ").join(sql.Identifier("f", c) for c in SQL_FEATURES)
    query = sql.SQL(
        """
        SELECT '0x' || encode(f.donor, 'hex') AS address, {},
               b.first_block, b.last_block, l.is_sybil, l.pattern, l.source
        FROM qf.donor_features f
        JOIN LATERAL (
            SELECT min(a.block_number) AS first_block, max(a.block_number) AS last_block
            FROM qf.allocated a WHERE a.chain_id = f.chain_id AND a.sender = f.donor
        ) b ON true
        LEFT JOIN LATERAL (
            SELECT is_sybil, pattern, source FROM qf.labels x
            WHERE x.chain_id = f.chain_id AND x.address = f.donor
            ORDER BY x.created_at DESC, x.source LIMIT 1
        ) l ON true
        WHERE f.chain_id = %s
        ORDER BY f.donor
        """
    ).format(columns)
    cur = conn.execute(query, (chain_id,))
    names = [d.name for d in cur.description or ()]
    donors = pd.DataFrame(cur.fetchall(), columns=names)
    if donors.empty:
        raise DataError(f"chain {chain_id} has no donors in qf.donor_features: index a round first (`qf index`)")
    for name in SQL_FEATURES:
        donors[name] = pd.to_numeric(donors[name], errors="coerce").astype(np.float64)
    donors["first_block"] = donors["first_block"].astype(np.int64)
    donors["last_block"] = donors["last_block"].astype(np.int64)
    donors["labelled"] = donors["is_sybil"].notna()
    donors["is_sybil"] = donors["is_sybil"].fillna(False).astype(bool)
    donors["pattern"] = donors["pattern"].fillna("unlabelled").astype(str)
    index = {address: i for i, address in enumerate(donors["address"])}

    rows = conn.execute(
        """
        SELECT '0x' || encode(a.sender, 'hex'), s.pool_id, '0x' || encode(a.recipient_id, 'hex'),
               (a.amount / (10::numeric ^ coalesce(t.decimals, 18)))::float8, a.block_number, a.log_index
        FROM qf.allocated a
        JOIN qf.strategies s ON s.chain_id = a.chain_id AND s.address = a.contract
        LEFT JOIN qf.tokens t ON t.chain_id = a.chain_id AND t.address = a.token
        WHERE a.chain_id = %s
        ORDER BY a.block_number, a.log_index
        """,
        (chain_id,),
    ).fetchall()
    projects: dict[str, int] = {}
    project_pool: list[int] = []
    pools: dict[int, int] = {}
    donor, project, amount, block, order = [], [], [], [], []
    for sender, pool_id, recipient, value, number, log_index in rows:
        if sender not in index:  # a donation committed after the features were computed
            continue
        key = f"{int(pool_id)}:{recipient}"
        if key not in projects:
            projects[key] = len(projects)
            project_pool.append(pools.setdefault(int(pool_id), len(pools)))
        donor.append(index[sender])
        project.append(projects[key])
        amount.append(value)
        block.append(number)
        order.append(number * 100_000 + log_index)
    donations = Donations(
        donor=np.asarray(donor, dtype=np.int64),
        project=np.asarray(project, dtype=np.int64),
        amount=np.asarray(amount, dtype=np.float64),
        block=np.asarray(block, dtype=np.int64),
        order=np.asarray(order, dtype=np.int64),
        project_pool=np.asarray(project_pool, dtype=np.int64),
        project_ids=list(projects),
    )
    sources = dict(
        conn.execute("SELECT source, count(*) FROM qf.labels WHERE chain_id = %s GROUP BY 1 ORDER BY 1", (chain_id,))
        .fetchall()
    )
    return Dataset(chain_id=chain_id, donors=donors, donations=donations, label_sources=sources)
