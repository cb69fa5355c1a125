"""Repeatable migrations: each view and function defined once in sql/repeatable/, re-applied when it changes.

An old database (one that applied the versioned files only, as every database did before sql/repeatable/
existed) upgrades to exactly what a fresh install has, which is exactly what the versioned files alone made:
the same view definitions, columns, comments and function bodies, and every view answers as before.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from qf_sentinel.qf.db import connect, with_database
from qf_sentinel.qf.db.migrate import SQL_DIR, apply_migrations, discover, discover_repeatable, pending_migrations
from qf_sentinel.qf.errors import DatabaseError
from tests.analytics.events import GRANT_STRATEGY_ID, WINDOW, EventWriter, address, refresh, units

START = WINDOW[0]

# Everything of the qf schema a repeatable file could change, and the triggers that call its functions.
CATALOGUE = """
SELECT 'view', c.relname, c.relkind::text, pg_get_viewdef(c.oid), obj_description(c.oid, 'pg_class'),
       c.relacl::text, c.reloptions::text, pg_get_userbyid(c.relowner)::text,
       (SELECT json_agg(json_build_array(a.attname, format_type(a.atttypid, a.atttypmod),
                                         col_description(a.attrelid, a.attnum), a.attcollation::regcollation::text)
                        ORDER BY a.attnum)::text
        FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
FROM pg_class c WHERE c.relnamespace = 'qf'::regnamespace AND c.relkind IN ('v', 'm')
UNION ALL
SELECT 'function', p.oid::regprocedure::text, p.prokind::text, pg_get_functiondef(p.oid),
       obj_description(p.oid, 'pg_proc'), p.proacl::text, p.proconfig::text, pg_get_userbyid(p.proowner)::text, NULL
FROM pg_proc p WHERE p.pronamespace = 'qf'::regnamespace
UNION ALL
SELECT 'trigger', t.tgrelid::regclass::text || '.' || t.tgname, t.tgenabled::text, pg_get_triggerdef(t.oid), NULL,
       NULL, NULL, NULL, NULL
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relnamespace = 'qf'::regnamespace AND NOT t.tgisinternal
ORDER BY 1, 2
"""


def catalogue(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    return conn.execute(CATALOGUE).fetchall()


def answers(conn: psycopg.Connection) -> dict[str, list[str]]:
    """Every row of every qf view, each as text, sorted (the views' own order is not part of their answer)."""
    views = [r[0] for r in conn.execute("SELECT relname FROM pg_class WHERE relnamespace = 'qf'::regnamespace"
                                        " AND relkind IN ('v', 'm') ORDER BY 1").fetchall()]  # fmt: skip
    out = {}
    for view in views:
        rows = conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier("qf", view))).fetchall()
        out[view] = sorted(repr(row) for row in rows)
    return out


def versioned_only(tmp_path: Path) -> Path:
    """A migrations folder with today's versioned files and no repeatable ones: what an old qf shipped."""
    before = tmp_path / "versioned"
    before.mkdir()
    for migration in discover():
        shutil.copy(SQL_DIR / migration.name, before / migration.name)
    return before


def migrate_as_before(url: str, tmp_path: Path) -> None:
    """The database an older qf left: every versioned migration applied, no record of repeatable files."""
    with connect(url) as conn:
        apply_migrations(conn, versioned_only(tmp_path))
        conn.execute("DROP TABLE qf.schema_repeatables")
        conn.commit()


