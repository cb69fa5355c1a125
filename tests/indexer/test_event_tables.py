"""The event tables of sql/002_events.sql: shaped as indexer.decode declares, and loadable with COPY."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import sql

from indexer.decode import (
    ALLOCATED_CONTEXT_COLUMNS,
    COMMON_COLUMNS,
    EVENTS,
    EVENTS_BY_NAME,
    SCHEMA,
    DecodedLog,
    EventSpec,
    decode_log,
)
from qf.db import connect
from tests.fixtures.chain import Chain
from tests.indexer.reference import ABI_EVENTS, abi_type, encode_log, registration_data
from tests.indexer.rounds import addr, run_round

CHAIN_ID = 31337

#: Column name -> PostgreSQL type, the same in every table that has the column.
TYPES = {
    "chain_id": "bigint",
    "block_number": "bigint",
    "tx_index": "integer",
    "log_index": "integer",
    "recipient_index": "bigint",
    "status": "smallint",
    "registration_start": "bigint",
    "registration_end": "bigint",
    "allocation_start": "bigint",
    "allocation_end": "bigint",
    "tx_nonce": "bigint",
    "block_time": "timestamp with time zone",
    "metadata_pointer": "text",
    **dict.fromkeys(
        ["pool_id", "amount", "fee", "metadata_protocol", "row_index", "full_row", "gas_price"],
        "numeric(78,0)",
    ),
}
NULLABLE = {"recipient_address", "recipient_index", "metadata_protocol", "metadata_pointer"}


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
    assert len(EVENTS) == 10
    with connect(migrated_db_url) as conn:
        for spec in EVENTS.values():
            columns = table_columns(conn, spec.table)
            expected = COMMON_COLUMNS + spec.columns
            if spec.name == "Allocated":
                expected += ALLOCATED_CONTEXT_COLUMNS
            assert [name for name, _, _ in columns] == list(expected) == list(spec.table_columns)
            for name, kind, notnull in columns:
                assert kind == TYPES.get(name, "bytea"), (spec.table, name)
                nullable = spec.name in ("Registered", "UpdatedRegistration") and name in NULLABLE
                assert notnull is not nullable, (spec.table, name)


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
    "bytes": [
        registration_data("0x" + "12" * 20, "0x" + "34" * 20, (1, "bafyproject"), 0),
        b"\x01\x02 not the donation-voting layout",
        registration_data("0x" + "56" * 20, "0x" + "78" * 20, (0, ""), 2**63 - 1),
    ],
}


def sample_rows(spec: EventSpec) -> list[DecodedLog]:
    """Three decoded logs of ``spec``'s event with extreme and ordinary values."""
    rows = []
    for i in range(3):
        params = {p["name"]: _SAMPLES[abi_type(p)][i] for p in ABI_EVENTS[spec.name]["inputs"]}
        decoded = decode_log(encode_log(spec.name, params, block_number=10 + i, log_index=i))
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
        for spec in EVENTS.values():
            rows = [
                d.row(CHAIN_ID) + (context(i) if spec.context_columns else ()) for i, d in enumerate(sample_rows(spec))
            ]
            table = sql.Identifier(SCHEMA, spec.table)
            columns = sql.SQL(", ").join(map(sql.Identifier, spec.table_columns))
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(table, columns)
            if binary:
                statement = sql.SQL("{} (FORMAT BINARY)").format(statement)
            types = [
                oid
                for (oid,) in conn.execute(
                    "SELECT atttypid::int FROM pg_attribute WHERE attrelid = %s::regclass"
                    " AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                    [f"{SCHEMA}.{spec.table}"],
                )
            ]
            with cur.copy(statement) as copy:
                if binary:
                    copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
            back = cur.execute(sql.SQL("SELECT {} FROM {} ORDER BY log_index").format(columns, table)).fetchall()
            assert [tuple(map(_plain, r)) for r in back] == rows, spec.table
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
        for spec in EVENTS.values():
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
