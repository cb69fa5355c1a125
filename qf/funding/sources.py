"""Known sources: labelled addresses that fund many honest wallets, and where each label comes from.

Exchanges' hot wallets, bridges and faucets fund thousands of honest wallets, so "shares a funder"
alone is no evidence: a funder that is a known source says nothing either way. The list lives in
``qf.known_sources`` and comes from three places:

* the shipped list, ``known_sources.csv`` beside this module (package data): public explorer name
  tags (Etherscan, Optimistic Etherscan, Arbiscan) for the chains the README documents, each row
  citing the label and where it was read, and the devnet's faucet. Only labels that could be checked
  are shipped; it is a starting point, not a census (exchanges run hundreds of addresses);
* ``qf sources import FILE.csv``: columns ``chain_id`` (or ``chain``), ``address``, ``label``,
  ``kind`` (exchange, bridge, faucet or other) and ``source`` (the citation). The whole file is
  checked first; nothing is written if any row is bad;
* the simulator: ``qf simulate`` and ``qf replay-gitcoin`` register the faucet they fund from and
  the round's exchange-like accounts on the chain they ran on.

An import replaces the label of an address already listed; the shipped list is written with
``ON CONFLICT DO NOTHING``, so it never overwrites an operator's label.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg

from qf_sentinel.qf.funding.csvfile import parse_address, parse_chain_id, read_rows
from qf_sentinel.qf.funding.graph import KnownSource, SourceKind

COLUMNS = ("chain_id", "address", "label", "kind", "source")
SHIPPED = "known_sources.csv"
MAX_LABEL_CHARS = 200
MAX_SOURCE_CHARS = 1000


@dataclass(frozen=True, slots=True)
class ChainSource:
    """A known source on one chain, as the table and the CSV hold it."""

    chain_id: int
    known: KnownSource


def parse_sources(path: Path) -> list[ChainSource]:
    """Every row of a known-sources CSV, or DataError naming the bad lines."""
    return read_rows(path, COLUMNS, _parse_row, lambda s: (s.chain_id, s.known.address), aliases={"chain": "chain_id"})


def shipped_sources() -> list[ChainSource]:
    """The list shipped with the package."""
    with resources.as_file(resources.files("qf_sentinel.qf.funding") / SHIPPED) as path:
        return parse_sources(path)


def _parse_row(row: dict[str, str]) -> ChainSource:
    chain_id = parse_chain_id(row["chain_id"])
    where = parse_address(row["address"], "address")
    label, source = row["label"], row["source"]
    if not label or len(label) > MAX_LABEL_CHARS:
        raise ValueError(f"label must be 1 to {MAX_LABEL_CHARS} characters")
    if not source or len(source) > MAX_SOURCE_CHARS:
        raise ValueError(f"source (the label's citation) must be 1 to {MAX_SOURCE_CHARS} characters")
    try:
        kind = SourceKind(row["kind"].lower())
    except ValueError:
        raise ValueError(f"kind {row['kind']!r:.30} is not one of {', '.join(k.value for k in SourceKind)}") from None
    return ChainSource(chain_id, KnownSource(where, label, kind, source))


def store_sources(conn: psycopg.Connection[Any], sources: Iterable[ChainSource], *, replace: bool = True) -> int:
    """Write ``sources`` in one transaction; ``replace=False`` keeps a label already there. Returns rows written."""
    rows = [(s.chain_id, s.known.address, s.known.label, s.known.kind.value, s.known.source) for s in sources]
    statement = _REPLACE if replace else _KEEP
    with conn.transaction(), conn.cursor() as cur:
        written = 0
        for row in rows:
            cur.execute(statement, row)
            written += cur.rowcount
    return written


_INSERT = "INSERT INTO qf.known_sources (chain_id, address, label, kind, source) VALUES (%s, %s, %s, %s, %s) "
_REPLACE = _INSERT + (
    "ON CONFLICT (chain_id, address) DO UPDATE SET label = EXCLUDED.label, kind = EXCLUDED.kind, "
    "source = EXCLUDED.source, imported_at = now()"
)
_KEEP = _INSERT + "ON CONFLICT (chain_id, address) DO NOTHING"


def load_shipped(conn: psycopg.Connection[Any]) -> int:
    """Add the shipped list (never replacing an operator's label); returns rows added."""
    return store_sources(conn, shipped_sources(), replace=False)


def read_sources(conn: psycopg.Connection[Any], chain_id: int) -> list[KnownSource]:
    rows = conn.execute(
        "SELECT address, label, kind, source FROM qf.known_sources WHERE chain_id = %s ORDER BY address", (chain_id,)
    ).fetchall()
    return [KnownSource(bytes(a), label, SourceKind(kind), source) for a, label, kind, source in rows]
