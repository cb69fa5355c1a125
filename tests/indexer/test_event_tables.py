"""The event tables of sql/002_events.sql: shaped as indexer.decode declares, and loadable with COPY."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import sql

from qf_sentinel.indexer.decode import (
    COMMON_COLUMNS,
    EVENTS,
    EVENTS_BY_NAME,
    SCHEMA,
    TABLES,
    DecodedLog,
    EventSpec,
    decode_log,
)
from qf_sentinel.qf.db import connect
from tests.fixtures.chain import Chain
from tests.indexer.reference import ABI_BY_SIGNATURE, abi_type, encode_variant, registration_data
from tests.indexer.rounds import addr, run_round

CHAIN_ID = 31337

#: Column name -> PostgreSQL type, the same in every table that has the column (else qf.address).
TYPES = {
    **dict.fromkeys(["chain_id", "block_number", "recipient_index", "tx_nonce"], "bigint"),
    **dict.fromkeys(["registration_start", "registration_end", "allocation_start", "allocation_end"], "bigint"),
    **dict.fromkeys(["window_start", "window_end"], "bigint"),
    **dict.fromkeys(["tx_index", "log_index"], "integer"),
    **dict.fromkeys(["status", "version"], "smallint"),
    "block_time": "timestamp with time zone",
    **dict.fromkeys(["metadata_pointer", "name"], "text"),
    "data": "bytea",
    "active": "boolean",
    "answer": "numeric(78,0)",
    "updated_at": "qf.uint256",
    "round_id": "qf.uint256",
    **dict.fromkeys(
        ["block_hash", "tx_hash", "profile_id", "merkle_root", "role", "allo_v1_project_id", "uid", "ref_uid"],
        "qf.hash32",
    ),
    **dict.fromkeys(["pool_id", "amount", "fee", "metadata_protocol", "row_index", "full_row"], "qf.uint256"),
    **dict.fromkeys(["gas_price", "nonce", "votes", "application_id", "allo_v1_chain_id"], "qf.uint256"),
    "flow_rate": "numeric(29,0)",
}
#: Table -> the columns a variant may leave NULL.
NULLABLE = {
    "registered": {"recipient_address", "recipient_index", "metadata_protocol", "metadata_pointer"},
    "updated_registration": {"recipient_address", "recipient_index", "metadata_protocol", "metadata_pointer"},
    "distribution_updated": {"merkle_root"},
    "initialized": {"pool_id", "data", "version"},
    "qv_votes": {"nft"},
    "recipient_status_set": {"application_id"},
}


def table_columns(conn: psycopg.Connection[Any], table: str) -> list[tuple[str, str, bool]]:
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull"
        " FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum",
        [f"{SCHEMA}.{table}"],
    ).fetchall()
    return [(name, kind, notnull) for name, kind, notnull in rows]


def test_each_event_has_its_table_with_the_declared_columns(migrated_db_url: str) -> None:
    """Every EventSpec's table exists with exactly COMMON_COLUMNS + columns (+ context), in order."""
    assert len(EVENTS) == 41
    assert len(TABLES) == 36
    with connect(migrated_db_url) as conn:
        for spec in EVENTS.values():
            columns = table_columns(conn, spec.table)
            assert [name for name, _, _ in columns] == list(COMMON_COLUMNS + spec.columns + spec.context_columns)
            for name, kind, notnull in columns:
                assert kind == TYPES.get(name, "qf.address"), (spec.table, name)
                assert notnull is not (name in NULLABLE.get(spec.table, set())), (spec.table, name)


def test_tables_key_logs_and_index_blocks(migrated_db_url: str) -> None:
    """Each table's key is (chain_id, tx_hash, log_index) and (chain_id, block_number) is indexed."""
    with connect(migrated_db_url) as conn:
        for spec in EVENTS.values():
            indexes = conn.execute(
                "SELECT i.indisprimary, array_agg(a.attname ORDER BY k.ord)"
                " FROM pg_index i"
                " CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)"
                " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
                " WHERE i.indrelid = %s::regclass GROUP BY i.indexrelid, i.indisprimary",
                [f"{SCHEMA}.{spec.table}"],
            ).fetchall()
            assert (True, ["chain_id", "tx_hash", "log_index"]) in indexes
            assert (False, ["chain_id", "block_number"]) in indexes


def test_every_table_and_column_is_commented(migrated_db_url: str) -> None:
    """COMMENT ON every event table and every one of its columns."""
    with connect(migrated_db_url) as conn:
        for spec in EVENTS.values():
            name = f"{SCHEMA}.{spec.table}"
            (table_comment,) = conn.execute("SELECT obj_description(%s::regclass, 'pg_class')", [name]).fetchone() or (
                None,
            )
            assert table_comment, name
            missing = conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
                " AND NOT attisdropped AND col_description(attrelid, attnum) IS NULL",
                [name],
            ).fetchall()
            assert missing == [], name


# -- COPY ---------------------------------------------------------------------------------

_SAMPLES: dict[str, list[Any]] = {
    "uint256": [0, 2**256 - 1, 123_456_789],
    "uint64": [0, 2**64 - 1, 1_700_000_000],
    "uint8": [1, 255, 4],
    "address": ["0x" + "00" * 20, "0x" + "ff" * 20, "0x" + "1f" * 20],
    "bytes32": [bytes(32), b"\xff" * 32, bytes(range(32))],
    "(uint256,string)": [(1, "bafy" + "a" * 52), (2**256 - 1, "ünïcødé ✓"), (0, "")],
    "string": ["Gitcoin", "ünïcødé ✓", ""],
    "bool": [True, False, True],
    "int256": [-(2**255), 2**255 - 1, 2000 * 10**8],
    "int96": [-(2**95), 2**95 - 1, 385_802_469_135_802],
    "bytes": [
        registration_data("0x" + "12" * 20, "0x" + "34" * 20, (1, "bafyproject"), 0),
        b"\x01\x02 not the donation-voting layout",
        registration_data("0x" + "56" * 20, "0x" + "78" * 20, (0, ""), 2**63 - 1),
    ],
}


