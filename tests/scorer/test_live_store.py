"""The sidecar's live state over several chains in one database: one address is one donor on every chain."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from qf_sentinel.qf.db import connect
from qf_sentinel.qf.eth import to_hex
from qf_sentinel.qf.model.live import Contribution, feature_index
from qf_sentinel.scorer.live_store import LiveStore
from tests.analytics.events import WINDOW, EventWriter, address, refresh, units

START, _ = WINDOW
HERE, THERE = 31337, 10
R = address("project-r")
ALICE, BOB, CAROL = address("alice"), address("bob"), address("carol")


@pytest.fixture
def conn(migrated_db_url: str) -> Iterator[psycopg.Connection]:
    with connect(migrated_db_url) as c:
        yield c


def two_chains(conn: psycopg.Connection) -> dict[int, tuple[EventWriter, bytes]]:
    chains = {}
    for chain, pool in ((HERE, 1), (THERE, 7)):
        w = EventWriter(conn, chain)
        strategy = w.pool(pool, funded=units(100))
        w.register(strategy, R)
        w.review(strategy, {R: 2})
        chains[chain] = (w, strategy)
    return chains


def ask(store: LiveStore, donor: bytes, at: int) -> tuple[float, float, bool]:
    """(prior donations, hours active) of a contribution to R on this chain's pool 1, and whether it is known."""
    row, known, _ = store.observe(Contribution(donor=to_hex(donor), project=f"1:0x{R.hex()}", pool="1", amount=1.0,
                                               time=float(at)))  # fmt: skip
    return float(row[feature_index("donor_prior_donations")]), float(row[feature_index("donor_hours_active")]), known


def test_history_on_another_chain_counts_and_follows_that_chain(conn: psycopg.Connection) -> None:
    chains = two_chains(conn)
    (here, pool_here), (there, pool_there) = chains[HERE], chains[THERE]
    there.donate(pool_there, ALICE, R, units(2), at=START + 10)
    there.donate(pool_there, ALICE, R, units(3), at=START + 20)
    here.donate(pool_here, BOB, R, units(1), at=START + 30)
    refresh(conn)
    store = LiveStore(HERE)
    store.rebuild(conn)
    assert set(store.elsewhere) == {THERE}
    prior, hours, known = ask(store, ALICE, START + 3610)
    assert (prior, known) == (2.0, True)  # not a cold start: the same wallet gave twice on chain 10
    assert hours == pytest.approx(1.0)
    assert ask(store, BOB, START + 3610)[0] == 1.0
    assert store.time_floor() == START + 30  # this chain's clock only

    there.donate(pool_there, CAROL, R, units(1), at=START + 40)  # indexed on the other chain after the start
    refresh(conn)
    store.update(conn)
    assert ask(store, CAROL, START + 100)[2] is True
    assert store.elsewhere[THERE][0] == conn.execute(
        "SELECT max(block_number) FROM qf.allocated WHERE chain_id = %s", (THERE,)
    ).fetchone()[0]  # type: ignore[index]

    # A reorg on the other chain takes carol's gift back: the state is rebuilt without it.
    conn.execute("DELETE FROM qf.allocated WHERE chain_id = %s AND sender = %s", (THERE, CAROL))
    refresh(conn)
    store.update(conn)
    assert ask(store, CAROL, START + 200)[:2] == (0.0, 0.0)
    assert ask(store, ALICE, START + 200)[0] == 2.0
