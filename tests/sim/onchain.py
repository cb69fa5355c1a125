"""Reading a round back from the chain, independently of the executor's bookkeeping."""

from __future__ import annotations

from collections import Counter
from typing import Any

import eth_abi

from qf_sentinel.qf.chain.abi import ALLO_V2_EVENTS, NATIVE_TOKEN, topic0
from qf_sentinel.qf.chain.rpc import RpcClient

TOPIC_NAMES = {topic0(sig): name for name, sig in ALLO_V2_EVENTS.items()}


def all_logs(rpc: RpcClient, from_block: int = 0) -> list[dict[str, Any]]:
    """Every log on the chain from ``from_block`` with an Allo v2 topic0, in chain order."""
    logs = rpc.call(
        "eth_getLogs",
        [{"fromBlock": hex(from_block), "toBlock": "latest", "topics": [list(TOPIC_NAMES)]}],
    )
    return list(logs)


def event_counts(logs: list[dict[str, Any]]) -> Counter[str]:
    return Counter(TOPIC_NAMES[lg["topics"][0]] for lg in logs)


def allocations(logs: list[dict[str, Any]], token: str) -> list[tuple[str, str, str, int]]:
    """(donor, recipient, 'native'|'erc20', amount) per Allocated log, in chain order."""
    out = []
    for lg in logs:
        if TOPIC_NAMES[lg["topics"][0]] != "Allocated":
            continue
        amount, tok, sender, _origin = eth_abi.decode(
            ["uint256", "address", "address", "address"], bytes.fromhex(lg["data"][2:])
        )
        kind = "native" if tok.lower() == NATIVE_TOKEN else ("erc20" if tok.lower() == token else tok)
        out.append((sender.lower(), "0x" + lg["topics"][1][-40:], kind, int(amount)))
    return out
