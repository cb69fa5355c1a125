"""`qf console` as an operator starts it: clear errors without logins, the demo's token file, a live server."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from qf_sentinel.cli import demo_console_token
from qf_sentinel.qf.db import connect
from qf_sentinel.qf.settings import Settings
from tests.console.helpers import csrf_of
from tests.fixtures.chain import free_port
from tests.test_cli import assert_one_line_error, qf


def test_no_login_configured_is_one_line(migrated_db_url: str, tmp_path: Path) -> None:
    proc = qf("console", env={"QF_DATABASE_URL": migrated_db_url}, home=tmp_path)
    assert_one_line_error(proc, "QF_CONSOLE_REVIEWER_TOKENS")


def test_a_short_token_is_refused_without_echoing_it(migrated_db_url: str, tmp_path: Path) -> None:
    proc = qf("console", env={"QF_DATABASE_URL": migrated_db_url, "QF_CONSOLE_REVIEWER_TOKENS": "alice:short-secret"},
              home=tmp_path)  # fmt: skip
    assert "short-secret" not in assert_one_line_error(proc, "QF_CONSOLE_REVIEWER_TOKENS", "16 characters")


def test_a_low_entropy_token_is_refused_without_echoing_it(migrated_db_url: str, tmp_path: Path) -> None:
    """Long enough but guessable: refused at startup, naming the setting and the login, never the token."""
    for variable in ("QF_CONSOLE_REVIEWER_TOKENS", "QF_CONSOLE_VIEWER_TOKENS"):
        proc = qf("console", env={"QF_DATABASE_URL": migrated_db_url, variable: "alice:aaaaaaaaaaaaaaaa"},
                  home=tmp_path)  # fmt: skip
        assert_one_line_error(proc, variable, "'alice'", "too little entropy")
        assert "aaaa" not in proc.stdout + proc.stderr


SECRET = "3f9c1a7e5b2d4c6e8a0b1d3f5e7c9a2b4d6f8e0a1c3e5b7d9f2a4c6e8b0d2f4a"


def test_the_session_key_must_be_configured_and_strong(migrated_db_url: str, tmp_path: Path) -> None:
    env = {"QF_DATABASE_URL": migrated_db_url, "QF_CONSOLE_REVIEWER_TOKENS": "alice:3f9c1a7e5b2d4c6e8a0b1d3f5e7c9a2b"}
    assert_one_line_error(qf("console", env=env, home=tmp_path), "QF_CONSOLE_SESSION_SECRET")
    short = qf("console", env=env | {"QF_CONSOLE_SESSION_SECRET": "x7Kq2"}, home=tmp_path)
    assert_one_line_error(short, "QF_CONSOLE_SESSION_SECRET", "at least 32 characters")
    (tmp_path / "key").write_text("ab" * 20 + "\n")
    weak = qf("console", env=env | {"QF_CONSOLE_SESSION_SECRET_FILE": str(tmp_path / "key")}, home=tmp_path)
    assert "abab" not in assert_one_line_error(weak, "QF_CONSOLE_SESSION_SECRET", "too little entropy")
    proxies = qf("console", env=env | {"QF_CONSOLE_SESSION_SECRET": SECRET,
                                       "QF_CONSOLE_TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal"}, home=tmp_path)
    assert_one_line_error(proxies, "QF_CONSOLE_TRUSTED_PROXIES", "'proxy.internal' is not an IP address")


def test_the_demo_token_and_key_are_private_and_stable(tmp_path: Path) -> None:
    settings = Settings.from_env({"QF_HOME": str(tmp_path)})
    token = demo_console_token(settings)
    path = tmp_path / "console.tokens"
    assert path.read_text() == f"demo:{token}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = tmp_path / "console.secret"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(key.read_text().strip()) >= 32
    first = key.read_text()
    assert demo_console_token(settings) == token, "a second demo keeps the token"
    assert key.read_text() == first, "and the session key"


def _start_console(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "qf_sentinel", "console", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(base + "/healthz").status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "qf console did not start"
        time.sleep(0.2)


def _stop_console(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    out, err = proc.communicate(timeout=30)
    return out + err


def test_qf_console_serves_with_the_demo_token(migrated_db_url: str, tmp_path: Path) -> None:
    """With no console variable set, `qf console` takes the demo's token and key files; the token never reaches
    its output, a forged X-Forwarded-For is not believed, and a session outlives a restart (the key is kept)."""
    token = demo_console_token(Settings.from_env({"QF_HOME": str(tmp_path)}))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QF_")}
    env |= {"QF_HOME": str(tmp_path), "QF_DATABASE_URL": migrated_db_url, "QF_LOG_FORMAT": "json"}
    base = f"http://127.0.0.1:{port}"
    proc = _start_console(env, port)
    try:
        with httpx.Client(base_url=base) as client:
            csrf = csrf_of(client.get("/login").text)
            login = client.post("/login", data={"token": token, "next": "/", "csrf_token": csrf},
                                headers={"x-forwarded-for": "203.0.113.9"})  # fmt: skip
            assert login.status_code == 303
            page = client.get("/")
            cookies = dict(client.cookies)
        assert page.status_code == 503, "nothing is indexed in this database yet"
        assert "run `qf index`" in page.text
    finally:
        output = _stop_console(proc)
    assert f"console on http://127.0.0.1:{port}" in output
    assert token not in output
    with connect(migrated_db_url) as conn:
        assert conn.execute("SELECT remote FROM qf.console_logins").fetchall() == [("127.0.0.1",)]
    proc = _start_console(env, port)
    try:
        with httpx.Client(base_url=base, cookies=cookies) as client:
            again = client.get("/")
    finally:
        _stop_console(proc)
    assert again.status_code == 503, "still logged in after the restart"
