"""First-funder rows from a data provider's export: ``qf funding import FILE.csv``.

For nodes without a trace API, whose native funding the worker cannot find, a provider's export
(Dune, Flipside, an explorer's API; Gitcoin's own scored-donor files carry ``first_funder``,
``first_funder_amount`` and ``first_funder_timestamp``) fills ``qf.wallet_funding``::

    address,funder,amount,block,time,chain
    0x5a0b...,0x28c6...,0.05,18500000,2023-11-02T10:00:00Z,1

``address`` and ``funder`` are 0x addresses; ``amount`` is in wei (``--unit ether``: in ether, exact
decimals); ``block`` the transfer's block; ``time`` ISO 8601 with a zone, or unix seconds; ``chain``
(or ``chain_id``) the chain id. Optional: ``asset`` (``native``, the default, or an ERC-20 address,
whose amount is then in its base units unless ``--unit ether`` says 18 decimals) and ``tx_hash``.
The whole file is checked first and nothing is written if any row is bad. A row replaces a stored
one of the same wallet and asset if it is earlier (the first funding is the earliest) or if that
one was imported too (a corrected export replaces the last). Rows
are stored with ``method = 'import'`` and no block hash; a reorg rollback keeps them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

import psycopg

from qf_sentinel.qf.eth import hash32
from qf_sentinel.qf.funding.csvfile import parse_address, parse_chain_id, read_rows
from qf_sentinel.qf.funding.graph import NATIVE, FundingRow, Method

COLUMNS = ("address", "funder", "amount", "block", "time", "chain_id")
Unit = Literal["wei", "ether"]
MAX_UINT256 = 2**256 - 1


@dataclass(frozen=True, slots=True)
class ImportedFunding:
    chain_id: int
    row: FundingRow


def parse_funding(path: Path, *, unit: Unit = "wei") -> list[ImportedFunding]:
    """Every row of a first-funder export, or DataError naming the bad lines."""
    return read_rows(
        path, COLUMNS, lambda raw: _parse_row(raw, unit), lambda f: (f.chain_id, f.row.wallet, f.row.asset),
        aliases={"chain": "chain_id"},
    )  # fmt: skip


def _parse_row(raw: dict[str, str], unit: Unit) -> ImportedFunding:
    chain_id = parse_chain_id(raw["chain_id"])
    wallet = parse_address(raw["address"], "address")
    funder = parse_address(raw["funder"], "funder")
    asset_text = raw.get("asset", "")
    asset = NATIVE if asset_text.lower() in ("", "native", "eth") else parse_address(asset_text, "asset")
    tx_text = raw.get("tx_hash", "")
    try:
        tx_hash = hash32(tx_text) if tx_text else None
    except ValueError:
        raise ValueError(f"tx_hash {tx_text!r:.80} is not 0x and 64 hex digits") from None
    return ImportedFunding(chain_id, FundingRow(
        wallet=wallet, asset=asset, funder=funder, amount=_amount(raw["amount"], unit), block=_block(raw["block"]),
        time=_time(raw["time"]), depth=1, method=Method.IMPORT, tx_hash=tx_hash,
    ))  # fmt: skip


def _amount(text: str, unit: Unit) -> int:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"amount {text!r:.40} is not a number") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"amount {text!r:.40} is not a finite number >= 0")
    if unit == "ether":
        value = value.scaleb(18)
    if value != value.to_integral_value():
        hint = "" if unit == "ether" else " (use --unit ether for amounts in ether)"
        raise ValueError(f"amount {text!r:.40} is not a whole number of base units{hint}")
    if value > MAX_UINT256:
        raise ValueError(f"amount {text!r:.40} is larger than a uint256")
    return int(value)


def _block(text: str) -> int:
    if not text.isdigit() or int(text) >= 2**63:
        raise ValueError(f"block {text!r:.30} is not a block number")
    return int(text)


def _time(text: str) -> float:
    if text.isdigit():
        return float(int(text))
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"time {text!r:.40} is not ISO 8601 with a zone or unix seconds") from None
    if at.tzinfo is None:
        raise ValueError(f"time {text!r:.40} has no zone (add Z or +00:00)")
    return at.astimezone(UTC).timestamp()


def store_imported(conn: psycopg.Connection[Any], rows: Sequence[ImportedFunding]) -> int:
    """Write the rows in one transaction (an earlier row replaces a later one); returns rows written."""
    written = 0
    with conn.transaction(), conn.cursor() as cur:
        for f in rows:
            r = f.row
            cur.execute(
                """
                INSERT INTO qf.wallet_funding (chain_id, wallet, asset, funder, amount, block_number, block_hash,
                                               tx_hash, block_time, depth, method)
                VALUES (%s, %s, %s, %s, %s, %s, NULL, %s, to_timestamp(%s), 1, 'import')
                ON CONFLICT (chain_id, wallet, asset) DO UPDATE
                SET funder = EXCLUDED.funder, amount = EXCLUDED.amount, block_number = EXCLUDED.block_number,
                    block_hash = NULL, tx_hash = EXCLUDED.tx_hash, block_time = EXCLUDED.block_time,
                    method = 'import', funder_is_contract = NULL, found_at = now()
                WHERE EXCLUDED.block_number < qf.wallet_funding.block_number
                   OR qf.wallet_funding.method = 'import'
                """,
                (f.chain_id, r.wallet, r.asset, r.funder, r.amount, r.block, r.tx_hash, r.time),
            )
            written += cur.rowcount
    return written
