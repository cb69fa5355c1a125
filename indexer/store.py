"""The indexer's PostgreSQL edge: batches in, reorg rollbacks, views refreshed.

One ``Store`` owns one connection. That connection also holds the per-chain
writer lock (a session advisory lock), so if the process dies the lock goes
with its session and a standby takes over. Every batch is one transaction: its
rows (bulk-loaded with COPY into staging tables, then inserted with ON
CONFLICT DO NOTHING on the natural key, so a replayed batch is harmless), the
blocks, strategies (with what their ``getStrategyId()`` answered) and tokens it
discovered, and the new checkpoint. The
checkpoint update is conditional on the previous checkpoint, so a writer that
lost its lock cannot move the chain backwards or forwards behind another.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
import structlog
from psycopg import sql

from qf_sentinel.indexer.errors import StaleCheckpoint
from qf_sentinel.indexer.sanitise import Clean
from qf_sentinel.qf.db import VIEWS_REFRESHED_CHANNEL, connect
from qf_sentinel.qf.errors import ConfigError

log = structlog.get_logger()

#: Advisory-lock namespace for "the writer of chain N" (the key's first half).
LOCK_NAMESPACE = 0x51F1
#: Channel that carries "views refreshed" notifications (payload: chain_id:block).
# Maintained incrementally by qf.refresh_analytics() (sql/007_incremental_analytics.sql).
ANALYTICS_TABLES: tuple[str, ...] = ("project_totals", "round_matching", "donor_features", "round_stats")


@dataclass(frozen=True, slots=True)
class ChainState:
    chain_id: int
    core: bytes
    start_block: int
    checkpoint_block: int | None
    checkpoint_hash: bytes | None
    finalized_block: int | None

    @property
    def next_block(self) -> int:
        return self.start_block if self.checkpoint_block is None else self.checkpoint_block + 1


@dataclass(frozen=True, slots=True)
class BlockRow:
    number: int
    hash: bytes
    parent_hash: bytes
    time: datetime


@dataclass(slots=True)
class Batch:
    """Everything one committed batch writes, prepared before the transaction opens."""

    from_block: int
    to_block: int
    to_hash: bytes
    #: table -> (column names, rows in that order)
    rows: dict[str, tuple[Sequence[str], list[tuple[object, ...]]]] = field(default_factory=dict)
    blocks: list[BlockRow] = field(default_factory=list)
    #: (strategy address, pool id, discovery block)
    strategies: list[tuple[bytes, int, int]] = field(default_factory=list)
    #: strategy address -> what its getStrategyId() answered (a strategy missing here was not asked)
    strategy_ids: Mapping[bytes, Clean[bytes | None]] = field(default_factory=dict)
    #: (token address, symbol, decimals)
    tokens: list[tuple[bytes, str | None, int | None]] = field(default_factory=list)
    #: (block, contract, topic0) -> count
    unknown: Counter[tuple[int, bytes, bytes]] = field(default_factory=Counter)
    finalized_block: int | None = None

    @property
    def event_count(self) -> int:
        return sum(len(rows) for _, rows in self.rows.values())


class Store:
    def __init__(self, url: str, chain_id: int, event_tables: Sequence[str]) -> None:
        self.url = url
        self.chain_id = chain_id
        self.event_tables = tuple(event_tables)
        self._conn: psycopg.Connection | None = None
        self._staged: set[str] = set()

    # -- connection and lock ------------------------------------------------------------
    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.url)
            self._staged = set()
        return self._conn

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None

    def reset(self) -> None:
        """Drop a broken connection (the lock goes with it); the next use reconnects."""
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None

    def try_lock(self) -> bool:
        """Take the writer lock of this chain if free; held until the session ends."""
        got = self.conn.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (LOCK_NAMESPACE, self.chain_id % 2**31)
        ).fetchone()
        self.conn.commit()
        return bool(got and got[0])

    def wait_for_lock(self, *, poll_seconds: float, should_stop: Callable[[], bool]) -> bool:
        """Hot standby: poll for the lock until it is ours (True) or we are told to stop."""
        announced = False
        while not should_stop():
            if self.try_lock():
                return True
            if not announced:
                log.info("standby_waiting", chain_id=self.chain_id)
                announced = True
            time.sleep(poll_seconds)
        return False

    # -- state ---------------------------------------------------------------------------
    def load_state(self) -> ChainState | None:
        row = self.conn.execute(
            "SELECT core, start_block, checkpoint_block, checkpoint_hash, finalized_block "
            "FROM qf.chains WHERE chain_id = %s",
            (self.chain_id,),
        ).fetchone()
        self.conn.commit()
        if row is None:
            return None
        return ChainState(self.chain_id, bytes(row[0]), row[1], row[2], _b(row[3]), row[4])

    def init_state(self, core: bytes, start_block: int) -> ChainState:
        """Record where this chain is indexed from; refuse a different core later."""
        with self.conn.transaction():
            self.conn.execute(
                "INSERT INTO qf.chains (chain_id, core, start_block) VALUES (%s, %s, %s) "
                "ON CONFLICT (chain_id) DO NOTHING",
                (self.chain_id, core, start_block),
            )
        state = self.load_state()
        assert state is not None
        if state.core != core:
            raise ConfigError(
                f"chain {self.chain_id} is already indexed for core 0x{state.core.hex()}, "
                f"not 0x{core.hex()}; use another database or delete its rows first"
            )
        return state

    def strategies(self) -> dict[bytes, tuple[int, int]]:
        """Known strategies: address -> (pool id, discovery block)."""
        rows = self.conn.execute(
            "SELECT address, pool_id, discovered_block FROM qf.strategies WHERE chain_id = %s",
            (self.chain_id,),
        ).fetchall()
        self.conn.commit()
        return {bytes(a): (int(p), int(b)) for a, p, b in rows}

    def unread_strategies(self) -> list[bytes]:
        """Strategies whose getStrategyId() was never asked (stored before migration 024)."""
        rows = self.conn.execute(
            "SELECT address FROM qf.strategies WHERE chain_id = %s AND strategy_id_read IS NULL ORDER BY address",
            (self.chain_id,),
        ).fetchall()
        self.conn.commit()
        return [bytes(r[0]) for r in rows]

    def record_strategy_ids(self, answers: Mapping[bytes, Clean[bytes | None]]) -> int:
        """Store what unread strategies' getStrategyId() answered (a trigger recomputes their pools); how many."""
        if not answers:
            return 0
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(
                "UPDATE qf.strategies SET strategy_id = %s, strategy_id_read = %s "
                "WHERE chain_id = %s AND address = %s AND strategy_id_read IS NULL",
                [(*_strategy_id(answer), self.chain_id, address) for address, answer in answers.items()],
            )
        return len(answers)

    def known_tokens(self) -> set[bytes]:
        rows = self.conn.execute("SELECT address FROM qf.tokens WHERE chain_id = %s", (self.chain_id,)).fetchall()
        self.conn.commit()
        return {bytes(r[0]) for r in rows}

    def block_hashes(self, numbers: Iterable[int]) -> dict[int, bytes]:
        rows = self.conn.execute(
            "SELECT number, hash FROM qf.blocks WHERE chain_id = %s AND number = ANY(%s)",
            (self.chain_id, list(numbers)),
        ).fetchall()
        self.conn.commit()
        return {n: bytes(h) for n, h in rows}

    def stored_block_numbers(self, *, above: int) -> list[int]:
        """Numbers of stored block hashes above ``above``, highest first."""
        rows = self.conn.execute(
            "SELECT number FROM qf.blocks WHERE chain_id = %s AND number > %s ORDER BY number DESC",
            (self.chain_id, above),
        ).fetchall()
        self.conn.commit()
        return [r[0] for r in rows]

    # -- writes --------------------------------------------------------------------------
    def commit_batch(self, batch: Batch, expected_checkpoint: int | None) -> None:
        """Write the whole batch and move the checkpoint, atomically."""
        conn = self.conn
        with conn.transaction(), conn.cursor() as cur:
            for table, (columns, rows) in batch.rows.items():
                if rows:
                    self._copy_insert(cur, table, columns, rows)
            if batch.blocks:
                cur.executemany(
                    "INSERT INTO qf.blocks (chain_id, number, hash, parent_hash, block_time) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (chain_id, number) DO UPDATE "
                    "SET hash = EXCLUDED.hash, parent_hash = EXCLUDED.parent_hash, block_time = EXCLUDED.block_time",
                    [(self.chain_id, b.number, b.hash, b.parent_hash, b.time) for b in batch.blocks],
                )
            if batch.strategies:
                ids = batch.strategy_ids
                cur.executemany(
                    "INSERT INTO qf.strategies (chain_id, address, pool_id, discovered_block, strategy_id, "
                    "strategy_id_read) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    [(self.chain_id, a, p, b, *_strategy_id(ids.get(a))) for a, p, b in batch.strategies],
                )
            if batch.tokens:
                cur.executemany(
                    "INSERT INTO qf.tokens (chain_id, address, symbol, decimals) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    [(self.chain_id, a, s, d) for a, s, d in batch.tokens],
                )
            if batch.unknown:  # a block's count, as the events: a replayed batch sets it again, never adds
                cur.executemany(
                    "INSERT INTO qf.unknown_topic_blocks (chain_id, block_number, contract, topic0, seen) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (chain_id, block_number, contract, topic0) "
                    "DO UPDATE SET seen = EXCLUDED.seen",
                    [(self.chain_id, b, c, t, n) for (b, c, t), n in batch.unknown.items()],
                )
            cur.execute(
                "UPDATE qf.chains SET checkpoint_block = %s, checkpoint_hash = %s, "
                "finalized_block = COALESCE(%s, finalized_block), updated_at = now() "
                "WHERE chain_id = %s AND checkpoint_block IS NOT DISTINCT FROM %s",
                (batch.to_block, batch.to_hash, batch.finalized_block, self.chain_id, expected_checkpoint),
            )
            if cur.rowcount != 1:
                raise StaleCheckpoint(
                    f"checkpoint of chain {self.chain_id} is no longer {expected_checkpoint}: another writer?"
                )

    def _copy_insert(
        self, cur: psycopg.Cursor, table: str, columns: Sequence[str], rows: list[tuple[object, ...]]
    ) -> None:
        stage = f"stage_{table}"
        if stage not in self._staged:
            cur.execute(
                sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS").format(
                    sql.Identifier(stage), sql.Identifier("qf", table)
                )
            )
            self._staged.add(stage)
        cols = sql.SQL(", ").join(map(sql.Identifier, columns))
        with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(stage), cols)) as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
                sql.Identifier("qf", table), cols, cols, sql.Identifier(stage)
            )
        )

    def rollback_to(self, ancestor: int, ancestor_hash: bytes | None) -> dict[str, int]:
        """Delete everything above ``ancestor`` (events, strategies, unknown-topic counts, block hashes, funding
        found there) and move the checkpoint there, in one transaction.

        The chain's row is locked first: the funding worker writes its results under a share lock on it, so
        a rollback either sees them (and deletes those above the ancestor) or they see the rollback.
        """
        deleted: dict[str, int] = {}
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute("SELECT 1 FROM qf.chains WHERE chain_id = %s FOR UPDATE", (self.chain_id,))
            for table in self.event_tables:
                cur.execute(
                    sql.SQL("DELETE FROM {} WHERE chain_id = %s AND block_number > %s").format(
                        sql.Identifier("qf", table)
                    ),
                    (self.chain_id, ancestor),
                )
                deleted[table] = cur.rowcount
            cur.execute(
                "DELETE FROM qf.strategies WHERE chain_id = %s AND discovered_block > %s",
                (self.chain_id, ancestor),
            )
            deleted["strategies"] = cur.rowcount
            cur.execute(
                "DELETE FROM qf.unknown_topic_blocks WHERE chain_id = %s AND block_number > %s",
                (self.chain_id, ancestor),
            )
            deleted["unknown_topic_blocks"] = cur.rowcount
            deleted |= self._rollback_funding(cur, ancestor)
            cur.execute("DELETE FROM qf.blocks WHERE chain_id = %s AND number > %s", (self.chain_id, ancestor))
            deleted["blocks"] = cur.rowcount
            cur.execute(
                "UPDATE qf.chains SET checkpoint_block = %s, checkpoint_hash = %s, updated_at = now() "
                "WHERE chain_id = %s",
                (ancestor, ancestor_hash, self.chain_id),
            )
        return deleted

    def _rollback_funding(self, cur: psycopg.Cursor, ancestor: int) -> dict[str, int]:
        """Funding found above ``ancestor`` is deleted (imported rows, which carry no block hash, stay); every
        wallet searched past it is searched again from it, and donors are queued again from it."""
        cur.execute(
            "DELETE FROM qf.wallet_funding WHERE chain_id = %s AND block_number > %s AND method <> 'import'",
            (self.chain_id, ancestor),
        )
        wallet_funding = cur.rowcount
        cur.execute(
            "UPDATE qf.funding_wallets SET searched_to_block = %s, status = 'pending', next_attempt_at = '-infinity' "
            "WHERE chain_id = %s AND searched_to_block > %s",
            (ancestor, self.chain_id, ancestor),
        )
        cur.execute(
            "INSERT INTO qf.funding_progress AS p (chain_id, donors_through_block, rollbacks) VALUES (%s, -1, 1) "
            "ON CONFLICT (chain_id) DO UPDATE SET rollbacks = p.rollbacks + 1, "
            "donors_through_block = least(p.donors_through_block, %s)",
            (self.chain_id, ancestor),
        )
        return {"wallet_funding": wallet_funding}

    def genesis_hash(self) -> bytes | None:
        row = self.conn.execute("SELECT genesis_hash FROM qf.chains WHERE chain_id = %s", (self.chain_id,)).fetchone()
        self.conn.commit()
        return None if row is None or row[0] is None else bytes(row[0])

    def set_genesis_hash(self, genesis: bytes) -> None:
        with self.conn.transaction():
            self.conn.execute("UPDATE qf.chains SET genesis_hash = %s WHERE chain_id = %s", (genesis, self.chain_id))

    def forget_chain(self) -> dict[str, int]:
        """Delete every row of this chain (events, blocks, strategies, tokens, state), in one transaction."""
        deleted: dict[str, int] = {}
        with self.conn.transaction(), self.conn.cursor() as cur:
            tables = ("strategies", "blocks", "tokens", "unknown_topic_blocks", "wallet_funding", "funding_wallets",
                      "funding_progress", "chains")  # fmt: skip
            for table in (*self.event_tables, *tables):
                cur.execute(sql.SQL("DELETE FROM {} WHERE chain_id = %s").format(sql.Identifier("qf", table)),
                            (self.chain_id,))  # fmt: skip
                deleted[table] = cur.rowcount
        return deleted

    def prune_blocks(self, below: int) -> int:
        """Forget block hashes below finality (a reorg cannot reach them)."""
        with self.conn.transaction():
            cur = self.conn.execute("DELETE FROM qf.blocks WHERE chain_id = %s AND number < %s", (self.chain_id, below))
        return cur.rowcount

    def refresh_views(self, *, wait: bool = True) -> float | None:
        """Recompute the analytics rows of what changed since the last call, then NOTIFY; returns seconds.

        Triggers on the event tables mark dirty donors, projects and pools in each batch's
        transaction; ``qf.refresh_analytics()`` recomputes just those, in one transaction, so
        the cost follows the size of the change, not of the history. It recomputes every
        chain's dirty rows under one lock: with ``wait=False`` a chain whose refresh would
        queue behind another chain's returns None at once and leaves its rows dirty for a
        later call (that refresh, or the next, takes them), instead of stalling its batches.
        """
        started = time.monotonic()
        conn = self.conn
        conn.commit()
        with conn.transaction():
            if not wait:
                row = conn.execute("SELECT pg_try_advisory_xact_lock(hashtext('qf.refresh_analytics'))").fetchone()
                if not (row and row[0]):
                    return None
            conn.execute("SELECT qf.refresh_analytics()")
            state = conn.execute(
                "SELECT checkpoint_block FROM qf.chains WHERE chain_id = %s", (self.chain_id,)
            ).fetchone()
            payload = f"{self.chain_id}:{state[0] if state else ''}"
            conn.execute(sql.SQL("NOTIFY {}, {}").format(sql.Identifier(VIEWS_REFRESHED_CHANNEL), sql.Literal(payload)))
        return time.monotonic() - started


def _strategy_id(answer: Clean[bytes | None] | None) -> tuple[bytes | None, str | None]:
    """(strategy_id, strategy_id_read) of a getStrategyId() answer; (None, None) if it was not asked."""
    if answer is None:
        return None, None
    if answer.value is not None:
        return answer.value, "answered"
    return None, answer.reasons[0] if answer.reasons else "no_answer"


def _b(value: bytes | memoryview | None) -> bytes | None:
    return None if value is None else bytes(value)
