"""An independent reading of Allo v2 logs, for checking ``indexer.decode``.

It decodes with ``eth_abi`` from the compiled contracts' ABI (so the indexed
flags come from the Solidity sources, not from the decoder under test), and
builds synthetic logs the same way. Slow and simple on purpose.
"""

from __future__ import annotations

from typing import Any

import eth_abi

from indexer.decode import EVENTS_BY_NAME, Value
from qf.chain.abi import load_artifact, topic0

BIGINT_MAX = 2**63 - 1

#: ABI parameter name -> column name, where they differ beyond camelCase.
_COLUMN = {
    "poolId": "pool_id",
    "profileId": "profile_id",
    "recipientId": "recipient_id",
    "recipientAddress": "recipient_address",
    "rowIndex": "row_index",
    "fullRow": "full_row",
    "registrationStartTime": "registration_start",
    "registrationEndTime": "registration_end",
    "allocationStartTime": "allocation_start",
    "allocationEndTime": "allocation_end",
}

ABI_EVENTS: dict[str, dict[str, Any]] = {
    **load_artifact("QFAllo").events(),
    **load_artifact("DonationStrategy").events(),
}


def abi_type(param: dict[str, Any]) -> str:
    if param["type"] == "tuple":
        return "(" + ",".join(abi_type(c) for c in param["components"]) + ")"
    return str(param["type"])


def _topic_of(name: str) -> str:
    event = ABI_EVENTS[name]
    return topic0(f"{name}({','.join(abi_type(p) for p in event['inputs'])})")


TOPIC_TO_NAME = {_topic_of(name): name for name in ABI_EVENTS}


def registration(raw: bytes) -> tuple[bytes | None, int | None, int | None, str | None]:
    """(recipient_address, recipient_index, protocol, pointer) of ``Registered.data``, or Nones."""
    try:
        inner, index = eth_abi.decode(["bytes", "uint256"], raw)
        _rid, address, (protocol, pointer) = eth_abi.decode(["address", "address", "(uint256,string)"], inner)
    except Exception:
        return None, None, None, None
    if index > BIGINT_MAX:
        return None, None, None, None
    return bytes.fromhex(address[2:]), index, protocol, pointer


def _convert(param: dict[str, Any], value: Any) -> dict[str, Value]:
    name, kind = param["name"], param["type"]
    if name == "metadata":
        return {"metadata_protocol": value[0], "metadata_pointer": value[1]}
    if name == "data":
        address, index, protocol, pointer = registration(value)
        return {
            "recipient_address": address,
            "recipient_index": index,
            "metadata_protocol": protocol,
            "metadata_pointer": pointer,
            "data": value,
        }
    if kind == "address":
        value = bytes.fromhex(value[2:])
    elif kind == "uint64":
        value = min(value, BIGINT_MAX)
    return {_COLUMN.get(name, name): value}


def reference_values(log: dict[str, Any]) -> tuple[str, tuple[Value, ...]]:
    """(event name, values in the decoder's column order), decoded with eth_abi."""
    name = TOPIC_TO_NAME[log["topics"][0]]
    inputs = ABI_EVENTS[name]["inputs"]
    indexed = [p for p in inputs if p["indexed"]]
    plain = [p for p in inputs if not p["indexed"]]
    out: dict[str, Value] = {}
    for param, topic in zip(indexed, log["topics"][1:], strict=True):
        (value,) = eth_abi.decode([abi_type(param)], bytes.fromhex(topic[2:]))
        out |= _convert(param, value)
    decoded = eth_abi.decode([abi_type(p) for p in plain], bytes.fromhex(log["data"][2:]))
    for param, value in zip(plain, decoded, strict=True):
        out |= _convert(param, value)
    columns = EVENTS_BY_NAME[name].columns
    assert set(out) == set(columns), (name, set(out) ^ set(columns))
    return name, tuple(out[c] for c in columns)


def encode_log(
    name: str,
    params: dict[str, Any],
    *,
    address: str = "0x" + "ab" * 20,
    block_number: int = 1,
    log_index: int = 0,
) -> dict[str, Any]:
    """A JSON-RPC log object for event ``name`` with ABI parameters ``params`` (eth_abi values)."""
    inputs = ABI_EVENTS[name]["inputs"]
    topics = [_topic_of(name)] + [
        "0x" + eth_abi.encode([abi_type(p)], [params[p["name"]]]).hex() for p in inputs if p["indexed"]
    ]
    plain = [p for p in inputs if not p["indexed"]]
    data = eth_abi.encode([abi_type(p) for p in plain], [params[p["name"]] for p in plain])
    return {
        "address": address,
        "topics": topics,
        "data": "0x" + data.hex(),
        "blockNumber": hex(block_number),
        "blockHash": "0x" + (block_number % 256).to_bytes(1, "big").hex() * 32,
        "transactionHash": "0x" + "11" * 31 + (log_index % 256).to_bytes(1, "big").hex(),
        "transactionIndex": "0x0",
        "logIndex": hex(log_index),
        "removed": False,
    }


def registration_data(recipient_id: str, recipient_address: str, metadata: tuple[int, str], index: int) -> bytes:
    """``Registered.data`` as donation-voting strategies build it."""
    inner = eth_abi.encode(["address", "address", "(uint256,string)"], [recipient_id, recipient_address, metadata])
    return eth_abi.encode(["bytes", "uint256"], [inner, index])
