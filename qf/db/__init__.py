"""Connections to the project's PostgreSQL database.

This module opens connections and turns their failures into one-line
`DatabaseError` messages that never show a password. Its neighbours decide
*which* database: `qf.db.embedded` starts the default server under QF_HOME
when no URL is configured, and `qf.db.migrate` brings a database's schema up
to date. Typical use at an entry point::

    url = resolve_database_url(settings)
    with connect(url) as conn:
        apply_migrations(conn)
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow

from qf_sentinel.qf.errors import DatabaseError

__all__ = ["connect", "describe_url", "error_line", "parse_url", "redact_url", "with_database"]

CONNECT_TIMEOUT_SECONDS = 10
#: The indexer NOTIFYs here after refreshing the analytics (payload: the chain id); the sidecar LISTENs.
VIEWS_REFRESHED_CHANNEL = "qf_views_refreshed"

_URL_PASSWORD = re.compile(r"(://[^:/@?#]*:)[^@/?#]*@")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")
# libpq prefixes every failure with where it tried to connect; we say that ourselves.
_LIBPQ_PREFIX = re.compile(
    r"^(?:connection failed: )?(?:connection to server (?:at|on socket) .*? failed: )?"
    r"(?:FATAL:\s+)?"
)


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection[TupleRow]:
    """Open a connection; on failure raise `DatabaseError` naming host, port and database.

    A ``connect_timeout`` is added unless the URL sets one, so an unreachable
    host fails in seconds instead of hanging on the TCP handshake.
    """
    params = parse_url(url)
    extra: dict[str, Any] = {}
    if "connect_timeout" not in params:
        extra["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    try:
        return psycopg.connect(url, autocommit=autocommit, **extra)
    except psycopg.Error as err:
        reason = error_line(err, password=params.get("password"))
        raise DatabaseError(f"cannot connect to PostgreSQL at {describe_url(url)}: {reason}") from None


def parse_url(url: str) -> dict[str, str]:
    """The connection parameters of a URL or key=value string, or `DatabaseError`."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:
        # libpq's parse errors quote the whole string, password included.
        raise DatabaseError(
            f"not a PostgreSQL URL (postgresql://user@host:port/dbname): {redact_url(url)}"
        ) from None
    return {key: str(value) for key, value in params.items() if value is not None}


def describe_url(url: str) -> str:
    """``host:port/dbname`` for messages and logs: where, never the password."""
    params = parse_url(url)
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = params.get("port") or "5432"
    dbname = params.get("dbname") or params.get("user") or "postgres"
    return f"{host}:{port}/{dbname}"


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``."""
    return _KV_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", url))


def with_database(url: str, dbname: str) -> str:
    """The same server URL pointing at another database (``postgresql://`` URLs only)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise DatabaseError(f"not a postgresql:// URL: {redact_url(url)}")
    return urlunsplit(parts._replace(path=f"/{dbname}"))


def error_line(err: BaseException, *, password: str | None = None) -> str:
    """The first line of a driver error, for a one-line `DatabaseError` message."""
    text = str(err).strip()
    line = _LIBPQ_PREFIX.sub("", text.splitlines()[0]) if text else type(err).__name__
    if password:
        line = line.replace(password, "***")
    return line
