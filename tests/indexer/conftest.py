"""Fixtures shared by the indexer tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from psycopg import sql

from qf_sentinel.qf.db import connect, with_database


@pytest.fixture
def second_db(pg_server_url: str) -> Iterator[str]:
    """Another empty database on the same server, for a reference backfill."""
    name = f"test_ref_{uuid.uuid4().hex}"
    with connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield with_database(pg_server_url, name)
    with connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
