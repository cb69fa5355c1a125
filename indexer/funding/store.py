"""The funding worker's Postgres edge: its queue (``qf.funding_wallets``), and results into ``qf.wallet_funding``.

The worker's own connection, in autocommit: no transaction is open while the node is asked
anything, and the indexer never waits on the worker (it only reads what the indexer committed).

* Donors are queued from ``qf.allocated`` by a cursor (``qf.funding_progress``), up to the indexer's
  checkpoint: the indexer's own transactions carry no funding work at all.
* A claimed wallet is leased (``next_attempt_at`` moved past the search's longest duration), so a
  worker that dies loses nothing.
* Results are written in one transaction that first takes a share lock on the chain's row in
  ``qf.chains``; ``Store.rollback_to`` takes that row's update lock before it deletes anything. So
  either the rollback sees the results (and deletes those above its ancestor) or the results see the
  rollback: a search claimed before a rollback (``qf.funding_progress.rollbacks`` moved), or reaching
  past the checkpoint, or holding a block whose hash the indexer stored differently, is discarded and
  searched again.
* A wallet's funders are queued from its stored rows (found or imported), one depth further, unless
  the funder is a known source, a contract, the zero address (a mint) or the depth limit is reached.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from qf_sentinel.indexer.funding.finder import Outcome
from qf_sentinel.qf.db import connect
from qf_sentinel.qf.funding.db import MERGE_QUEUE as _MERGE
from qf_sentinel.qf.funding.db import request_funding
from qf_sentinel.qf.funding.graph import NATIVE

_QUEUE_DONORS = (
    sql.SQL("""
    INSERT INTO qf.funding_wallets AS w (chain_id, wallet, depth, reason, tokens, until_block)
    SELECT a.chain_id, a.sender, 1, 'donor',
           coalesce(array_agg(DISTINCT a.token::bytea ORDER BY a.token::bytea) FILTER (WHERE a.token <> %(native)s),
                    '{}'),
           min(a.block_number)
    FROM qf.allocated a
    WHERE a.chain_id = %(chain)s AND a.block_number > %(after)s AND a.block_number <= %(through)s
    GROUP BY a.chain_id, a.sender
    ORDER BY a.sender
    """)
    + _MERGE
)

_QUEUE_FUNDERS = (
    sql.SQL("""
    INSERT INTO qf.funding_wallets AS w (chain_id, wallet, depth, reason, tokens, until_block)
    SELECT f.chain_id, f.funder, %(depth)s + 1, 'funder',
           coalesce(array_agg(f.asset::bytea ORDER BY f.asset::bytea) FILTER (WHERE f.asset <> %(native)s), '{}'),
           max(f.block_number)
    FROM qf.wallet_funding f
    WHERE f.chain_id = %(chain)s AND f.wallet = %(wallet)s AND %(depth)s < %(max_depth)s
      AND f.funder <> %(zero)s AND f.funder <> f.wallet AND f.funder_is_contract IS NOT TRUE
      AND NOT EXISTS (SELECT 1 FROM qf.known_sources k WHERE k.chain_id = f.chain_id AND k.address = f.funder)
    GROUP BY f.chain_id, f.funder
    ORDER BY f.funder
    """)
    + _MERGE
)

_INSERT_FOUND = """
INSERT INTO qf.wallet_funding AS x (chain_id, wallet, asset, funder, amount, block_number, block_hash, tx_hash,
                                    block_time, depth, method, funder_is_contract)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, to_timestamp(%s), %s, %s, %s)
ON CONFLICT (chain_id, wallet, asset) DO UPDATE SET
    funder = EXCLUDED.funder, amount = EXCLUDED.amount, block_number = EXCLUDED.block_number,
    block_hash = EXCLUDED.block_hash, tx_hash = EXCLUDED.tx_hash, block_time = EXCLUDED.block_time,
    depth = EXCLUDED.depth, method = EXCLUDED.method, funder_is_contract = EXCLUDED.funder_is_contract,
    found_at = now()
