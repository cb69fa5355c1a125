"""An independent reading of Allo v2 logs, for checking ``indexer.decode``.

It decodes with ``eth_abi`` from published ABIs: the project's compiled
contracts, the real strategies of ``@allo-team/allo-v2-sdk`` and the event
declarations of Gitcoin's indexer (pinned in ``tests/fixtures/reference/``),
so the indexed flags come from Solidity sources and Gitcoin's configuration,
not from the decoder under test, and builds synthetic logs the same way. Slow
and simple on purpose. Events are keyed by full signature: real strategies
overload names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import eth_abi

from qf_sentinel.indexer.decode import EVENTS_BY_SIGNATURE, Value
from qf_sentinel.qf.chain.abi import load_artifact, topic0
from qf_sentinel.qf.chain.allo_sdk import STRATEGIES, sdk_strategy

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
    "profileOwner": "profile_owner",
    "pendingOwner": "pending_owner",
    "merkleRoot": "merkle_root",
    "current": "answer",
    "roundId": "round_id",
    "updatedAt": "updated_at",
    # Gitcoin's declarations of the older and newer strategy versions (grants_stack_indexer_events.txt)
    "_recipient": "recipient_id",
    "_sender": "sender",
    "_amount": "amount",
    "_data": "data",
    "applicationId": "application_id",
    "recipientStatus": "status",
    "flowRate": "flow_rate",
    "alloV1": "allo_v1_project_id",
    "alloV1ChainId": "allo_v1_chain_id",
    "alloV2": "profile_id",
    "refUID": "ref_uid",
}

#: Columns a variant has no field for (the decoder writes NULL, or the loop fills them).
_ABSENT = {
    "Allocated(address,uint256,address,address)": {"origin"},
    "DistributionUpdated((uint256,string))": {"merkle_root"},
    "Initialized(uint256,bytes)": {"version"},
    "Initialized(uint8)": {"pool_id", "data"},
    "Allocated(address,uint256,address)": {"nft"},
    "RecipientStatusUpdated(address,uint8,address)": {"application_id"},
}
#: Two-timestamp TimestampsUpdated: which window it sets depends on the strategy.
_WINDOW = {"registrationStartTime": "window_start", "registrationEndTime": "window_end",
           "allocationStartTime": "window_start", "allocationEndTime": "window_end"}  # fmt: skip


def abi_type(param: dict[str, Any]) -> str:
    if param["type"] == "tuple":
        return "(" + ",".join(abi_type(c) for c in param["components"]) + ")"
    return str(param["type"])


def signature_of(event: dict[str, Any]) -> str:
    return f"{event['name']}({','.join(abi_type(p) for p in event['inputs'])})"


# -- Gitcoin's indexer: the pinned list of the events it subscribes to ------------------------

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "reference"
#: The events of gitcoinco/grants-stack-indexer-v2's apps/indexer/config.yaml (the file says which commit).
REFERENCE_EVENTS = REFERENCE_DIR / "grants_stack_indexer_events.txt"
#: The strategy ids Gitcoin's indexers map to names (the file says where from).
REFERENCE_STRATEGY_IDS = REFERENCE_DIR / "grants_stack_strategy_ids.txt"

_DECLARATION = re.compile(r"^(\w+)\((.*)\)$")
#: One parameter: a type (a tuple of types, or a name with an optional array suffix), maybe indexed, a name.
_PARAMETER = re.compile(r"^(\([\w,]*\)|\w+(?:\[\d*\])?)(\s+indexed)?\s+(\w+)$")


@dataclass(frozen=True, slots=True)
class ReferenceEvent:
    """One subscription of Gitcoin's indexer: the contract it names, and the event as an ABI entry."""

    contract: str
    alias: str
    abi: dict[str, Any]

    @property
    def signature(self) -> str:
        return signature_of(self.abi)


def parse_declaration(declaration: str) -> dict[str, Any]:
    """An ABI event entry from a Solidity-style declaration: ``Name(type [indexed] name, ...)``."""
    match = _DECLARATION.match(declaration.strip())
    if match is None:
        raise ValueError(f"not an event declaration: {declaration!r}")
    inputs = []
    for part in _split_parameters(match[2]):
        param = _PARAMETER.match(part)
        if param is None:
            raise ValueError(f"not a parameter: {part!r} in {declaration!r}")
        kind, indexed, name = param.groups()
        entry: dict[str, Any] = {"name": name, "indexed": bool(indexed)}
        if kind.startswith("("):
            entry |= {"type": "tuple", "components": [{"name": "", "type": t} for t in kind[1:-1].split(",")]}
        else:
            entry["type"] = kind
        inputs.append(entry)
    return {"type": "event", "name": match[1], "anonymous": False, "inputs": inputs}


