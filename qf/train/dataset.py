"""What a model sees of a round: every donation as plain arrays, the donors and their labels.

Every feature the models use is computed from these arrays by :mod:`qf.train.features`,
the same code for training, the sidecar and ``qf score``. The arrays come from one
of two places, which must agree exactly (tested):

* :func:`load_dataset`: the indexed event tables of one chain, in one
  repeatable-read transaction, so donations and labels describe the same moment;
* :func:`dataset_from_plan`: a :class:`~qf.sim.plan.RoundPlan` (a replayed round,
  with injected attacks) as :func:`qf.sim.direct.write_plan` would store it,
  without a database: how the offline evaluation builds its rounds in seconds.

Labels: when several sources label an address, the most recent label wins (an
operator's imported verdict overrides the simulator's ground truth). Donors
without a label have ``labelled`` False and pattern ``unlabelled``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg

from qf.errors import DataError
from qf.sim.plan import Label, RoundPlan

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
#: ``order`` = block_number * ORDER_SCALE + log_index: chain order in one integer.
ORDER_SCALE = 100_000


@dataclass(frozen=True, slots=True)
class Donations:
    """One row per donation in chain order; donors, projects and tokens as dense indices."""

    donor: IntArray
    project: IntArray
    #: token units (NaN when the token's decimals are unknown)
    amount: FloatArray
    #: 1.0 if the token-unit amount is a multiple of 0.5 (exact, from base units), NaN if unknown
    round_amount: FloatArray
    #: unix seconds of the block
    time: FloatArray
    block: IntArray
    #: block_number * ORDER_SCALE + log_index: chain order
    order: IntArray
    #: transaction nonce of the donation (transactions the wallet had sent before)
    nonce: IntArray
    #: effective gas price, wei
    gas_price: FloatArray
    token: IntArray
    #: pool of each project (index into ``pool_ids``)
    project_pool: IntArray
    #: "pool_id:0xrecipient" per project index
    project_ids: list[str]

    @property
    def size(self) -> int:
        return int(self.donor.size)


@dataclass(frozen=True, slots=True)
class Dataset:
    chain_id: int
    #: one row per donor (index = donor index of ``donations``): address, first/last block, label columns
    donors: pd.DataFrame
    donations: Donations
    #: source -> number of labels read from it
    label_sources: dict[str, int]


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
            JOIN qf.strategies s ON s.chain_id = a.chain_id AND s.address = a.contract
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
    senders = ["0x" + bytes(b).hex() for b in columns[0]]
    projects = [f"{pool}:0x{bytes(r).hex()}" for pool, r in zip(columns[1], columns[2], strict=True)]
    tokens = [bytes(t) for t in columns[3]]
    by_address = {"0x" + bytes(a).hex(): (bool(s), str(p), str(src)) for a, s, p, src in labels}
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


def dataset_from_plan(
    plan: RoundPlan,
    *,
    chain_id: int,
    start_time: int,
    block_seconds: int = 12,
    first_pool: int = 1,
    label_source: str = "simulation",
) -> Dataset:
    """The dataset :func:`load_dataset` would read after ``write_plan`` of ``plan`` into an empty chain.

    Blocks, nonces and times follow :func:`qf.sim.direct.donation_rows`, as on an empty chain.
    """
    from qf.sim import direct  # noqa: PLC0415 - the planner's row layout, only needed here

    first_block = direct.first_donation_block(plan)
    rows = direct.donation_rows(plan, first_block=first_block, start_time=start_time, block_seconds=block_seconds)
    owners = [plan.wallets[p.owner].address for p in plan.projects]
    tokens = {t: direct.token_address(chain_id, t) for t in {r.token for r in rows}}
    amounts = [r.amount for r in rows]
    labels = {label.address: (label.is_sybil, label.pattern, label_source) for label in _latest(plan.labels)}
    return assemble_dataset(
        chain_id,
        senders=[plan.wallets[r.donor].address for r in rows],
        projects=[f"{first_pool + plan.projects[r.project].pool}:{owners[r.project]}" for r in rows],
        tokens=[tokens[r.token] for r in rows],
        amount=np.array([float(a) for a in amounts], dtype=np.float64) / 1e18,  # as SQL: float8, then / 1e18
        round_amount=np.array([float(a % (5 * 10**17) == 0) for a in amounts], dtype=np.float64),
        time=np.array([r.time for r in rows], dtype=np.float64),
        block=np.array([r.block for r in rows], dtype=np.int64),
        log_index=np.array([r.log_index for r in rows], dtype=np.int64),
        nonce=np.array([r.nonce for r in rows], dtype=np.int64),
        gas_price=np.array([r.gas_price for r in rows], dtype=np.float64),
        labels=labels,
        label_sources={label_source: len(labels)} if labels else {},
    )


def _latest(labels: Sequence[Label]) -> list[Label]:
    """One label per address, the last one given (as the database's "most recent wins")."""
    return list({label.address: label for label in labels}.values())


def assemble_dataset(
    chain_id: int,
    *,
    senders: list[str],
    projects: list[str],
    tokens: list[bytes],
    amount: FloatArray,
    round_amount: FloatArray,
    time: FloatArray,
    block: IntArray,
    log_index: IntArray,
    nonce: IntArray,
    gas_price: FloatArray,
    labels: dict[str, tuple[bool, str, str]],
    label_sources: dict[str, int],
) -> Dataset:
    """Index donors (sorted by address), projects (in order of first donation) and tokens; attach labels."""
    addresses, donor = np.unique(np.array(senders), return_inverse=True)
    project_ids, project = _first_seen_index(projects)
    _, token = _first_seen_index([t.hex() for t in tokens])
    _, project_pool = _first_seen_index([key.partition(":")[0] for key in project_ids])
    n = addresses.size
    first_block = np.full(n, np.iinfo(np.int64).max)
    last_block = np.zeros(n, dtype=np.int64)
    np.minimum.at(first_block, donor, block)
    np.maximum.at(last_block, donor, block)
    label = [labels.get(str(a)) for a in addresses]
    donors = pd.DataFrame(
        {
            "address": addresses.astype(str),
            "first_block": first_block,
            "last_block": last_block,
            "labelled": [x is not None for x in label],
            "is_sybil": [bool(x and x[0]) for x in label],
            "pattern": [x[1] if x else "unlabelled" for x in label],
            "source": [x[2] if x else None for x in label],
        }
    )
    donations = Donations(
        donor=donor.astype(np.int64),
        project=project,
        amount=amount,
        round_amount=round_amount,
        time=time,
        block=block,
        order=block * ORDER_SCALE + log_index,
        nonce=nonce,
        gas_price=gas_price,
        token=token,
        project_pool=project_pool,
        project_ids=project_ids,
    )
    return Dataset(chain_id=chain_id, donors=donors, donations=donations, label_sources=label_sources)


def _first_seen_index(keys: list[str]) -> tuple[list[str], IntArray]:
    """Dense indices in order of first appearance, and the distinct keys in that order."""
    index: dict[str, int] = {}
    out = np.fromiter((index.setdefault(k, len(index)) for k in keys), np.int64, len(keys))
    return list(index), out