WHERE EXCLUDED.block_number < x.block_number
"""


@dataclass(frozen=True, slots=True)
class Claimed:
    """A queued wallet, as claimed."""

    wallet: bytes
    depth: int
    tokens: tuple[bytes, ...]
    until_block: int
    searched_to_block: int | None
    attempts: int
    #: Assets already in qf.wallet_funding.
    found: frozenset[bytes]


@dataclass(frozen=True, slots=True)
class Recorded:
    """What became of each outcome: counts by word (done, unavailable, retry, discarded)."""

    done: int = 0
    unavailable: int = 0
    retry: int = 0
    discarded: int = 0


class FundingStore:
    """The queue and the results of one chain, over one lazily (re)opened autocommit connection."""

    def __init__(self, url: str, chain_id: int) -> None:
        self.url = url
        self.chain_id = chain_id
        self._conn: psycopg.Connection[TupleRow] | None = None

    @property
    def conn(self) -> psycopg.Connection[TupleRow]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = connect(self.url, autocommit=True)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- state ----------------------------------------------------------------------------------
    def checkpoint(self) -> int | None:
        """The indexer's checkpoint block on this chain (None: nothing indexed yet)."""
        row = self.conn.execute(
            "SELECT checkpoint_block FROM qf.chains WHERE chain_id = %s", (self.chain_id,)
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def rollbacks(self) -> int:
        row = self.conn.execute(
            "SELECT rollbacks FROM qf.funding_progress WHERE chain_id = %s", (self.chain_id,)
        ).fetchone()
        return int(row[0]) if row else 0

    def pending_count(self) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM qf.funding_wallets WHERE chain_id = %s AND status = 'pending'", (self.chain_id,)
        ).fetchone()
        return int(row[0]) if row else 0

    # -- the queue ------------------------------------------------------------------------------
    def queue_donors(self) -> int:
        """Queue the donors of blocks the indexer committed since the last call; returns how many rows changed."""
        with self.conn.transaction():
            through = self.checkpoint()
            if through is None:
                return 0
            self.conn.execute(
                "INSERT INTO qf.funding_progress (chain_id) VALUES (%s) ON CONFLICT DO NOTHING", (self.chain_id,)
            )
            row = self.conn.execute(
                "SELECT donors_through_block FROM qf.funding_progress WHERE chain_id = %s FOR UPDATE", (self.chain_id,)
            ).fetchone()
            after = int(row[0]) if row else -1
            if after >= through:
                return 0
            cur = self.conn.execute(
                _QUEUE_DONORS, {"chain": self.chain_id, "after": after, "through": through, "native": NATIVE}
            )
            self.conn.execute(
                "UPDATE qf.funding_progress SET donors_through_block = %s WHERE chain_id = %s", (through, self.chain_id)
            )
            return cur.rowcount

    def reset_unavailable(self) -> int:
        """Send wallets whose native funding no method could find back to the queue (the node now has one)."""
        cur = self.conn.execute(
            "UPDATE qf.funding_wallets SET status = 'pending', searched_to_block = NULL, next_attempt_at = '-infinity' "
            "WHERE chain_id = %s AND status = 'unavailable'",
            (self.chain_id,),
        )
        return cur.rowcount

    def request(self, wallets: Sequence[bytes]) -> int:
        """Queue wallets asked about (at depth 1, searched up to the checkpoint); returns rows changed."""
        return request_funding(self.conn, self.chain_id, wallets)

    def claim(
        self, now: datetime, *, limit: int, lease_until: datetime, wallets: Sequence[bytes] | None = None
    ) -> list[Claimed]:
        """Up to ``limit`` wallets due at ``now``, shallowest and longest due first, leased until ``lease_until``;
        with ``wallets``, those of them that are pending, due or not."""
        rows = self.conn.execute(
            """
            UPDATE qf.funding_wallets w SET next_attempt_at = %(lease)s, last_attempt_at = %(now)s
            FROM (SELECT chain_id, wallet FROM qf.funding_wallets
                  WHERE chain_id = %(chain)s AND status = 'pending'
                    AND CASE WHEN %(wallets)s::bytea[] IS NULL THEN next_attempt_at <= %(now)s
                             ELSE wallet = ANY(%(wallets)s::bytea[]) END
                  ORDER BY depth, next_attempt_at, first_seen_at, wallet LIMIT %(limit)s FOR UPDATE SKIP LOCKED) due
            WHERE w.chain_id = due.chain_id AND w.wallet = due.wallet
            RETURNING w.wallet, w.depth, w.tokens, w.until_block, w.searched_to_block, w.attempts,
                      (SELECT coalesce(array_agg(f.asset::bytea), '{}') FROM qf.wallet_funding f
                       WHERE f.chain_id = w.chain_id AND f.wallet = w.wallet)
            """,
            {"chain": self.chain_id, "now": now, "lease": lease_until, "limit": limit,
             "wallets": None if wallets is None else list(wallets)},
        ).fetchall()
        return sorted(
            (Claimed(bytes(wallet), int(depth), tuple(bytes(t) for t in tokens), int(until),
                     None if searched is None else int(searched), int(attempts), frozenset(bytes(a) for a in found))
             for wallet, depth, tokens, until, searched, attempts, found in rows),
            key=lambda c: (c.depth, c.wallet),
        )  # fmt: skip

    # -- results --------------------------------------------------------------------------------
    def funders_of(self, wallets: Sequence[bytes]) -> list[bytes]:
        """Wallets queued as funders of ``wallets`` and still pending (the next hop of an on-demand lookup)."""
        rows = self.conn.execute(
            "SELECT DISTINCT q.wallet FROM qf.wallet_funding f JOIN qf.funding_wallets q "
            "ON q.chain_id = f.chain_id AND q.wallet = f.funder AND q.status = 'pending' "
            "WHERE f.chain_id = %s AND f.wallet = ANY(%s::bytea[]) ORDER BY 1",
            (self.chain_id, list(wallets)),
        ).fetchall()
        return [bytes(r[0]) for r in rows]

    def record(
        self, outcomes: Sequence[Outcome], *, rollbacks: int, now: datetime,
        retry_at: Sequence[datetime], max_depth: int,
    ) -> Recorded:  # fmt: skip
        """Write every outcome in one transaction, checked against the chain's state first (see the module)."""
        counts = {"done": 0, "unavailable": 0, "retry": 0, "discarded": 0}
        conn = self.conn
        with conn.transaction(), conn.cursor() as cur:
            row = cur.execute(
                "SELECT checkpoint_block FROM qf.chains WHERE chain_id = %s FOR SHARE", (self.chain_id,)
            ).fetchone()
            checkpoint = None if row is None or row[0] is None else int(row[0])
            moved = self.rollbacks() != rollbacks
            found_blocks = sorted({f.transfer.block for o in outcomes for f in o.found})
            stored: dict[int, bytes] = {}
            if found_blocks:
                for number, block_hash in cur.execute(
                    "SELECT number, hash FROM qf.blocks WHERE chain_id = %s AND number = ANY(%s)",
                    (self.chain_id, found_blocks),
                ).fetchall():
                    stored[int(number)] = bytes(block_hash)
            for outcome, retry in zip(outcomes, retry_at, strict=True):
                word = self._record_one(cur, outcome, checkpoint=checkpoint, moved=moved, stored=stored, now=now,
                                        retry=retry, max_depth=max_depth)  # fmt: skip
                counts[word] += 1
        return Recorded(**counts)

    def _record_one(
        self, cur: psycopg.Cursor[TupleRow], outcome: Outcome, *, checkpoint: int | None, moved: bool,
        stored: dict[int, bytes], now: datetime, retry: datetime, max_depth: int,
    ) -> str:  # fmt: skip
        task, chain = outcome.task, self.chain_id
        forked = any(f.transfer.block in stored and stored[f.transfer.block] != f.transfer.block_hash
                     for f in outcome.found)  # fmt: skip
        if moved or checkpoint is None or outcome.searched_to > checkpoint or forked:
            cur.execute(
                "UPDATE qf.funding_wallets SET next_attempt_at = %s, last_error = %s "
                "WHERE chain_id = %s AND wallet = %s",
                (now, "the chain was reorganised under the search: searched again", chain, task.wallet),
            )
            return "discarded"
        for f in outcome.found:
            t = f.transfer
            values = (chain, task.wallet, t.asset, t.funder, t.amount, t.block, t.block_hash, t.tx_hash, f.time,
                      task.depth, t.method.value, f.funder_is_contract)  # fmt: skip
            cur.execute(_INSERT_FOUND, values)
        error: str | None
        if outcome.error is not None:
            word, status, error, next_at = "retry", "pending", str(outcome.error)[:500], retry
        elif not outcome.complete:
            word, status, error, next_at = "retry", "pending", "stopped before the end of its range", retry
        elif outcome.native_unavailable:
            word, status, error, next_at = "unavailable", "unavailable", outcome.note, now
        else:
            word, status, error, next_at = "done", "done", None, now
        searched = outcome.searched_to if outcome.searched_to >= task.from_block else None
        cur.execute(
            """
            UPDATE qf.funding_wallets
            SET searched_to_block = CASE WHEN %(searched)s::bigint IS NULL THEN searched_to_block
                                         ELSE greatest(coalesce(searched_to_block, -1), %(searched)s) END,
                status = CASE WHEN %(status)s <> 'pending' AND until_block > %(to)s THEN 'pending' ELSE %(status)s END,
                next_attempt_at = CASE WHEN %(status)s <> 'pending' AND until_block > %(to)s
                                       -- the bound grew while it was searched: again now, unless not yet indexed
                                       THEN CASE WHEN until_block <= %(checkpoint)s THEN %(now)s ELSE %(retry)s END
                                       ELSE %(next)s END,
                method = coalesce(%(method)s, method), attempts = attempts + 1, rpc_calls = %(calls)s,
                last_error = %(error)s
            WHERE chain_id = %(chain)s AND wallet = %(wallet)s
            """,
            {"searched": searched, "status": status, "to": task.to_block, "retry": retry, "next": next_at,
             "checkpoint": checkpoint, "now": now,
             "method": outcome.native_method.value if outcome.native_method else None, "calls": outcome.calls,
             "error": error, "chain": chain, "wallet": task.wallet},
        )  # fmt: skip
        cur.execute(_QUEUE_FUNDERS, {"chain": chain, "wallet": task.wallet, "depth": task.depth,
                                     "max_depth": max_depth, "native": NATIVE, "zero": bytes(20)})  # fmt: skip
        return word
