"""Hostile names written on chain (tests/console/hostile.py) reach the console's pages and every CSV as inert text.

Expectations are taken from the names as the indexer stored them (``qf.project_name``): an indexer that
already drops control characters or caps lengths at the edge leaves the console less to do, and the
console must be safe either way.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

from markupsafe import escape
from starlette.testclient import TestClient

from qf_sentinel.qf.db import connect
from tests.console.conftest import VIEWER_TOKEN, ConsoleRound
from tests.console.helpers import login
from tests.console.hostile import BIDI_NAME, FORMULA_NAMES, LINK_NAME, LONG_NAME, MARKUP_NAME
from tests.test_cli import qf

#: Control characters a CSV cell must not carry (tab and line feed are text).
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
NUMERIC = ("donors", "amount", "match_standard", "match_cocm", "match_risk_adjusted", "cocm_minus_standard",
           "risk_adjusted_minus_standard", "contributors", "match")  # fmt: skip


def stored(console_round: ConsoleRound, name: str) -> str:
    """The name written on chain as ``name``, as the indexer stored it."""
    with connect(console_round.db_url) as conn:
        row = conn.execute("SELECT qf.project_name(31337, %s)",
                           (bytes.fromhex(console_round.renamed.projects[name][2:]),)).fetchone()  # fmt: skip
    assert row is not None
    assert row[0], f"no stored name for {name[:40]!r}"
    return str(row[0])


def assert_inert(rows: list[dict[str, str]], console_round: ConsoleRound, numeric: list[str]) -> None:
    """Formula names are quoted (a leading ', ESC, BEL and CR replaced), no text cell can start a formula or
    hold a control character, and number cells are plain numbers (negative ones included)."""
    by_recipient = {r["recipient_id"]: r for r in rows}
    for name in FORMULA_NAMES:
        name_stored = stored(console_round, name)
        assert name_stored[0] in "=+-@", "the formula reached the database"
        expected = "'" + CONTROL.sub("\ufffd", name_stored)
        assert by_recipient[console_round.renamed.projects[name]]["project"] == expected, name
    for row in rows:
        for column, cell in row.items():
            if column in numeric:
                float(cell)  # a number, not a quoted text
                continue
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (column, cell[:60])
            assert not CONTROL.search(cell), (column, cell[:60])
    assert any(float(row[c]) < 0 for row in rows for c in numeric), "a negative number stays a number"


def test_the_console_csv_neutralises_formulas(console_app: TestClient, console_round: ConsoleRound) -> None:
    login(console_app, VIEWER_TOKEN)
    response = console_app.get(f"/rounds/{console_round.pool_id}/matching.csv")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text, newline="")))
    assert_inert(rows, console_round, [c for c in NUMERIC if c in rows[0]])


def test_qf_matching_csv_neutralises_formulas(console_round: ConsoleRound, tmp_path: Path) -> None:
    """`qf matching --format csv`, the CLI's CSV, on the same chain data (risk-adjusted: deltas go negative)."""
    proc = qf("matching", "--pool", str(console_round.pool_id), "--method", "risk-adjusted", "--format", "csv",
              env={"QF_DATABASE_URL": console_round.db_url}, home=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout, newline="")))
    numeric = [c for c in (*NUMERIC, "base_match", "delta") if c in rows[0]]
    assert_inert(rows, console_round, numeric)


def figure_of(html: str, figure_id: str) -> dict[str, Any]:
    start = html.index(f'<script type="application/json" id="{figure_id}">') + len(figure_id) + 38
    return dict(json.loads(html[start:html.index("</script>", start)]))


def test_names_are_isolated_truncated_and_inert_on_the_round_page(console_app: TestClient,
                                                                   console_round: ConsoleRound) -> None:  # fmt: skip
    """Bidi controls are gone, every chain string sits in <bdi>, long names are cut to 80 characters (the title
    holds up to 1,000), and the chart's labels are escaped for Plotly, one category per project."""
    login(console_app, VIEWER_TOKEN)
    page = console_app.get(f"/rounds/{console_round.pool_id}").text
    assert "\u202e" not in page
    assert "<bdi>Operator unterminated</bdi> · " in page
    assert f"<bdi>{escape(LINK_NAME)}</bdi>" in page
    shown = "Long name " * 7 + "Long name…"
    assert len(shown) == 80
    long = stored(console_round, LONG_NAME)
    assert len(long) > 100, "the indexer keeps more than a page should show"
    title = long if len(long) <= 1000 else long[:999] + "…"
    assert f'<bdi title="{title}">{shown}</bdi>' in page
    assert len(page) < 100_000, f"the round page is {len(page):,} characters"
    figure = figure_of(page, "gains")
    axis = figure["layout"]["yaxis"]
    labels = dict(zip(axis["tickvals"], axis["ticktext"], strict=True))
    renamed = console_round.renamed.projects
    assert labels[renamed[LINK_NAME]] == "&lt;a href=\"http://evil.example/\"&gt;click me&lt;/a&gt;"
    assert labels[renamed[MARKUP_NAME]].startswith("&lt;span style=\"font-size:300px\"&gt;HUGE&lt;/span&gt;")
    assert labels[renamed[LONG_NAME]] == escape(shown)
    assert labels[renamed[BIDI_NAME]] == "Reversed project"
    assert all(len(t) < 200 for t in axis["ticktext"])
    for trace in figure["data"]:
        assert set(trace["y"]) <= set(labels), "bars are placed by recipient id, labelled by name"


def test_chain_strings_are_isolated_on_every_page(console_app: TestClient, console_round: ConsoleRound) -> None:
    """The rounds list (owner names, token symbols) and a donor's page (project names) use the same filter."""
    login(console_app, VIEWER_TOKEN)
    rounds = console_app.get("/").text
    assert "\u202e" not in rounds
    assert "<bdi>Operator unterminated</bdi>" in rounds
    with connect(console_round.db_url) as conn:
        donor = conn.execute(
            "SELECT donor FROM qf.donations WHERE recipient_id = %s LIMIT 1",
            (console_round.renamed.projects[LONG_NAME],)).fetchone()  # fmt: skip
    assert donor is not None
    page = console_app.get(f"/donors/{donor[0]}").text
    assert '">' + "Long name " * 7 + "Long name…</bdi>" in page, "shown: 80 characters"
    assert "Long name " * 101 not in page, "on hover: 1,000"


def test_qf_matching_table_prints_names_as_text(console_round: ConsoleRound, tmp_path: Path) -> None:
    """The terminal table: no escape sequence reaches the terminal, and rich's markup in a name stays literal."""
    proc = qf("matching", "--pool", str(console_round.pool_id), env={"QF_DATABASE_URL": console_round.db_url,
              "COLUMNS": "400"}, home=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout
    assert "\x07" not in proc.stdout
    assert "<a href=" in proc.stdout, "markup-like names are printed as they are"