@contextmanager
def another_database(pg_server_url: str) -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex}"
    with connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(pg_server_url, name)
    finally:
        with connect(pg_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def labels(*names: str) -> list[str]:
    return [f"repeatable/{n}" for n in names]


# -- the project's files -------------------------------------------------------------------------------------


def test_every_qf_view_and_function_is_defined_by_exactly_one_repeatable_file(migrated_db_url: str) -> None:
    """The current definition of each view and function is in sql/repeatable/, and nowhere else is current."""
    files = discover_repeatable()
    views = sorted(v for r in files for v in r.views)
    functions = sorted(f for r in files for f in r.functions)
    with connect(migrated_db_url) as conn:
        in_db = conn.execute("SELECT relname FROM pg_class WHERE relnamespace = 'qf'::regnamespace"
                             " AND relkind IN ('v', 'm') ORDER BY 1").fetchall()  # fmt: skip
        funcs = conn.execute(
            "SELECT proname FROM pg_proc WHERE pronamespace = 'qf'::regnamespace ORDER BY 1"
        ).fetchall()
        recorded = conn.execute("SELECT name, checksum FROM qf.schema_repeatables ORDER BY name").fetchall()
    assert views == [r[0] for r in in_db]
    assert functions == [r[0] for r in funcs]
    assert recorded == sorted((r.name, r.checksum) for r in files)


def test_an_old_database_upgrades_to_what_a_fresh_install_has(
    db_url: str, pg_server_url: str, tmp_path: Path
) -> None:
    """After today's versioned files, the repeatable ones change nothing: the old database and a fresh install
    end with the same views (definition, columns, types, comments, grants) and functions (body, comment)."""
    migrate_as_before(db_url, tmp_path)
    with connect(db_url, autocommit=True) as conn:
        before = catalogue(conn)
        assert pending_migrations(conn) == labels(*(r.name for r in discover_repeatable()))
        assert apply_migrations(conn) == labels(*(r.name for r in discover_repeatable()))
        upgraded = catalogue(conn)
        assert apply_migrations(conn) == []
    with another_database(pg_server_url) as fresh_url, connect(fresh_url) as conn:
        apply_migrations(conn)
        fresh = catalogue(conn)
    assert len(before) > 90  # 21 views, 20 functions, the triggers calling them
    assert upgraded == before
    assert fresh == before


def fill(conn: psycopg.Connection) -> None:
    """A little of everything the views read: two chains, donations in and out of the window, reviews, a grant, a
    round over both chains, unknown topics, a risk score and a reviewer's verdict."""
    for chain_id in (31337, 10):
        w = EventWriter(conn, chain_id)
        strategy = w.pool(1, funded=units(1000))
        good, other, rejected = (address(n) for n in ("good", "other", "rejected"))
        for r in (good, other, rejected):
            w.register(strategy, r)
        w.review(strategy, {good: 2, other: 2, rejected: 3})
        for i in range(4):
            w.donate(strategy, address(f"d{i}"), good, units(i + 1), at=START + i, nonce=i)
        w.donate(strategy, address("d0"), other, units(2), at=START - 1)
        w.donate(strategy, address("d1"), rejected, units(3), at=START + 7)
        registry, profile = address("registry"), bytes(range(32))
        w._insert(
            "profile_created", registry, None, profile_id=profile, nonce=1, name=f"Good on {chain_id}",
            metadata_protocol=1, metadata_pointer="m", owner=address("owner"), anchor=good,
        )  # fmt: skip
        w._insert("role_granted", registry, None, role=profile, account=address("member"), sender=address("owner"))
        grants = w.pool(2, funded=units(50), strategy_id=GRANT_STRATEGY_ID)
        w.register(grants, good)
        w.donate(grants, address("manager"), good, units(5), at=START)
        conn.execute(
            "INSERT INTO qf.chains (chain_id, core, start_block, checkpoint_block, finalized_block)"
            " VALUES (%s, %s, 1, 500, 450)",
            [chain_id, b"\x01" * 20],
        )
        conn.execute(
            "INSERT INTO qf.unknown_topic_blocks VALUES (%s, 120, %s, %s, 2), (%s, 130, %s, %s, 1)",
            [chain_id, b"\xaa" * 20, b"\x01" * 32] * 2,
        )
    conn.execute("INSERT INTO qf.rounds (name) VALUES ('gg'), ('empty')")
    conn.execute("INSERT INTO qf.round_pools (round, chain_id, pool_id) VALUES ('gg', 31337, 1), ('gg', 10, 1)")
    conn.execute(
        "INSERT INTO qf.donor_risk (chain_id, pool_id, donor, model_version, score, level, decision, reasons, weight)"
        " VALUES (31337, 1, %s, 'm1', 0.9, 'HIGH', 'BLOCK', '{ring}', 0), (31337, 1, %s, 'm1', 0.1, 'LOW', 'APPROVE',"
        " '{}', 1)",
        [address("d0"), address("d1")],
    )
    conn.execute(
        "INSERT INTO qf.review_log (chain_id, donor, verdict, reviewer) VALUES (31337, %s, 'sybil', 'ann')",
        [address("d0")],
    )
    conn.execute("INSERT INTO qf.experiments (name, variants, baseline, policy) VALUES ('ui', '{a,b}', 'a', 'hash')")
    conn.execute("INSERT INTO qf.experiment_assignments (experiment, user_id, variant) VALUES ('ui', 'u1', 'b')")
    conn.execute(
        "INSERT INTO qf.experiment_outcomes (experiment, user_id, variant, reward) VALUES ('ui', 'u1', 'b', 1)"
    )
    conn.execute("INSERT INTO qf.matching_caps VALUES (31337, 1, %s)", [Decimal(10)])
    refresh(conn)


def test_every_view_answers_as_before_the_upgrade(db_url: str, tmp_path: Path) -> None:
    """On a database with rounds in it, every qf view gives the same rows before and after the upgrade."""
    migrate_as_before(db_url, tmp_path)
    with connect(db_url, autocommit=True) as conn:
        fill(conn)
        before = answers(conn)
        apply_migrations(conn)
        after = answers(conn)
    assert after == before
    empty = sorted(view for view, rows in before.items() if not rows)
    assert empty == [], empty
    assert len(before["donations"]) == 12
    assert sum("'Good on 10'" in row for row in before["donations"]) == 4  # qf.profiles, kept by triggers
    assert before["round_summary"] != []


# -- the mechanism, on small folders -------------------------------------------------------------------------

TABLE = {
    "001_t.sql": "CREATE SCHEMA IF NOT EXISTS qf; CREATE TABLE qf.t (x int, y int); INSERT INTO qf.t VALUES (1, 2);"
}
FILES = {
    "10_double.sql": "CREATE OR REPLACE FUNCTION qf.double(v int) RETURNS int LANGUAGE sql IMMUTABLE RETURN 2 * v;",
    "20_v.sql": "CREATE OR REPLACE VIEW qf.v AS SELECT x FROM qf.t;\nCOMMENT ON VIEW qf.v IS 'x';",
    "20_w.sql": "CREATE OR REPLACE VIEW qf.w AS SELECT y FROM qf.t;",
    "30_vv.sql": "CREATE OR REPLACE VIEW qf.vv AS SELECT qf.double(x) AS x2 FROM qf.v;",
}


def folder_with(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = write(tmp_path / "sql", TABLE)
    write(folder / "repeatable", files)
    return folder


def recorded(conn: psycopg.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT name, checksum FROM qf.schema_repeatables").fetchall())


def viewdef(conn: psycopg.Connection, view: str) -> str:
    row = conn.execute("SELECT pg_get_viewdef(%s::regclass)", [view]).fetchone()
    assert row is not None
    return str(row[0])


def test_a_changed_file_is_applied_once_and_an_unchanged_one_not_at_all(db_url: str, tmp_path: Path) -> None:
    """Files run in order of NN then name after the versioned ones; then only a changed file runs, once."""
    folder = folder_with(tmp_path, FILES)
    with connect(db_url, autocommit=True) as conn:
        everything = ["001_t.sql", *labels("10_double.sql", "20_v.sql", "20_w.sql", "30_vv.sql")]
        assert apply_migrations(conn, folder) == everything
        assert apply_migrations(conn, folder) == []
        first = recorded(conn)
        write(folder / "repeatable", {"20_w.sql": "CREATE OR REPLACE VIEW qf.w AS SELECT y, x FROM qf.t;"})
        assert pending_migrations(conn, folder) == labels("20_w.sql")
        assert apply_migrations(conn, folder) == labels("20_w.sql")
        assert apply_migrations(conn, folder) == []
        assert pending_migrations(conn, folder) == []
        assert conn.execute("SELECT * FROM qf.w").fetchall() == [(2, 1)]
        now = recorded(conn)
    assert {k for k in first if first[k] != now[k]} == {"20_w.sql"}


def test_a_view_dropped_with_cascade_brings_back_the_views_reading_it(db_url: str, tmp_path: Path) -> None:
    """A file that must change its view's columns drops it with CASCADE; the files after it whose views went with
    it run again in the same transaction, and a versioned migration that drops a view gets it back too."""
    folder = folder_with(tmp_path, FILES)
    with connect(db_url, autocommit=True) as conn:
        apply_migrations(conn, folder)
        write(folder / "repeatable", {
            "20_v.sql": "DROP VIEW IF EXISTS qf.v CASCADE;\n"
                        "CREATE OR REPLACE VIEW qf.v AS SELECT x + 10 AS x FROM qf.t;"
        })  # fmt: skip
        assert apply_migrations(conn, folder) == labels("20_v.sql", "30_vv.sql")
        assert conn.execute("SELECT x2 FROM qf.vv").fetchall() == [(22,)]

        write(folder, {"002_drop.sql": "DROP VIEW qf.w;"})
        assert pending_migrations(conn, folder) == ["002_drop.sql"]
        assert apply_migrations(conn, folder) == ["002_drop.sql", *labels("20_w.sql")]
        assert conn.execute("SELECT y FROM qf.w").fetchall() == [(2,)]


def test_a_broken_file_rolls_back_every_file_of_the_run(db_url: str, tmp_path: Path) -> None:
    """One failing file undoes the others run with it: the old definitions and checksums stay; a fix applies."""
    folder = folder_with(tmp_path, FILES)
    with connect(db_url, autocommit=True) as conn:
        apply_migrations(conn, folder)
        old_w, old_vv, before = viewdef(conn, "qf.w"), viewdef(conn, "qf.vv"), recorded(conn)
        write(folder / "repeatable", {
            "20_w.sql": "CREATE OR REPLACE VIEW qf.w AS SELECT y, x FROM qf.t;",
            "30_vv.sql": "CREATE OR REPLACE VIEW qf.vv AS SELECT qf.double(x) AS x2, nope FROM qf.v;",
        })  # fmt: skip
        with pytest.raises(DatabaseError, match=r"repeatable migration repeatable/30_vv\.sql failed, none applied"):
            apply_migrations(conn, folder)
        assert (viewdef(conn, "qf.w"), viewdef(conn, "qf.vv"), recorded(conn)) == (old_w, old_vv, before)
        assert pending_migrations(conn, folder) == labels("20_w.sql", "30_vv.sql")

        fixed = "CREATE OR REPLACE VIEW qf.vv AS SELECT qf.double(x) AS x2, 1 AS one FROM qf.v;"
        write(folder / "repeatable", {"30_vv.sql": fixed})
        assert apply_migrations(conn, folder) == labels("20_w.sql", "30_vv.sql")
        assert conn.execute("SELECT * FROM qf.vv").fetchall() == [(2, 1)]


def test_a_view_that_no_file_defines_is_never_dropped_on_the_way(db_url: str, tmp_path: Path) -> None:
    """An analyst's view reading one of ours would go with a CASCADE: the run is refused and rolled back."""
    folder = folder_with(tmp_path, FILES)
    with connect(db_url, autocommit=True) as conn:
        apply_migrations(conn, folder)
        conn.execute("CREATE VIEW public.mine AS SELECT x FROM qf.v")
        write(folder / "repeatable", {
            "20_v.sql": "DROP VIEW IF EXISTS qf.v CASCADE;\nCREATE OR REPLACE VIEW qf.v AS SELECT x FROM qf.t;"
        })  # fmt: skip
        with pytest.raises(DatabaseError, match=r"dropped public\.mine, which no repeatable file defines"):
            apply_migrations(conn, folder)
        assert conn.execute("SELECT x FROM public.mine").fetchall() == [(1,)]


def test_a_file_ordered_before_a_view_it_reads_is_refused(db_url: str, tmp_path: Path) -> None:
    """If a file runs before the one whose view it reads, and that one drops it, the run says which is missing."""
    files = {**FILES, "05_early.sql": "CREATE OR REPLACE VIEW qf.early AS SELECT x FROM qf.v;"}
    folder = folder_with(tmp_path, {k: v for k, v in files.items() if k != "05_early.sql"})
    with connect(db_url, autocommit=True) as conn:
        apply_migrations(conn, folder)
        write(folder / "repeatable", {
            "05_early.sql": files["05_early.sql"],
            "20_v.sql": "DROP VIEW IF EXISTS qf.v CASCADE;\nCREATE OR REPLACE VIEW qf.v AS SELECT x FROM qf.t;",
        })  # fmt: skip
        with pytest.raises(DatabaseError, match=r"missing after them .*repeatable/05_early\.sql \(qf\.early\)"):
            apply_migrations(conn, folder)
        assert conn.execute("SELECT to_regclass('qf.early')").fetchone() == (None,)


def test_concurrent_runners_apply_each_repeatable_file_once(db_url: str, tmp_path: Path) -> None:
    """Two processes migrating at once: one runs the files, the other then finds nothing due."""
    folder = folder_with(tmp_path, FILES)
    start = threading.Barrier(2)

    def migrate() -> list[str]:
        with connect(db_url) as conn:
            start.wait(timeout=30)
            return apply_migrations(conn, folder)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = [future.result() for future in [pool.submit(migrate) for _ in range(2)]]
    everything = ["001_t.sql", *labels("10_double.sql", "20_v.sql", "20_w.sql", "30_vv.sql")]
    assert sorted(results) == [[], everything]


def test_discover_repeatable_checks_names_and_definitions(tmp_path: Path) -> None:
    """No folder: no files. A bad name, a file defining nothing, or two files defining one view are errors."""
    assert discover_repeatable(tmp_path) == []
    write(tmp_path / "repeatable", {"view.sql": "CREATE OR REPLACE VIEW qf.a AS SELECT 1;"})
    with pytest.raises(DatabaseError, match=r"must be named NN_name\.sql"):
        discover_repeatable(tmp_path)
    (tmp_path / "repeatable" / "view.sql").unlink()
    write(tmp_path / "repeatable", {"10_nothing.sql": "SELECT 1;"})
    with pytest.raises(DatabaseError, match="must CREATE OR REPLACE a qf view or function"):
        discover_repeatable(tmp_path)
    write(tmp_path / "repeatable", {
        "10_nothing.sql": "CREATE OR REPLACE VIEW qf.a AS SELECT 1;", "20_again.sql": "CREATE VIEW qf.a AS SELECT 2;",
    })  # fmt: skip
    with pytest.raises(DatabaseError, match=r"both define view qf\.a"):
        discover_repeatable(tmp_path)
    (tmp_path / "repeatable" / "20_again.sql").unlink()
    write(tmp_path / "repeatable", {"2_b.sql": "CREATE FUNCTION qf.f() RETURNS int LANGUAGE sql RETURN 1;"})
    found = discover_repeatable(tmp_path)
    assert [(r.order, r.name, r.views, r.functions) for r in found] == [
        (2, "2_b.sql", (), ("f",)), (10, "10_nothing.sql", ("a",), ()),
    ]  # fmt: skip
