"""The address, hash and uint256 domains: checked by the database, and reached by existing databases safely."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from qf_sentinel.qf.db import connect
from qf_sentinel.qf.db.migrate import SQL_DIR, apply_migrations

UINT256_MAX = 2**256 - 1
DOMAINS_MIGRATION = "012_domains.sql"

INSERT_ALLOCATED = """
    INSERT INTO qf.allocated (chain_id, block_number, block_hash, tx_hash, tx_index, log_index, contract,
                              recipient_id, amount, token, sender, origin, tx_from, tx_nonce, gas_price, block_time)
    VALUES (1, 10, %(block_hash)s, %(tx_hash)s, 0, %(log_index)s, %(contract)s, %(recipient)s, %(amount)s,
            %(token)s, %(sender)s, %(sender)s, %(sender)s, 0, 1, now())
"""


def allocated_row(log_index: int = 0, **changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "block_hash": b"\x01" * 32,
        "tx_hash": b"\x02" * 32,
        "log_index": log_index,
        "contract": b"\x03" * 20,
        "recipient": b"\x04" * 20,
        "amount": 5 * 10**18,
        "token": b"\xee" * 20,
        "sender": b"\x05" * 20,
    }
    return row | changes


def column_types(conn: psycopg.Connection, table: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        [table],
    ).fetchall()
    return dict(rows)


VIEWS = """
    SELECT c.oid::regclass::text, obj_description(c.oid, 'pg_class'), pg_get_userbyid(c.relowner),
           array_agg(a.attname || ':' || coalesce(col_description(c.oid, a.attnum), '') ORDER BY a.attnum)
    FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
    WHERE c.relkind = 'v' AND c.relnamespace IN ('qf'::regnamespace, 'public'::regnamespace)
    GROUP BY c.oid ORDER BY 1
"""


def test_event_columns_use_the_domains(migrated_db_url: str) -> None:
    with connect(migrated_db_url) as conn:
        types = column_types(conn, "qf.allocated")
        leftover = conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'c' AND conrelid <> 0"
            " AND connamespace = 'qf'::regnamespace AND pg_get_constraintdef(oid) LIKE '%octet_length%'"
        ).fetchone()
    assert (types["sender"], types["tx_hash"], types["amount"]) == ("qf.address", "qf.hash32", "qf.uint256")
    assert leftover == (0,)


@pytest.mark.parametrize(
    ("change", "domain"),
    [
        ({"sender": b"\x05" * 19}, "address"),
        ({"contract": b"\x03" * 32}, "address"),
        ({"tx_hash": b"\x02" * 20}, "hash32"),
        ({"amount": -1}, "uint256"),
        ({"amount": UINT256_MAX + 1}, "uint256"),
    ],
)
def test_the_domains_refuse_malformed_values_by_name(
    migrated_db_url: str, change: dict[str, object], domain: str
) -> None:
    with connect(migrated_db_url) as conn:
        conn.execute(INSERT_ALLOCATED, allocated_row(amount=UINT256_MAX))  # the largest uint256 fits
        with pytest.raises(psycopg.errors.CheckViolation, match=f"domain qf.{domain}"):
            conn.execute(INSERT_ALLOCATED, allocated_row(log_index=1, **change))


def test_an_existing_database_keeps_its_rows_and_every_view_reading_them(db_url: str, tmp_path: Path) -> None:
    """A database from before the domains, with data and an analyst's own view, upgrades in place."""
    before = tmp_path / "before"
    before.mkdir()
    for path in sorted(SQL_DIR.glob("*.sql")):
        if path.name < DOMAINS_MIGRATION:
            shutil.copy(path, before / path.name)
    with connect(db_url) as conn:
        apply_migrations(conn, before)
    with connect(db_url) as conn:
        conn.execute(INSERT_ALLOCATED, allocated_row())
        conn.execute("CREATE ROLE qf_domains_reader")
        conn.execute("CREATE VIEW public.big_gifts AS SELECT sender, amount FROM qf.allocated WHERE amount > 10")
        conn.execute("CREATE VIEW public.big_gift_count AS SELECT count(*) AS n FROM public.big_gifts")
        conn.execute("COMMENT ON VIEW public.big_gifts IS 'gifts over 10 wei'")
        conn.execute("COMMENT ON COLUMN public.big_gifts.amount IS 'wei'")
        conn.execute("GRANT SELECT ON public.big_gifts TO qf_domains_reader")
        views = conn.execute(VIEWS).fetchall()
    shutil.copy(SQL_DIR / DOMAINS_MIGRATION, before / DOMAINS_MIGRATION)  # the domains, and nothing after them
    try:
        with connect(db_url) as conn:
            assert apply_migrations(conn, before) == [DOMAINS_MIGRATION]
        with connect(db_url) as conn:
            assert conn.execute("SELECT sender, amount FROM public.big_gifts").fetchall() == [
                (b"\x05" * 20, 5 * 10**18)
            ]
            assert conn.execute("SELECT n FROM public.big_gift_count").fetchone() == (1,)
            assert conn.execute(
                "SELECT obj_description('public.big_gifts'::regclass, 'pg_class'),"
                " col_description('public.big_gifts'::regclass, 2),"
                " has_table_privilege('qf_domains_reader', 'public.big_gifts', 'SELECT')"
            ).fetchone() == ("gifts over 10 wei", "wei", True)
            assert conn.execute(VIEWS).fetchall() == views
            assert column_types(conn, "public.big_gifts")["amount"] == "qf.uint256"
    finally:
        with connect(db_url) as conn:
            conn.execute("DROP VIEW public.big_gift_count, public.big_gifts")
            conn.execute("DROP ROLE qf_domains_reader")
