"""The indexer against a real anvil and a real PostgreSQL: exactly once, resumable, reorg-safe."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from qf_sentinel.indexer.errors import ReorgTooDeep
from qf_sentinel.qf.chain.abi import load_artifact
from qf_sentinel.qf.chain.tx import wait_for_receipts
from qf_sentinel.qf.db import connect
from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.sim.execute import execute_plan
from qf_sentinel.qf.sim.scenario import plan_simulated_round
from tests.fixtures.chain import Chain
from tests.indexer.harness import backfill, chain_events, close, make_indexer, sample, snapshot, stored_keys, sync
from tests.indexer.live import LivePool
from tests.sim.onchain import all_logs, allocations

FEED = load_artifact("PriceFeed")
SMALL = {
    "honest_donors": 15,
    "projects_per_pool": 6,
    "pools": 2,
    "whales": 1,
    "fan_out_clusters": 1,
    "fan_out_size": 4,
    "ring_size": 3,
    "ring_helpers": 1,
    "self_donation_projects": 1,
    "self_donation_wallets": 2,
}


def test_simulated_round_is_stored_exactly_once(chain: Chain, db_url: str, tmp_path: Path) -> None:
    """Every Allo v2 event on chain is one row; donations carry their amounts and transaction context."""
    plan = plan_simulated_round(21, **SMALL)
    execute_plan(chain.rpc, chain.deployment, plan, chain.funder_key)
    backfill(chain, db_url, tmp_path, log_range_blocks=50)
    truth = chain_events(chain)
    assert stored_keys(db_url) == truth
    assert {name for name, _, _ in truth} >= {"PoolCreated", "Allocated", "Registered", "FundsDistributed"}
    landed = sorted(allocations(all_logs(chain.rpc, chain.deployment.start_block), chain.deployment.token))
    with connect(db_url) as conn:
        stored = conn.execute(
            "SELECT '0x' || encode(a.sender, 'hex'), '0x' || encode(a.recipient_id, 'hex'), "
            "CASE WHEN a.token = '\\xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee'::bytea THEN 'native' ELSE 'erc20' END, "
            "a.amount::text FROM qf.allocated a"
        ).fetchall()
        sample = conn.execute(
            "SELECT tx_hash, tx_from, tx_nonce, gas_price, block_number, block_time FROM qf.allocated "
            "ORDER BY block_number, log_index LIMIT 25"
        ).fetchall()
        donations_view = conn.execute(
            "SELECT count(*), count(pool_id), count(amount) FROM qf.donations"
        ).fetchone()
        finalized = conn.execute("SELECT finalized_block FROM qf.chains").fetchone()
    # The chain's finality is recorded with the checkpoint: anvil's "finalized" tag, at most the head.
    node_final = int(chain.rpc.call("eth_getBlockByNumber", ["finalized", False])["number"], 16)
    assert finalized is not None
    assert finalized[0] is not None
    assert 0 <= finalized[0] <= node_final
    assert sorted((d, r, k, int(a)) for d, r, k, a in stored) == landed
    assert donations_view == (len(landed), len(landed), len(landed))
    for tx_hash, tx_from, nonce, gas_price, block_number, block_time in sample:
        tx = chain.rpc.call("eth_getTransactionByHash", ["0x" + bytes(tx_hash).hex()])
        block = chain.rpc.call("eth_getBlockByNumber", [hex(block_number), False])
        assert (bytes(tx_from).hex(), nonce, int(gas_price)) == (
            tx["from"][2:],
            int(tx["nonce"], 16),
            int(tx["gasPrice"], 16),
        )
        assert int(block_time.timestamp()) == int(block["timestamp"], 16)


def test_restart_resumes_with_no_gap_and_no_duplicate(
    chain: Chain, db_url: str, second_db: str, tmp_path: Path
) -> None:
    """Stopping after some batches and starting a new indexer gives the same database as one run."""
    execute_plan(chain.rpc, chain.deployment, plan_simulated_round(22, **SMALL), chain.funder_key)
    first = make_indexer(chain, db_url, tmp_path, log_range_blocks=7)
    for _ in range(5):
        first.step()
    close(first)
    second = make_indexer(chain, db_url, tmp_path, log_range_blocks=7)
    sync(second)
    close(second)
    backfill(chain, second_db, tmp_path)
    assert snapshot(db_url) == snapshot(second_db)


def test_random_reorgs_during_live_follow(chain: Chain, db_url: str, second_db: str, tmp_path: Path) -> None:
    """Seeded reorgs of depth 1..5 that drop donations and add others: the database always
    equals the canonical chain, and at the end a fresh backfill."""
    rng = random.Random(1234)
    pool = LivePool(chain)
    # Reorgs here reach 5 blocks back: bury the pool's set-up below them, or the first one undoes the
    # recipients' review and every later donation reverts (the test then followed empty blocks only).
    chain.rpc.call("anvil_mine", [hex(8)])
    indexer = make_indexer(chain, db_url, tmp_path, max_reorg_depth=16)
    try:
        sync(indexer)
        for _ in range(12):
            for _ in range(rng.randint(1, 4)):
                pool.donate(rng.choice(pool.donors), rng.choice(pool.recipients), rng.randint(1, 10**15))
            sync(indexer)
            depth = rng.randint(1, 5)
            replacements = [
                [
                    pool.donation(
                        rng.choice(pool.donors), rng.choice(pool.recipients), rng.randint(1, 10**15)
                    ),
                    rng.randint(0, depth - 1),
                ]
                for _ in range(rng.randint(0, 3))
            ]
            chain.rpc.call("anvil_reorg", [depth, replacements])
            sync(indexer)
            assert stored_keys(db_url) == chain_events(chain)
        assert sample(indexer, "qf_indexer_reorgs_total") >= 1
        assert sum(name == "Allocated" for name, _, _ in stored_keys(db_url)) >= 12  # donations kept landing
    finally:
        close(indexer)
    backfill(chain, second_db, tmp_path)
    assert snapshot(db_url) == snapshot(second_db)


def test_reorg_deeper_than_the_limit_stops_and_deletes_nothing(
    chain: Chain, db_url: str, tmp_path: Path
) -> None:
    """A reorg deeper than QF_MAX_REORG_DEPTH raises ReorgTooDeep and leaves every row in place."""
    pool = LivePool(chain)
    indexer = make_indexer(chain, db_url, tmp_path, max_reorg_depth=3)
    try:
        hashes = [pool.donate(donor, pool.recipients[0], 10**14) for donor in pool.donors[:6]]
        # anvil answers eth_sendTransaction before it has mined: a sync racing the last blocks would leave
        # them unindexed, and the reorg below would then reach fewer than max_reorg_depth stored blocks.
        wait_for_receipts(chain.rpc, hashes)
        sync(indexer)
        before = snapshot(db_url)
        chain.rpc.call("anvil_reorg", [5, []])
        with pytest.raises(ReorgTooDeep, match="nothing was deleted"):
            sync(indexer)
        assert snapshot(db_url) == before
    finally:
        close(indexer)


def unknown_topics(db_url: str) -> list[tuple[object, ...]]:
    with connect(db_url) as conn:
        return [tuple(r) for r in conn.execute(
            "SELECT chain_id, contract, topic0, seen FROM qf.unknown_topics ORDER BY contract, topic0"
        ).fetchall()]  # fmt: skip


def mined_in(chain: Chain, tx: str, tries: int = 600) -> int:
    """The block a transaction was mined in, once it has been."""
    for _ in range(tries):
        receipt = chain.rpc.call("eth_getTransactionReceipt", [tx])
        if receipt is not None:
            assert int(receipt["status"], 16) == 1, receipt
            return int(receipt["blockNumber"], 16)
        time.sleep(0.05)
    raise AssertionError(f"transaction {tx} was never mined")


def test_a_reorg_takes_orphaned_unknown_topics_out_of_the_count(
    chain: Chain, db_url: str, second_db: str, tmp_path: Path
) -> None:
    """A price feed's NewRound is an unknown topic0, counted in qf.unknown_topics; when a reorg drops the
    block that held one, its count goes with it: live follow ends equal to a fresh backfill."""
    chain.rpc.call("evm_setAutomine", [True])
    deployer = chain.rpc.call("eth_accounts")[0]
    feed = next(iter(chain.deployment.price_feeds.values()))
    indexer = make_indexer(chain, db_url, tmp_path)
    try:
        sync(indexer)
        for answer in (3000 * 10**8, 3100 * 10**8):  # one block each: AnswerUpdated and NewRound
            data = "0x" + FEED.encode_call("updateAnswer", [answer]).hex()
            call = {"from": deployer, "to": feed, "gas": hex(200_000), "data": data}
            tx = chain.rpc.call("eth_sendTransaction", [call])
            mined_in(chain, tx)  # anvil answers with the hash before its automine has always mined the block
            sync(indexer)
        counted = unknown_topics(db_url)
        chain.rpc.call("anvil_reorg", [1, []])  # the second update's block is replaced by an empty one
        sync(indexer)
        assert sample(indexer, "qf_indexer_reorgs_total") == 1
    finally:
        close(indexer)
    backfill(chain, second_db, tmp_path)
    assert unknown_topics(db_url) == unknown_topics(second_db)
    assert unknown_topics(db_url) != counted  # the orphaned NewRound was counted, and is no more
    assert snapshot(db_url) == snapshot(second_db)


def test_chain_shortened_under_the_indexer(chain: Chain, db_url: str, second_db: str, tmp_path: Path) -> None:
    """When blocks are rolled back (the head goes down), their events are deleted."""
    pool = LivePool(chain)
    indexer = make_indexer(chain, db_url, tmp_path)
    try:
        for donor in pool.donors[:4]:
            pool.donate(donor, pool.recipients[1], 10**14)
        sync(indexer)
        chain.rpc.call("anvil_rollback", [2])
        sync(indexer)
        assert stored_keys(db_url) == chain_events(chain)
    finally:
        close(indexer)
    backfill(chain, second_db, tmp_path)
    assert snapshot(db_url) == snapshot(second_db)


def test_a_new_chain_with_the_same_id_is_refused_or_reset(
    new_anvil: Callable[[], Chain], db_url: str, second_db: str, tmp_path: Path
) -> None:
    """A restarted devnet (same chain id, new genesis) is not mistaken for the indexed chain:
    refused by default, its old rows replaced with --reset-chain."""
    first = new_anvil()
    execute_plan(first.rpc, first.deployment, plan_simulated_round(23, **SMALL), first.funder_key)
    backfill(first, db_url, tmp_path)
    second = new_anvil()
    execute_plan(second.rpc, second.deployment, plan_simulated_round(24, **SMALL), second.funder_key)
    with pytest.raises(ConfigError, match="another chain"):
        make_indexer(second, db_url, tmp_path)
    indexer = make_indexer(second, db_url, tmp_path, reset_on_new_chain=True)
    try:
        sync(indexer)
    finally:
        close(indexer)
    backfill(second, second_db, tmp_path)
    assert snapshot(db_url) == snapshot(second_db)
