"""`qf console` as an operator starts it: clear errors without logins, the demo's token file, a live server."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from qf.settings import Settings
from qf_sentinel.cli import demo_console_token
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


def test_the_demo_token_is_private_and_stable(tmp_path: Path) -> None:
    settings = Settings.from_env({"QF_HOME": str(tmp_path)})
    token = demo_console_token(settings)
    path = tmp_path / "console.tokens"
    assert path.read_text() == f"demo:{token}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert demo_console_token(settings) == token, "a second demo keeps the token"


def test_qf_console_serves_with_the_demo_token(migrated_db_url: str, tmp_path: Path) -> None:
    """With no console variable set, `qf console` takes the demo's token file; the token never reaches its output."""
    token = demo_console_token(Settings.from_env({"QF_HOME": str(tmp_path)}))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QF_")}
    env |= {"QF_HOME": str(tmp_path), "QF_DATABASE_URL": migrated_db_url, "QF_LOG_FORMAT": "json"}
    proc = subprocess.Popen([sys.executable, "-m", "qf_sentinel", "console", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "qf console did not start"
            time.sleep(0.2)
        with httpx.Client(base_url=base) as client:
            csrf = csrf_of(client.get("/login").text)
            assert client.post("/login", data={"token": token, "next": "/", "csrf_token": csrf}).status_code == 303
            page = client.get("/")
        assert page.status_code == 503, "nothing is indexed in this database yet"
        assert "run `qf index`" in page.text
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert f"console on http://127.0.0.1:{port}" in out
    assert token not in out + err
