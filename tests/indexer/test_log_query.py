"""Topic-filtered eth_getLogs for many strategies: the same rows as the address list, nothing from other contracts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from qf_sentinel.indexer.decode import TOPIC0S
from qf_sentinel.indexer.logquery import logs_of_new, plan_log_query, split_known
from qf_sentinel.qf.chain.deploy import deploy_contracts
from qf_sentinel.qf.sim.execute import execute_plan
from qf_sentinel.qf.sim.scenario import plan_simulated_round
from tests.fixtures.chain import Chain
from tests.indexer.harness import Prepared, chain_events, close, make_indexer, sample, snapshot, stored_keys, sync
from tests.indexer.test_indexing import SMALL

A, B, C = b"\xaa" * 20, b"\xbb" * 20, b"\xcc" * 20


def raw_log(address: bytes, block: int) -> dict[str, str]:
    return {"address": "0x" + address.hex().upper(), "blockNumber": hex(block)}


def test_the_address_list_is_named_up_to_the_limit_then_the_topic0s() -> None:
    """At the limit the query names addresses; one more, or a limit of 0, names every known topic0."""
    assert plan_log_query(["0x1", "0x2"], 2).addresses == ("0x1", "0x2")
    over = plan_log_query(["0x1", "0x2", "0x3"], 2)
    assert (over.mode, over.addresses, over.topics) == ("topics", None, (TOPIC0S,))
    assert plan_log_query(["0x1"], 0).mode == "topics"


def test_other_contracts_logs_are_dropped_but_new_strategies_kept_from_their_creation_block() -> None:
    """Known contracts' logs are split off (any hex case); of the rest, only a new strategy's from its block on."""
    logs = [raw_log(A, 5), raw_log(B, 5), raw_log(C, 6), raw_log(B, 9), raw_log(C, 4)]
    mine, others = split_known(logs, {A})
    assert mine == [logs[0]]
    kept, dropped = logs_of_new(others, {B: 6})
    assert kept == [logs[3]]
    assert dropped == 3


def index(chain: Chain, db_url: str, home: Path, **overrides: object) -> Prepared:
    indexer = make_indexer(chain, db_url, home, **overrides)
    try:
        sync(indexer)
    finally:
        close(indexer)
    return indexer


def ranges_by_mode(indexer: Prepared) -> dict[str, float]:
    return {mode: sample(indexer, "qf_indexer_log_queries_total", mode=mode) for mode in ("addresses", "topics")}


#: The contracts watched before any strategy: the core, the Registry and the devnet's two price feeds.
FIXED = 4


@pytest.mark.parametrize(("span", "limit", "pools"), [(10_000, 1, 2), (7, 1, 2), (10_000, FIXED, FIXED + 1)])
def test_topic_path_stores_the_same_database_as_the_address_path(
    chain: Chain, db_url: str, second_db: str, tmp_path: Path, span: int, limit: int, pools: int
) -> None:
    """A round indexed with a small QF_LOG_ADDRESS_LIMIT equals the address-list backfill: with its strategies
    discovered in the range that holds all their events (10,000 blocks) or earlier (7), and with the range's
    query naming core, Registry and feeds but the follow-up for the strategies it found naming topic0s."""
    execute_plan(chain.rpc, chain.deployment, plan_simulated_round(31, **{**SMALL, "pools": pools}), chain.funder_key)
    by_address = index(chain, second_db, tmp_path, log_range_blocks=50)
    assert ranges_by_mode(by_address)["topics"] == 0
    assert len(snapshot(second_db)["strategies"]) == pools
    assert stored_keys(second_db) == chain_events(chain)
    with_topics = index(chain, db_url, tmp_path, log_range_blocks=span, log_address_limit=limit)
    ranges = ranges_by_mode(with_topics)
    one_range = span > chain.rpc.block_number() - chain.deployment.start_block
    if limit == 1:
        assert ranges["addresses"] == 0
        assert ranges["topics"] == 1 if one_range else ranges["topics"] > 1
    else:
        assert one_range
        assert ranges == {"addresses": 1, "topics": 0}
        assert sample(with_topics, "qf_indexer_logs_dropped_total") > 0  # the follow-up returned the core's logs again
    assert snapshot(db_url) == snapshot(second_db)


def test_topic_path_drops_a_second_cores_events(chain: Chain, db_url: str, second_db: str, tmp_path: Path) -> None:
    """Another Allo core on the same chain emits the same topic0s: the topic path stores none of them."""
    other = replace(chain, deployment=deploy_contracts(chain.rpc, chain.funder_key))
    execute_plan(chain.rpc, chain.deployment, plan_simulated_round(32, **SMALL), chain.funder_key)
    execute_plan(chain.rpc, other.deployment, plan_simulated_round(33, **SMALL), chain.funder_key)
    foreign = chain_events(other)
    assert {name for name, _, _ in foreign} >= {"PoolCreated", "Allocated"}
    with_topics = index(chain, db_url, tmp_path, log_address_limit=1)
    assert sample(with_topics, "qf_indexer_logs_dropped_total") >= len(foreign)
    assert stored_keys(db_url) == chain_events(chain)
    assert not stored_keys(db_url) & foreign
    index(chain, second_db, tmp_path)
    assert snapshot(db_url) == snapshot(second_db)
