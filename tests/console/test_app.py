"""The console's routes on a real database holding a simulated, indexed, trained, scored and gated round."""

from __future__ import annotations

import base64
import csv
import io
import json

import psycopg
import pytest
from psycopg import sql
from starlette.testclient import TestClient
from structlog.testing import capture_logs

from qf_sentinel.console.app import create_app
from qf_sentinel.console.display import chain_text
from qf_sentinel.qf.db import connect, with_database
from tests.console.conftest import REVIEWER_TOKEN, SECOND_REVIEWER_TOKEN, VIEWER_TOKEN, ConsoleRound
from tests.console.helpers import csrf_of, login, review_rows, reviewer_label, table_counts, verdict

PAGES = ["/", "/rounds/{pool}", "/rounds/{pool}/matching.csv", "/donors", "/donors/{donor}", "/review",
         "/experiments", "/model"]  # fmt: skip


def _pages(r: ConsoleRound) -> list[str]:
    return [p.format(pool=r.pool_id, donor=r.flagged[0]) for p in PAGES]


def test_every_page_needs_a_login(console_app: TestClient, console_round: ConsoleRound) -> None:
    """Without a session each page sends the browser to the login page, remembering where it was going."""
    for path in _pages(console_round):
        response = console_app.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=/"), path
    refused = console_app.post("/review", data={"donor": console_round.flagged[0], "verdict": "sybil"})
    assert refused.status_code == 303
    assert review_rows(console_round.db_url, console_round.flagged[0]) == []


def test_a_wrong_token_is_refused_and_every_attempt_recorded(console_app: TestClient,
                                                              console_round: ConsoleRound) -> None:  # fmt: skip
    wrong = "not-a-token-0123456789abcdef"
    response = login(console_app, wrong)
    assert response.status_code == 401
    assert "not valid" in response.text
    assert console_app.get("/").status_code == 303, "a refused login opens no session"
    assert login(console_app, REVIEWER_TOKEN, "/review").headers["location"] == "/review"
    with connect(console_round.db_url) as conn:
        rows = conn.execute("SELECT reviewer, role, ok FROM qf.console_logins ORDER BY id DESC LIMIT 2").fetchall()
        stored = conn.execute("SELECT string_agg(concat_ws(' ', reviewer, role, remote), ' ') FROM qf.console_logins"
                              ).fetchone()  # fmt: skip
    assert rows[0][:3] == ("alice", "reviewer", True)
    assert rows[1][:3] == (None, None, False)
    assert stored is not None
    assert wrong not in (stored[0] or "")
    assert REVIEWER_TOKEN not in (stored[0] or "")


def test_login_form_needs_its_csrf_token(console_app: TestClient) -> None:
    console_app.get("/login")
    response = console_app.post("/login", data={"token": REVIEWER_TOKEN, "next": "/", "csrf_token": "forged"})
    assert response.status_code == 400
    assert console_app.get("/").status_code == 303


@pytest.mark.parametrize(("target", "landing"), [
    ("/review?status=all", "/review?status=all"), ("//evil.example/x", "/"), ("https://evil.example/", "/"),
    ("javascript:alert(1)", "/"), ("", "/"),
])  # fmt: skip
def test_login_returns_only_to_this_site(console_app: TestClient, target: str, landing: str) -> None:
    assert login(console_app, VIEWER_TOKEN, target).headers["location"] == landing


