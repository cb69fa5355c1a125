"""Connecting: failures are one line, name where, and never show the password."""

from __future__ import annotations

from pathlib import Path

import pytest

from qf_sentinel.qf.db import connect, describe_url, redact_url, with_database
from qf_sentinel.qf.db.embedded import resolve_database_url
from qf_sentinel.qf.errors import DatabaseError
from qf_sentinel.qf.settings import Settings

UNREACHABLE = "postgresql://u:secret@127.0.0.1:1/x"


def test_unreachable_server_error_names_host_and_port_without_password() -> None:
    """A refused connection raises DatabaseError naming 127.0.0.1:1, without the password."""
    with pytest.raises(DatabaseError) as caught:
        connect(UNREACHABLE)
    message = str(caught.value)
    assert "127.0.0.1:1" in message
    assert "secret" not in message
    assert "\n" not in message


def test_configured_url_is_used_and_embedded_server_is_not_started(tmp_path: Path) -> None:
    """With QF_DATABASE_URL set, resolve returns it as is and starts nothing under QF_HOME."""
    settings = Settings(home=tmp_path, database_url=UNREACHABLE)
    assert resolve_database_url(settings) == UNREACHABLE
    assert not settings.pgdata_dir.exists()
    with pytest.raises(DatabaseError, match=r"127\.0\.0\.1:1") as caught:
        connect(resolve_database_url(settings))
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize("url", ["mysql://u:secret@db.example/x", "host=h password=secret nonsense"])
def test_bad_url_is_refused_without_showing_the_password(tmp_path: Path, url: str) -> None:
    """A configured URL libpq cannot parse gives DatabaseError at resolve time, password hidden."""
    settings = Settings(home=tmp_path, database_url=url)
    with pytest.raises(DatabaseError, match="not a PostgreSQL URL") as caught:
        resolve_database_url(settings)
    assert "secret" not in str(caught.value)


def test_wrong_database_on_a_live_server_is_one_line(pg_server_url: str) -> None:
    """A server-side refusal (missing database) comes back as one line naming the database."""
    with pytest.raises(DatabaseError, match='database "no_such_db" does not exist') as caught:
        connect(with_database(pg_server_url, "no_such_db"))
    assert "\n" not in str(caught.value)


def test_url_helpers_hide_passwords_and_swap_databases() -> None:
    """redact_url, describe_url and with_database keep host and port and drop the password."""
    assert redact_url(UNREACHABLE) == "postgresql://u:***@127.0.0.1:1/x"
    assert redact_url("host=h password='s e' user=u") == "host=h password=*** user=u"
    assert describe_url(UNREACHABLE) == "127.0.0.1:1/x"
    socket_url = "postgresql://postgres:@/qf?host=/tmp/pg"
    assert with_database(socket_url, "other") == "postgresql://postgres:@/other?host=/tmp/pg"
