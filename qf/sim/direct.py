"""Write a ``RoundPlan`` straight into the event tables, as the indexer would store it.

A chain replay of all of Gitcoin Round 9 takes about 9 minutes (anvil mines
every block); benchmarks of the psql views and the offline evaluation of the
sybil gate need the same rows in seconds. :func:`write_plan` writes the events
a plan's execution would emit (``PoolCreated``, ``PoolFunded``,
``TimestampsUpdated``, ``Registered``, one ``RecipientStatusUpdated`` per
64-recipient row, ``Allocated`` with its transaction context) together with
the indexer's own rows (``qf.strategies``, with the devnet strategy's id, ``qf.tokens``, ``qf.chains``), so
every view, refresh and feature downstream runs the production code unchanged.

What differs from a chain, by construction: block and transaction hashes are
derived (sha256 of their position), blocks are ``block_seconds`` slots from
``start_time``, and a donor's transaction nonce is counted as the executor
sends them (its prior nonce, plus its ERC-20 approval and its own fundings,
plus its earlier donations). The chain gets its own id, so rows written here
never mix with an indexed chain's (use a chain id no node serves).
"""

from __future__ import annotations

import bisect
import hashlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from qf_sentinel.qf.chain.abi import NATIVE_TOKEN
from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.eth import from_hex
from qf_sentinel.qf.sim.dvmdt import STRATEGY_ID
from qf_sentinel.qf.sim.labels import store_labels
from qf_sentinel.qf.sim.plan import RoundPlan, Token
from qf_sentinel.qf.sim.wallets import gas_price_wei

#: The fee the devnet core takes on funding, in percent (Allo's percentFee on the devnet).
FEE_PCT = 1
_ROW = 64  # recipients per RecipientStatusUpdated row (4 bits each)

_ALLOCATED_COLUMNS = (
    "chain_id", "block_number", "block_hash", "tx_hash", "tx_index", "log_index", "contract", "recipient_id",
    "amount", "token", "sender", "origin", "tx_from", "tx_nonce", "gas_price", "block_time",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class WrittenRound:
    """Where the plan landed: its pools (id, strategy) and the block range written."""

    chain_id: int
    pools: tuple[tuple[int, bytes], ...]
    donations: int
    first_block: int
    last_block: int


def derived_address(*parts: object) -> bytes:
    """A stable 20-byte address for a name (not a key anyone holds)."""
    return hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:20]


def _hash32(*parts: object) -> bytes:
    return hashlib.sha256(":".join(map(str, parts)).encode()).digest()


def token_address(chain_id: int, token: Token) -> bytes:
    """The address a plan's token gets on ``chain_id``: the native placeholder, or the chain's test token."""
    return from_hex(NATIVE_TOKEN) if token is Token.NATIVE else derived_address("direct-token", chain_id)


def first_donation_block(plan: RoundPlan, setup_block: int = 1) -> int:
    """Block of the first donation when the setup starts at ``setup_block``: one block per pool, then
    registrations, reviews (each one block), then the donations."""
    return setup_block + len(plan.pools) + 2


