"""Importing reviewers' verdicts into ``qf.labels``: ``qf labels import FILE.csv``.

The file is a CSV with a header and the columns ``address``, ``label`` and
``source`` (``pattern`` optional). ``label`` is ``sybil`` or ``honest`` (also
``true``/``false``, ``1``/``0``, any case). The whole file is checked before
anything is written; one bad row rejects the import with every problem listed
by line number, so a file is either imported entirely or not at all. A label
replaces an earlier one of the same (chain, address, source); training uses the
most recent label of an address across sources.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from qf_sentinel.qf.errors import DataError
from qf_sentinel.qf.eth import address

REQUIRED = ("address", "label", "source")
SYBIL = {"sybil", "true", "1", "yes"}
HONEST = {"honest", "false", "0", "no"}
MAX_ERRORS_SHOWN = 10


@dataclass(frozen=True, slots=True)
class ImportedLabel:
    address: bytes
    is_sybil: bool
    pattern: str
    source: str


def parse_labels(path: Path) -> list[ImportedLabel]:
    """Every row of the file, or DataError naming the bad lines."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = [h.strip().lower() for h in reader.fieldnames or []]
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise DataError(f"{path}: missing column(s) {', '.join(missing)}; need {', '.join(REQUIRED)}")
            reader.fieldnames = header
            labels, errors = [], []
            seen: dict[tuple[bytes, str], int] = {}
            for row in reader:
                line = reader.line_num
                try:
                    label = _parse_row(row)
                except ValueError as exc:
                    errors.append(f"line {line}: {exc}")
                    continue
                key = (label.address, label.source)
                if key in seen:
                    errors.append(f"line {line}: duplicate of line {seen[key]} (same address and source)")
                    continue
                seen[key] = line
                labels.append(label)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a UTF-8 CSV file ({exc})") from None
    if errors:
        shown = "; ".join(errors[:MAX_ERRORS_SHOWN])
        more = f" (and {len(errors) - MAX_ERRORS_SHOWN} more)" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise DataError(f"{path}: {len(errors)} bad row(s), nothing imported: {shown}{more}")
    if not labels:
        raise DataError(f"{path}: no rows")
    return labels


def _parse_row(row: dict[str, Any]) -> ImportedLabel:
    text = (row.get("address") or "").strip()
    if text[:2].lower() != "0x":
        raise ValueError(f"address {text!r} is not 0x and 40 hex digits")
    raw = address(text)  # ValueError naming the text
    verdict = (row.get("label") or "").strip().lower()
    if verdict not in SYBIL | HONEST:
        raise ValueError(f"label {verdict!r} is not sybil or honest")
    source = (row.get("source") or "").strip()
    if not source:
        raise ValueError("source is empty")
    is_sybil = verdict in SYBIL
    pattern = (row.get("pattern") or "").strip() or ("reviewed_sybil" if is_sybil else "honest")
    return ImportedLabel(address=raw, is_sybil=is_sybil, pattern=pattern, source=source)


def import_labels(conn: psycopg.Connection[Any], chain_id: int, labels: list[ImportedLabel], *, run_id: str) -> int:
    """Upsert every label in one transaction; returns the number of rows written."""
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO qf.labels (chain_id, address, is_sybil, pattern, source, run_id)
            VALUES (%s, %s, %s, %s, %s, %s)
            ON CONFLICT (chain_id, address, source) DO UPDATE
               SET is_sybil = EXCLUDED.is_sybil, pattern = EXCLUDED.pattern,
                   run_id = EXCLUDED.run_id, created_at = now()
            """,
            [(chain_id, x.address, x.is_sybil, x.pattern, x.source, run_id) for x in labels],
        )
    return len(labels)


def labelled_examples(conn: psycopg.Connection[Any], chain_id: int) -> list[tuple[str, str]]:
    """One labelled donor per pattern, the one with the most donations: ``(0x address, pattern)``."""
    rows = conn.execute(
        "SELECT DISTINCT ON (l.pattern) '0x' || encode(l.address, 'hex'), l.pattern FROM qf.labels l "
        "JOIN qf.donor_features f ON f.chain_id = l.chain_id AND f.donor = l.address "
        "WHERE l.chain_id = %s ORDER BY l.pattern, f.donation_count DESC",
        (chain_id,),
    ).fetchall()
    return [(str(address), str(pattern)) for address, pattern in rows]
