"""Hostile names written on chain (tests/console/hostile.py) reach the console's pages and every CSV as inert text."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from starlette.testclient import TestClient

from tests.console.conftest import VIEWER_TOKEN, ConsoleRound
from tests.console.helpers import login
from tests.console.hostile import FORMULA_NAMES
from tests.test_cli import qf

#: What a spreadsheet must be shown for each formula name: a leading quote, ESC, BEL and CR replaced.
NEUTRALISED = {
    FORMULA_NAMES[0]: "'" + FORMULA_NAMES[0],
    FORMULA_NAMES[1]: "'" + FORMULA_NAMES[1],
    FORMULA_NAMES[2]: "'" + FORMULA_NAMES[2],
    FORMULA_NAMES[3]: "'@SUM(1+1)*cmd|' /C calc'!A0\ufffd[2J\ufffd\ufffdover",
}
NUMERIC = ("donors", "amount", "match_standard", "match_cocm", "match_risk_adjusted", "cocm_minus_standard",
           "risk_adjusted_minus_standard", "contributors", "match")  # fmt: skip


def assert_inert(rows: list[dict[str, str]], renamed: dict[str, str], numeric: list[str]) -> None:
    """Formula names are quoted, no text cell can start a formula or hold a control character,
    and number cells are plain numbers (negative ones included)."""
    by_recipient = {r["recipient_id"]: r for r in rows}
    for name, expected in NEUTRALISED.items():
        assert by_recipient[renamed[name]]["project"] == expected, name
    for row in rows:
        for column, cell in row.items():
            if column in numeric:
                float(cell)  # a number, not a quoted text
                continue
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (column, cell[:60])
            assert not any(ord(c) < 32 and c not in "\t\n" for c in cell), (column, cell[:60])
    assert any(float(row[c]) < 0 for row in rows for c in numeric), "a negative number stays a number"


def test_the_console_csv_neutralises_formulas(console_app: TestClient, console_round: ConsoleRound) -> None:
    login(console_app, VIEWER_TOKEN)
    response = console_app.get(f"/rounds/{console_round.pool_id}/matching.csv")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text, newline="")))
    assert_inert(rows, console_round.renamed.projects, [c for c in NUMERIC if c in rows[0]])


def test_qf_matching_csv_neutralises_formulas(console_round: ConsoleRound, tmp_path: Path) -> None:
    """`qf matching --format csv`, the CLI's CSV, on the same chain data (risk-adjusted: deltas go negative)."""
    proc = qf("matching", "--pool", str(console_round.pool_id), "--method", "risk-adjusted", "--format", "csv",
              env={"QF_DATABASE_URL": console_round.db_url}, home=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout, newline="")))
    numeric = [c for c in (*NUMERIC, "base_match", "delta") if c in rows[0]]
    assert_inert(rows, console_round.renamed.projects, numeric)
