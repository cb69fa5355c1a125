"""Chains in one database share the analytics refresh: between batches no chain queues behind another's."""

from __future__ import annotations

from qf_sentinel.indexer.loop import EVENT_TABLES
from qf_sentinel.indexer.store import Store
from qf_sentinel.qf.db import connect
from tests.analytics.events import WINDOW, EventWriter, address, units

START, _ = WINDOW
R, ALICE = address("project-r"), address("alice")


def test_a_refresh_held_by_another_chain_is_deferred_between_batches_and_waited_for_at_the_end(
    migrated_db_url: str,
) -> None:
    with connect(migrated_db_url) as conn:
        w = EventWriter(conn, 10)
        strategy = w.pool(7, funded=units(100))
        w.register(strategy, R)
        w.review(strategy, {R: 2})
        w.donate(strategy, ALICE, R, units(3), at=START + 5)
        conn.commit()
    store = Store(migrated_db_url, 10, EVENT_TABLES)
    try:
        with connect(migrated_db_url) as other:  # another chain's refresh, in its transaction
            other.execute("SELECT pg_advisory_xact_lock(hashtext('qf.refresh_analytics'))")
            assert store.refresh_views(wait=False) is None
            with connect(migrated_db_url) as reader:
                assert reader.execute("SELECT count(*) FROM qf.donor_features WHERE chain_id = 10").fetchone() == (0,)
            other.rollback()  # that refresh ends
        seconds = store.refresh_views(wait=False)
        assert seconds is not None
        with connect(migrated_db_url) as reader:
            assert reader.execute("SELECT count(*) FROM qf.donor_features WHERE chain_id = 10").fetchone() == (1,)
    finally:
        store.close()
