"""Incoming transfers read out of the node's answers: traces, Otterscan searches, ERC-20 Transfer logs.

Pure functions over decoded JSON. Each answer shape is read into :class:`Transfer` rows (what
reached a wallet, from whom, where in the chain), and :func:`first` picks the earliest. Answers are
user input like any chain data (and nodes differ: anvil numbers a trace's block as an integer, Erigon
as a number too, some as hex), so every field is checked and an entry that does not read is left out
and counted (:attr:`Read.skipped`), never a reason to fail a wallet.

What counts as funding, per source:

* a trace (``trace_filter`` / ``trace_block``, Parity style): a ``call`` (or ``create``) with value > 0
  to the wallet, or a ``suicide`` refunding it, whose trace has no ``error``;
* an Otterscan search result: a successful transaction sent to the wallet with value > 0; else one of
  its internal operations (``ots_getInternalOperations``: transfer or self-destruct) to the wallet;
* an ERC-20 ``Transfer(from, to, value)`` log with ``to`` = the wallet and value > 0 (``from`` is the
  zero address for a mint).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qf_sentinel.qf.funding.graph import NATIVE, Method

#: keccak256("Transfer(address,address,uint256)")
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
MAX_UINT256 = 2**256 - 1
#: ots_getInternalOperations types that move value to ``to``: 0 transfer, 1 self-destruct.
_OTS_VALUE_OPS = frozenset({0, 1})


@dataclass(frozen=True, slots=True, order=True)
class Transfer:
    """One incoming transfer; ordered by where it sits in the chain (block, transaction, position within it)."""

    block: int
    tx_index: int
    position: tuple[int, ...]
    #: The wallet funded (the recipient).
    wallet: bytes = field(compare=False)
    asset: bytes = field(compare=False)
    funder: bytes = field(compare=False)
    amount: int = field(compare=False)
    block_hash: bytes = field(compare=False)
    tx_hash: bytes = field(compare=False)
    method: Method = field(compare=False)


@dataclass(slots=True)
class Read:
    """The transfers read from one answer, and how many entries could not be read."""

    transfers: list[Transfer] = field(default_factory=list)
    skipped: int = 0


def first(transfers: Iterable[Transfer]) -> Transfer | None:
    return min(transfers, default=None)


def address_topic(wallet: bytes) -> str:
    """A 20-byte address as an indexed event topic (left-padded to 32 bytes)."""
    return "0x" + wallet.rjust(32, b"\0").hex()


def from_traces(traces: object, wallets: Collection[bytes], method: Method) -> Read:
    """The incoming value transfers to any of ``wallets`` among Parity-style traces."""
    out = Read()
    if not isinstance(traces, list):
        out.skipped += 1
        return out
    for trace in traces:
        try:
            transfer = _trace(trace, wallets, method)
        except (KeyError, TypeError, ValueError, AttributeError):
            out.skipped += 1
            continue
        if transfer is not None:
            out.transfers.append(transfer)
    return out


def _trace(trace: Mapping[str, Any], wallets: Collection[bytes], method: Method) -> Transfer | None:
    if trace.get("error"):
        return None
    action, kind = trace["action"], trace.get("type")
    if kind in {"call", "create"}:
        if kind == "call" and action.get("callType", "call") not in ("call", None):
            return None  # delegatecall/staticcall move no value of their own
        to = trace.get("result", {}).get("address") if kind == "create" else action.get("to")
        funder, value = action.get("from"), action.get("value")
    elif kind == "suicide":
        to, funder, value = action.get("refundAddress"), action.get("address"), action.get("balance")
    else:
        return None  # block and uncle rewards: not a funding by anyone
    if to is None or (wallet := _address(to)) not in wallets:
        return None
    amount = _quantity(value)
    if amount == 0:
        return None
    position = tuple(int(i) for i in trace.get("traceAddress") or ())
    return Transfer(
        _number(trace["blockNumber"]), _number(trace["transactionPosition"]), position, wallet, NATIVE,
        _address(funder),
        amount, _hash(trace["blockHash"]), _hash(trace["transactionHash"]), method,
    )  # fmt: skip


@dataclass(slots=True)
class OtsPage:
    """One ``ots_searchTransactionsAfter`` page, earliest first: each successful transaction the wallet did
    not send, with the direct transfer it made to the wallet (or None: look at its internal operations)."""

    #: (block, transaction, its direct transfer to the wallet or None)
    steps: list[tuple[int, dict[str, Any], Transfer | None]] = field(default_factory=list)
    skipped: int = 0
    #: The page reaches the newest transaction touching the wallet (Otterscan's ``firstPage``).
    newest: bool = True
    #: Highest block of the page (the next page searches after it).
    last_block: int = -1


def ots_page(page: object, wallet: bytes) -> OtsPage:
    """Read an ``ots_searchTransactionsAfter`` answer (transactions newest first, with their receipts)."""
    out = OtsPage()
    if not isinstance(page, Mapping) or not isinstance(page.get("txs"), list):
        out.skipped += 1
        return out
    out.newest = bool(page.get("firstPage", True))
    receipts = page.get("receipts")
    status = {}
    for receipt in receipts if isinstance(receipts, list) else []:
        if isinstance(receipt, Mapping) and isinstance(receipt.get("transactionHash"), str):
            status[receipt["transactionHash"].lower()] = receipt.get("status")
    rows = []
    for tx in page["txs"]:
        try:
            rows.append(((_number(tx["blockNumber"]), _number(tx["transactionIndex"])), tx))
        except (KeyError, TypeError, ValueError, AttributeError):
            out.skipped += 1
    for (block, index), tx in sorted(rows, key=lambda r: r[0]):
        out.last_block = max(out.last_block, block)
        try:
            if str(status.get(str(tx["hash"]).lower(), "0x1")) not in ("0x1", "1", "True"):
                continue  # a reverted transaction moved no value
            _hash(tx["hash"]), _hash(tx["blockHash"])  # looked into by hash later: must read now
            if _address(tx["from"]) == wallet:
                continue  # the wallet's own transaction funds it with nothing
            to, amount = tx.get("to"), _quantity(tx.get("value", "0x0"))
            direct = None
            if to is not None and _address(to) == wallet:
                if amount == 0:
                    continue  # a plain call to an account: nothing moved, nothing inside
                direct = Transfer(block, index, (), wallet, NATIVE, _address(tx["from"]), amount,
                                  _hash(tx["blockHash"]), _hash(tx["hash"]), Method.OTS)  # fmt: skip
            out.steps.append((block, tx, direct))
        except (KeyError, TypeError, ValueError, AttributeError):
            out.skipped += 1
    return out


def from_ots_operations(operations: object, tx: Mapping[str, Any], wallet: bytes) -> Read:
    """The internal transfers to ``wallet`` among a transaction's ``ots_getInternalOperations``."""
    out = Read()
    if not isinstance(operations, list):
        out.skipped += 1
        return out
    for i, op in enumerate(operations):
        try:
            if int(op["type"]) not in _OTS_VALUE_OPS or _address(op["to"]) != wallet:
                continue
            amount = _quantity(op["value"])
            if amount == 0:
                continue
            out.transfers.append(Transfer(
                _number(tx["blockNumber"]), _number(tx["transactionIndex"]), (i,), wallet, NATIVE, _address(op["from"]),
                amount, _hash(tx["blockHash"]), _hash(tx["hash"]), Method.OTS,
            ))  # fmt: skip
        except (KeyError, TypeError, ValueError, AttributeError):
            out.skipped += 1
    return out


