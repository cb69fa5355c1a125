"""Migrations: applied in numeric order, once each, recorded, and never silently edited."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from qf_sentinel.qf.db import connect
from qf_sentinel.qf.db.migrate import (
    SQL_DIR,
    AppliedMigration,
    apply_migrations,
    discover,
    discover_repeatable,
    pending_migrations,
    plan,
)
from qf_sentinel.qf.errors import DatabaseError


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def everything() -> list[str]:
    """What apply_migrations runs on an empty database: every versioned file, then every repeatable one."""
    return [m.name for m in discover()] + [f"repeatable/{r.name}" for r in discover_repeatable()]


def applied_rows(url: str) -> list[tuple[int, str]]:
    with connect(url) as conn:
        rows = conn.execute("SELECT version, name FROM qf.schema_migrations ORDER BY version")
        return [(version, name) for version, name in rows.fetchall()]


def test_project_migrations_apply_and_are_recorded_with_checksums(migrated_db_url: str) -> None:
    """The repository's sql/ files apply to an empty database and each is recorded."""
    with connect(migrated_db_url) as conn:
        rows = conn.execute(
            "SELECT version, name, checksum FROM qf.schema_migrations ORDER BY version"
        ).fetchall()
        assert conn.execute("SELECT to_regclass('qf.labels')").fetchone() == ("qf.labels",)
    expected = [(m.version, m.name, m.checksum) for m in discover()]
    assert rows == expected
    foundation = SQL_DIR / "001_foundation.sql"
    assert (1, "001_foundation.sql", hashlib.sha256(foundation.read_bytes()).hexdigest()) in rows


def test_labels_store_addresses_as_20_bytes(migrated_db_url: str) -> None:
    """qf.labels accepts a 20-byte address and rejects any other length."""
    insert = (
        "INSERT INTO qf.labels (chain_id, address, is_sybil, pattern, source)"
        " VALUES (1, %s, true, 'ring', 'test')"
    )
    with connect(migrated_db_url) as conn:
        conn.execute(insert, [bytes(range(20))])
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(insert, [bytes(19)])


def test_second_run_applies_nothing(db_url: str) -> None:
    """Running the migrations again applies nothing and leaves the record unchanged."""
    with connect(db_url) as conn:
        first = apply_migrations(conn)
        again = apply_migrations(conn)
    assert first == everything()
    assert again == []
    assert applied_rows(db_url) == [(m.version, m.name) for m in discover()]


def test_pending_lists_everything_on_an_empty_database_without_creating_anything(
    db_url: str,
) -> None:
    """pending_migrations reports all files for a new database and leaves it untouched."""
    with connect(db_url, autocommit=True) as conn:
        assert pending_migrations(conn) == everything()
        assert conn.execute("SELECT to_regnamespace('qf')").fetchone() == (None,)
        apply_migrations(conn)
        assert pending_migrations(conn) == []


def test_migrations_run_in_numeric_not_alphabetical_order(db_url: str, tmp_path: Path) -> None:
    """Version 10 runs after version 2 even though '10_' sorts before '2_' as text."""
    folder = write(
        tmp_path / "sql",
        {
            "1_create.sql": "CREATE TABLE steps (id serial PRIMARY KEY, step text);"
            " INSERT INTO steps (step) VALUES ('1');",
            "10_last.sql": "INSERT INTO steps (step) VALUES ('10');",
            "2_middle.sql": "INSERT INTO steps (step) VALUES ('2');",
        },
    )
    with connect(db_url) as conn:
        applied = apply_migrations(conn, folder)
        steps = conn.execute("SELECT step FROM steps ORDER BY id").fetchall()
    assert applied == ["1_create.sql", "2_middle.sql", "10_last.sql"]
    assert steps == [("1",), ("2",), ("10",)]


