"""`qf matching` end to end: an indexed round in, matches out, stored with their parameters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qf_sentinel.qf.db import connect
from qf_sentinel.qf.sim.execute import execute_plan
from qf_sentinel.qf.sim.labels import store_labels
from qf_sentinel.qf.sim.scenario import plan_simulated_round
from tests.fixtures.chain import Chain
from tests.indexer.harness import backfill
from tests.indexer.test_indexing import SMALL


def run_matching(db_url: str, home: Path, *args: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QF_")}
    env |= {"QF_DATABASE_URL": db_url, "QF_HOME": str(home), "QF_LOG_FORMAT": "json"}
    proc = subprocess.run(
        [sys.executable, "-m", "qf_sentinel", "matching", *args, "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, object] = json.loads(proc.stdout)
    return result


@pytest.fixture
def indexed_round(chain: Chain, db_url: str, tmp_path: Path) -> tuple[str, list[object]]:
    plan = plan_simulated_round(41, **SMALL)
    execute_plan(chain.rpc, chain.deployment, plan, chain.funder_key)
    backfill(chain, db_url, tmp_path)
    with connect(db_url) as conn:
        store_labels(conn, chain.rpc.chain_id(), plan.labels, source="simulate", run_id="test")
    return db_url, list(plan.labels)


def test_standard_matching_equals_the_round_matching_view(
    indexed_round: tuple[str, list[object]], tmp_path: Path
) -> None:
    """`qf matching --method standard` gives the view's matches and records the run in qf.matching_results."""
    db_url, _ = indexed_round
    result = run_matching(db_url, tmp_path, "--pool", "1")
    with connect(db_url) as conn:
        view = {
            "0x" + bytes(r).hex(): float(m)
            for r, m in conn.execute("SELECT recipient_id, match FROM qf.round_matching WHERE pool_id = 1").fetchall()
        }
        stored = conn.execute(
            "SELECT r.method, count(*), sum(m.match) FROM qf.matching_runs r JOIN qf.matching_results m USING (run_id) "
            "WHERE run_id = %s GROUP BY 1",
            (result["run_id"],),
        ).fetchone()
    rows = result["results"]
    assert isinstance(rows, list)
    assert {r["recipient_id"]: r["match"] for r in rows} == pytest.approx(view, rel=1e-6, abs=1e-6)
    assert stored is not None
    assert stored[0] == "standard"
    assert stored[1] == len(view)
    assert float(stored[2]) == pytest.approx(float(result["pool_amount"]), rel=1e-9)  # type: ignore[arg-type]


def test_risk_adjusted_drops_labelled_sybils(indexed_round: tuple[str, list[object]], tmp_path: Path) -> None:
    """With sybil labels as weights, a project funded only by sybils loses its match; totals stay the pool."""
    db_url, _ = indexed_round
    result = run_matching(db_url, tmp_path, "--pool", "1", "--method", "risk-adjusted")
    rows = result["results"]
    assert isinstance(rows, list)
    assert sum(r["match"] for r in rows) == pytest.approx(float(result["pool_amount"]), rel=1e-6)  # type: ignore[arg-type]
    assert any(r["delta"] != 0 for r in rows)
    assert all(set(r) >= {"base_match", "delta"} for r in rows)


@pytest.mark.parametrize("method", ["pairwise", "cocm"])
def test_other_methods_spend_the_pool(indexed_round: tuple[str, list[object]], tmp_path: Path, method: str) -> None:
    """Pairwise and COCM runs hand out the whole pool, and a cap is respected."""
    db_url, _ = indexed_round
    result = run_matching(db_url, tmp_path, "--pool", "1", "--method", method, "--cap", "40")
    rows = result["results"]
    assert isinstance(rows, list)
    pool = float(result["pool_amount"])  # type: ignore[arg-type]
    assert all(r["match"] <= 0.4 * pool + 1e-6 for r in rows)
    assert sum(r["match"] for r in rows) <= pool * (1 + 1e-9)
