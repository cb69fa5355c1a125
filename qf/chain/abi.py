"""Contract artifacts and ABI encoding.

Artifacts are the JSON files in ``contracts_abi/`` written by
``scripts/compile_contracts.py``. ``ALLO_V2_EVENTS`` is the list of event
signatures copied from Allo Protocol v2 by hand: it is what the indexer
matches on, and a test checks that the compiled contracts emit exactly these.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import eth_abi
from eth_utils import keccak
from eth_utils.abi import (
    abi_to_signature,
    event_abi_to_log_topic,
    function_abi_to_4byte_selector,
    get_abi_input_types,
)

from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.eth import from_hex, to_hex
from qf_sentinel.qf.package_data import shipped

ARTIFACTS_DIR = shipped("contracts_abi")

#: Allo's marker address for the chain's native token.
NATIVE_TOKEN = "0xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"  # noqa: S105 - an address, not a secret

#: Event name -> canonical signature, as declared by Allo Protocol v2 (core and
#: the DonationVotingMerkleDistribution strategy family).
ALLO_V2_EVENTS: dict[str, str] = {
    "PoolCreated": "PoolCreated(uint256,bytes32,address,address,uint256,(uint256,string))",
    "PoolFunded": "PoolFunded(uint256,uint256,uint256)",
    "PoolMetadataUpdated": "PoolMetadataUpdated(uint256,(uint256,string))",
    "Registered": "Registered(address,bytes,address)",
    "UpdatedRegistration": "UpdatedRegistration(address,bytes,address,uint8)",
    "RecipientStatusUpdated": "RecipientStatusUpdated(uint256,uint256,address)",
    "TimestampsUpdated": "TimestampsUpdated(uint64,uint64,uint64,uint64,address)",
    "Allocated": "Allocated(address,uint256,address,address,address)",
    "Distributed": "Distributed(address,address,uint256,address)",
    "FundsDistributed": "FundsDistributed(uint256,address,address,address)",
}


def topic0(signature: str) -> str:
    """keccak256 of an event signature as 0x-hex: the log's first topic."""
    return to_hex(keccak(text=signature))


@dataclass(frozen=True, slots=True)
class Artifact:
    """A compiled contract: its ABI and creation bytecode."""

    name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: bytes

    def function(self, name: str) -> dict[str, Any]:
        matches = [e for e in self.abi if e.get("type") == "function" and e["name"] == name]
        if len(matches) != 1:
            raise KeyError(f"{self.name} has {len(matches)} functions named {name!r}")
        return matches[0]

    def events(self) -> dict[str, dict[str, Any]]:
        return {e["name"]: e for e in self.abi if e.get("type") == "event"}

    def event_signatures(self) -> dict[str, str]:
        return {name: abi_to_signature(e) for name, e in self.events().items()}  # type: ignore[arg-type]

    def event_topics(self) -> dict[str, str]:
        return {
            name: to_hex(event_abi_to_log_topic(e))  # type: ignore[arg-type]
            for name, e in self.events().items()
        }

    def encode_call(self, name: str, args: Sequence[Any]) -> bytes:
        """Calldata for ``name(args)``: 4-byte selector + ABI-encoded arguments."""
        entry = self.function(name)
        selector = function_abi_to_4byte_selector(entry)  # type: ignore[arg-type]
        return selector + eth_abi.encode(get_abi_input_types(entry), list(args))  # type: ignore[arg-type]

    def deploy_data(self, args: Sequence[Any] = ()) -> bytes:
        """Creation bytecode followed by the ABI-encoded constructor arguments."""
        ctors = [e for e in self.abi if e.get("type") == "constructor"]
        if not ctors:
            return self.bytecode
        types = get_abi_input_types(ctors[0])  # type: ignore[arg-type]
        return self.bytecode + eth_abi.encode(types, list(args))


def _type_string(component: dict[str, Any]) -> str:
    if component["type"].startswith("tuple"):
        inner = ",".join(_type_string(c) for c in component["components"])
        return f"({inner}){component['type'][len('tuple') :]}"
    return str(component["type"])


@functools.cache
def load_artifact(name: str) -> Artifact:
    """Read ``contracts_abi/<name>.json``; a clear error if it is missing."""
    path = ARTIFACTS_DIR / f"{name}.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"missing contract artifact {path}: run `make contracts`") from None
    return Artifact(name=name, abi=tuple(raw["abi"]), bytecode=from_hex(raw["bytecode"]))
