"""Signed transactions in bulk: local nonces, batched sends, mined receipts.

The simulators send tens of thousands of transactions. Signing locally with
tracked nonces and sending them in JSON-RPC batches keeps that to a few
requests per block; receipts are checked per block (``eth_getBlockReceipts``)
so a revert is never silently counted as a donation.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from eth_account import Account
from eth_utils import to_checksum_address

from qf_sentinel.qf.chain.rpc import RpcClient
from qf_sentinel.qf.errors import TxFailed
from qf_sentinel.qf.eth import to_hex

log = structlog.get_logger()

SEND_BATCH = 500


@dataclass(frozen=True, slots=True)
class TxRequest:
    """One transaction to sign: who sends what to whom."""

    private_key: bytes
    sender: str
    to: str | None
    data: bytes = b""
    value: int = 0
    gas: int = 300_000
    gas_price_wei: int = 2_000_000_000


class TxSender:
    """Signs with locally tracked nonces and sends in batches to one node."""

    def __init__(self, rpc: RpcClient, chain_id: int) -> None:
        self.rpc = rpc
        self.chain_id = chain_id
        self._nonces: dict[str, int] = {}

    def load_nonces(self, addresses: Iterable[str]) -> None:
        """Fetch the pending nonce of every address not yet known, in batches."""
        missing = sorted({a.lower() for a in addresses} - self._nonces.keys())
        for start in range(0, len(missing), 1000):
            chunk = missing[start : start + 1000]
            counts = self.rpc.batch([("eth_getTransactionCount", [a, "pending"]) for a in chunk])
            self._nonces.update({a: int(c, 16) for a, c in zip(chunk, counts, strict=True)})

    def set_nonce(self, address: str, nonce: int) -> None:
        self._nonces[address.lower()] = nonce

    def sign(self, request: TxRequest) -> tuple[str, str]:
        """Return (raw transaction hex, transaction hash hex) and advance the nonce."""
        sender = request.sender.lower()
        if sender not in self._nonces:
            self.load_nonces([sender])
        tx: dict[str, Any] = {
            "nonce": self._nonces[sender],
            "gas": request.gas,
            "gasPrice": request.gas_price_wei,
            "value": request.value,
            "data": request.data,
            "chainId": self.chain_id,
        }
        if request.to is not None:
            tx["to"] = _checksum(request.to)
        signed = Account.sign_transaction(tx, request.private_key)
        self._nonces[sender] += 1
        return to_hex(signed.raw_transaction), to_hex(signed.hash)

    def send(self, requests: Sequence[TxRequest]) -> list[str]:
        """Sign and submit; returns transaction hashes in request order."""
        hashes: list[str] = []
        for start in range(0, len(requests), SEND_BATCH):
            signed = [self.sign(r) for r in requests[start : start + SEND_BATCH]]
            self.rpc.batch([("eth_sendRawTransaction", [raw]) for raw, _ in signed])
            hashes.extend(h for _, h in signed)
        return hashes


def block_receipts(rpc: RpcClient, blocks: Sequence[int]) -> dict[str, dict[str, Any]]:
    """All receipts of ``blocks`` by transaction hash; raises ``TxFailed`` on a revert.

    One ``eth_getBlockReceipts`` per block is far cheaper than a receipt per
    transaction (anvil rebuilds a block's receipts for every single lookup).
    """
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(blocks), 50):
        chunk = blocks[start : start + 50]
        per_block = rpc.batch([("eth_getBlockReceipts", [hex(b)]) for b in chunk])
        for receipts in per_block:
            for receipt in receipts or ():
                if int(receipt["status"], 16) != 1:
                    raise TxFailed(
                        f"transaction {receipt['transactionHash']} reverted in block "
                        f"{int(receipt['blockNumber'], 16)}",
                        tx_hash=receipt["transactionHash"],
                    )
                found[receipt["transactionHash"]] = receipt
    return found


def wait_for_receipts(
    rpc: RpcClient, tx_hashes: Sequence[str], *, timeout_seconds: float = 120.0
) -> list[dict[str, Any]]:
    """Poll until every transaction is mined; raise ``TxFailed`` on a revert or timeout."""
    deadline = time.monotonic() + timeout_seconds
    receipts: dict[str, dict[str, Any]] = {}
    pending = list(tx_hashes)
    while pending:
        for start in range(0, len(pending), 500):
            chunk = pending[start : start + 500]
            for h, r in zip(
                chunk, rpc.batch([("eth_getTransactionReceipt", [h]) for h in chunk]), strict=True
            ):
                if r is not None:
                    receipts[h] = r
        pending = [h for h in pending if h not in receipts]
        if pending:
            if time.monotonic() > deadline:
                raise TxFailed(
                    f"{len(pending)} transactions not mined after {timeout_seconds:.0f} s",
                    tx_hash=pending[0],
                )
            time.sleep(0.2)
    for h in tx_hashes:
        if int(receipts[h]["status"], 16) != 1:
            raise TxFailed(f"transaction {h} reverted", tx_hash=h)
    return [receipts[h] for h in tx_hashes]


def _checksum(address: str) -> str:
    return str(to_checksum_address(address))
