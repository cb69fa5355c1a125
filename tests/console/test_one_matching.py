"""`qf matching`, the console's round page and the demo show one matching: the core's, with its policies.

On the console's round (simulated through the real Allo v2 strategy, indexed,
its first pool scored by `qf score`, both pools labelled): for each pool the
CLI's three runs, the console's CSV and page, and (first pool) the demo's
table carry the numbers and the weights source of
:func:`qf.matching.service.match_pool`. Before that function they disagreed
(the console weighed by the model's scores, the CLI and the demo by labels).
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from starlette.testclient import TestClient

from qf_sentinel.console.app import create_app
from qf_sentinel.console.config import ConsoleConfig
from qf_sentinel.demo import TOP, show_matching
from qf_sentinel.qf.db import connect
from qf_sentinel.qf.matching.service import MatchingResult, match_pool
from qf_sentinel.qf.settings import Settings
from tests.console.conftest import SESSION_SECRET, VIEWER_TOKEN, ConsoleRound
from tests.console.helpers import login
from tests.fixtures.rounds import CHAIN_ID

METHODS = ("standard", "cocm", "risk-adjusted")
CSV_COLUMNS = {"standard": "match_standard", "cocm": "match_cocm", "risk-adjusted": "match_risk_adjusted"}


def cli_matching(db_url: str, home: Path, pool_id: int, method: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QF_")}
    env |= {"QF_DATABASE_URL": db_url, "QF_HOME": str(home), "QF_LOG_FORMAT": "json"}
    proc = subprocess.run(
        [sys.executable, "-m", "qf_sentinel", "matching", "--pool", str(pool_id), "--method", method,
         "--format", "json"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def the_matching(db_url: str, pool_id: int) -> MatchingResult:
    with connect(db_url) as conn:
        return match_pool(conn, CHAIN_ID, pool_id, methods=METHODS)


def by_recipient(result: MatchingResult, method: str) -> dict[str, float]:
    return {"0x" + p.hex(): float(m) for p, m in zip(result.round.projects, result.matches[method], strict=True)}


@pytest.mark.parametrize(("which", "weights"), [("first", "model "), ("second", "labels")])
def test_the_cli_and_the_console_show_the_core_matching(
    console_app: TestClient, console_round: ConsoleRound, tmp_path: Path, which: str, weights: str
) -> None:
    """Same match per project under each method and the same weights source: the scored pool weighs by the
    model, the other by the labels (the policy: model, else labels, else none)."""
    with connect(console_round.db_url) as conn:
        pools = [int(r[0]) for r in conn.execute("SELECT pool_id FROM qf.pools ORDER BY 1")]
    pool_id = pools[0] if which == "first" else pools[1]
    result = the_matching(console_round.db_url, pool_id)
    assert result.weights_source.startswith(weights)
    assert result.weights is not None
    assert result.weights.discounted > 0, "the weights move something, so agreeing on them means something"

    for method in METHODS:
        run = cli_matching(console_round.db_url, tmp_path, pool_id, method)
        assert run["weights_source"] == (result.weights_source if method == "risk-adjusted" else "")
        assert run["donors"] == result.donors
        got = {r["recipient_id"]: r["match"] for r in run["results"]}
        assert got == pytest.approx(by_recipient(result, method), abs=1e-6), method

    login(console_app, VIEWER_TOKEN)
    page = console_app.get(f"/rounds/{pool_id}")
    assert page.status_code == 200
    assert f"Risk-adjusted weights from: <strong>{result.weights_source}</strong>" in page.text
    download = console_app.get(f"/rounds/{pool_id}/matching.csv")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    for method, column in CSV_COLUMNS.items():
        got = {r["recipient_id"]: float(r[column]) for r in rows}
        assert got == pytest.approx(by_recipient(result, method), abs=1e-6), method


def test_the_demo_shows_the_core_matching(console_round: ConsoleRound, tmp_path: Path) -> None:
    """The demo's table (first pool, top projects by standard QF) prints the core's numbers and weights source."""
    settings = Settings.from_env(env={}, home=tmp_path, database_url=console_round.db_url)
    screen = Console(record=True, width=400, color_system=None)
    shown = show_matching(settings, console_round.db_url, screen)
    text = screen.export_text()
    with connect(console_round.db_url) as conn:
        first = int(conn.execute("SELECT min(pool_id) FROM qf.pools").fetchone()[0])
    result = the_matching(console_round.db_url, first)
    assert shown.pool_id == first
    assert result.weights_source.startswith("model ")
    assert f"risk-adjusted weights: {result.weights_source}" in " ".join(text.split())
    lines = text.splitlines()
    for project in result.projects(by="standard")[:TOP]:
        numbers = [f"{project.matches[m]:,.2f}" for m in METHODS]
        assert any(all(n in line for n in numbers) for line in lines), (numbers, text)


def test_the_console_shows_every_chain_instead_of_the_lowest(migrated_db_url: str, tmp_path: Path) -> None:
    """Two chains indexed and none configured: every page covers both (no page picks one of them), a pool URL
    that names no chain names the chains instead; QF_CHAIN_ID picks one. (Before the console showed several
    chains, every page named them and showed none: tests/console/test_chains.py has the pages' contents.)"""
    with connect(migrated_db_url) as conn:
        for chain_id in (10, CHAIN_ID):
            conn.execute("INSERT INTO qf.chains (chain_id, core, start_block) VALUES (%s, %s, 0)",
                         (chain_id, b"\1" * 20))  # fmt: skip
        conn.commit()
    config = ConsoleConfig(database_url=migrated_db_url, models_dir=tmp_path, viewers={"bob": VIEWER_TOKEN},
                           session_secret=SESSION_SECRET)  # fmt: skip
    with TestClient(create_app(config), follow_redirects=False) as client:
        login(client, VIEWER_TOKEN)
        index = client.get("/")
        assert index.status_code == 200
        assert "Chain 10 Optimism" in index.text
        assert f"Chain {CHAIN_ID} devnet" in index.text
        for path in ("/donors", "/review"):
            page = client.get(path)
            assert page.status_code == 200, path
            assert f'<option value="{CHAIN_ID}"' in page.text, "a chain filter offers both chains"
            assert '<option value="10"' in page.text
        pool = client.get("/rounds/1")
        assert pool.status_code == 404
        assert f"10 Optimism, {CHAIN_ID} devnet" in pool.text
    named = ConsoleConfig(database_url=migrated_db_url, models_dir=tmp_path, viewers={"bob": VIEWER_TOKEN},
                          session_secret=SESSION_SECRET, chain_id=CHAIN_ID)  # fmt: skip
    with TestClient(create_app(named), follow_redirects=False) as client:
        login(client, VIEWER_TOKEN)
        assert client.get("/").status_code == 200
