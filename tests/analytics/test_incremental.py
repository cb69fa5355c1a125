"""Incremental maintenance: after any history of batches, reorgs, cap changes and strategy ids read late,
the analytics tables kept by qf.refresh_analytics() equal a full recomputation (qf.rebuild_analytics()),
and count only what donation strategies emit."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from qf_sentinel.qf.db import connect
from tests.analytics.events import (
    CHAIN_ID,
    DONATION_STRATEGY_ID,
    GRANT_STRATEGY_ID,
    NATIVE,
    TOKEN,
    WINDOW,
    EventWriter,
    address,
    units,
)

START, END = WINDOW
TABLES = ("project_totals", "round_matching", "donor_features", "round_stats")
DONORS = [address(f"donor-{i}") for i in range(6)]
RECIPIENTS = [address(f"recipient-{i}") for i in range(4)]
#: What a strategy's getStrategyId() may turn out to be: a donation strategy's, a DirectGrantsLite's, none.
IDS = [DONATION_STRATEGY_ID, GRANT_STRATEGY_ID, None]

# One step of a history: what it does and its arguments. Pools 0 and 1 start as donation strategies,
# pool 2 as a DirectGrantsLite (its Allocated are grants); "kind" gives a pool's strategy another id.
steps = st.one_of(
    st.tuples(
        st.just("donate"),
        st.integers(0, 2),
        st.integers(0, 5),
        st.integers(0, 3),
        st.integers(1, 40),
        st.integers(-3, 30),
        st.booleans(),
        st.booleans(),
    ),
    st.tuples(st.just("review"), st.integers(0, 1), st.integers(0, 3), st.sampled_from([2, 2, 3])),
    st.tuples(st.just("window"), st.integers(0, 1), st.integers(-2, 2)),
    st.tuples(st.just("cap"), st.integers(0, 1), st.sampled_from([None, 10, 30, 60])),
    st.tuples(st.just("fund"), st.integers(0, 1), st.integers(1, 5)),
    st.tuples(st.just("reorg"), st.integers(1, 8)),
    st.tuples(st.just("kind"), st.integers(0, 2), st.integers(0, 2)),
    st.tuples(
        st.just("refresh"),
    ),
)


@pytest.fixture
def conn(migrated_db_url: str) -> Iterator[psycopg.Connection]:
    with connect(migrated_db_url) as c:
        yield c


def snapshot(conn: psycopg.Connection) -> dict[str, list[tuple[object, ...]]]:
    return {t: conn.execute(f"SELECT * FROM qf.{t} ORDER BY 1, 2, 3").fetchall() for t in TABLES} | {
        "history": conn.execute("SELECT * FROM qf.recipient_status_history ORDER BY 1, 2, 3, 4, 5").fetchall(),
        "donations": conn.execute(
            "SELECT tx_hash, log_index, recipient_status, in_window FROM qf.donations ORDER BY 1, 2"
        ).fetchall(),
    }


# What qf.recipient_status_history meant as a view (sql/004), the reference for the table the
# triggers keep: every status event of a recipient, and the status each donation saw.
HISTORY_AS_VIEW = """
WITH reg AS (
    SELECT DISTINCT ON (chain_id, contract, recipient_id)
           chain_id, contract, recipient_id, recipient_index, block_number, log_index
    FROM qf.registered ORDER BY chain_id, contract, recipient_id, block_number, log_index
), h AS (
    SELECT chain_id, contract, recipient_id, block_number, log_index, 1::smallint AS status FROM reg
    UNION ALL
    SELECT chain_id, contract, recipient_id, block_number, log_index, status FROM qf.updated_registration
    UNION ALL
    SELECT u.chain_id, u.contract, r.recipient_id, u.block_number, u.log_index,
           qf.status_nibble(u.full_row, r.recipient_index)
    FROM qf.recipient_status_updated u
    JOIN reg r ON r.chain_id = u.chain_id AND r.contract = u.contract AND u.row_index = r.recipient_index / 64
              AND (u.block_number, u.log_index) > (r.block_number, r.log_index)
)
SELECT '0x' || encode(a.tx_hash, 'hex'), a.log_index, coalesce(st.status, 0::smallint)
FROM qf.allocated a
JOIN qf.strategies s ON s.chain_id = a.chain_id AND s.address = a.contract AND s.strategy_id = %(donation)s
LEFT JOIN LATERAL (
    SELECT h.status FROM h
    WHERE h.chain_id = a.chain_id AND h.contract = a.contract AND h.recipient_id = a.recipient_id
      AND (h.block_number, h.log_index) <= (a.block_number, a.log_index)
    ORDER BY h.block_number DESC, h.log_index DESC LIMIT 1
) st ON true
ORDER BY 1, 2
"""


def reorg(conn: psycopg.Connection, depth: int) -> None:
    """Delete the newest ``depth`` blocks the way the indexer's rollback does."""
    row = conn.execute("SELECT max(block_number) FROM qf.allocated").fetchone()
    if row is None or row[0] is None:
        return
    above = row[0] - depth
    for table in ("allocated", "recipient_status_updated", "timestamps_updated", "pool_funded", "registered"):
        conn.execute(f"DELETE FROM qf.{table} WHERE chain_id = %s AND block_number > %s", (CHAIN_ID, above))