def _split_parameters(text: str) -> list[str]:
    """Parameters at the top level (a tuple type's commas are its own)."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return [*parts, current.strip()] if current.strip() else parts


def reference_events(text: str | None = None) -> list[ReferenceEvent]:
    """The pinned subscriptions (or those of ``text`` in the same format), in file order."""
    lines = (REFERENCE_EVENTS.read_text() if text is None else text).splitlines()
    out = []
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        contract, declaration, *alias = line.split("\t")
        out.append(ReferenceEvent(contract, alias[0] if alias else "", parse_declaration(declaration)))
    return out


def _published_events() -> dict[str, dict[str, Any]]:
    sources = [load_artifact(n).abi for n in ("QFAllo", "DonationStrategy", "Registry", "PriceFeed")]
    sources += [sdk_strategy(n).abi for n in STRATEGIES]
    sources.append(tuple(e.abi for e in reference_events()))
    events: dict[str, dict[str, Any]] = {}
    for abi in sources:
        for entry in abi:
            if entry.get("type") == "event":
                events.setdefault(signature_of(entry), entry)
    return events


#: Full signature -> ABI entry, for every event of every published ABI (and of Gitcoin's indexer configuration).
ABI_BY_SIGNATURE: dict[str, dict[str, Any]] = _published_events()
#: Event name -> the project's own variant (what ``encode_log(name, ...)`` builds).
ABI_EVENTS: dict[str, dict[str, Any]] = {
    **load_artifact("QFAllo").events(),
    **load_artifact("DonationStrategy").events(),
    **load_artifact("Registry").events(),
}


def _topic_of(name: str) -> str:
    return topic0(signature_of(ABI_EVENTS[name]))


TOPIC_TO_SIGNATURE = {topic0(sig): sig for sig in ABI_BY_SIGNATURE}

_NO_APPLICATION: tuple[None, None, None, None] = (None, None, None, None)


def application(raw: bytes) -> tuple[bytes | None, None, int | None, str | None]:
    """(recipient_address, None, protocol, pointer) of ``abi.encode(recipientId, recipientAddress, Metadata)``."""
    try:
        _rid, address, (protocol, pointer) = eth_abi.decode(["address", "address", "(uint256,string)"], raw)
    except Exception:
        return _NO_APPLICATION
    return bytes.fromhex(address[2:]), None, protocol, pointer


def registration(raw: bytes) -> tuple[bytes | None, int | None, int | None, str | None]:
    """(recipient_address, recipient_index, protocol, pointer) of ``Registered.data``, or Nones.

    The data ends with ``recipientsCounter``, which starts at 1; the recipient's
    status nibble (``recipient_index``) is one less.
    """
    try:
        inner, counter = eth_abi.decode(["bytes", "uint256"], raw)
    except Exception:
        return _NO_APPLICATION
    address, _none, protocol, pointer = application(inner)
    if address is None or not 1 <= counter <= BIGINT_MAX:
        return _NO_APPLICATION
    return address, counter - 1, protocol, pointer


def _convert(signature: str, param: dict[str, Any], value: Any) -> dict[str, Value]:
    name, kind = param["name"], param["type"]
    if name == "metadata":
        return {"metadata_protocol": value[0], "metadata_pointer": value[1]}
    if name == "data" and signature.startswith(("Registered(", "UpdatedRegistration(address,bytes,address,uint8)")):
        read = registration if signature.startswith("Registered(") else application
        address, index, protocol, pointer = read(value)
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
    if signature == "TimestampsUpdated(uint64,uint64,address)" and name in _WINDOW:
        return {_WINDOW[name]: value}
    return {_COLUMN.get(name, name): value}


def reference_values(log: dict[str, Any]) -> tuple[str, tuple[Value, ...]]:
    """(full signature, values in the decoder's column order), decoded with eth_abi."""
    signature = TOPIC_TO_SIGNATURE[log["topics"][0]]
    inputs = ABI_BY_SIGNATURE[signature]["inputs"]
    indexed = [p for p in inputs if p["indexed"]]
    plain = [p for p in inputs if not p["indexed"]]
    out: dict[str, Value] = {}
    for param, topic in zip(indexed, log["topics"][1:], strict=True):
        (value,) = eth_abi.decode([abi_type(param)], bytes.fromhex(topic[2:]))
        out |= _convert(signature, param, value)
    decoded = eth_abi.decode([abi_type(p) for p in plain], bytes.fromhex(log["data"][2:]))
    for param, value in zip(plain, decoded, strict=True):
        out |= _convert(signature, param, value)
    columns = EVENTS_BY_SIGNATURE[signature].columns
    absent = _ABSENT.get(signature, set())
    assert set(out) | absent == set(columns), (signature, (set(out) | absent) ^ set(columns))
    return signature, tuple(out.get(c) for c in columns)


def encode_variant(signature: str, params: dict[str, Any], **where: Any) -> dict[str, Any]:
    """A JSON-RPC log object for the event variant ``signature`` (any published ABI)."""
    return _encode(ABI_BY_SIGNATURE[signature], params, **where)


def encode_log(
    name: str,
    params: dict[str, Any],
    *,
    address: str = "0x" + "ab" * 20,
    block_number: int = 1,
    log_index: int = 0,
) -> dict[str, Any]:
    """A JSON-RPC log object for event ``name`` with ABI parameters ``params`` (eth_abi values)."""
    return _encode(ABI_EVENTS[name], params, address=address, block_number=block_number, log_index=log_index)


def _encode(
    event: dict[str, Any],
    params: dict[str, Any],
    *,
    address: str = "0x" + "ab" * 20,
    block_number: int = 1,
    log_index: int = 0,
) -> dict[str, Any]:
    inputs = event["inputs"]
    topics = [topic0(signature_of(event))] + [
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
    """``Registered.data`` as donation-voting strategies build it for status nibble ``index`` (counter index + 1)."""
    inner = eth_abi.encode(["address", "address", "(uint256,string)"], [recipient_id, recipient_address, metadata])
    return eth_abi.encode(["bytes", "uint256"], [inner, index + 1])