def from_transfer_logs(logs: Sequence[Mapping[str, Any]], wallets: Collection[bytes], token: bytes) -> Read:
    """ERC-20 transfers of ``token`` to any of ``wallets`` among ``eth_getLogs`` results."""
    out = Read()
    for lg in logs:
        try:
            topics = lg["topics"]
            if (len(topics) != 3 or topics[0].lower() != TRANSFER_TOPIC or _address(lg["address"]) != token
                    or _topic_address(topics[2]) not in wallets or lg.get("removed")):  # fmt: skip
                continue
            data = bytes.fromhex(str(lg["data"])[2:])
            if len(data) != 32:
                raise ValueError("Transfer data is not one word")
            amount = int.from_bytes(data, "big")
            if amount == 0:
                continue
            out.transfers.append(Transfer(
                _number(lg["blockNumber"]), _number(lg["transactionIndex"]), (_number(lg["logIndex"]),),
                _topic_address(topics[2]), token,
                _topic_address(topics[1]), amount, _hash(lg["blockHash"]), _hash(lg["transactionHash"]),
                Method.TRANSFER_LOGS,
            ))  # fmt: skip
        except (KeyError, TypeError, ValueError, AttributeError):
            out.skipped += 1
    return out


# -- field readers: each raises ValueError/TypeError on anything but the one form it accepts ----------


def _number(value: object) -> int:
    """A block number or index: a JSON integer or a 0x quantity, >= 0 and below 2^63."""
    number = value if isinstance(value, int) and not isinstance(value, bool) else int(str(value), 16)
    if not 0 <= number < 2**63:
        raise ValueError(f"number out of range: {value!r:.40}")
    return number


def _quantity(value: object) -> int:
    """A 0x quantity (wei) in [0, 2^256)."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError(f"not a quantity: {value!r:.40}")
    amount = int(value, 16)
    if amount > MAX_UINT256:
        raise ValueError("quantity above 2^256 - 1")
    return amount


def _address(value: object) -> bytes:
    raw = bytes.fromhex(str(value).removeprefix("0x"))
    if len(raw) != 20:
        raise ValueError(f"not an address: {value!r:.60}")
    return raw


def _topic_address(value: object) -> bytes:
    raw = bytes.fromhex(str(value).removeprefix("0x"))
    if len(raw) != 32 or raw[:12] != bytes(12):
        raise ValueError(f"not an address topic: {value!r:.80}")
    return raw[12:]


def _hash(value: object) -> bytes:
    raw = bytes.fromhex(str(value).removeprefix("0x"))
    if len(raw) != 32:
        raise ValueError(f"not a 32-byte hash: {value!r:.80}")
    return raw
