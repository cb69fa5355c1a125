"""USD prices from a CSV, for tokens no price feed covers: ``qf prices import``.

    token,at,price_usd
    native,2021-03-10T00:00:00Z,1850.25
    0x6b175474e89094c44da98b954eedeac495271d0f,1615334400,1.0

``token`` is a 0x address or ``native``; ``at`` an ISO 8601 time (with zone) or
unix seconds; a donation takes the latest price at or before its block time
(``qf.token_price_usd``). The file goes in whole or not at all.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import psycopg

from qf_sentinel.qf.errors import DataError
from qf_sentinel.qf.eth import address

NATIVE = bytes.fromhex("ee" * 20)
COLUMNS = ("token", "at", "price_usd")


@dataclass(frozen=True, slots=True)
class Price:
    token: bytes
    at: datetime
    price_usd: Decimal


def parse_prices(lines: list[str], source: str) -> list[Price]:
    """The prices of a CSV's lines; DataError naming the line of the first bad value."""
    reader = csv.DictReader(lines)
    if reader.fieldnames is None or not set(COLUMNS) <= set(reader.fieldnames):
        raise DataError(f"{source}: the header must name {', '.join(COLUMNS)}")
    out = []
    for line, row in enumerate(reader, start=2):
        try:
            raw_token = row["token"].strip().lower()
            token = NATIVE if raw_token in ("native", "eth") else address(raw_token)
            when = row["at"].strip()
            at = datetime.fromtimestamp(int(when), UTC) if when.isdigit() else datetime.fromisoformat(when)
            if at.tzinfo is None:
                raise ValueError("a time needs its zone (e.g. Z)")
            price = Decimal(row["price_usd"].strip())
            if not price.is_finite() or price < 0:
                raise ValueError("a price is a finite number >= 0")
        except (ValueError, InvalidOperation, AttributeError) as exc:
            raise DataError(f"{source}:{line}: {exc or 'bad value'}") from None
        out.append(Price(token, at, price))
    return out


def import_prices(conn: psycopg.Connection[Any], chain_id: int, path: Path) -> int:
    """Store the file's prices for ``chain_id`` (a later import of the same token and time replaces it)."""
    prices = parse_prices(path.read_text().splitlines(), str(path))
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO qf.imported_prices (chain_id, token, at, price_usd, source) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (chain_id, token, at) DO UPDATE SET price_usd = EXCLUDED.price_usd, source = EXCLUDED.source",
            [(chain_id, p.token, p.at, p.price_usd, path.name) for p in prices],
        )
    return len(prices)
