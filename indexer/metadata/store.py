"""The fetcher's Postgres edge: the pointer queue (``qf.metadata_pointers``) and the cache (``qf.ipfs_metadata``).

The fetcher's own connection, in autocommit: every statement is its own short
transaction, and none is open while a gateway is asked anything, so the
indexer's trigger that queues new pointers never waits on a fetch. A claimed
pointer is leased (its ``next_attempt_at`` moved past the fetch's longest
duration) rather than locked, so a fetcher that dies mid-fetch loses nothing:
the pointer is due again when the lease ends. Times come from the caller's
clock, never the database's, so tests can step time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import psycopg
from psycopg.rows import TupleRow

from qf_sentinel.qf.db import connect

#: What Postgres says when it will not hold a value as jsonb: bad input (class 22) or past a limit (54).
_REFUSED = (psycopg.DataError, psycopg.errors.ProgramLimitExceeded, psycopg.errors.StatementTooComplex)


@dataclass(frozen=True, slots=True)
class Pending:
    """A queued pointer, with the attempts made before this one."""

    protocol: int
    pointer: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Document:
    """A verified file, ready to store."""

    cid: str
    content: bytes
    blocks: int
    gateway: str


class MetadataStore:
    """Claims, results and the backlog count, over one lazily (re)opened connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.Connection[TupleRow] | None = None

    @property
    def conn(self) -> psycopg.Connection[TupleRow]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = connect(self.url, autocommit=True)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def claim(self, now: datetime, *, limit: int, lease_until: datetime) -> list[Pending]:
        """Up to ``limit`` pointers due at ``now``, oldest due first, leased until ``lease_until``."""
        rows = self.conn.execute(
            """
            UPDATE qf.metadata_pointers p SET next_attempt_at = %(lease)s, last_attempt_at = %(now)s
            FROM (SELECT protocol, pointer FROM qf.metadata_pointers
                  WHERE status = 'pending' AND next_attempt_at <= %(now)s
                  ORDER BY next_attempt_at, first_seen_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED) due
            WHERE p.protocol = due.protocol AND p.pointer = due.pointer
            RETURNING p.protocol, p.pointer, p.attempts
            """,
            {"now": now, "lease": lease_until, "limit": limit},
        ).fetchall()
        return [Pending(int(protocol), pointer, attempts) for protocol, pointer, attempts in rows]

    def store(self, pending: Pending, document: Document, now: datetime, json_text: str | None) -> str:
        """Cache the document and mark the pointer fetched; returns the format stored (``json`` or ``bytes``).

        ``json_text`` is the document as jsonb may hold it (`indexer.sanitise.json_document`), None when it
        is to be stored as bytes. Postgres still judges the jsonb: if it refuses, the bytes are stored.
        """
        with self.conn.transaction():
            stored = "bytes"
            if json_text is not None:
                try:
                    with self.conn.transaction():  # a savepoint
                        self._insert(document, now, "json", body=json_text, raw=None)
                    stored = "json"
                except _REFUSED:
                    pass
            if stored == "bytes":
                self._insert(document, now, "bytes", body=None, raw=document.content)
            self.conn.execute(
                "UPDATE qf.metadata_pointers SET status = 'fetched', attempts = attempts + 1, last_error = NULL"
                " WHERE protocol = %s AND pointer = %s",
                [Decimal(pending.protocol), pending.pointer],
            )
        return stored

    def fail(self, pending: Pending, error: str, next_attempt_at: datetime | None) -> None:
        """Record a failed attempt: retried at ``next_attempt_at``, or never (``invalid``) when it is None."""
        self.conn.execute(
            "UPDATE qf.metadata_pointers SET attempts = attempts + 1, last_error = %s,"
            " status = CASE WHEN %s::timestamptz IS NULL THEN 'invalid' ELSE 'pending' END,"
            " next_attempt_at = coalesce(%s::timestamptz, next_attempt_at)"
            " WHERE protocol = %s AND pointer = %s",
            [error, next_attempt_at, next_attempt_at, Decimal(pending.protocol), pending.pointer],
        )

    def skip(self, pending: Pending, reason: str) -> None:
        """Mark a pointer that is not to be fetched (another protocol than IPFS)."""
        self.conn.execute(
            "UPDATE qf.metadata_pointers SET status = 'skipped', last_error = %s WHERE protocol = %s AND pointer = %s",
            [reason, Decimal(pending.protocol), pending.pointer],
        )

    def pending_count(self) -> int:
        row = self.conn.execute("SELECT count(*) FROM qf.metadata_pointers WHERE status = 'pending'").fetchone()
        return int(row[0]) if row else 0

    def _insert(self, document: Document, now: datetime, fmt: str, *, body: str | None, raw: bytes | None) -> None:
        self.conn.execute(
            "INSERT INTO qf.ipfs_metadata (cid, format, body, raw, size_bytes, blocks, gateway, fetched_at)"
            " VALUES (%s, %s, %s::jsonb, %s, %s, %s, %s, %s) ON CONFLICT (cid) DO NOTHING",
            [document.cid, fmt, body, raw, len(document.content), document.blocks, document.gateway, now],
        )
