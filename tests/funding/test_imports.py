"""Known sources and first-funder imports: whole files checked first, clear one-line errors, earliest row wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from qf_sentinel.qf.db import connect
from qf_sentinel.qf.errors import DataError
from qf_sentinel.qf.funding.db import load_graph
from qf_sentinel.qf.funding.graph import NATIVE, SourceKind
from qf_sentinel.qf.funding.imports import parse_funding, store_imported
from qf_sentinel.qf.funding.sources import load_shipped, parse_sources, shipped_sources, store_sources

WALLET = "0x" + "11" * 20
FUNDER = "0x" + "22" * 20


def write(tmp_path: Path, text: str, name: str = "rows.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_shipped_list_parses_cites_every_row_and_marks_the_devnet_faucet() -> None:
    """Every shipped row names where its label was read; the devnet's deployer is its faucet."""
    shipped = shipped_sources()
    assert {s.chain_id for s in shipped} == {1, 10, 42161, 31337}
    assert all(s.known.source for s in shipped)
    faucet = [s for s in shipped if s.chain_id == 31337]
    assert [(f.known.address.hex(), f.known.kind) for f in faucet] == [
        ("f39fd6e51aad88f6f4ce6ab8827279cfffb92266", SourceKind.FAUCET)
    ]


def test_bad_source_rows_reject_the_whole_file_naming_each_line(tmp_path: Path) -> None:
    path = write(tmp_path, "chain,address,label,kind,source\n"
                 f"1,{FUNDER},Some exchange,exchange,explorer\n"
                 "1,0x12,Short,exchange,explorer\n"
                 f"1,{WALLET},Thing,casino,explorer\n"
                 f"1,{FUNDER},Again,exchange,explorer\n")  # fmt: skip
    with pytest.raises(DataError) as err:
        parse_sources(path)
    message = str(err.value)
    assert "\n" not in message
    assert "3 bad row(s), nothing imported" in message
    assert "line 3: address" in message
    assert "line 4: kind 'casino'" in message
    assert "line 5: duplicate of line 2" in message


def test_missing_columns_and_missing_files_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing column.*funder"):
        parse_funding(write(tmp_path, "address,amount,block,time,chain\n"))
    with pytest.raises(DataError, match="no such file"):
        parse_funding(tmp_path / "absent.csv")


def test_funding_rows_parse_units_times_and_assets(tmp_path: Path) -> None:
    path = write(tmp_path, "address,funder,amount,block,time,chain,asset\n"
                 f"{WALLET},{FUNDER},0.05,100,2023-11-02T10:00:00Z,1,native\n"
                 f"{WALLET},{FUNDER},2.5,101,1698919300,1,0x{'33' * 20}\n")  # fmt: skip
    rows = parse_funding(path, unit="ether")
    assert [r.row.amount for r in rows] == [5 * 10**16, 25 * 10**17]
    assert rows[0].row.time == 1698919200.0
    assert rows[1].row.time == 1698919300.0
    assert rows[0].row.asset == NATIVE
    assert rows[1].row.asset == b"\x33" * 20
    with pytest.raises(DataError, match=r"line 2: amount '0.05' is not a whole number of base units \(use --unit"):
        parse_funding(path)
    bad_time = write(tmp_path, f"address,funder,amount,block,time,chain\n{WALLET},{FUNDER},5,1,2023-11-02T10:00:00,1\n")
    with pytest.raises(DataError, match="has no zone"):
        parse_funding(bad_time)


def test_imports_store_the_earliest_funding_and_read_back_as_a_graph(tmp_path: Path, migrated_db_url: str) -> None:
    """A later import does not replace an earlier stored funding of the same wallet; an earlier one does."""
    first = write(tmp_path, f"address,funder,amount,block,time,chain\n{WALLET},{FUNDER},7,100,1000,5\n", "a.csv")
    later = write(tmp_path, f"address,funder,amount,block,time,chain\n{WALLET},0x{'44' * 20},9,200,2000,5\n", "b.csv")
    earlier = write(tmp_path, f"address,funder,amount,block,time,chain\n{WALLET},0x{'55' * 20},3,50,500,5\n", "c.csv")
    sources = write(tmp_path, f"chain_id,address,label,kind,source\n5,{FUNDER},Faucet,faucet,test\n", "s.csv")
    with connect(migrated_db_url) as conn:
        assert store_imported(conn, parse_funding(first)) == 1
        conn.execute("UPDATE qf.wallet_funding SET method = 'ots', block_hash = %s, tx_hash = %s",
                     (b"\x01" * 32, b"\x02" * 32))  # as if the worker had found it  # fmt: skip
        assert store_imported(conn, parse_funding(later)) == 0
        assert store_sources(conn, parse_sources(sources)) == 1
        graph = load_graph(conn, 5)
        found = graph.first_funding(bytes.fromhex("11" * 20), as_of=1e10)
        assert found is not None
        assert (found.funder, found.amount, found.method) == (b"\x22" * 20, 7, "ots")
        assert graph.known_source(b"\x22" * 20) is not None
        assert store_imported(conn, parse_funding(earlier)) == 1
        found = load_graph(conn, 5).first_funding(bytes.fromhex("11" * 20), as_of=1e10)
        assert found is not None
        assert (found.block, found.method, found.time) == (50, "import", 500.0)
        added = load_shipped(conn)
        assert added == len(shipped_sources())
        assert load_shipped(conn) == 0
        assert store_sources(conn, parse_sources(sources)) == 1  # an import replaces; the shipped list never does