def sample_rows(spec: EventSpec, offset: int = 0) -> list[DecodedLog]:
    """Three decoded logs of ``spec``'s variant with extreme and ordinary values."""
    rows = []
    for i in range(3):
        params = {p["name"]: _SAMPLES[abi_type(p)][i] for p in ABI_BY_SIGNATURE[spec.signature]["inputs"]}
        decoded = decode_log(encode_variant(spec.signature, params, block_number=10 + i, log_index=offset + i))
        assert decoded is not None
        rows.append(decoded)
    return rows


def context(i: int) -> tuple[object, ...]:
    """Values for the allocated table's transaction and block columns."""
    return (
        bytes([i + 1]) * 20,
        [0, 2**63 - 1, 7][i],
        [1, 2**256 - 1, 10**9][i],
        datetime(2024, 1, 1 + i, tzinfo=UTC),
    )


def _plain(value: object) -> object:
    return int(value) if isinstance(value, Decimal) else value


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_decoded_rows_copy_into_their_tables(migrated_db_url: str, binary: bool) -> None:
    """Decoded rows (extreme values, NULL registration columns) COPY in and read back unchanged."""
    with connect(migrated_db_url) as conn, conn.cursor() as cur:
        for table_name, table_columns_ in TABLES.items():
            variants = [spec for spec in EVENTS.values() if spec.table == table_name]
            rows = [
                d.row(CHAIN_ID) + (context(i) if spec.context_columns else ())
                for n, spec in enumerate(variants)
                for i, d in enumerate(sample_rows(spec, offset=3 * n))
            ]
            if table_name == "allocated":  # the four-field Allocated: the loop fills origin from tx_from
                rows = [r if r[11] is not None else (*r[:11], r[12], *r[12:]) for r in rows]
            table = sql.Identifier(SCHEMA, table_name)
            columns = sql.SQL(", ").join(map(sql.Identifier, table_columns_))
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(table, columns)
            if binary:
                statement = sql.SQL("{} (FORMAT BINARY)").format(statement)
            types = [
                oid
                for (oid,) in conn.execute(
                    # A domain's values travel as its base type (psycopg knows no domain oids).
                    "SELECT CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END::int"
                    " FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid WHERE a.attrelid = %s::regclass"
                    " AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                    [f"{SCHEMA}.{table_name}"],
                )
            ]
            with cur.copy(statement) as copy:
                if binary:
                    copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
            back = cur.execute(sql.SQL("SELECT {} FROM {} ORDER BY log_index").format(columns, table)).fetchall()
            assert [tuple(map(_plain, r)) for r in back] == rows, table_name
        conn.rollback()


def test_registration_nulls_survive_copy(migrated_db_url: str) -> None:
    """A Registered log of another layout is stored with NULL decoded columns and its raw data."""
    spec = EVENTS_BY_NAME["Registered"]
    foreign = sample_rows(spec)[1]
    assert foreign.values[1:5] == (None, None, None, None)
    with connect(migrated_db_url) as conn, conn.cursor() as cur:
        columns = sql.SQL(", ").join(map(sql.Identifier, spec.table_columns))
        with cur.copy(sql.SQL("COPY qf.registered ({}) FROM STDIN").format(columns)) as copy:
            copy.write_row(foreign.row(CHAIN_ID))
        assert cur.execute(
            "SELECT recipient_address IS NULL, recipient_index IS NULL, data FROM qf.registered"
        ).fetchone() == (True, True, foreign.values[5])


def test_a_real_round_loads_with_its_transaction_context(chain: Chain, migrated_db_url: str) -> None:
    """Every decoded log of a simulated round COPYs in; donations carry their transaction's sender,
    nonce, gas price and block time."""
    rnd = run_round(chain)
    allocated = rnd.of("Allocated")
    txs = chain.rpc.batch([("eth_getTransactionByHash", ["0x" + d.tx_hash.hex()]) for d in allocated])
    blocks = {n: chain.rpc.call("eth_getBlockByNumber", [hex(n), False]) for n in {d.block_number for d in allocated}}
    with connect(migrated_db_url) as conn, conn.cursor() as cur:
        for spec in EVENTS_BY_NAME.values():
            rows = []
            for d in rnd.of(spec.name):
                extra: tuple[object, ...] = ()
                if spec.context_columns:
                    tx = txs[allocated.index(d)]
                    stamp = int(blocks[d.block_number]["timestamp"], 16)
                    extra = (
                        addr(tx["from"]),
                        int(tx["nonce"], 16),
                        int(tx["gasPrice"], 16),
                        datetime.fromtimestamp(stamp, UTC),
                    )
                rows.append(d.row(CHAIN_ID) + extra)
            columns = sql.SQL(", ").join(map(sql.Identifier, spec.table_columns))
            table = sql.Identifier(SCHEMA, spec.table)
            with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(table, columns)) as copy:
                for row in rows:
                    copy.write_row(row)
            back = cur.execute(
                sql.SQL("SELECT {} FROM {} ORDER BY block_number, log_index").format(columns, table)
            ).fetchall()
            assert [tuple(map(_plain, r)) for r in back] == rows, spec.table
        donors = cur.execute(
            "SELECT count(*) FROM qf.allocated WHERE tx_from = sender AND tx_nonce >= 0 AND gas_price > 0"
        ).fetchone()
        assert donors == (len(allocated),)
