"""Views against the real Round 9 data: what the replayed, indexed chain says equals the CSV."""

from __future__ import annotations

import csv
import lzma
import math
from collections import defaultdict
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from qf_sentinel.qf.db import connect
from qf_sentinel.qf.sim.execute import execute_plan
from qf_sentinel.qf.sim.gitcoin import load_round9
from qf_sentinel.qf.sim.wallets import derive_wallet
from tests.fixtures.chain import Chain
from tests.indexer.harness import backfill
from tests.sim.test_gitcoin import ROUND9

PREFIX = 2_000


def csv_prefix() -> dict[tuple[str, str], Decimal]:
    """(contributor, grant) -> USD of the first PREFIX kept rows, read with csv/lzma (not the planner)."""
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    kept = 0
    with lzma.open(ROUND9, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row["success"] != "True" or Decimal(row["amount"]) <= 0:
                continue
            totals[(row["contributor"], row["grant"])] += Decimal(row["amount"])
            kept += 1
            if kept == PREFIX:
                break
    return totals


@pytest.mark.slow
def test_round9_prefix_views_equal_the_csv(chain: Chain, db_url: str, tmp_path: Path) -> None:
    """Replay 2,000 real donations, index them: project totals and standard QF matches equal the CSV's."""
    plan = load_round9(ROUND9)
    execute_plan(chain.rpc, chain.deployment, replace(plan, donations=plan.donations[:PREFIX]), chain.funder_key,
                 block_seconds=120)
    backfill(chain, db_url, tmp_path)
    gifts = csv_prefix()
    owner = {grant: derive_wallet("round9-grant", grant).address for _, grant in gifts}
    per_project: dict[str, dict[str, float]] = defaultdict(dict)
    for (contributor, grant), usd in gifts.items():
        per_project[owner[grant]][contributor] = float(usd)
    raw = {p: sum(math.sqrt(c) for c in d.values()) ** 2 - sum(d.values()) for p, d in per_project.items()}
    with connect(db_url) as conn:
        totals = {"0x" + bytes(r).hex(): (int(n), float(a)) for r, n, a in conn.execute(
            "SELECT recipient_id, unique_donors, amount FROM qf.project_totals").fetchall()}
        matches = {"0x" + bytes(r).hex(): float(m) for r, m in conn.execute(
            "SELECT recipient_id, match FROM qf.round_matching WHERE contributors > 0").fetchall()}
        funded = float(conn.execute("SELECT funded FROM qf.pools").fetchone()[0])  # type: ignore[index]
    expected_totals = {p: (len(d), sum(d.values())) for p, d in per_project.items()}
    assert totals.keys() == expected_totals.keys()
    for project, (donors, amount) in expected_totals.items():
        assert totals[project][0] == donors
        assert totals[project][1] == pytest.approx(amount, rel=1e-12)
    scale = funded / sum(raw.values())
    assert matches == pytest.approx({p: m * scale for p, m in raw.items()}, rel=1e-9, abs=1e-6)
