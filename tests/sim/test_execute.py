"""Executing plans on a real anvil: every planned donation lands once, runs are reproducible."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import pytest

from qf_sentinel.qf.chain.abi import ALLO_V2_EVENTS, topic0
from qf_sentinel.qf.sim.execute import execute_plan
from qf_sentinel.qf.sim.gitcoin import load_round9
from qf_sentinel.qf.sim.plan import RoundPlan
from qf_sentinel.qf.sim.scenario import plan_simulated_round
from tests.fixtures.chain import Chain
from tests.sim.onchain import all_logs, allocations, event_counts
from tests.sim.test_gitcoin import ROUND9

SMALL = {
    "honest_donors": 25,
    "projects_per_pool": 8,
    "pools": 2,
    "whales": 2,
    "fan_out_clusters": 2,
    "fan_out_size": 6,
    "ring_size": 3,
    "ring_helpers": 1,
    "self_donation_projects": 1,
    "self_donation_wallets": 3,
}


def _planned(plan: RoundPlan) -> Counter[tuple[str, str, str, int]]:
    return Counter(
        (
            plan.wallets[d.donor].address,
            plan.wallets[plan.projects[d.project].owner].address,
            d.token.value,
            d.amount,
        )
        for d in plan.donations
    )


def test_simulated_round_lands_exactly_once(chain: Chain) -> None:
    """Each planned donation is one Allocated log; every Allo v2 event type appears."""
    plan = plan_simulated_round(3, **SMALL)
    result = execute_plan(chain.rpc, chain.deployment, plan, chain.funder_key)
    logs = all_logs(chain.rpc, chain.deployment.start_block)
    counts = event_counts(logs)
    assert set(counts) == set(ALLO_V2_EVENTS)
    assert counts["PoolCreated"] == len(plan.pools) == len(result.pools)
    assert counts["Registered"] == len(plan.projects)
    assert counts["Allocated"] == len(plan.donations) == result.donations
    assert Counter(allocations(logs, chain.deployment.token)) == _planned(plan)
    assert counts["Distributed"] == counts["FundsDistributed"] > 0


def test_block_times_follow_the_plan(chain: Chain) -> None:
    """On anvil, donations are mined in the plan's order, in slots of block_seconds."""
    plan = plan_simulated_round(5, **SMALL)
    result = execute_plan(chain.rpc, chain.deployment, plan, chain.funder_key, block_seconds=60)
    logs = [
        lg
        for lg in all_logs(chain.rpc, result.first_block)
        if int(lg["blockNumber"], 16) <= result.last_block and lg["topics"][0] == _allocated()
    ]
    blocks = {int(lg["blockNumber"], 16) for lg in logs}
    stamps = {
        b: int(chain.rpc.call("eth_getBlockByNumber", [hex(b), False])["timestamp"], 16) for b in blocks
    }
    start = result.pools[0].allocation_start
    seen = [stamps[int(lg["blockNumber"], 16)] - start for lg in logs]
    planned = [int(d.at_seconds // 60) * 60 for d in plan.donations]
    # A slot with more than a block's worth of transactions spills into the next second.
    assert all(0 <= s - p < 5 for s, p in zip(seen, planned, strict=True))


def _allocated() -> str:
    return topic0(ALLO_V2_EVENTS["Allocated"])


def test_same_seed_same_chain_contents(new_anvil: Callable[[], Chain]) -> None:
    """Two fresh devnets driven with one seed hold identical donations, in the same order."""
    plan = plan_simulated_round(11, **SMALL)
    seen = []
    for _ in range(2):
        chain = new_anvil()
        execute_plan(chain.rpc, chain.deployment, plan, chain.funder_key)
        seen.append(allocations(all_logs(chain.rpc), chain.deployment.token))
    assert seen[0] == seen[1]
    assert len(seen[0]) == len(plan.donations)


@pytest.mark.slow
def test_round9_prefix_replays_with_exact_amounts(chain: Chain) -> None:
    """The first 1,500 real Round 9 donations land with the CSV's amounts and donors."""
    plan = load_round9(ROUND9)
    plan = replace(plan, donations=plan.donations[:1500])
    execute_plan(chain.rpc, chain.deployment, plan, chain.funder_key, block_seconds=120)
    landed = allocations(all_logs(chain.rpc, chain.deployment.start_block), chain.deployment.token)
    assert Counter(landed) == _planned(plan)
    assert sum(a for *_, a in landed) == sum(d.amount for d in plan.donations)
