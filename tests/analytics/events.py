"""Hand-made Allo v2 event rows written straight into the event tables.

The analytics views read only the event tables and the indexer's strategies
and tokens, so a few rows written here are a round the views cannot tell from
an indexed one. Used for cases a real strategy refuses to produce (a donation
outside the window, a donation to a rejected recipient) and for exact hand
checks. Every row gets its own block and log position in insertion order.
"""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
from psycopg import sql

CHAIN_ID = 31337
TOKEN = bytes.fromhex("11" * 20)
NATIVE = bytes.fromhex("ee" * 20)
UNIT = 10**18
#: getStrategyId() of a DonationVotingMerkleDistributionDirectTransferStrategy v2.0 (qf.strategy_kinds: a donation).
DONATION_STRATEGY_ID = bytes.fromhex("2f0250d534b2d59b8b5cfa5eb0d0848a59ccbf5de2eaf72d2ba4bfe73dce7c6b")
#: getStrategyId() of DirectGrantsLite v1.0 (qf.strategy_kinds: a direct grant, not a donation).
GRANT_STRATEGY_ID = bytes.fromhex("103732a8e473467a510d4128ee11065262bdd978f0d9dad89ba68f2c56127e27")
#: Allocation window of every hand-made pool (unix seconds).
WINDOW = (1_700_000_000, 1_700_086_400)


def address(name: str) -> bytes:
    """A stable 20-byte address for a name."""
    return hashlib.sha256(name.encode()).digest()[:20]


def units(amount: str | int) -> int:
    """Token units (18 decimals) to base units."""
    return int(Decimal(amount) * UNIT)


class EventWriter:
    """Appends event rows in chain order: each call is one log in a new block unless ``block`` is given."""

    def __init__(self, conn: psycopg.Connection, chain_id: int = CHAIN_ID) -> None:
        self.conn = conn
        self.chain_id = chain_id
        self._blocks = itertools.count(100)
        self._logs = itertools.count(0)
        #: (strategy, recipient) -> (recipient index, current status), as the strategy keeps them.
        self.recipients: dict[tuple[bytes, bytes], tuple[int, int]] = {}
        for token in (TOKEN, NATIVE):
            conn.execute(
                "INSERT INTO qf.tokens (chain_id, address, symbol, decimals) VALUES (%s, %s, 'T', 18)",
                (chain_id, token),
            )

    def _where(self, block: int | None) -> tuple[int, bytes, bytes, int, int]:
        number = next(self._blocks) if block is None else block
        log_index = next(self._logs)
        tx = hashlib.sha256(f"{number}:{log_index}".encode()).digest()
        return number, hashlib.sha256(str(number).encode()).digest(), tx, 0, log_index

    def _insert(self, table: str, contract: bytes, block: int | None, **values: object) -> int:
        number, block_hash, tx_hash, tx_index, log_index = self._where(block)
        row = {
            "chain_id": self.chain_id,
            "block_number": number,
            "block_hash": block_hash,
            "tx_hash": tx_hash,
            "tx_index": tx_index,
            "log_index": log_index,
            "contract": contract,
            **values,
        }
        self.conn.execute(
            sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                sql.Identifier("qf", table),
                sql.SQL(", ").join(map(sql.Identifier, row)),
                sql.SQL(", ").join(sql.Placeholder() * len(row)),
            ),
            list(row.values()),
        )
        return number

    def pool(
        self,
        pool_id: int,
        *,
        funded: int,
        token: bytes = TOKEN,
        window: tuple[int, int] = WINDOW,
        strategy_id: bytes | None = DONATION_STRATEGY_ID,
    ) -> bytes:
        """Create, fund and open a pool on a strategy whose getStrategyId() is ``strategy_id`` (a donation-voting
        strategy's unless told; None: it gave none); returns its strategy address."""
        strategy = address(f"strategy-{pool_id}")
        core = address("core")
        block = self._insert(
            "pool_created", core, None, pool_id=pool_id, profile_id=b"\0" * 32, strategy=strategy,
            token=token, amount=funded, metadata_protocol=1, metadata_pointer="x",
        )  # fmt: skip
        self.conn.execute(
            "INSERT INTO qf.strategies (chain_id, address, pool_id, discovered_block, strategy_id, strategy_id_read)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (self.chain_id, strategy, pool_id, block, strategy_id, "no_answer" if strategy_id is None else "answered"),
        )
        self._insert("pool_funded", core, None, pool_id=pool_id, amount=funded, fee=0)
        self.window(strategy, *window)
        return strategy

    def window(self, strategy: bytes, start: int, end: int) -> None:
        self._insert(
            "timestamps_updated", strategy, None, registration_start=start - 100, registration_end=end,
            allocation_start=start, allocation_end=end, sender=address("manager"),
        )  # fmt: skip

    def register(self, strategy: bytes, recipient: bytes) -> None:
        index = sum(1 for s, _ in self.recipients if s == strategy)
        self.recipients[strategy, recipient] = (index, 1)
        self._insert(
            "registered", strategy, None, recipient_id=recipient, recipient_address=recipient,
            recipient_index=index, metadata_protocol=1, metadata_pointer="p", data=b"", sender=recipient,
        )  # fmt: skip

    def review(self, strategy: bytes, statuses: dict[bytes, int]) -> None:
        """Set statuses; one RecipientStatusUpdated per 64-recipient row touched, carrying its whole row after the
        change (as Allo's reviewRecipients emits them)."""
        rows: set[int] = set()
        for recipient, status in statuses.items():
            index, _ = self.recipients[strategy, recipient]
            self.recipients[strategy, recipient] = (index, status)
            rows.add(index // 64)
        for row_index in sorted(rows):
            full_row = sum(
                s << (4 * (i % 64))
                for (st, _), (i, s) in self.recipients.items()
                if st == strategy and i // 64 == row_index
            )
            self._insert(
                "recipient_status_updated", strategy, None, row_index=row_index, full_row=full_row,
                sender=address("manager"),
            )  # fmt: skip

    def donate(
        self, strategy: bytes, donor: bytes, recipient: bytes, amount: int, *, at: int, token: bytes = TOKEN,
        nonce: int = 10, gas_price: int = 10**9, block: int | None = None,
    ) -> None:  # fmt: skip
        self._insert(
            "allocated", strategy, block, recipient_id=recipient, amount=amount, token=token, sender=donor,
            origin=donor, tx_from=donor, tx_nonce=nonce, gas_price=gas_price,
            block_time=datetime.fromtimestamp(at, UTC),
        )  # fmt: skip


def refresh(conn: psycopg.Connection) -> None:
    """Bring the analytics tables up to date the way the indexer does (qf.refresh_analytics)."""
    conn.commit()
    conn.execute("SELECT qf.refresh_analytics()")
    conn.commit()
