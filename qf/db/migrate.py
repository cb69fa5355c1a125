"""Bring a database's schema up to date from the ``sql/`` files.

A migration is a file ``sql/NNN_name.sql`` at the repository root. Files run
in numeric order, each in its own transaction, and each is recorded in
``qf.schema_migrations`` with the SHA-256 of its bytes. An applied file must
never change: that is refused, write a new migration instead. A session
advisory lock lets two processes that start at once migrate one after the
other. A file must not contain transaction control (``BEGIN``/``COMMIT``) or
statements that cannot run inside a transaction (``CREATE INDEX
CONCURRENTLY``).

Finding the files (`discover`) and deciding what to run (`plan`) need no
database; only `apply_migrations` and `pending_migrations` talk to one, over a
connection from `qf.db.connect`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import NamedTuple

import psycopg
from psycopg import pq
from psycopg.rows import TupleRow

from qf.db import error_line
from qf.errors import DatabaseError

__all__ = [
    "SQL_DIR",
    "AppliedMigration",
    "Migration",
    "apply_migrations",
    "discover",
    "pending_migrations",
    "plan",
]

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"

# Advisory locks are scoped to one database; this key is "qf_migra" in ASCII.
LOCK_KEY = 0x71665F6D69677261

_FILE_NAME = re.compile(r"^(\d+)_(\w+)\.sql$", re.ASCII)

# The runner's own table cannot come from a migration: it must exist before the first one.
_CREATE_TABLE = """
CREATE SCHEMA IF NOT EXISTS qf;
CREATE TABLE IF NOT EXISTS qf.schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One ``NNN_name.sql`` file; ``name`` is the file name, ``checksum`` its SHA-256."""

    version: int
    name: str
    checksum: str
    sql: bytes


class AppliedMigration(NamedTuple):
    """A row of ``qf.schema_migrations``."""

    version: int
    name: str
    checksum: str


def discover(directory: Path = SQL_DIR) -> list[Migration]:
    """The migration files in ``directory``, in the order they must run."""
    if not directory.is_dir():
        raise DatabaseError(f"migrations folder not found: {directory}")
    migrations = []
    for path in directory.glob("*.sql"):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise DatabaseError(f"{path}: a migration file must be named NNN_name.sql")
        body = path.read_bytes()
        checksum = hashlib.sha256(body).hexdigest()
        migrations.append(Migration(int(match[1]), path.name, checksum, body))
    migrations.sort(key=lambda m: m.version)
    for first, second in pairwise(migrations):
        if first.version == second.version:
            raise DatabaseError(f"{first.name} and {second.name} have the same version {first.version}")
    return migrations


def plan(migrations: Sequence[Migration], applied: Iterable[AppliedMigration]) -> list[Migration]:
    """The migrations still to run, after checking that the applied ones are unchanged."""
    by_version = {m.version: m for m in migrations}
    applied_versions = set()
    for row in sorted(applied):
        migration = by_version.get(row.version)
        if migration is None:
            raise DatabaseError(
                f"the database has migration {row.name}, which is not among the migration files"
                " (is this qf older than the database?)"
            )
        if migration.checksum != row.checksum:
            raise DatabaseError(f"{migration.name} changed after it was applied; add a new migration instead")
        applied_versions.add(row.version)
    return [m for m in migrations if m.version not in applied_versions]


def apply_migrations(conn: psycopg.Connection[TupleRow], directory: Path = SQL_DIR) -> list[str]:
    """Run the pending migrations; return the names of those run now (empty if none).

    ``conn`` must have no transaction open: each migration commits on its own.
    """
    migrations = discover(directory)
    if conn.info.transaction_status != pq.TransactionStatus.IDLE:
        raise DatabaseError("apply_migrations needs a connection with no transaction open")
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
    except psycopg.Error as err:
        raise DatabaseError(f"cannot take the migration lock: {error_line(err)}") from err
    try:
        try:
            with conn.transaction():
                conn.execute(_CREATE_TABLE)
                applied = _read_applied(conn)
        except psycopg.Error as err:
            raise DatabaseError(f"cannot read applied migrations: {error_line(err)}") from err
        return [_apply_one(conn, migration) for migration in plan(migrations, applied)]
    finally:
        _unlock(conn)


def pending_migrations(conn: psycopg.Connection[TupleRow], directory: Path = SQL_DIR) -> list[str]:
    """Names of the migrations `apply_migrations` would run, without running them."""
    migrations = discover(directory)
    try:
        with conn.transaction():
            table = conn.execute("SELECT to_regclass('qf.schema_migrations')").fetchone()
            applied = _read_applied(conn) if table and table[0] is not None else []
    except psycopg.Error as err:
        raise DatabaseError(f"cannot read applied migrations: {error_line(err)}") from err
    return [m.name for m in plan(migrations, applied)]


def _apply_one(conn: psycopg.Connection[TupleRow], migration: Migration) -> str:
    try:
        with conn.transaction():
            # Bytes and no parameters: psycopg sends the file as one simple query,
            # so it may hold several statements.
            conn.execute(migration.sql)
            conn.execute(
                "INSERT INTO qf.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                [migration.version, migration.name, migration.checksum],
            )
    except psycopg.Error as err:
        raise DatabaseError(f"migration {migration.name} failed: {error_line(err)}") from err
    return migration.name


def _read_applied(conn: psycopg.Connection[TupleRow]) -> list[AppliedMigration]:
    rows = conn.execute("SELECT version, name, checksum FROM qf.schema_migrations").fetchall()
    return [AppliedMigration(*row) for row in rows]


def _unlock(conn: psycopg.Connection[TupleRow]) -> None:
    if conn.closed:
        return  # the lock was released when the session ended
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
    except psycopg.Error:
        pass  # the session is broken, so it has dropped the lock already
