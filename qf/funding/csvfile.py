"""Reading a whole CSV file before anything is written: every row parsed, every bad one named by line.

Shared by the two imports of this package (known sources, first-funder rows): both take a file a
person or a data provider wrote, both refuse it entirely if any row is bad, with one line saying
which lines and why (as ``qf labels import`` does).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import TypeVar

from qf_sentinel.qf.errors import DataError
from qf_sentinel.qf.eth import Address, address

T = TypeVar("T")
MAX_ERRORS_SHOWN = 10


def read_rows(
    path: Path,
    required: Sequence[str],
    parse: Callable[[dict[str, str]], T],
    key: Callable[[T], Hashable],
    *,
    aliases: dict[str, str] | None = None,
) -> list[T]:
    """Every row of ``path`` parsed by ``parse`` (which raises ValueError), or one DataError naming the bad lines.

    Headers are matched case-insensitively; ``aliases`` maps other header names to the required ones
    (``chain`` for ``chain_id``). Two rows with the same ``key`` are an error. Blank lines are skipped.
    """
    aliases = aliases or {}
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = [aliases.get(h.strip().lower(), h.strip().lower()) for h in reader.fieldnames or []]
            missing = [c for c in required if c not in header]
            if missing:
                raise DataError(f"{path}: missing column(s) {', '.join(missing)}; need {', '.join(required)}")
            reader.fieldnames = header
            rows: list[T] = []
            errors: list[str] = []
            seen: dict[Hashable, int] = {}
            for raw in reader:
                line = reader.line_num
                if not any((v or "").strip() for v in raw.values() if isinstance(v, str)):
                    continue
                cells = {k: (v or "").strip() for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)}
                try:
                    row = parse(cells)
                except ValueError as exc:
                    errors.append(f"line {line}: {exc}")
                    continue
                k = key(row)
                if k in seen:
                    errors.append(f"line {line}: duplicate of line {seen[k]}")
                    continue
                seen[k] = line
                rows.append(row)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a CSV file") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a UTF-8 CSV file ({exc})") from None
    if errors:
        shown = "; ".join(errors[:MAX_ERRORS_SHOWN])
        more = f" (and {len(errors) - MAX_ERRORS_SHOWN} more)" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise DataError(f"{path}: {len(errors)} bad row(s), nothing imported: {shown}{more}")
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def parse_address(text: str, column: str) -> Address:
    """A 0x address; ValueError naming the column otherwise."""
    if text[:2].lower() != "0x":
        raise ValueError(f"{column} {text!r:.60} is not 0x and 40 hex digits")
    try:
        return address(text)
    except ValueError:
        raise ValueError(f"{column} {text!r:.60} is not 0x and 40 hex digits") from None


def parse_chain_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"chain {text!r:.30} is not an integer chain id") from None
    if not 0 < value < 2**63:
        raise ValueError(f"chain {text!r:.30} is not a positive chain id")
    return value
