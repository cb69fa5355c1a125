"""Server-side sessions: the cookie carries a random id, ``qf.console_sessions`` says whose it is and until when.

Logging out deletes the row, so a copied cookie dies with the session, and a
session ends at ``expires_at`` on the server whatever the browser keeps. Only
the id's SHA-256 is stored. The cookie itself is signed with the configured
``QF_CONSOLE_SESSION_SECRET``, so a restarted console keeps its sessions.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import psycopg

from qf_sentinel.console.auth import Login

SESSION_HOURS = 8


def _hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


def open_session(conn: psycopg.Connection[Any], login: Login, remote: str, hours: float = SESSION_HOURS) -> str:
    """A new session for ``login``: its id (for the cookie). Expired sessions are swept at the same time."""
    session_id = secrets.token_urlsafe(32)
    with conn.transaction():
        conn.execute("DELETE FROM qf.console_sessions WHERE expires_at <= now()")
        conn.execute(
            "INSERT INTO qf.console_sessions (id_hash, reviewer, role, remote, expires_at) "
            "VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s))",
            (_hash(session_id), login.name, login.role, remote, hours * 3600.0),
        )
    return session_id


def session_login(conn: psycopg.Connection[Any], session_id: str) -> Login | None:
    """Whose session this is, or None when it was closed, has expired, or never existed."""
    row = conn.execute(
        "SELECT reviewer, role FROM qf.console_sessions WHERE id_hash = %s AND expires_at > now()",
        (_hash(session_id),),
    ).fetchone()
    if row is None or row[1] not in ("reviewer", "viewer"):
        return None
    return Login(row[0], row[1])


def close_session(conn: psycopg.Connection[Any], session_id: str) -> None:
    conn.execute("DELETE FROM qf.console_sessions WHERE id_hash = %s", (_hash(session_id),))
