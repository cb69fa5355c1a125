"""`qf labels import`: a file is imported whole or not at all, and every bad row is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from qf_sentinel.qf.db import connect
from tests.test_cli import assert_one_line_error, qf

A = "0x" + "aa" * 20
B = "0x" + "bb" * 20
C = "0x" + "cc" * 20


@pytest.fixture
def indexed_chain(migrated_db_url: str) -> str:
    """A database that knows one chain (labels need to know which chain they are for)."""
    with connect(migrated_db_url) as conn:
        conn.execute("INSERT INTO qf.chains (chain_id, core, start_block) VALUES (31337, %s, 0)", (b"\x01" * 20,))
        conn.commit()
    return migrated_db_url


def labels(db_url: str) -> list[tuple[str, bool, str, str]]:
    with connect(db_url) as conn:
        rows = conn.execute(
            "SELECT '0x' || encode(address, 'hex'), is_sybil, pattern, source FROM qf.labels ORDER BY 1, 4"
        ).fetchall()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_import_writes_every_row(indexed_chain: str, tmp_path: Path) -> None:
    """Labels of any spelling are read; pattern is optional; the summary names the counts."""
    path = tmp_path / "verdicts.csv"
    path.write_text(
        f"address,label,source,pattern\n{A},Sybil,review-1,farm\n{B},honest,review-1,\n0x{C[2:].upper()},1,review-2,\n"
    )
    proc = qf("labels", "import", str(path), env={"QF_DATABASE_URL": indexed_chain})
    assert proc.returncode == 0, proc.stderr
    assert "imported 3 labels (2 sybil)" in proc.stdout
    assert labels(indexed_chain) == [
        (A, True, "farm", "review-1"), (B, False, "honest", "review-1"), (C, True, "reviewed_sybil", "review-2"),
    ]  # fmt: skip


def test_reimport_replaces_the_same_source(indexed_chain: str, tmp_path: Path) -> None:
    """A second verdict from the same source replaces the first instead of duplicating it."""
    path = tmp_path / "v.csv"
    path.write_text(f"address,label,source\n{A},sybil,review\n")
    assert qf("labels", "import", str(path), env={"QF_DATABASE_URL": indexed_chain}).returncode == 0
    path.write_text(f"address,label,source\n{A},honest,review\n")
    assert qf("labels", "import", str(path), env={"QF_DATABASE_URL": indexed_chain}).returncode == 0
    assert labels(indexed_chain) == [(A, False, "honest", "review")]


GOOD = f"{B},sybil,good\n"  # a valid first row: it must not be written either


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (f"address,label\n{A},sybil\n", ["missing column(s) source"]),
        (f"address,label,source\n{GOOD}0x1234,sybil,r\n", ["1 bad row(s)", "line 3", "0x1234"]),
        (f"address,label,source\n{GOOD}{A},maybe,r\n", ["line 3", "'maybe' is not sybil or honest"]),
        (f"address,label,source\n{GOOD}{A},sybil,\n", ["line 3", "source is empty"]),
        (f"address,label,source\n{GOOD}{A},sybil,r\n{A},honest,r\n", ["line 4", "duplicate of line 3"]),
        (f"address,label,source\n{GOOD}{'0x' + 'zz' * 20},sybil,r\n", ["is not an address"]),
        ("address,label,source\n", ["no rows"]),
    ],
)
def test_bad_file_imports_nothing(indexed_chain: str, tmp_path: Path, content: str, fragments: list[str]) -> None:
    """One bad row rejects the file with a one-line error naming the line; no label is written, not even good rows."""
    path = tmp_path / "bad.csv"
    path.write_text(content)
    proc = qf("labels", "import", str(path), env={"QF_DATABASE_URL": indexed_chain})
    assert_one_line_error(proc, *fragments)
    assert labels(indexed_chain) == []


def test_missing_file_is_one_line(indexed_chain: str, tmp_path: Path) -> None:
    proc = qf("labels", "import", str(tmp_path / "nope.csv"), env={"QF_DATABASE_URL": indexed_chain})
    assert_one_line_error(proc, "no such file")
