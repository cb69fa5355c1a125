"""Running the real indexer in tests, and comparing what it stored with the chain.

``make_indexer`` builds the production wiring (``indexer.app.build_indexer``)
against a test chain and a test database; ``snapshot`` reads every event table
in a canonical order so two databases can be compared for equality, and
``chain_events`` reads the same events straight from the node.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from psycopg import sql

from qf_sentinel.indexer.app import build_indexer
from qf_sentinel.indexer.decode import EVENTS
from qf_sentinel.indexer.loop import EVENT_TABLES, Indexer, PreparedIndexer
from qf_sentinel.indexer.metrics import IndexerMetrics
from qf_sentinel.indexer.rpc import ResilientRpc
from qf_sentinel.indexer.store import Store
from qf_sentinel.qf.chain.abi import topic0
from qf_sentinel.qf.db import connect
from qf_sentinel.qf.http_metrics import HealthState
from qf_sentinel.qf.settings import Settings
from tests.fixtures.chain import Chain
from tests.sim.onchain import TOPIC_NAMES

#: What make_indexer returns: the loop over the real node client and store, prepared and holding the lock.
Prepared = PreparedIndexer[ResilientRpc, Store]


def settings_for(url: str, chain: Chain, db_url: str, home: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": home,
        "database_url": db_url,
        "rpc_urls": url,
        "core_address": chain.deployment.core,
        "registry_address": chain.deployment.registry,
        "price_feeds": chain.deployment.price_feeds,
        "start_block": chain.deployment.start_block,
        "indexer_metrics_port": 0,
        "poll_interval_seconds": 0.05,
        "refresh_debounce_seconds": 0.0,
        "rpc_timeout_seconds": 2.0,
    }
    values.update(overrides)
    return Settings.from_env({}, **values)


def make_indexer(
    chain: Chain, db_url: str, home: Path, *, url: str | None = None, reset_on_new_chain: bool = False, **overrides: Any
) -> Prepared:
    """A prepared indexer holding the writer lock, ready to step."""
    settings = settings_for(url or chain.url, chain, db_url, home, **overrides)
    indexer = build_indexer(settings, IndexerMetrics(), HealthState(), reset_on_new_chain=reset_on_new_chain)
    assert indexer.store.try_lock()
    try:
        return indexer.prepare()
    except BaseException:
        close(indexer)
        raise


def close(indexer: Indexer[ResilientRpc, Store] | Prepared) -> None:
    indexer.store.close()
    indexer.rpc.close()
    for helper in indexer.helpers:
        helper.close()


def sample(indexer: Prepared, name: str, **labels: str) -> float:
    """The value of one of the indexer's series (its chain's), read through the registry's public API; 0 if absent."""
    return indexer.metrics.registry.get_sample_value(name, {"chain_id": str(indexer.chain_id)} | labels) or 0.0


def sync(indexer: Prepared) -> None:
    """Step until the indexer has caught up with the head."""
    indexer.run(threading.Event(), until_caught_up=True)


def backfill(chain: Chain, db_url: str, home: Path, **overrides: Any) -> None:
    """A fresh indexer from scratch to the head: the reference a database must equal."""
    indexer = make_indexer(chain, db_url, home, **overrides)
    try:
        sync(indexer)
    finally:
        close(indexer)


def snapshot(db_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every event row and strategy, in chain order (comparable across databases)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with connect(db_url) as conn:
        for table in EVENT_TABLES:
            rows = conn.execute(
                sql.SQL("SELECT * FROM {} ORDER BY block_number, log_index").format(
                    sql.Identifier("qf", table)
                )
            ).fetchall()
            out[table] = [tuple(r) for r in rows]
        out["strategies"] = [
            tuple(r)
            for r in conn.execute(
                "SELECT chain_id, address, pool_id, discovered_block FROM qf.strategies ORDER BY address"
            ).fetchall()
        ]
        out["checkpoint"] = [
            tuple(r)
            for r in conn.execute(
                "SELECT chain_id, checkpoint_block, checkpoint_hash FROM qf.chains"
            ).fetchall()
        ]
    return out


def stored_keys(db_url: str) -> set[tuple[str, bytes, int]]:
    """(event name, tx hash, log index) of every stored event."""
    names = {spec.table: spec.name for spec in EVENTS.values()}
    keys = set()
    with connect(db_url) as conn:
        for table in EVENT_TABLES:
            for tx_hash, log_index in conn.execute(
                sql.SQL("SELECT tx_hash, log_index FROM {}").format(sql.Identifier("qf", table))
            ).fetchall():
                keys.add((names[table], bytes(tx_hash), log_index))
    return keys


def chain_events(chain: Chain, to_block: int | None = None) -> set[tuple[str, bytes, int]]:
    """(event name, tx hash, log index) of every known event the core, its strategies, the Registry and
    the price feeds emitted (names by topic0 from the published signatures)."""
    rpc = chain.rpc
    head = to_block if to_block is not None else rpc.block_number()
    created = [n for n, name in TOPIC_NAMES.items() if name == "PoolCreated"]
    pools = rpc.call(
        "eth_getLogs",
        [{"fromBlock": "0x0", "toBlock": hex(head), "address": chain.deployment.core, "topics": [created]}],
    )
    addresses = [chain.deployment.core, chain.deployment.registry, *chain.deployment.price_feeds.values()]
    addresses += ["0x" + lg["data"][26:66] for lg in pools]
    logs = rpc.call("eth_getLogs", [{"fromBlock": "0x0", "toBlock": hex(head), "address": addresses}])
    names = {topic0(spec.signature): spec.name for spec in EVENTS.values()}
    return {
        (names[lg["topics"][0]], bytes.fromhex(lg["transactionHash"][2:]), int(lg["logIndex"], 16))
        for lg in logs
        if lg["topics"] and lg["topics"][0] in names
    }