def test_a_failing_migration_rolls_back_alone(db_url: str, tmp_path: Path) -> None:
    """A broken file is rolled back and named; earlier files stay applied; a fix then applies."""
    folder = write(
        tmp_path / "sql",
        {
            "001_ok.sql": "CREATE TABLE a (x int);",
            "002_broken.sql": "CREATE TABLE b (x int); SELEC 1;",
        },
    )
    with connect(db_url, autocommit=True) as conn:
        with pytest.raises(DatabaseError, match=r"migration 002_broken\.sql failed: syntax error"):
            apply_migrations(conn, folder)
        assert conn.execute("SELECT to_regclass('b')").fetchone() == (None,)
        assert pending_migrations(conn, folder) == ["002_broken.sql"]

        write(folder, {"002_broken.sql": "CREATE TABLE b (x int);"})
        assert apply_migrations(conn, folder) == ["002_broken.sql"]
    assert applied_rows(db_url) == [(1, "001_ok.sql"), (2, "002_broken.sql")]


def test_editing_an_applied_migration_is_refused(db_url: str, tmp_path: Path) -> None:
    """Changing a file after it was applied makes both apply and pending fail, naming the file."""
    folder = write(tmp_path / "sql", {"001_first.sql": "CREATE TABLE a (x int);"})
    with connect(db_url) as conn:
        apply_migrations(conn, folder)
        write(folder, {"001_first.sql": "CREATE TABLE a (x bigint);"})
        with pytest.raises(DatabaseError, match=r"001_first\.sql changed after it was applied"):
            apply_migrations(conn, folder)
        with pytest.raises(DatabaseError, match=r"001_first\.sql changed"):
            pending_migrations(conn, folder)


def test_concurrent_runners_apply_each_migration_once(db_url: str, tmp_path: Path) -> None:
    """Two connections migrating at the same moment both succeed; each file runs exactly once."""
    folder = write(
        tmp_path / "sql",
        {
            "001_slow.sql": "SELECT pg_sleep(0.3); CREATE TABLE runs (x int);",
            "002_count.sql": "INSERT INTO runs VALUES (1);",
        },
    )
    start = threading.Barrier(2)

    def migrate() -> list[str]:
        with connect(db_url) as conn:
            start.wait(timeout=30)
            return apply_migrations(conn, folder)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = [future.result() for future in [pool.submit(migrate) for _ in range(2)]]

    assert sorted(results) == [[], ["001_slow.sql", "002_count.sql"]]
    with connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == (1,)


def test_a_connection_inside_a_transaction_is_refused(db_url: str) -> None:
    """apply_migrations will not run inside the caller's open transaction."""
    with connect(db_url) as conn:
        conn.execute("SELECT 1")
        with pytest.raises(DatabaseError, match="no transaction open"):
            apply_migrations(conn)


def test_discover_refuses_bad_names_and_duplicate_versions(tmp_path: Path) -> None:
    """Files not named NNN_name.sql, or two files with one version, are errors."""
    badly_named = write(tmp_path / "bad", {"foundation.sql": "SELECT 1;"})
    with pytest.raises(DatabaseError, match=r"must be named NNN_name\.sql"):
        discover(badly_named)
    duplicated = write(tmp_path / "dup", {"001_a.sql": "", "1_b.sql": ""})
    with pytest.raises(DatabaseError, match="same version 1"):
        discover(duplicated)
    with pytest.raises(DatabaseError, match="migrations folder not found"):
        discover(tmp_path / "missing")


def test_plan_refuses_a_database_newer_than_the_files(tmp_path: Path) -> None:
    """A recorded version with no file means this code is older than the database."""
    migrations = discover(write(tmp_path / "sql", {"001_a.sql": "SELECT 1;"}))
    newer = [AppliedMigration(2, "002_future.sql", "0" * 64)]
    with pytest.raises(DatabaseError, match=r"002_future\.sql, which is not among"):
        plan(migrations, newer)
    applied = [AppliedMigration(1, "001_a.sql", migrations[0].checksum)]
    assert plan(migrations, applied) == []