def play(conn: psycopg.Connection, history: list[tuple[object, ...]]) -> None:
    events = EventWriter(conn)
    pools = [
        events.pool(1, funded=units(100)),
        events.pool(2, funded=units(50), token=NATIVE),
        events.pool(3, funded=units(10), strategy_id=GRANT_STRATEGY_ID),
    ]
    for strategy in pools:
        for recipient in RECIPIENTS:
            events.register(strategy, recipient)
        events.review(strategy, dict.fromkeys(RECIPIENTS[:3], 2))
    for step in history:
        match step:
            case ("donate", pool, donor, recipient, amount, hour, same_block, fresh):
                block = conn.execute("SELECT max(block_number) FROM qf.allocated").fetchone()
                events.donate(
                    pools[pool], DONORS[donor], RECIPIENTS[recipient], units(amount) // 4,
                    at=START + 3600 * hour, token=NATIVE if pool == 1 else TOKEN, nonce=0 if fresh else 10,
                    block=block[0] if same_block and block and block[0] is not None else None,
                )  # fmt: skip
            case ("review", pool, recipient, status):
                events.review(pools[pool], {RECIPIENTS[recipient]: status})
            case ("window", pool, shift):
                events.window(pools[pool], START + 3600 * shift, END + 3600 * shift)
            case ("cap", pool, pct):
                if pct is None:
                    conn.execute("DELETE FROM qf.matching_caps WHERE pool_id = %s", (pool + 1,))
                else:
                    conn.execute(
                        "INSERT INTO qf.matching_caps VALUES (%s, %s, %s) "
                        "ON CONFLICT (chain_id, pool_id) DO UPDATE SET cap_pct = EXCLUDED.cap_pct",
                        (CHAIN_ID, pool + 1, pct),
                    )
            case ("fund", pool, amount):
                events._insert("pool_funded", address("core"), None, pool_id=pool + 1, amount=units(amount), fee=0)
            case ("reorg", depth):
                reorg(conn, depth)
            case ("kind", pool, which):
                conn.execute(
                    "UPDATE qf.strategies SET strategy_id = %s, strategy_id_read = %s WHERE address = %s",
                    (IDS[which], "no_answer" if IDS[which] is None else "answered", pools[pool]),
                )
            case ("refresh",):
                conn.execute("SELECT qf.refresh_analytics()")


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=st.lists(steps, min_size=1, max_size=40))
@example(history=[("donate", 0, 0, 0, 8, -1, False, False), ("refresh",), ("window", 0, -2)])
# A co-donor joining a donor's block changes the donor's same_block_codonations (sql/013).
@example(history=[("donate", 0, 0, 0, 1, 0, False, False), ("refresh",), ("donate", 0, 1, 0, 1, 0, True, False)])
@example(history=[("donate", 0, 0, 0, 1, 0, False, False), ("donate", 0, 1, 0, 1, 0, True, False), ("refresh",),
                  ("reorg", 1)])  # fmt: skip
@example(history=[("donate", 1, 2, 1, 8, 3, False, True), ("refresh",), ("reorg", 1), ("cap", 1, 10)])
@example(history=[("donate", 0, 0, 0, 8, 1, False, False), ("donate", 0, 1, 0, 4, 2, True, False), ("refresh",),
                  ("donate", 0, 2, 0, 4, 2, True, False), ("review", 0, 0, 3), ("fund", 0, 2)])  # fmt: skip
# A strategy whose id arrives after its donations were counted (or that turns out to pay grants).
@example(history=[("donate", 0, 0, 0, 8, 1, False, False), ("donate", 2, 1, 0, 8, 1, False, False), ("refresh",),
                  ("kind", 0, 1), ("refresh",), ("kind", 2, 0)])  # fmt: skip
def test_incremental_tables_equal_a_full_recomputation(
    conn: psycopg.Connection, history: list[tuple[object, ...]]
) -> None:
    """Whatever the order of donations, reviews, window moves, caps, funding and reorgs, and wherever
    the refreshes fall, the last refresh leaves exactly what recomputing everything gives."""
    try:
        play(conn, history)
        conn.execute("SELECT qf.refresh_analytics()")
        incremental = snapshot(conn)
        conn.execute("SELECT qf.rebuild_analytics()")
        assert snapshot(conn) == incremental
        assert incremental["round_stats"], "the pools have stats"
        statuses = [(tx, i, status) for tx, i, status, _ in incremental["donations"]]
        history = conn.execute(HISTORY_AS_VIEW, {"donation": DONATION_STRATEGY_ID}).fetchall()
        assert statuses == history, "status at each donation, as the old view"
        # Donations, and the donors the features describe, are exactly what donation strategies emitted.
        donated = conn.execute(
            "SELECT a.chain_id, a.sender FROM qf.allocated a JOIN qf.strategies s ON s.address = a.contract"
            " WHERE s.strategy_id = %s",
            (DONATION_STRATEGY_ID,),
        ).fetchall()
        assert len(incremental["donations"]) == len(donated)
        donors = {(c, bytes(d)) for c, d in donated}
        assert {(r[0], bytes(r[1])) for r in incremental["donor_features"]} == donors
    finally:
        conn.rollback()


def test_refresh_touches_only_what_changed(conn: psycopg.Connection) -> None:
    """One new donation marks one donor, one project and one pool; a second refresh has nothing to do."""
    try:
        play(conn, [("donate", 0, 0, 0, 8, 1, False, False), ("refresh",), ("donate", 0, 1, 0, 8, 2, False, False)])
        assert conn.execute("SELECT * FROM qf.refresh_analytics()").fetchone() == (1, 1, 1)
        assert conn.execute("SELECT * FROM qf.refresh_analytics()").fetchone() == (0, 0, 0)
    finally:
        conn.rollback()
