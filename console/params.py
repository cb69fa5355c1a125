"""What a request may ask for: its path and query parameters checked where they enter, refused with a clear 4xx.

Every page reads its parameters through these functions, so a bad value is a
400 or 404 with a message saying what is allowed, never a 500 from deeper down
(a NUL that PostgreSQL text cannot hold, an offset past a bigint) and never an
open redirect (:func:`safe_next`). They are pure functions of the text; the
only I/O is the :class:`~starlette.exceptions.HTTPException` they raise, which
the console renders (:meth:`console.site.Console.http_error`).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request

from qf_sentinel.console import queries
from qf_sentinel.qf.eth import address

#: The scorer's decisions a donor listing can be narrowed to.
DECISIONS = ("APPROVE", "REVIEW", "BLOCK")
#: The review queue's views.
STATUSES = ("pending", "reviewed", "all")
#: Deeper than any real queue; PostgreSQL's OFFSET is a bigint, and a page this deep is empty anyway.
MAX_OFFSET = 1_000_000_000


def safe_next(target: str | None, default: str = "/") -> str:
    """A path on this site to return to (after login, or from a refusal page); anything else gives ``default``.

    Browsers read a backslash as a slash and drop tabs and line breaks from a URL,
    so ``/\\evil.example`` and ``/<TAB>/evil.example`` become ``//evil.example``,
    another host: a path must start with one ``/`` and hold no backslash, no
    whitespace or control character, and no scheme or host in any form.
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def check_query(request: Request) -> None:
    """PostgreSQL text holds no NUL: a parameter with one is refused here rather than failing a query."""
    if any("\x00" in key or "\x00" in value for key, value in request.query_params.multi_items()):
        raise HTTPException(400, "query parameters must not contain NUL characters")


def int_param(text: str, what: str) -> int:
    """A pool or chain id: a whole number, not negative (else 404: no such page)."""
    try:
        value = int(text)
    except ValueError:
        raise HTTPException(404, f"{what} must be a whole number, not {text[:40]!r}") from None
    if value < 0:
        raise HTTPException(404, f"{what} must not be negative")
    return value


def donor_filter(q: Mapping[str, str]) -> tuple[queries.DonorFilter, int | None]:
    """The donor listing's filters, and the chain of a pool given as ``CHAIN:POOL`` (None for a bare pool id)."""
    decision = q.get("decision") or None
    if decision is not None and decision not in DECISIONS:
        raise HTTPException(400, f"decision must be one of {', '.join(DECISIONS)}")
    project = None
    if q.get("project"):
        try:
            project = address(q["project"].strip())
        except ValueError:
            raise HTTPException(400, "project must be a recipient id: 0x and 40 hex digits") from None
    pool_text, pool_chain = q.get("pool") or "", None
    if ":" in pool_text:
        chain_part, _, pool_text = pool_text.partition(":")
        pool_chain = int_param(chain_part, "chain")
    return queries.DonorFilter(
        pool_id=int_param(pool_text, "pool") if pool_text else None, decision=decision,
        pattern=q.get("pattern") or None, project=project, offset=page_offset(q.get("offset")),
    ), pool_chain  # fmt: skip


def usd_flag(text: str | None) -> bool:
    """``?usd=1`` (amounts in USD) or ``0``/absent (in the pool's token)."""
    if text in (None, "", "0"):
        return False
    if text == "1":
        return True
    raise HTTPException(400, "usd must be 1 or 0")


def page_offset(text: str | None) -> int:
    """Rows to skip in a paged listing: 0 to :data:`MAX_OFFSET` (absent or negative: 0)."""
    if not text:
        return 0
    try:
        value = max(0, int(text))
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_OFFSET:
        raise HTTPException(400, f"offset must be a whole number from 0 to {MAX_OFFSET:,}")
    return value
