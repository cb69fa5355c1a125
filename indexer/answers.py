"""Checks of what a node answered: a faulty answer is retried (elsewhere if possible), never stored.

A node may leave fields out of a log, return logs outside the range or from
another address, or answer another block or transaction than the one asked
for. Each check raises ``ValueError`` naming the fault; the client counts it as
a bad response and tries again.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

#: A topic filter as eth_getLogs takes it: per position None (any), one topic, or any of several.
TopicFilter = Sequence[str | Sequence[str] | None]

#: Fields every log must carry; a node that leaves one out (or a pending log) is faulty.
REQUIRED_LOG_FIELDS = (
    "address",
    "topics",
    "data",
    "blockNumber",
    "blockHash",
    "transactionHash",
    "transactionIndex",
    "logIndex",
)


def validate_logs(
    logs: object,
    *,
    from_block: int,
    to_block: int,
    addresses: Collection[str] | None = None,
    topics: TopicFilter | None = None,
) -> list[dict[str, Any]]:
    """The logs of one eth_getLogs answer, checked against the request; ``removed`` ones dropped.

    Raises ``ValueError`` naming the first log that is malformed, outside
    [from_block, to_block] or not matching the address/topic filter: the whole
    answer is then untrustworthy.
    """
    if not isinstance(logs, list):
        raise ValueError(f"result is {type(logs).__name__}, not a list")
    wanted = {a.lower() for a in addresses} if addresses is not None else None
    checked = []
    for position, entry in enumerate(logs):
        if not isinstance(entry, dict):
            raise ValueError(f"log {position} is {type(entry).__name__}, not an object")
        missing = [name for name in REQUIRED_LOG_FIELDS if entry.get(name) is None]
        if missing:
            raise ValueError(f"log {position} lacks {', '.join(missing)}")
        number = _hex_int(entry["blockNumber"])
        if number is None or not from_block <= number <= to_block:
            raise ValueError(
                f"log {position} has blockNumber {entry['blockNumber']!r:.20}, outside {from_block}..{to_block}"
            )
        if wanted is not None and str(entry["address"]).lower() not in wanted:
            raise ValueError(f"log {position} comes from {entry['address']!r:.44}, not a requested address")
        if topics is not None and not _topics_match(entry["topics"], topics):
            raise ValueError(f"log {position} does not match the topic filter")
        if entry.get("removed") is True:
            continue
        checked.append(entry)
    return checked


def check_block(block: object, number: int | None) -> dict[str, Any] | None:
    """A block answer: None, or a block with a hash and the number asked for (if one was)."""
    if block is None:
        return None
    if not isinstance(block, dict) or block.get("hash") is None or _hex_int(block.get("number")) is None:
        raise ValueError(f"not a block: {block!r:.60}")
    if number is not None and _hex_int(block["number"]) != number:
        raise ValueError(f"block {block['number']} instead of {number}")
    return block


def check_blocks(blocks: list[Any], numbers: Sequence[int]) -> list[Any]:
    """A batch of block answers, each checked by ``check_block``."""
    return [check_block(block, number) for block, number in zip(blocks, numbers, strict=True)]


def check_transactions(transactions: list[Any], hashes: Sequence[str]) -> list[Any]:
    """Transaction answers: each None or the transaction with the hash asked for."""
    for tx, tx_hash in zip(transactions, hashes, strict=True):
        if tx is not None and not (isinstance(tx, dict) and str(tx.get("hash")).lower() == tx_hash.lower()):
            raise ValueError(f"another transaction than {tx_hash}: {tx!r:.60}")
    return transactions


def _hex_int(value: object) -> int | None:
    if not isinstance(value, str) or not value.startswith("0x"):
        return None
    try:
        return int(value, 16)
    except ValueError:
        return None


def _topics_match(got: object, wanted: TopicFilter) -> bool:
    if not isinstance(got, list):
        return False
    for position, accepted in enumerate(wanted):
        if accepted is None:
            continue
        if position >= len(got) or not isinstance(got[position], str):
            return False
        options = [accepted] if isinstance(accepted, str) else list(accepted)
        if None in options:
            continue
        if got[position].lower() not in {o.lower() for o in options}:
            return False
    return True
