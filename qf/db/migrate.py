"""Bring a database's schema up to date from the ``sql/`` files.

A migration is a file ``sql/NNN_name.sql`` at the repository root. Files run
in numeric order, each in its own transaction, and each is recorded in
``qf.schema_migrations`` with the SHA-256 of its bytes. An applied file must
never change: that is refused, write a new migration instead. A session
advisory lock lets two processes that start at once migrate one after the
other. A file must not contain transaction control (``BEGIN``/``COMMIT``) or
statements that cannot run inside a transaction (``CREATE INDEX
CONCURRENTLY``).

The current definition of each view and function is not in those files (which
keep the earlier ones as history) but in a repeatable file,
``sql/repeatable/NN_name.sql`` (Flyway's repeatable migrations): one view or
function each, as ``CREATE OR REPLACE`` and its comments, so it can run again.
After the versioned files, every repeatable file that is new, whose SHA-256
differs from the one recorded in ``qf.schema_repeatables``, or whose view or
function is missing from the database (a migration dropped it, or a file before
it dropped it with ``CASCADE``) runs, all in one transaction, in order of ``NN``
then name: a file's ``NN`` is greater than that of every file defining a view or
function it reads. The transaction then checks that every view and function of
the files exists and that no other view was dropped on the way (one of an
analyst's own reading ours); if not, or if any file fails, nothing of it stays
and the old definitions are kept.

Finding the files (`discover`, `discover_repeatable`) and deciding what to run
(`plan`) need no database; only `apply_migrations` and `pending_migrations` talk
to one, over a connection from `qf.db.connect`.
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

from qf_sentinel.qf.db import error_line
from qf_sentinel.qf.errors import DatabaseError
from qf_sentinel.qf.package_data import shipped

__all__ = [
    "SQL_DIR",
    "AppliedMigration",
    "Migration",
    "Repeatable",
    "apply_migrations",
    "discover",
    "discover_repeatable",
    "pending_migrations",
    "plan",
]

SQL_DIR = shipped("sql")
# The repeatable files live in this folder of the migrations folder (sql/repeatable/).
REPEATABLE_FOLDER = "repeatable"

# Advisory locks are scoped to one database; this key is "qf_migra" in ASCII.
LOCK_KEY = 0x71665F6D69677261

_FILE_NAME = re.compile(r"^(\d+)_(\w+)\.sql$", re.ASCII)
# What a repeatable file defines: each CREATE [OR REPLACE] VIEW/FUNCTION qf.name at the start of a line.
_DEFINES = re.compile(rb"^CREATE\s+(?:OR\s+REPLACE\s+)?(VIEW|FUNCTION)\s+qf\.(\w+)", re.ASCII | re.MULTILINE)

# The runner's own table cannot come from a migration: it must exist before the first one.
_CREATE_TABLE = """
CREATE SCHEMA IF NOT EXISTS qf;
CREATE TABLE IF NOT EXISTS qf.schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS qf.schema_repeatables (
    name       text        PRIMARY KEY,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""

# The views of every schema but the system's, by name: none may vanish while the repeatable files run.
_ALL_VIEWS = """
SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One ``NNN_name.sql`` file; ``name`` is the file name, ``checksum`` its SHA-256."""

    version: int
    name: str
    checksum: str
    sql: bytes


@dataclass(frozen=True, slots=True)
class Repeatable:
    """One ``sql/repeatable/NN_name.sql`` file: ``views`` and ``functions`` are the qf names it creates."""

    order: int
    name: str
    checksum: str
    sql: bytes
    views: tuple[str, ...]
    functions: tuple[str, ...]


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


def discover_repeatable(directory: Path = SQL_DIR) -> list[Repeatable]:
    """The repeatable files in ``directory``'s ``repeatable`` folder (none if it has none), in the order they run."""
    folder = directory / REPEATABLE_FOLDER
    if not folder.is_dir():
        return []
    files = []
    defined: dict[str, str] = {}
    for path in folder.glob("*.sql"):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise DatabaseError(f"{path}: a repeatable file must be named NN_name.sql")
        body = path.read_bytes()
        views: list[str] = []
        functions: list[str] = []
        for kind, name in _DEFINES.findall(body):
            (views if kind == b"VIEW" else functions).append(name.decode())
        if not views and not functions:
            raise DatabaseError(f"{path}: a repeatable file must CREATE OR REPLACE a qf view or function")
        for key in [f"view qf.{v}" for v in views] + [f"function qf.{f}" for f in functions]:
            if key in defined and defined[key] != path.name:
                raise DatabaseError(f"{defined[key]} and {path.name} both define {key}")
            defined[key] = path.name
        checksum = hashlib.sha256(body).hexdigest()
        files.append(Repeatable(int(match[1]), path.name, checksum, body, tuple(views), tuple(functions)))
    files.sort(key=lambda r: (r.order, r.name))
    return files


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
    repeatables = discover_repeatable(directory)
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
        names = [_apply_one(conn, migration) for migration in plan(migrations, applied)]
        return names + _apply_repeatables(conn, repeatables)
    finally:
        _unlock(conn)


def pending_migrations(conn: psycopg.Connection[TupleRow], directory: Path = SQL_DIR) -> list[str]:
    """Names of the migrations `apply_migrations` would run, without running them.

    The repeatable files among them are named ``repeatable/NN_name.sql``; listed are
    those new or changed, or whose view or function is missing now (a versioned
    migration still to run may drop one more).
    """
    migrations = discover(directory)
    repeatables = discover_repeatable(directory)
    try:
        with conn.transaction():
            table = conn.execute("SELECT to_regclass('qf.schema_migrations')").fetchone()
            applied = _read_applied(conn) if table and table[0] is not None else []
            recorded = _read_recorded(conn)
            due = [r for r in repeatables if _is_due(conn, r, recorded)]
    except psycopg.Error as err:
        raise DatabaseError(f"cannot read applied migrations: {error_line(err)}") from err
    return [m.name for m in plan(migrations, applied)] + [_label(r) for r in due]


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


def _apply_repeatables(conn: psycopg.Connection[TupleRow], repeatables: Sequence[Repeatable]) -> list[str]:
    """Run the repeatable files that are due, all in one transaction; return their labels."""
    if not repeatables:
        return []
    names: list[str] = []
    current = ""
    try:
        with conn.transaction():
            recorded = _read_recorded(conn)
            views_before = {row[0] for row in conn.execute(_ALL_VIEWS)}
            for repeatable in repeatables:
                # Checked just before each file: an earlier one may have dropped this one's view (CASCADE).
                if not _is_due(conn, repeatable, recorded):
                    continue
                current = _label(repeatable)
                conn.execute(repeatable.sql)
                conn.execute(
                    "INSERT INTO qf.schema_repeatables (name, checksum) VALUES (%s, %s)"
                    " ON CONFLICT (name) DO UPDATE SET checksum = excluded.checksum, applied_at = now()",
                    [repeatable.name, repeatable.checksum],
                )
                names.append(current)
            current = ""
            if names:
                _check_repeatables(conn, repeatables, views_before)
            conn.execute("DELETE FROM qf.schema_repeatables WHERE NOT name = ANY(%s)", [[r.name for r in repeatables]])
    except psycopg.Error as err:
        where = f"repeatable migration {current}" if current else "the repeatable migrations"
        raise DatabaseError(f"{where} failed, none applied: {error_line(err)}") from err
    return names


def _check_repeatables(
    conn: psycopg.Connection[TupleRow], repeatables: Sequence[Repeatable], views_before: set[str]
) -> None:
    """Raise (inside the transaction, so it rolls back) if a view or function is missing now."""
    missing = [f"{_label(r)} ({name})" for r in repeatables for name in _missing(conn, r)]
    if missing:
        raise DatabaseError(
            "the repeatable migrations were rolled back: these are missing after them (is a file ordered"
            f" before one whose view it reads, which dropped it?): {', '.join(missing)}"
        )
    views_after = {row[0] for row in conn.execute(_ALL_VIEWS)}
    lost = sorted(views_before - views_after)
    if lost:
        raise DatabaseError(
            f"the repeatable migrations were rolled back: they dropped {', '.join(lost)}, which no repeatable"
            " file defines (a view reading one that a file drops with CASCADE); drop or save it first"
        )


def _is_due(conn: psycopg.Connection[TupleRow], repeatable: Repeatable, recorded: dict[str, str]) -> bool:
    return recorded.get(repeatable.name) != repeatable.checksum or bool(_missing(conn, repeatable))


def _missing(conn: psycopg.Connection[TupleRow], repeatable: Repeatable) -> list[str]:
    """The views and functions of ``repeatable`` that the database does not have."""
    row = conn.execute(
        "SELECT ARRAY(SELECT 'qf.' || v FROM unnest(%s::text[]) v WHERE to_regclass(format('qf.%%I', v)) IS NULL)"
        " || ARRAY(SELECT 'qf.' || f || '()' FROM unnest(%s::text[]) f WHERE NOT EXISTS ("
        "SELECT FROM pg_proc WHERE pronamespace = to_regnamespace('qf') AND proname = f))",
        [list(repeatable.views), list(repeatable.functions)],
    ).fetchone()
    return list(row[0]) if row else []


def _read_recorded(conn: psycopg.Connection[TupleRow]) -> dict[str, str]:
    """Name to checksum of each repeatable file applied, from ``qf.schema_repeatables`` (empty before it exists)."""
    table = conn.execute("SELECT to_regclass('qf.schema_repeatables')").fetchone()
    if not table or table[0] is None:
        return {}
    return dict(conn.execute("SELECT name, checksum FROM qf.schema_repeatables").fetchall())


def _label(repeatable: Repeatable) -> str:
    return f"{REPEATABLE_FOLDER}/{repeatable.name}"


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
