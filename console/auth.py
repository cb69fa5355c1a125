"""Who is logged in: token logins compared in constant time, and the CSRF token of a session.

Tokens come from configuration (``QF_CONSOLE_REVIEWER_TOKENS`` and
``QF_CONSOLE_VIEWER_TOKENS``, like the sidecar's). A login is checked against
every token in constant time (:func:`qf.tokens.lookup`, as the sidecar's
clients are), never stopping at the first match, so the time taken does not
tell which token, or how much of one, was right. The session cookie (signed by Starlette's ``SessionMiddleware`` with
``QF_CONSOLE_SESSION_SECRET``) then holds a random session id and the CSRF
token, never the token nor the name: :mod:`console.sessions` maps the id to
the login on the server, so logging out ends it for every copy of the cookie.

CSRF: each session gets a random token, sent back in a hidden field of every
form and compared in constant time. Starlette ships no CSRF protection and the
synchronizer-token pattern is a dozen lines, so it is written here rather than
adding a package for it.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

from qf_sentinel.qf.tokens import lookup

Role = Literal["reviewer", "viewer"]

CSRF_FIELD = "csrf_token"
_CSRF_KEY = "csrf"
_SESSION_KEY = "sid"


@dataclass(frozen=True, slots=True)
class Login:
    name: str
    role: Role

    @property
    def may_review(self) -> bool:
        return self.role == "reviewer"


def authenticate(token: str, reviewers: Mapping[str, str], viewers: Mapping[str, str]) -> Login | None:
    """The login whose token this is, or None; every configured token is compared, in constant time."""
    logins = [(expected.encode(), Login(name, "reviewer")) for name, expected in reviewers.items()]
    logins += [(expected.encode(), Login(name, "viewer")) for name, expected in viewers.items()]
    return lookup(token.encode(), logins)


def session_id(session: Mapping[str, Any]) -> str | None:
    """The server-side session id the cookie carries, if any (:mod:`console.sessions` says whose it is)."""
    value = session.get(_SESSION_KEY)
    return value if isinstance(value, str) and value else None


def start_session(session: MutableMapping[str, Any], sid: str) -> None:
    """Log in: a fresh cookie (and CSRF token), so a token planted before login is worthless after."""
    session.clear()
    session.update({_SESSION_KEY: sid, _CSRF_KEY: secrets.token_urlsafe(32)})


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """The session's CSRF token, created on first use (the login form needs one before anyone logs in)."""
    token = session.get(_CSRF_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[_CSRF_KEY] = token
    return token


def csrf_valid(session: Mapping[str, Any], submitted: object) -> bool:
    expected = session.get(_CSRF_KEY)
    if not isinstance(expected, str) or not isinstance(submitted, str):
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode())
