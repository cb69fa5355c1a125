"""A small simulated round on a real anvil, read back and decoded: the real logs the tests check."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from eth_account import Account

from qf_sentinel.indexer.decode import DecodedLog, decode_log
from qf_sentinel.qf.sim.execute import ExecutionResult, execute_plan
from qf_sentinel.qf.sim.plan import RoundPlan
from qf_sentinel.qf.sim.scenario import plan_simulated_round
from tests.fixtures.chain import Chain
from tests.sim.onchain import all_logs

SMALL_ROUND = {
    "honest_donors": 10,
    "projects_per_pool": 6,
    "pools": 2,
    "whales": 1,
    "fan_out_clusters": 1,
    "fan_out_size": 3,
    "ring_size": 3,
    "ring_helpers": 1,
    "self_donation_projects": 1,
    "self_donation_wallets": 2,
}


@dataclass
class Round:
    plan: RoundPlan
    result: ExecutionResult
    logs: list[dict[str, Any]]
    decoded: list[DecodedLog]
    funder: bytes
    token: bytes

    def of(self, name: str) -> list[DecodedLog]:
        return [d for d in self.decoded if d.name == name]


def run_round(chain: Chain, seed: int = 7) -> Round:
    """Execute a small round with every event type; its Allo v2 logs, decoded (none may fail)."""
    plan = plan_simulated_round(seed, **SMALL_ROUND)
    result = execute_plan(chain.rpc, chain.deployment, plan, chain.funder_key)
    logs = all_logs(chain.rpc, chain.deployment.start_block)
    decoded = [decode_log(lg) for lg in logs]
    assert all(d is not None for d in decoded)
    return Round(
        plan,
        result,
        logs,
        [d for d in decoded if d is not None],
        addr(Account.from_key(chain.funder_key).address),
        addr(chain.deployment.token),
    )


def addr(text: str) -> bytes:
    return bytes.fromhex(text[2:])


def metadata(name: str) -> tuple[int, str]:
    """What the executor sends as a pool's or project's metadata."""
    return 1, "bafy" + hashlib.sha256(name.encode()).hexdigest()[:52]
