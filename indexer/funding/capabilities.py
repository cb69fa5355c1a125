"""Which funding methods a node answers, asked once per node.

Nodes differ: Erigon, Reth, Nethermind and anvil answer ``trace_filter`` and ``trace_block``;
Erigon and anvil answer Otterscan's ``ots_*``; geth and most hosted endpoints answer neither, and say
so with "method not found" (JSON-RPC -32601) or a provider's own wording. :func:`probe` asks each
method once, cheaply, on the head block; :func:`is_method_missing` reads the refusal. A node that also
caps ``trace_filter``'s block span (anvil: 300 blocks) says so when asked for more, and the cap is
read from its message (``indexer.ranges``). Every native lookup then uses the first method of
``QF_FUNDING_METHODS`` the node has; ERC-20 funding always comes from ``eth_getLogs``, which every
node answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from qf_sentinel.indexer.ranges import parse_range_hint
from qf_sentinel.indexer.rpc import ResilientRpc
from qf_sentinel.qf.errors import RpcError
from qf_sentinel.qf.funding.graph import Method

log = structlog.get_logger()

#: The native methods, cheapest first: one call per block range, one call plus one per candidate
#: transaction, one call per block.
NATIVE_METHODS: tuple[Method, ...] = (Method.TRACE_FILTER, Method.OTS, Method.TRACE_BLOCK)
_MISSING = (
    "method not found",
    "does not exist",
    "not supported",
    "unsupported method",
    "not available",
    "method not allowed",
    "not enabled",
    "unknown method",
    "not whitelisted",
)


def is_method_missing(error: RpcError) -> bool:
    """True when the node says it does not serve the method at all (not: the request was bad)."""
    message = error.rpc_message.lower()
    return error.code == -32601 or any(words in message for words in _MISSING)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the node answered: the native methods to use, in the configured order, and trace_filter's span cap."""

    native: tuple[Method, ...]
    #: Most blocks one trace_filter may span (None: no cap found).
    trace_range_blocks: int | None = None

    @property
    def labels(self) -> list[str]:
        return [m.value for m in self.native]


def probe(rpc: ResilientRpc, order: Sequence[Method] = NATIVE_METHODS) -> Capabilities:
    """Ask each native method once (on the head block, with an address nobody uses) and keep those answered."""
    head = rpc.block_number()
    nobody = "0x" + "00" * 19 + "01"
    asks: dict[Method, tuple[str, list[Any]]] = {
        Method.TRACE_FILTER: ("trace_filter", [{"fromBlock": hex(head), "toBlock": hex(head), "toAddress": [nobody]}]),
        Method.OTS: ("ots_getApiLevel", []),
        Method.TRACE_BLOCK: ("trace_block", [hex(head)]),
    }
    available = []
    for method in order:
        name, params = asks[method]
        try:
            rpc.call(name, params)
        except RpcError as exc:
            if is_method_missing(exc):
                continue
            raise
        available.append(method)
    cap = trace_range_cap(rpc, head, nobody) if Method.TRACE_FILTER in available else None
    found = Capabilities(tuple(available), cap)
    log.info("funding_capabilities", rpc=rpc.current_url, native_methods=found.labels, trace_range_blocks=cap,
             token_method=Method.TRANSFER_LOGS.value)  # fmt: skip
    return found


def trace_range_cap(rpc: ResilientRpc, head: int, nobody: str) -> int | None:
    """The block span cap of trace_filter, from the node's refusal of the whole chain (None: none found)."""
    if head < 1:
        return None
    try:
        rpc.call("trace_filter", [{"fromBlock": "0x0", "toBlock": hex(head), "toAddress": [nobody]}])
    except RpcError as exc:
        hint = parse_range_hint(exc.rpc_message, exc.code, 0, head)
        if hint is None:
            raise
        return hint.max_blocks or max(1, (head + 1) // 2)
    return None
