"""A round driven through the unmodified DonationVotingMerkleDistributionDirectTransferStrategy bytecode
(from @allo-team/allo-v2-sdk) under the project's core and Registry, indexed: the database holds
exactly the logs the chain holds, and reads them as Allo v2 means them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import eth_abi
import pytest

from qf_sentinel.indexer.decode import EVENTS
from qf_sentinel.indexer.loop import EVENT_TABLES
from qf_sentinel.qf.chain.abi import NATIVE_TOKEN, topic0
from qf_sentinel.qf.chain.allo_sdk import DVMDT, PERMIT2, package_version, sdk_strategy
from qf_sentinel.qf.db import connect
from qf_sentinel.qf.sim.dvmdt import STRATEGY_ID, STRATEGY_NAME, DvmdtRound
from qf_sentinel.qf.sim.execute import ExecutionResult, execute_plan
from qf_sentinel.qf.sim.plan import RecipientStatus, RoundPlan
from qf_sentinel.qf.sim.scenario import plan_simulated_round
from tests.fixtures.chain import Chain
from tests.indexer.harness import backfill
from tests.indexer.test_indexing import SMALL

#: EIP-1167: a minimal proxy's runtime code around the address it delegates to.
CLONE_PREFIX, CLONE_SUFFIX = "363d3d373d3d3d363d73", "5af43d82803e903d91602b57fd5bf3"


@pytest.fixture
def dvmdt_round(chain: Chain) -> tuple[RoundPlan, ExecutionResult]:
    plan = plan_simulated_round(41, **SMALL)
    assert len(plan.pools) >= 2
    return plan, execute_plan(chain.rpc, chain.deployment, plan, chain.funder_key, execution=DvmdtRound)


def chain_logs(chain: Chain, pools: tuple[Any, ...]) -> list[dict[str, Any]]:
    addresses = [chain.deployment.core, chain.deployment.registry, *chain.deployment.price_feeds.values(),
                 *(p.strategy for p in pools)]  # fmt: skip
    query = {"fromBlock": hex(chain.deployment.start_block), "toBlock": "latest", "address": addresses}
    return list(chain.rpc.call("eth_getLogs", [query]))


def stored_logs(db_url: str) -> set[tuple[bytes, int]]:
    with connect(db_url) as conn:
        keys: list[tuple[bytes, int]] = []
        for table in EVENT_TABLES:
            keys += [(bytes(h), i) for h, i in conn.execute(f"SELECT tx_hash, log_index FROM qf.{table}").fetchall()]
    assert len(keys) == len(set(keys)), "a log stored twice"
    return set(keys)


def test_the_pools_run_the_published_bytecode(chain: Chain, dvmdt_round: tuple[RoundPlan, ExecutionResult]) -> None:
    """The first pool's strategy is the SDK's bytecode as deployed; the others are EIP-1167 clones of it."""
    _plan, result = dvmdt_round
    first, *others = result.pools
    creation = sdk_strategy(DVMDT).deploy_data([chain.deployment.core, STRATEGY_NAME, PERMIT2])
    runtime = chain.rpc.call("eth_call", [{"from": chain.deployment.deployer, "data": "0x" + creation.hex()}, "latest"])
    assert chain.rpc.call("eth_getCode", [first.strategy, "latest"]) == runtime
    for pool in others:
        code = chain.rpc.call("eth_getCode", [pool.strategy, "latest"])
        assert code == "0x" + CLONE_PREFIX + first.strategy[2:] + CLONE_SUFFIX
    assert package_version() == "1.1.3"


def test_a_real_strategy_round_is_stored_as_the_chain_logged_it(
    chain: Chain, dvmdt_round: tuple[RoundPlan, ExecutionResult], db_url: str, tmp_path: Path
) -> None:
    """Every log of the core, the Registry and the real strategies is one row; none is unknown or undecodable;
    profiles, names, statuses, donations and payouts read back as the round was played."""
    plan, result = dvmdt_round
    backfill(chain, db_url, tmp_path, log_range_blocks=40)
    logs = chain_logs(chain, result.pools)
    known = [lg for lg in logs if lg["topics"][0] in EVENTS]
    assert stored_logs(db_url) == {(bytes.fromhex(lg["transactionHash"][2:]), int(lg["logIndex"], 16)) for lg in known}
    # The rest is counted, by contract and topic: the core's StrategyApproved and the feeds' NewRound
    # (AnswerUpdated carries the price), none a round event.
    others = Counter((lg["address"], lg["topics"][0]) for lg in logs if lg["topics"][0] not in EVENTS)
    assert set(others) == {(chain.deployment.core, topic0("StrategyApproved(address)"))} | {
        (feed, topic0("NewRound(uint256,address,uint256)")) for feed in chain.deployment.price_feeds.values()
    }
    names = {p.name for p in plan.projects}
    donations = list(plan.donations)
    with connect(db_url) as conn:
        unknown = conn.execute(
            "SELECT '0x' || encode(contract, 'hex'), '0x' || encode(topic0, 'hex'), seen FROM qf.unknown_topics"
        ).fetchall()
        assert Counter({(c, t): n for c, t, n in unknown}) == others
        profiles = dict(conn.execute("SELECT name, anchor FROM qf.profiles").fetchall())
        assert set(profiles) == names | {"QF Sentinel round operator"}
        # Registered under anchors; every donation names its project.
        named = conn.execute(
            "SELECT project_name, count(*), bool_and(recipient_status = 2), bool_and(in_window) FROM qf.donations"
            " GROUP BY 1"
        ).fetchall()
        # The status nibble is recipientsCounter - 1: the final statuses are the plan's.
        statuses = dict(conn.execute(
            "SELECT p.name, s.status FROM qf.recipient_status s"
            " JOIN qf.profile_anchors a ON a.chain_id = s.chain_id AND a.anchor = s.recipient_id"
            " JOIN qf.profiles p ON p.chain_id = a.chain_id AND p.registry = a.registry AND p.profile_id = a.profile_id"
        ).fetchall())  # fmt: skip
        appealed = conn.execute(
            "SELECT count(*), min(status), max(recipient_index) FROM qf.updated_registration"
        ).fetchone()
        initialized = conn.execute("SELECT count(*), count(DISTINCT pool_id) FROM qf.initialized").fetchone()
        distributions = conn.execute("SELECT count(*), count(merkle_root) FROM qf.distribution_updated").fetchone()
        batches = conn.execute("SELECT count(*) FROM qf.batch_payout_successful").fetchone()
        paid = conn.execute(
            "SELECT p.name, f.amount FROM qf.funds_distributed f"
            " JOIN qf.profile_anchors a ON a.chain_id = f.chain_id AND a.anchor = f.recipient_id"
            " JOIN qf.profiles p ON p.profile_id = a.profile_id"
        ).fetchall()
        tokens = conn.execute(
            "SELECT DISTINCT token = %s::bytea FROM qf.allocated", [bytes.fromhex(NATIVE_TOKEN[2:])]
        ).fetchall()
        kinds = conn.execute("SELECT DISTINCT kind, name, version, strategy_id FROM qf.pool_strategies").fetchall()
    # getStrategyId() of the real bytecode (a clone answers its template's): the SDK's own name, a donation strategy.
    assert kinds == [("donation", "DonationVotingMerkleDistributionDirectTransferStrategy", "v2.0",
                      "0x" + STRATEGY_ID.hex())]  # fmt: skip
    assert {n for n, *_ in named} <= names
    assert None not in {n for n, *_ in named}
    assert sum(c for _, c, _, _ in named) == len(donations)
    assert all(accepted and in_window for _, _, accepted, in_window in named)
    assert statuses == {p.name: int(p.status) for p in plan.projects}
    assert appealed is not None
    assert appealed[0] >= 1
    assert appealed[1] == int(RecipientStatus.APPEALED)
    assert appealed[2] is None  # UpdatedRegistration carries the plain application, no counter
    assert initialized == (len(result.pools), len(result.pools))
    assert distributions == (len(result.pools), len(result.pools))
    assert batches == (len(result.pools),)
    assert paid
    assert all(amount > 0 for _, amount in paid)
    assert {row[0] for row in tokens} == {True, False}, "native and ERC-20 donations"


def test_erc20_donations_went_straight_to_the_recipients(
    chain: Chain, dvmdt_round: tuple[RoundPlan, ExecutionResult]
) -> None:
    """Direct transfer: an ERC-20 donation moves from donor to the project owner (the recipient address)."""
    plan, _result = dvmdt_round
    owners = {plan.wallets[p.owner].address for p in plan.projects}
    token = chain.deployment.token
    balances = {o: eth_abi.decode(["uint256"], bytes.fromhex(chain.rpc.call("eth_call", [{
        "to": token, "data": "0x70a08231" + "00" * 12 + o[2:]}, "latest"])[2:]))[0] for o in owners}  # fmt: skip
    received = {plan.wallets[plan.projects[d.project].owner].address: 0 for d in plan.donations}
    for d in plan.donations:
        if d.token.name == "ERC20":
            received[plan.wallets[plan.projects[d.project].owner].address] += d.amount
    for owner, amount in received.items():
        assert balances[owner] >= amount
