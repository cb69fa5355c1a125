"""Sessions end on the server (logout, expiry, a login no longer configured), survive a restart, and failed
logins are throttled per client and for everyone, on an injected clock."""

from __future__ import annotations

import base64
import hashlib
import json

from starlette.testclient import TestClient

from qf_sentinel.console.app import create_app
from qf_sentinel.qf.db import connect
from tests.console.conftest import REVIEWER_TOKEN, SECOND_REVIEWER_TOKEN, VIEWER_TOKEN, ConsoleRound
from tests.console.helpers import csrf_of, login
from tests.console.test_hardening import assert_secure_headers

WRONG = "wrong-token-0123456789abcdef"


def test_logout_ends_the_session_for_every_copy_of_the_cookie(console_round: ConsoleRound) -> None:
    """A cookie copied before logout opens nothing after it."""
    app = create_app(console_round.config())
    with TestClient(app, follow_redirects=False) as client:
        login(client, REVIEWER_TOKEN)
        copied = dict(client.cookies)
        page = client.get("/")
        assert page.status_code == 200
        assert client.post("/logout", data={"csrf_token": csrf_of(page.text)}).status_code == 303
        assert client.get("/").status_code == 303
        client.cookies.clear()
        client.cookies.update(copied)
        replayed = client.get("/")
    assert replayed.status_code == 303, "the copied cookie was revoked at logout"
    assert replayed.headers["location"].startswith("/login")


def test_a_restarted_console_keeps_its_sessions(console_round: ConsoleRound) -> None:
    """Two app instances (a restart) with the configured signing key: the session carries over."""
    with TestClient(create_app(console_round.config()), follow_redirects=False) as first:
        login(first, VIEWER_TOKEN)
        cookies = dict(first.cookies)
    with TestClient(create_app(console_round.config()), follow_redirects=False, cookies=cookies) as second:
        assert second.get("/").status_code == 200


def test_a_session_expires_on_the_server(console_round: ConsoleRound) -> None:
    with TestClient(create_app(console_round.config()), follow_redirects=False) as client:
        login(client, VIEWER_TOKEN)
        assert client.get("/").status_code == 200
        with connect(console_round.db_url) as conn:
            conn.execute("UPDATE qf.console_sessions SET expires_at = now() - interval '1 second' "
                         "WHERE reviewer = 'bob' AND expires_at > now()")  # fmt: skip
            conn.commit()
        assert client.get("/").status_code == 303


def test_a_login_no_longer_configured_loses_its_sessions(console_round: ConsoleRound) -> None:
    with TestClient(create_app(console_round.config()), follow_redirects=False) as client:
        login(client, SECOND_REVIEWER_TOKEN)
        cookies = dict(client.cookies)
    without_carol = console_round.config(reviewers={"alice": REVIEWER_TOKEN})
    with TestClient(create_app(without_carol), follow_redirects=False, cookies=cookies) as client:
        assert client.get("/").status_code == 303


def test_the_cookie_holds_no_name_and_the_table_no_session_id(console_round: ConsoleRound) -> None:
    with TestClient(create_app(console_round.config()), follow_redirects=False) as client:
        login(client, VIEWER_TOKEN)
        cookie = client.cookies["qf_console"]
    with connect(console_round.db_url) as conn:
        hashes = [bytes(r[0]) for r in conn.execute("SELECT id_hash FROM qf.console_sessions")]
    assert hashes
    assert all(len(h) == 32 for h in hashes)
    payload = json.loads(base64.b64decode(cookie.split(".")[0] + "=="))
    assert set(payload) == {"sid", "csrf"}
    assert hashlib.sha256(payload["sid"].encode()).digest() in hashes, "the table holds the id's hash only"
    assert payload["sid"].encode() not in hashes


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def attempt(client: TestClient, token: str, address: str) -> tuple[int, str | None]:
    """A login from ``address`` (as a trusted proxy in front of the console names it)."""
    csrf = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"token": token, "csrf_token": csrf, "next": "/"},
                           headers={"x-forwarded-for": address})  # fmt: skip
    if response.status_code == 429:
        assert_secure_headers(response)
    return response.status_code, response.headers.get("retry-after")


def test_failed_logins_are_throttled_per_client(console_round: ConsoleRound) -> None:
    """After 3 failures in a 60 s window a client gets 429 with Retry-After, even with the right token;
    another client is not affected; the allowance refills with (injected) time."""
    clock = Clock()
    config = console_round.config(trusted_proxies=("10.0.0.0/8",), login_failures=3, login_window_seconds=60.0)
    with TestClient(create_app(config, clock=clock), client=("10.0.0.2", 40000), follow_redirects=False) as client:
        assert [attempt(client, WRONG, "198.51.100.7")[0] for _ in range(3)] == [401, 401, 401]
        assert attempt(client, REVIEWER_TOKEN, "198.51.100.7") == (429, "20")
        assert attempt(client, VIEWER_TOKEN, "198.51.100.8")[0] == 303, "another client may log in"
        clock.now += 19.0
        assert attempt(client, REVIEWER_TOKEN, "198.51.100.7") == (429, "1")
        clock.now += 1.0
        assert attempt(client, WRONG, "198.51.100.7")[0] == 401, "one more try after a third of the window"
        assert attempt(client, REVIEWER_TOKEN, "198.51.100.7")[0] == 429
        clock.now += 20.0
        assert attempt(client, REVIEWER_TOKEN, "198.51.100.7")[0] == 303


def test_failed_logins_from_everyone_are_capped(console_round: ConsoleRound) -> None:
    """A guesser spread over many addresses meets the global allowance: then every login waits."""
    clock = Clock()
    config = console_round.config(trusted_proxies=("10.0.0.0/8",), login_failures=5, login_global_failures=4,
                                  login_window_seconds=60.0)  # fmt: skip
    with TestClient(create_app(config, clock=clock), client=("10.0.0.2", 40000), follow_redirects=False) as client:
        assert [attempt(client, WRONG, f"198.51.100.{i}")[0] for i in range(4)] == [401] * 4
        assert attempt(client, REVIEWER_TOKEN, "203.0.113.1") == (429, "15")
        clock.now += 15.0
        assert attempt(client, REVIEWER_TOKEN, "203.0.113.1")[0] == 303