def test_pages_show_the_round(console_app: TestClient, console_round: ConsoleRound) -> None:
    """Rounds with their KPIs, a round's three matchings with names, donors with reasons, the queue, the rest."""
    login(console_app, VIEWER_TOKEN)
    with connect(console_round.db_url) as conn:
        donors, donations = conn.execute(
            "SELECT donors, donations FROM qf.round_stats WHERE pool_id = %s", (console_round.pool_id,)).fetchone()
        names = [r[0] for r in conn.execute(
            "SELECT DISTINCT project_name FROM qf.donations WHERE pool_id = %s AND project_name IS NOT NULL",
            (console_round.pool_id,))]  # fmt: skip
        pending = conn.execute(
            "SELECT count(DISTINCT donor) FROM qf.scorer_decisions WHERE decision <> 'APPROVE' "
            "AND donor NOT IN (SELECT donor FROM qf.review_log)").fetchone()[0]  # fmt: skip
        version = conn.execute("SELECT DISTINCT model_version FROM qf.donor_risk_latest").fetchone()[0]
    assert names, "the simulated projects have Registry names"
    rounds = console_app.get("/")
    assert rounds.status_code == 200
    assert f'href="/rounds/{console_round.pool_id}"' in rounds.text
    assert f">{donors:,}<" in rounds.text
    assert f">{donations:,}<" in rounds.text
    assert "last block indexed" in rounds.text

    round_page = console_app.get(f"/rounds/{console_round.pool_id}")
    assert round_page.status_code == 200
    assert all(str(chain_text(name)) in round_page.text for name in names), "each name, as the page shows it"
    assert "COCM" in round_page.text
    assert "risk-adjusted" in round_page.text
    assert f"model {version}" in round_page.text
    assert 'type="application/json"' in round_page.text, "the gains chart's figure is on the page"

    listing = console_app.get("/donors?decision=BLOCK")
    assert listing.status_code == 200
    assert "BLOCK" in listing.text
    assert "APPROVE</span>" not in listing.text
    queue = console_app.get("/review")
    assert f"Pending ({pending})" in queue.text
    donor = console_app.get(f"/donors/{console_round.flagged[0]}")
    assert donor.status_code == 200
    assert console_round.flagged[0] in donor.text
    assert "read-only login" in donor.text, "a viewer gets no verdict form"
    experiments = console_app.get("/experiments")
    assert "project_list" in experiments.text
    assert "Chi-square" in experiments.text
    model = console_app.get("/model")
    assert version in model.text
    assert "Thresholds" in model.text
    plot = next(p for p in model.text.split('src="')[1:] if p.startswith("/model/plots/")).split('"')[0]
    image = console_app.get(plot)
    assert image.status_code == 200
    assert image.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_matching_csv_adds_up_to_the_indexed_round(console_app: TestClient, console_round: ConsoleRound) -> None:
    """One row per funded project; donors and amounts agree with qf.project_totals, matches share out the pool."""
    login(console_app, VIEWER_TOKEN)
    response = console_app.get(f"/rounds/{console_round.pool_id}/matching.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    with connect(console_round.db_url) as conn:
        totals = {("0x" + bytes(r[0]).hex()): (int(r[1]), float(r[2])) for r in conn.execute(
            "SELECT t.recipient_id, t.unique_donors, t.amount FROM qf.project_totals t "
            "JOIN qf.pools p ON p.chain_id = t.chain_id AND p.pool_id = t.pool_id AND p.token = t.token "
            "WHERE t.pool_id = %s", (console_round.pool_id,))}  # fmt: skip
        pool = float(conn.execute("SELECT matching_pool FROM qf.round_stats WHERE pool_id = %s",
                                  (console_round.pool_id,)).fetchone()[0])  # fmt: skip
    assert {r["recipient_id"] for r in rows} == set(totals)
    for r in rows:
        assert int(r["donors"]) == totals[r["recipient_id"]][0]
        assert float(r["amount"]) == pytest.approx(totals[r["recipient_id"]][1], abs=1e-6)
        assert float(r["cocm_minus_standard"]) == pytest.approx(float(r["match_cocm"]) - float(r["match_standard"]),
                                                                abs=1e-5)  # fmt: skip
    for column in ("match_standard", "match_cocm", "match_risk_adjusted"):
        assert sum(float(r[column]) for r in rows) == pytest.approx(pool, rel=1e-6), column


def test_a_multi_token_round_matches_in_usd(console_app: TestClient, console_round: ConsoleRound) -> None:
    """?usd=1 values every token's donations in USD at donation time, as qf.donations.amount_usd does."""
    login(console_app, VIEWER_TOKEN)
    with connect(console_round.db_url) as conn:
        tokens, = conn.execute("SELECT count(DISTINCT token) FROM qf.donations WHERE pool_id = %s",
                               (console_round.pool_id,)).fetchone()  # fmt: skip
        usd = {r[0]: float(r[1]) for r in conn.execute(
            "SELECT recipient_id, sum(amount_usd) FROM qf.donations WHERE pool_id = %s AND in_window "
            "AND recipient_status = 2 GROUP BY 1",
            (console_round.pool_id,))}  # fmt: skip
    assert tokens > 1, "the simulated pool takes donations in two tokens"
    page = console_app.get(f"/rounds/{console_round.pool_id}")
    assert "Match in USD across every token" in page.text
    download = console_app.get(f"/rounds/{console_round.pool_id}/matching.csv?usd=1")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert {r["recipient_id"] for r in rows} == set(usd)
    for r in rows:
        assert float(r["amount"]) == pytest.approx(usd[r["recipient_id"]], abs=1e-6)
    assert "(USD)" in console_app.get(f"/rounds/{console_round.pool_id}?usd=1").text
    assert console_app.get(f"/rounds/{console_round.pool_id}?usd=yes").status_code == 400


def test_a_verdict_goes_to_the_labels_and_the_review_log(console_app: TestClient, console_round: ConsoleRound) -> None:
    donor = console_round.flagged[0]
    login(console_app, REVIEWER_TOKEN)
    pending_before = console_app.get("/review").text
    response = verdict(console_app, donor, "sybil", comment="funded by the same wallet as its cluster")
    assert response.status_code == 303
    assert response.headers["location"] == "/review"
    assert review_rows(console_round.db_url, donor) == [
        (review_rows(console_round.db_url, donor)[0][0], "sybil", "funded by the same wallet as its cluster", "alice",
         None)]  # fmt: skip
    review_id = review_rows(console_round.db_url, donor)[0][0]
    assert reviewer_label(console_round.db_url, donor) == [("alice", True, "reviewed_sybil", f"review-{review_id}")]
    after = console_app.get("/review")
    assert f"Recorded: {donor} is sybil" in after.text, "the next page says what was recorded"
    assert f'value="{donor}"' in pending_before
    assert f'value="{donor}"' not in after.text, "the donor left the pending queue"
    reviewed = console_app.get("/review?status=reviewed")
    assert f'value="{donor}"' in reviewed.text
    assert "alice" in reviewed.text


def test_a_double_submit_changes_nothing(console_app: TestClient, console_round: ConsoleRound) -> None:
    donor = console_round.flagged[1]
    login(console_app, REVIEWER_TOKEN)
    page = console_app.get(f"/donors/{donor}").text
    form = {"csrf_token": csrf_of(page), "donor": donor, "verdict": "honest", "expected": "", "comment": "first",
            "back": "/review"}  # fmt: skip
    assert console_app.post("/review", data=form).status_code == 303
    state = table_counts(console_round.db_url), reviewer_label(console_round.db_url, donor)
    again = console_app.post("/review", data=form | {"verdict": "sybil", "comment": "second"})
    assert again.status_code == 409
    assert "already reviewed: honest by alice" in again.text
    assert "Nothing recorded" in again.text
    assert (table_counts(console_round.db_url), reviewer_label(console_round.db_url, donor)) == state
    assert [r[1:3] for r in review_rows(console_round.db_url, donor)] == [("honest", "first")]


def test_a_changed_verdict_supersedes_and_keeps_the_old_one(console_app: TestClient,
                                                            console_round: ConsoleRound) -> None:  # fmt: skip
    donor = console_round.flagged[2]
    login(console_app, REVIEWER_TOKEN)
    assert verdict(console_app, donor, "sybil", comment="burst of fresh wallets").status_code == 303
    first = review_rows(console_round.db_url, donor)[0][0]
    login(console_app, SECOND_REVIEWER_TOKEN)
    stale = verdict(console_app, donor, "honest", expected=None, comment="from a stale page")
    assert stale.status_code == 409
    assert "by alice" in stale.text
    changed = verdict(console_app, donor, "honest", expected=first, comment="known contributor, checked on GitHub")
    assert changed.status_code == 303
    rows = review_rows(console_round.db_url, donor)
    assert [(r[1], r[3], r[4]) for r in rows] == [("sybil", "alice", None), ("honest", "carol", first)]
    assert reviewer_label(console_round.db_url, donor) == [
        ("alice", True, "reviewed_sybil", f"review-{first}"), ("carol", False, "honest", f"review-{rows[1][0]}")]
    with connect(console_round.db_url) as conn:
        current = conn.execute("SELECT verdict, reviewer, reviews FROM qf.review_verdicts WHERE donor = %s",
                               (bytes.fromhex(donor[2:]),)).fetchall()  # fmt: skip
    assert current == [("honest", "carol", 2)]
    history = console_app.get(f"/donors/{donor}").text
    assert "burst of fresh wallets" in history
    assert "known contributor, checked on GitHub" in history


def test_a_read_only_login_cannot_review(console_app: TestClient, console_round: ConsoleRound) -> None:
    donor = console_round.flagged[3]
    login(console_app, REVIEWER_TOKEN)
    csrf_alice = csrf_of(console_app.get(f"/donors/{donor}").text)
    login(console_app, VIEWER_TOKEN)
    before = table_counts(console_round.db_url)
    for csrf in (csrf_of(console_app.get("/review").text), csrf_alice):
        response = console_app.post("/review", data={"csrf_token": csrf, "donor": donor, "verdict": "sybil"})
        assert response.status_code == 403
        assert "Nothing was recorded" in response.text
    assert table_counts(console_round.db_url) == before


@pytest.mark.parametrize("csrf", ["", "forged-token", "x" * 43])
def test_a_form_without_its_csrf_token_is_refused(console_app: TestClient, console_round: ConsoleRound,
                                                  csrf: str) -> None:  # fmt: skip
    login(console_app, REVIEWER_TOKEN)
    before = table_counts(console_round.db_url)
    response = verdict(console_app, console_round.flagged[4], "sybil", csrf=csrf)
    assert response.status_code == 400
    assert "Nothing was recorded" in response.text
    assert table_counts(console_round.db_url) == before


@pytest.mark.parametrize(("field", "value", "message"), [
    ("donor", "0x" + "12" * 20, "is not a donor of chain 31337"),
    ("donor", "0x1234", "no valid donor address"),
    ("donor", "'; DROP TABLE qf.labels; --", "no valid donor address"),
    ("verdict", "maybe", "choose a verdict"),
    ("expected", "abc", "current-verdict field was altered"),
    ("expected", "999999", "no longer current"),
    ("decision_id", "not-a-uuid", "decision id was altered"),
    ("comment", "x" * 2001, "at most 2,000"),
])  # fmt: skip
def test_a_tampered_form_is_refused_with_a_clear_message(console_app: TestClient, console_round: ConsoleRound,
                                                         field: str, value: str, message: str) -> None:  # fmt: skip
    login(console_app, REVIEWER_TOKEN)
    before = table_counts(console_round.db_url)
    response = verdict(console_app, console_round.flagged[5], "sybil", tamper={field: value})
    assert response.status_code in (400, 409), response.text
    assert message in response.text
    assert table_counts(console_round.db_url) == before


def test_the_review_log_is_append_only(console_app: TestClient, console_round: ConsoleRound) -> None:
    donor = console_round.flagged[6]
    login(console_app, REVIEWER_TOKEN)
    assert verdict(console_app, donor, "sybil").status_code == 303
    for statement in ("UPDATE qf.review_log SET verdict = 'honest'", "DELETE FROM qf.review_log",
                      "TRUNCATE qf.review_log CASCADE"):  # fmt: skip
        with connect(console_round.db_url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege,
                                                                   match="append-only"):  # fmt: skip
            conn.execute(statement)
    assert [r[1] for r in review_rows(console_round.db_url, donor)] == ["sybil"]


def test_bad_addresses_and_parameters_get_a_clear_error(console_app: TestClient, console_round: ConsoleRound) -> None:
    login(console_app, VIEWER_TOKEN)
    cases = {
        "/rounds/abc": (404, "whole number"), "/rounds/99999": (404, "not indexed"),
        "/donors/0xzz": (404, "not an address"), f"/donors/0x{'12' * 20}": (404, "not a donor"),
        "/donors?decision=MAYBE": (400, "decision must be one of"), "/donors?project=0x12": (400, "recipient id"),
        "/review?status=done": (400, "status must be one of"), "/model/plots/..%2F..%2Fmanifest.json": (404, ""),
        "/model/plots/manifest.json": (404, "no such plot"),
    }
    for path, (status, message) in cases.items():
        response = console_app.get(path)
        assert response.status_code == status, path
        assert message in response.text, path


def test_filters_narrow_the_flagged_donors(console_app: TestClient, console_round: ConsoleRound) -> None:
    login(console_app, VIEWER_TOKEN)
    with connect(console_round.db_url) as conn:
        recipient, donors = conn.execute(
            "SELECT recipient_id, array_agg(DISTINCT donor) FROM qf.donations WHERE pool_id = %s "
            "GROUP BY recipient_id ORDER BY count(DISTINCT donor) LIMIT 1",
            (console_round.pool_id,)).fetchone()  # fmt: skip
        ring = conn.execute("SELECT count(*) FROM qf.donor_risk_latest r JOIN qf.labels l ON l.address = r.donor "
                            "WHERE l.pattern = 'collusion_ring'").fetchone()[0]  # fmt: skip
    page = console_app.get(f"/donors?project={recipient}").text
    shown = {d for d in donors if f'href="/donors/{d}"' in page}
    assert shown == set(donors)
    by_pattern = console_app.get("/donors?pattern=collusion_ring").text
    assert by_pattern.count('<tr class="donor') == ring > 0


def test_no_secret_in_pages_cookies_or_logs(console_round: ConsoleRound) -> None:
    """Tokens never appear in a page, the session cookie, a log line or the database."""
    with capture_logs() as logs, TestClient(create_app(console_round.config()), follow_redirects=False) as client:
        login(client, "wrong-token-0123456789abcdef")
        login(client, REVIEWER_TOKEN)
        pages = [client.get(p).text for p in _pages(console_round)]
        verdict(client, console_round.flagged[7], "honest", comment="checked")
        cookie = client.cookies["qf_console"]
    payload = base64.b64decode(cookie.split(".")[0] + "==")
    assert set(json.loads(payload)) <= {"sid", "csrf", "flash"}, "a session id, the CSRF token, a flash message"
    assert "alice" not in payload.decode()
    text = json.dumps(logs, default=str) + "".join(pages) + payload.decode()
    for secret in (REVIEWER_TOKEN, SECOND_REVIEWER_TOKEN, VIEWER_TOKEN, "wrong-token-0123456789abcdef"):
        assert secret not in text
    events = [e["event"] for e in logs]
    assert {"console_login_refused", "console_login", "console_verdict"} <= set(events)


def test_pages_load_nothing_from_outside(console_app: TestClient, console_round: ConsoleRound) -> None:
    """Scripts and styles come from the console itself (plotly.js from the wheel), under a strict CSP."""
    login(console_app, VIEWER_TOKEN)
    page = console_app.get(f"/rounds/{console_round.pool_id}")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    for marker in ('src="http', "src=\"//", 'href="http', "href=\"//"):
        assert marker not in page.text
    plotly = console_app.get("/static/plotly.min.js")
    assert plotly.status_code == 200
    assert plotly.headers["content-type"].startswith("text/javascript")
    assert len(plotly.content) > 1_000_000
    assert b"plotly" in plotly.content[:2000].lower()
    assert "<script>" not in page.text, "no inline script (the CSP would refuse it)"


def test_health_follows_the_database(console_round: ConsoleRound, pg_server_url: str) -> None:
    """/healthz needs no login and answers 503 once the database is gone (a real server dropping it)."""
    name = "console_health_probe"
    with connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    config = console_round.config(database_url=with_database(pg_server_url, name))
    with TestClient(create_app(config)) as client:
        assert client.get("/healthz").text == "ok"
        with connect(pg_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.text == "database unavailable"


@pytest.mark.parametrize("secure", [False, True])
def test_the_session_cookie_is_http_only_strict_and_secure_when_asked(console_round: ConsoleRound,
                                                                       secure: bool) -> None:  # fmt: skip
    with TestClient(create_app(console_round.config(secure_cookies=secure)), base_url="https://testserver",
                    follow_redirects=False) as client:  # fmt: skip
        cookie = client.get("/login").headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert ("secure" in cookie.replace("samesite", "")) == secure
