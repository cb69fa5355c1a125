"""Feature snapshots from a real Postgres equal training's features, and the store follows the indexer's NOTIFY."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import numpy as np
import psycopg
import pytest
from psycopg import sql

from qf_sentinel.qf.db import VIEWS_REFRESHED_CHANNEL, connect
from qf_sentinel.qf.model import features
from qf_sentinel.qf.model.loader import load_dataset
from qf_sentinel.scorer.errors import NotReady, UnknownDonor
from qf_sentinel.scorer.feature_store import FeatureSnapshot, FeatureStore, _concerns, load_snapshot
from tests.analytics.events import CHAIN_ID, WINDOW, EventWriter, address, refresh, units

START, _ = WINDOW
ALICE, BOB, CAROL, DAVE = (address(name) for name in ("alice", "bob", "carol", "dave"))
R1, R2, R3, R4 = (address(f"recipient-{i}") for i in range(1, 5))
#: What a recommender trained on pools 1 and 2 knows; pool 3 (recipient R4) came later.
PROJECT_IDS = [f"1:0x{R1.hex()}", f"1:0x{R2.hex()}", f"2:0x{R3.hex()}"]
TIMEOUT_SECONDS = 60.0


@pytest.fixture
def conn(migrated_db_url: str) -> Iterator[psycopg.Connection]:
    with connect(migrated_db_url) as c:
        yield c


def write_round(conn: psycopg.Connection) -> EventWriter:
    """Three pools; alice gives thrice (one to the unknown pool 3), bob and carol co-donate in one block."""
    w = EventWriter(conn)
    pools = {pool_id: w.pool(pool_id, funded=units(1000)) for pool_id in (1, 2, 3)}
    for pool_id, recipient in ((1, R1), (1, R2), (2, R3), (3, R4)):
        w.register(pools[pool_id], recipient)
    w.donate(pools[1], ALICE, R1, units(10), at=START + 10, nonce=1, gas_price=10**9)
    w.donate(pools[2], ALICE, R3, units("2.5"), at=START + 70, nonce=2, gas_price=2 * 10**9)
    w.donate(pools[3], ALICE, R4, units(1), at=START + 200, nonce=3)
    w.donate(pools[1], BOB, R2, units(5), at=START + 300, nonce=40, block=5000)
    w.donate(pools[1], CAROL, R2, units(5), at=START + 300, nonce=0, block=5000)
    w.donate(pools[1], CAROL, R1, units("0.5"), at=START + 900, nonce=1)
    refresh(conn)
    return w


def test_snapshot_rows_equal_the_training_features(conn: psycopg.Connection) -> None:
    """Every donor's row is what training computes from the same database (qf.model.dataset + features)."""
    write_round(conn)
    snapshot = load_snapshot(conn, CHAIN_ID, PROJECT_IDS)
    dataset = load_dataset(conn, CHAIN_ID)
    expected = features.feature_matrix(dataset)
    assert set(snapshot.index) == {ALICE, BOB, CAROL}
    for address_hex, row in zip(dataset.donors["address"], expected, strict=True):
        np.testing.assert_array_equal(snapshot.matrix[snapshot.index[bytes.fromhex(address_hex[2:])]], row)
    assert snapshot.matrix.shape == (3, len(features.FEATURE_NAMES))
    assert snapshot.matrix.flags.c_contiguous
    alice = snapshot.matrix[snapshot.index[ALICE]]
    assert alice[features.FEATURE_NAMES.index("donation_count")] == 3
    assert alice[features.FEATURE_NAMES.index("distinct_pools")] == 3


def test_snapshot_history_uses_recommender_indices(conn: psycopg.Connection) -> None:
    """Funded projects are indices into the given project ids; projects the recommender lacks are left out."""
    write_round(conn)
    snapshot = load_snapshot(conn, CHAIN_ID, PROJECT_IDS)
    funded = {donor: snapshot.funded(row).tolist() for donor, row in snapshot.index.items()}
    assert funded == {ALICE: [0, 2], BOB: [1], CAROL: [0, 1]}
    assert snapshot.project_ids == tuple(PROJECT_IDS)
    assert snapshot.require(BOB) == snapshot.index[BOB]
    with pytest.raises(UnknownDonor, match="no indexed donations"):
        snapshot.require(DAVE)


def test_empty_chain_gives_an_empty_snapshot(conn: psycopg.Connection) -> None:
    snapshot = load_snapshot(conn, CHAIN_ID, PROJECT_IDS)
    assert snapshot.n_donors == 0
    assert snapshot.row(ALICE) is None
    assert snapshot.matrix.shape == (0, len(features.FEATURE_NAMES))


def test_store_reload_swaps_the_snapshot(conn: psycopg.Connection) -> None:
    store = FeatureStore(CHAIN_ID, lambda: PROJECT_IDS)
    with pytest.raises(NotReady):
        store.current()
    empty = store.reload(conn)
    assert store.current() is empty
    assert empty.n_donors == 0
    write_round(conn)
    full = store.reload(conn)
    assert store.current() is full
    assert full.n_donors == 3
    with pytest.raises(ValueError, match="chain"):
        store.swap(FeatureSnapshot.empty(CHAIN_ID + 1, PROJECT_IDS, datetime.now(UTC)))
    assert store.current() is full


def test_notification_payloads_select_the_chain() -> None:
    assert _concerns(f"{CHAIN_ID}:120", CHAIN_ID)
    assert not _concerns("1:120", CHAIN_ID)
    assert _concerns("", CHAIN_ID)  # unknown format: reload rather than miss a change


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds; fail after a generous timeout (a hang guard, not a speed check)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT_SECONDS
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def has(store: FeatureStore, donor: bytes) -> bool:
    try:
        return donor in store.current().index
    except NotReady:
        return False


def notify(conn: psycopg.Connection) -> None:
    conn.execute(sql.SQL("NOTIFY {}, {}").format(sql.Identifier(VIEWS_REFRESHED_CHANNEL), sql.Literal(f"{CHAIN_ID}:0")))
    conn.commit()


def test_follow_reloads_after_notify(conn: psycopg.Connection, migrated_db_url: str) -> None:
    """follow loads at start, then reloads on NOTIFY qf_views_refreshed; a failing reload keeps the old snapshot."""
    writer = write_round(conn)
    calls = itertools.count(1)
    failed = threading.Event()

    def project_ids() -> list[str]:
        if next(calls) == 2:  # the second reload fails
            failed.set()
            raise RuntimeError("recommender unavailable")
        return PROJECT_IDS

    store = FeatureStore(CHAIN_ID, project_ids)

    def new_donor() -> None:
        strategy = address("strategy-1")
        writer.donate(strategy, DAVE, R2, units(3), at=START + 1000, nonce=7)
        refresh(conn)
        notify(conn)

    async def scenario() -> None:
        stop = asyncio.Event()
        follower = asyncio.create_task(
            store.follow(migrated_db_url, stop_event=stop, interval_seconds=3600.0, debounce_seconds=0.0)
        )
        await until(lambda: has(store, ALICE), "the first load")
        first = store.current()
        assert DAVE not in first.index

        await asyncio.to_thread(new_donor)
        await until(failed.is_set, "the failing reload")
        await asyncio.sleep(0)  # let the follower log the failure
        assert store.current() is first

        await asyncio.to_thread(notify, conn)
        await until(lambda: has(store, DAVE), "the reload after NOTIFY")
        assert store.current().funded(store.current().index[DAVE]).tolist() == [1]

        stop.set()
        await asyncio.wait_for(follower, TIMEOUT_SECONDS)

    asyncio.run(scenario())
