"""A labelled round for the training tests: simulated on the session's anvil, indexed, labels stored.

Built once per module (simulating and indexing take seconds); the chain is
rolled back and the database dropped afterwards.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from psycopg import sql

from qf.db import connect, with_database
from qf.sim.execute import execute_plan
from qf.sim.labels import store_labels
from qf.sim.plan import RoundPlan
from qf.sim.scenario import plan_simulated_round
from tests.fixtures.chain import Chain
from tests.indexer.harness import backfill

CHAIN_ID = 31337
#: Big enough for 5 folds and three sybil patterns, small enough to simulate in seconds.
ROUND = {
    "honest_donors": 90,
    "projects_per_pool": 10,
    "pools": 2,
    "whales": 3,
    "fan_out_clusters": 2,
    "fan_out_size": 10,
    "ring_size": 4,
    "ring_helpers": 2,
    "self_donation_projects": 2,
    "self_donation_wallets": 4,
}


@dataclass(frozen=True)
class LabelledRound:
    db_url: str
    plan: RoundPlan


@pytest.fixture(scope="module")
def labelled_round(anvil_node: Chain, pg_server_url: str) -> Iterator[LabelledRound]:
    snapshot = anvil_node.rpc.call("evm_snapshot")
    name = f"test_train_{uuid.uuid4().hex}"
    with connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    db_url = with_database(pg_server_url, name)
    try:
        plan = plan_simulated_round(11, **ROUND)
        execute_plan(anvil_node.rpc, anvil_node.deployment, plan, anvil_node.funder_key)
        backfill(anvil_node, db_url, Path(tempfile.mkdtemp(prefix="qf-test-train-")))
        with connect(db_url) as conn:
            store_labels(conn, CHAIN_ID, plan.labels, source="simulate", run_id=plan.name)
            conn.execute("SELECT qf.refresh_analytics()")
            conn.commit()
        yield LabelledRound(db_url=db_url, plan=plan)
    finally:
        anvil_node.rpc.call("evm_setAutomine", [True])
        anvil_node.rpc.call("evm_revert", [snapshot])
        with connect(pg_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