def write_plan(
    conn: psycopg.Connection[Any],
    plan: RoundPlan,
    *,
    chain_id: int,
    start_time: int,
    block_seconds: int = 12,
    refresh: bool = True,
    label_source: str | None = None,
) -> WrittenRound:
    """Write ``plan``'s events (one transaction), then refresh the analytics unless told not to.

    Pool ids continue after the chain's highest; ``start_time`` (unix seconds)
    opens the allocation window. Labels are stored under ``label_source``
    when given.
    """
    if block_seconds < 1:
        raise ConfigError(f"block_seconds must be at least 1, got {block_seconds}")
    token_of = {t: token_address(chain_id, t) for t in Token}
    erc20 = token_of[Token.ERC20]
    with conn.transaction():
        row = conn.execute(
            "SELECT coalesce(max(pool_id), 0), coalesce(max(block_number), 0) FROM qf.pool_created WHERE chain_id = %s",
            (chain_id,),
        ).fetchone()
        assert row is not None
        first_pool = int(row[0]) + 1
        last_allocated = conn.execute(
            "SELECT coalesce(max(block_number), 0) FROM qf.allocated WHERE chain_id = %s", (chain_id,)
        ).fetchone()
        setup_block = max(int(row[1]), int(last_allocated[0]) if last_allocated else 0) + 1
        core = derived_address("direct-core", chain_id)
        conn.execute(
            "INSERT INTO qf.chains (chain_id, core, start_block, checkpoint_block, checkpoint_hash, genesis_hash) "
            "VALUES (%s, %s, 0, 0, %s, %s) ON CONFLICT (chain_id) DO NOTHING",
            (chain_id, core, _hash32("block", chain_id, 0), _hash32("genesis", chain_id)),
        )
        conn.execute(
            "INSERT INTO qf.tokens (chain_id, address, symbol, decimals) "
            "VALUES (%s, %s, 'ETH', 18), (%s, %s, 'tUSD', 18) ON CONFLICT (chain_id, address) DO NOTHING",
            (chain_id, token_of[Token.NATIVE], chain_id, erc20),
        )
        writer = _Writer(conn, chain_id, setup_block)
        pools = []
        for p, pool in enumerate(plan.pools):
            pool_id = first_pool + p
            strategy = derived_address("direct-strategy", chain_id, pool_id)
            pools.append((pool_id, strategy))
            block = writer.next_block()
            conn.execute(  # as the indexer stores the devnet's strategy: getStrategyId() answered DVMDT v2.0
                "INSERT INTO qf.strategies (chain_id, address, pool_id, discovered_block, strategy_id, "
                "strategy_id_read) VALUES (%s, %s, %s, %s, %s, 'answered')",
                (chain_id, strategy, pool_id, block, STRATEGY_ID),
            )
            fee = pool.matching_amount * FEE_PCT // 100
            writer.log("timestamps_updated", strategy, registration_start=start_time - 3600,
                       registration_end=start_time + pool.duration_seconds, allocation_start=start_time,
                       allocation_end=start_time + pool.duration_seconds, sender=core)  # fmt: skip
            writer.log("pool_funded", core, pool_id=pool_id, amount=pool.matching_amount - fee, fee=fee)
            writer.log("pool_created", core, pool_id=pool_id, profile_id=_hash32("profile", pool.name),
                       strategy=strategy, token=token_of[pool.token], amount=pool.matching_amount - fee,
                       metadata_protocol=1, metadata_pointer=pool.name)  # fmt: skip
        writer.next_block()
        statuses: dict[int, list[tuple[int, bytes, int]]] = defaultdict(list)
        for project in plan.projects:
            strategy = pools[project.pool][1]
            owner = from_hex(plan.wallets[project.owner].address)
            index = len(statuses[project.pool])
            statuses[project.pool].append((index, owner, int(project.status)))
            writer.log("registered", strategy, recipient_id=owner, recipient_address=owner, recipient_index=index,
                       metadata_protocol=1, metadata_pointer=project.name, data=b"", sender=owner)  # fmt: skip
        writer.next_block()
        for p, recipients in statuses.items():
            for row_index in range((len(recipients) + _ROW - 1) // _ROW):
                full_row = sum(s << (4 * (i % _ROW)) for i, _, s in recipients if i // _ROW == row_index)
                writer.log("recipient_status_updated", pools[p][1], row_index=row_index, full_row=full_row,
                           sender=core)  # fmt: skip
        writer.flush()
        first_block = writer.next_block()
        assert first_block == first_donation_block(plan, setup_block)
        last_block = _write_donations(conn, plan, chain_id, pools, token_of, first_block, start_time, block_seconds)
        conn.execute(
            "UPDATE qf.chains SET checkpoint_block = greatest(checkpoint_block, %s), checkpoint_hash = %s "
            "WHERE chain_id = %s",
            (last_block, _hash32("block", chain_id, last_block), chain_id),
        )
        if label_source is not None and plan.labels:
            store_labels(conn, chain_id, plan.labels, source=label_source, run_id=f"{plan.name}-{plan.seed}")
    if refresh:
        conn.execute("SELECT qf.refresh_analytics()")
        conn.commit()
    return WrittenRound(chain_id, tuple(pools), len(plan.donations), setup_block, last_block)


@dataclass(frozen=True, slots=True)
class DonationRow:
    """Where and how one planned donation lands: block, position, time and the sender's transaction fields."""

    block: int
    log_index: int
    #: unix seconds of the block
    time: int
    donor: int
    project: int
    amount: int
    token: Token
    nonce: int
    gas_price: int


def donation_rows(plan: RoundPlan, *, first_block: int, start_time: int, block_seconds: int) -> list[DonationRow]:
    """Every donation of ``plan`` as :func:`write_plan` stores it (blocks of ``block_seconds`` from ``first_block``).

    A donor's nonce counts its prior nonce, the funding transfers it sent before
    (its ETH, and its tokens when it passes some on; one inside the window is
    sent first in its block slot), its ERC-20 approval and its earlier donations,
    as the executor would send them.
    """
    erc20_donors = {d.donor for d in plan.donations if d.token is Token.ERC20}
    #: per sender, the block slot of each funding transfer it sends (before the window: -1)
    sends: dict[int, list[int]] = defaultdict(list)
    for f in plan.fundings:
        if f.source is not None:
            slot = -1 if f.at_seconds is None or f.at_seconds < 0 else int(f.at_seconds // block_seconds)
            sends[f.source] += [slot] * (1 + (f.token_amount > 0))
    for slots in sends.values():
        slots.sort()
    base = {i: w.prior_nonce + (i in erc20_donors) for i, w in enumerate(plan.wallets)}
    donated: dict[int, int] = defaultdict(int)
    gas = [gas_price_wei(w.address) for w in plan.wallets]
    rows = []
    last_block, log_index = first_block, 0
    for d in plan.donations:
        slot = int(d.at_seconds // block_seconds)
        block = first_block + slot
        if block != last_block:
            last_block, log_index = block, 0
        time = start_time + (block - first_block) * block_seconds
        nonce = base[d.donor] + bisect.bisect_right(sends.get(d.donor, []), slot) + donated[d.donor]
        rows.append(DonationRow(block, log_index, time, d.donor, d.project, d.amount, d.token, nonce, gas[d.donor]))
        donated[d.donor] += 1
        log_index += 1
    return rows


def _write_donations(  # noqa: PLR0917 - one call site, every argument needed
    conn: psycopg.Connection[Any],
    plan: RoundPlan,
    chain_id: int,
    pools: list[tuple[int, bytes]],
    token_of: dict[Token, bytes],
    first_block: int,
    start_time: int,
    block_seconds: int,
) -> int:
    """COPY every donation into qf.allocated; returns the last block used."""
    recipient = [from_hex(plan.wallets[p.owner].address) for p in plan.projects]
    addresses = [from_hex(w.address) for w in plan.wallets]
    rows = donation_rows(plan, first_block=first_block, start_time=start_time, block_seconds=block_seconds)
    with conn.cursor() as cur, cur.copy(f"COPY qf.allocated ({', '.join(_ALLOCATED_COLUMNS)}) FROM STDIN") as copy:
        for n, r in enumerate(rows):
            donor = addresses[r.donor]
            copy.write_row((
                chain_id, r.block, _hash32("block", chain_id, r.block), _hash32("tx", chain_id, plan.name, n),
                r.log_index, r.log_index, pools[plan.projects[r.project].pool][1], recipient[r.project], r.amount,
                token_of[r.token], donor, donor, donor, r.nonce, r.gas_price, datetime.fromtimestamp(r.time, UTC),
            ))  # fmt: skip
    return rows[-1].block if rows else first_block


class _Writer:
    """Collects single event rows in chain order, one log position each; `flush` COPYs them per table.

    One COPY per table fires each table's statement triggers once (the status
    history is recomputed once, not once per registration).
    """

    def __init__(self, conn: psycopg.Connection[Any], chain_id: int, block: int) -> None:
        self.conn = conn
        self.chain_id = chain_id
        self.block = block - 1
        self.log_index = 0
        self.rows: dict[str, list[dict[str, object]]] = defaultdict(list)

    def next_block(self) -> int:
        self.block += 1
        self.log_index = 0
        return self.block

    def log(self, table: str, contract: bytes, **values: object) -> None:
        self.rows[table].append({
            "chain_id": self.chain_id,
            "block_number": self.block,
            "block_hash": _hash32("block", self.chain_id, self.block),
            "tx_hash": _hash32("tx", self.chain_id, self.block, self.log_index),
            "tx_index": self.log_index,
            "log_index": self.log_index,
            "contract": contract,
            **values,
        })  # fmt: skip
        self.log_index += 1

    def flush(self) -> None:
        with self.conn.cursor() as cur:
            for table, rows in self.rows.items():
                columns = sql.SQL(", ").join(map(sql.Identifier, rows[0]))
                statement = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier("qf", table), columns)
                with cur.copy(statement) as copy:
                    for row in rows:
                        copy.write_row(tuple(row.values()))
        self.rows.clear()
