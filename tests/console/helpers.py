"""Logging in and submitting forms the way a browser does: the CSRF token is read from the page served."""

from __future__ import annotations

import re
from typing import Any

import httpx2
from starlette.testclient import TestClient

from qf_sentinel.qf.db import connect

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page carries no CSRF field"
    return found.group(1)


def login(client: TestClient, token: str, next_path: str = "/") -> httpx2.Response:
    page = client.get("/login")
    assert page.status_code == 200
    return client.post("/login", data={"token": token, "next": next_path, "csrf_token": csrf_of(page.text)})


def verdict(client: TestClient, donor: str, choice: str, *, expected: int | None = None, comment: str = "",
            csrf: str | None = None, tamper: dict[str, str] | None = None) -> httpx2.Response:  # fmt: skip
    """Submit the review form of ``donor`` as its page shows it (``csrf`` overrides the page's token,
    ``tamper`` any field, as a forged or altered form would)."""
    page = client.get(f"/donors/{donor}")
    assert page.status_code == 200, page.text
    form = {"csrf_token": csrf if csrf is not None else csrf_of(page.text), "donor": donor, "verdict": choice,
            "expected": "" if expected is None else str(expected), "comment": comment, "back": "/review"}
    return client.post("/review", data=form | (tamper or {}))


def review_rows(db_url: str, donor: str) -> list[tuple[Any, ...]]:
    with connect(db_url) as conn:
        return conn.execute(
            "SELECT id, verdict, comment, reviewer, supersedes FROM qf.review_log WHERE donor = %s ORDER BY id",
            (bytes.fromhex(donor[2:]),),
        ).fetchall()


def reviewer_label(db_url: str, donor: str) -> list[tuple[Any, ...]]:
    """The donor's labels written by reviewers (every source but the simulator's)."""
    with connect(db_url) as conn:
        return conn.execute(
            "SELECT source, is_sybil, pattern, run_id FROM qf.labels WHERE address = %s AND source <> 'simulate' "
            "ORDER BY source",
            (bytes.fromhex(donor[2:]),),
        ).fetchall()


def table_counts(db_url: str) -> tuple[int, int]:
    with connect(db_url) as conn:
        row = conn.execute("SELECT (SELECT count(*) FROM qf.review_log), (SELECT count(*) FROM qf.labels)").fetchone()
        assert row is not None
        return int(row[0]), int(row[1])
