"""The console under hostile requests: oversized and multipart bodies, bad parameters, forged return paths,
forged client addresses and verdicts naming another donor's decision. Each gets a clear 4xx, changes nothing,
and every response (errors included) carries the security headers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from qf_sentinel.console.app import create_app
from qf_sentinel.qf.db import connect
from tests.console.conftest import REVIEWER_TOKEN, VIEWER_TOKEN, ConsoleRound, ServedConsole
from tests.console.helpers import csrf_of, login, table_counts, verdict


def login_count(db_url: str) -> int:
    with connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM qf.console_logins").fetchone()
        assert row is not None
        return int(row[0])


def assert_secure_headers(response: httpx2.Response | httpx.Response, *, static: bool = False) -> None:
    headers = response.headers
    assert "script-src 'self'" in headers.get("content-security-policy", ""), (response.status_code, headers)
    assert headers.get("x-frame-options") == "DENY", response.status_code
    assert headers.get("x-content-type-options") == "nosniff", response.status_code
    if not static:
        assert headers.get("cache-control") == "no-store", response.status_code


# -- bodies (finding 3) --------------------------------------------------------------------------------------------


def test_an_oversized_body_is_refused_before_it_is_read(console_app: TestClient,
                                                        console_round: ConsoleRound) -> None:  # fmt: skip
    """A 1 MB form is refused with 413 before the CSRF check or the login: nothing parsed, nothing recorded."""
    csrf = csrf_of(console_app.get("/login").text)
    before = login_count(console_round.db_url)
    response = console_app.post("/login", data={"token": "x" * 1_000_000, "next": "/", "csrf_token": csrf})
    assert response.status_code == 413
    assert "65,536 bytes" in response.text
    assert_secure_headers(response)
    assert login_count(console_round.db_url) == before


def test_a_multipart_body_is_refused(console_app: TestClient, console_round: ConsoleRound) -> None:
    """No route takes a file: a multipart body is refused (415) before anything is written to a temp file."""
    csrf = csrf_of(console_app.get("/login").text)
    before = login_count(console_round.db_url)
    response = console_app.post("/login", data={"csrf_token": csrf, "next": "/"},
                                files={"token": ("t.bin", b"\0" * 1000)})  # fmt: skip
    assert response.status_code == 415
    assert_secure_headers(response)
    assert login_count(console_round.db_url) == before


def test_the_body_limit_is_a_setting(console_round: ConsoleRound) -> None:
    with TestClient(create_app(console_round.config(max_body_bytes=100)), follow_redirects=False) as client:
        csrf = csrf_of(client.get("/login").text)
        assert client.post("/login", data={"token": REVIEWER_TOKEN, "csrf_token": csrf}).status_code == 303
        response = client.post("/login", data={"token": REVIEWER_TOKEN, "csrf_token": csrf, "next": "/" * 100})
        assert response.status_code == 413
        assert "100 bytes" in response.text


def test_a_chunked_body_is_counted_as_it_streams(served_console: ServedConsole) -> None:
    """Without a Content-Length the console counts the bytes as they arrive and stops at the limit (real uvicorn)."""
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        yield b"token="
        for _ in range(32):  # 256 KiB in 8 KiB chunks
            sent += 8192
            yield b"a" * 8192

    with httpx.Client(base_url=served_console.url) as client:
        client.get("/login")
        response = client.post("/login", content=body(),
                               headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
        assert "content-length" not in response.request.headers
        assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 413
    assert_secure_headers(response)


# -- bad input (finding 7) -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "message"), [
    ("/donors?offset=99999999999999999999", "offset must be a whole number from 0 to"),
    ("/review?offset=99999999999999999999", "offset must be a whole number from 0 to"),
    ("/donors?pattern=%00", "must not contain NUL"),
    ("/review?status=pending%00", "must not contain NUL"),
    ("/rounds/1?usd=%00", "must not contain NUL"),
])  # fmt: skip
def test_bad_parameters_get_a_400(console_round: ConsoleRound, path: str, message: str) -> None:
    with TestClient(create_app(console_round.config()), follow_redirects=False,
                    raise_server_exceptions=False) as client:  # fmt: skip
        login(client, VIEWER_TOKEN)
        response = client.get(path)
    assert response.status_code == 400, response.text[:300]
    assert message in response.text
    assert_secure_headers(response)


def test_a_comment_with_nul_is_refused(console_round: ConsoleRound) -> None:
    with TestClient(create_app(console_round.config()), follow_redirects=False,
                    raise_server_exceptions=False) as client:  # fmt: skip
        login(client, REVIEWER_TOKEN)
        before = table_counts(console_round.db_url)
        response = verdict(client, console_round.flagged[8], "sybil", comment="looks\x00fine")
    assert response.status_code == 400
    assert "NUL" in response.text
    assert table_counts(console_round.db_url) == before


def test_every_response_carries_the_security_headers(console_round: ConsoleRound, db_url: str) -> None:
    """Pages, redirects, static files and every error status: 400, 403, 404, 405, 413, 415 and a real 500."""
    with TestClient(create_app(console_round.config()), follow_redirects=False) as client:
        assert_secure_headers(client.get("/"))  # 303 to the login page
        assert_secure_headers(client.get("/nowhere"))  # 404, not logged in
        assert_secure_headers(client.delete("/login"))  # 405
        assert_secure_headers(client.get("/static/console.css"), static=True)
        login(client, VIEWER_TOKEN)
        for path, status in (("/donors?decision=MAYBE", 400), ("/rounds/abc", 404), ("/", 200)):
            response = client.get(path)
            assert response.status_code == status, path
            assert_secure_headers(response)
        forbidden = client.post("/review", data={"csrf_token": csrf_of(client.get("/review").text)})
        assert forbidden.status_code == 403
        assert_secure_headers(forbidden)
        assert client.put("/review").status_code == 405
        assert_secure_headers(client.put("/review"))
    # A database without the console's tables: the login's record fails, a real unhandled error.
    with TestClient(create_app(console_round.config(database_url=db_url)), follow_redirects=False,
                    raise_server_exceptions=False) as broken:  # fmt: skip
        response = login(broken, VIEWER_TOKEN)
        assert response.status_code == 500
        assert_secure_headers(response)
        assert "Traceback" not in response.text


PAGES = ("/", "/login", "/rounds/{pool}", "/rounds/{pool}/matching.csv", "/donors", "/donors/{donor}", "/review",
         "/experiments", "/model", "/healthz")  # fmt: skip
PARAMS = ("offset", "pattern", "pool", "decision", "project", "status", "usd", "next")
VALUES = st.one_of(
    st.text(max_size=40), st.integers().map(str), st.integers(min_value=10**18, max_value=10**400).map(str),
    st.sampled_from(["\x00", "-1", "1e9", "0x" + "12" * 20, " 1", "１", "NaN", "%00", "../..", "REVIEW"]),
)


def test_no_query_parameter_makes_a_page_fail(console_round: ConsoleRound) -> None:
    """Hypothesis: any query string on any page (logged in) gets a page or a clear 4xx, never a 5xx."""
    with TestClient(create_app(console_round.config()), follow_redirects=False) as client:
        login(client, VIEWER_TOKEN)
        pages = [p.format(pool=console_round.pool_id, donor=console_round.flagged[0]) for p in PAGES]

        @settings(max_examples=300)
        @given(page=st.sampled_from(pages), query=st.dictionaries(st.sampled_from(PARAMS) | st.text(max_size=8),
                                                                  VALUES, max_size=4))  # fmt: skip
        def check(page: str, query: dict[str, str]) -> None:
            response = client.get(page, params=query)
            assert response.status_code < 500, (page, query, response.text[:300])
            assert_secure_headers(response, static=False)

        check()


def test_no_path_segment_makes_a_page_fail(console_round: ConsoleRound) -> None:
    """Hypothesis: any text where a pool, a donor or a plot name goes gets a clear 4xx, never a 5xx."""
    with TestClient(create_app(console_round.config()), follow_redirects=False) as client:
        login(client, VIEWER_TOKEN)

        @settings(max_examples=150)
        @given(segment=st.text(min_size=1, max_size=60))
        def check(segment: str) -> None:
            for template in ("/rounds/{}", "/rounds/{}/matching.csv", "/donors/{}", "/model/plots/{}"):
                response = client.get(template.format(quote(segment, safe="")))
                assert response.status_code < 500, (template, segment, response.text[:300])
                assert_secure_headers(response)

        check()


# -- return paths (finding 8) --------------------------------------------------------------------------------------


@pytest.mark.parametrize("back", ["/\\evil.example", "\\\\evil.example", "/\t/evil.example", "/\n/evil.example",
                                  "//evil.example", "https://evil.example/", "javascript:alert(1)", " /x",
                                  "/\\/evil.example", "http:/evil.example"])  # fmt: skip
def test_the_refusal_page_links_back_only_to_this_site(console_app: TestClient, console_round: ConsoleRound,
                                                        back: str) -> None:  # fmt: skip
    login(console_app, REVIEWER_TOKEN)
    response = verdict(console_app, console_round.flagged[9], "maybe", tamper={"back": back})
    assert response.status_code == 400
    assert '<a href="/review">Back</a>' in response.text


@pytest.mark.parametrize("target", ["/\\evil.example", "/\t/evil.example", "\\/evil.example", "/\\\\evil"])
def test_login_does_not_follow_a_backslash(console_app: TestClient, target: str) -> None:
    assert login(console_app, VIEWER_TOKEN, target).headers["location"] == "/"


# -- client addresses and decision ids (finding 10) ----------------------------------------------------------------


def test_a_forwarded_for_header_is_not_trusted_by_default(served_console: ServedConsole) -> None:
    """The served console records the connecting address, whatever X-Forwarded-For a loopback client sends."""
    with httpx.Client(base_url=served_console.url) as client:
        csrf = csrf_of(client.get("/login").text)
        response = client.post("/login", data={"token": "forged-0123456789abcdef", "csrf_token": csrf},
                               headers={"x-forwarded-for": "203.0.113.9"})  # fmt: skip
    assert response.status_code == 401
    with connect(served_console.round.db_url) as conn:
        remote = conn.execute("SELECT remote FROM qf.console_logins ORDER BY id DESC LIMIT 1").fetchone()
    assert remote == ("127.0.0.1",)


def test_a_configured_proxy_is_trusted_for_the_client_address(console_round: ConsoleRound) -> None:
    config = console_round.config(trusted_proxies=("10.0.0.0/8",))
    for peer, recorded in ((("10.1.2.3", 40000), "203.0.113.9"), (("192.0.2.1", 40000), "192.0.2.1")):
        with TestClient(create_app(config), client=peer, follow_redirects=False) as client:
            csrf = csrf_of(client.get("/login").text)
            client.post("/login", data={"token": "forged-0123456789abcdef", "csrf_token": csrf},
                        headers={"x-forwarded-for": "203.0.113.9"})  # fmt: skip
        with connect(console_round.db_url) as conn:
            remote = conn.execute("SELECT remote FROM qf.console_logins ORDER BY id DESC LIMIT 1").fetchone()
        assert remote == (recorded,), peer


def test_a_verdict_naming_another_donors_decision_is_refused(console_app: TestClient,
                                                              console_round: ConsoleRound) -> None:  # fmt: skip
    donor, other = console_round.flagged[10], console_round.flagged[11]
    with connect(console_round.db_url) as conn:
        row = conn.execute("SELECT decision_id FROM qf.scorer_decisions WHERE donor = %s LIMIT 1",
                           (bytes.fromhex(other[2:]),)).fetchone()  # fmt: skip
    assert row is not None
    login(console_app, REVIEWER_TOKEN)
    before = table_counts(console_round.db_url)
    for decision_id in (str(row[0]), str(uuid.uuid4())):
        response = verdict(console_app, donor, "sybil", tamper={"decision_id": decision_id})
        assert response.status_code == 400, decision_id
        assert f"decision {decision_id} is not a decision about {donor}" in response.text
    assert table_counts(console_round.db_url) == before
    with connect(console_round.db_url) as conn:
        own = conn.execute("SELECT decision_id FROM qf.scorer_decisions WHERE donor = %s AND decision <> 'APPROVE' "
                           "LIMIT 1", (bytes.fromhex(donor[2:]),)).fetchone()  # fmt: skip
    assert own is not None
    accepted = verdict(console_app, donor, "sybil", tamper={"decision_id": str(own[0])})
    assert accepted.status_code == 303, accepted.text[-600:]
