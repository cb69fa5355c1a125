"""Download one block range: logs, the blocks they sit in, donation context, tokens, strategy ids.

Everything the indexer writes for a range is fetched here, before any database
transaction opens. The result is self-consistent: every log's block hash
matches the header fetched for its block, or ``ChainMoved`` is raised and the
range is fetched again (the chain reorganised during the download).

Requests are batched: one ``eth_getLogs`` per range (plus, when it names
addresses, one for the strategies it discovered; :mod:`indexer.logquery` says
when a query names topics instead), one batch of headers, and for donations either the
whole block (when a block holds many donations) or a batch of transactions by hash.

What the node and the contracts answered is made storable here, before it
reaches a batch (`indexer.sanitise`): decoded strings, token symbols and
decimals, strategy ids, nonces, gas prices and block times. Each value that had to change
is listed in `Fetched.sanitised` for the loop to count once the batch commits.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from qf_sentinel.indexer.decode import EMITTER_ROLES, DecodedLog, decode_log, pool_id_of, strategy_of
from qf_sentinel.indexer.errors import ChainMoved, DecodeError
from qf_sentinel.indexer.logquery import DEFAULT_ADDRESS_LIMIT, Mode, logs_of_new, plan_log_query, split_known
from qf_sentinel.indexer.ports import Node
from qf_sentinel.indexer.sanitise import (
    BIGINT_MAX,
    DECIMALS_MAX,
    SYMBOL_MAX_CHARS,
    UINT256_MAX,
    Clean,
    Sanitised,
    abi_bytes32,
    abi_string,
    abi_uint,
    bounded,
    timestamp,
)
from qf_sentinel.qf.chain.abi import NATIVE_TOKEN
from qf_sentinel.qf.errors import RpcError
from qf_sentinel.qf.eth import from_hex, to_hex

log = structlog.get_logger()

#: Fetch a whole block (one request, all its transactions) instead of single
#: transactions once a block holds at least this many donation transactions.
FULL_BLOCK_THRESHOLD = 4
NATIVE = from_hex(NATIVE_TOKEN)
DECIMALS_SELECTOR = "0x313ce567"
SYMBOL_SELECTOR = "0x95d89b41"
#: ``getStrategyId()``: Allo's BaseStrategy answers keccak256(abi.encode(its name and version)).
STRATEGY_ID_SELECTOR = "0x42fda9c7"
#: getStrategyId() calls sent in one JSON-RPC batch.
STRATEGY_ID_BATCH = 100


@dataclass(frozen=True, slots=True)
class Header:
    number: int
    hash: bytes
    parent_hash: bytes
    time: datetime
    #: Why ``time`` is not the node's timestamp (saturated: `indexer.sanitise.timestamp`); empty if it is.
    time_sanitised: tuple[str, ...] = ()


@dataclass(slots=True)
class Fetched:
    from_block: int
    to_block: int
    logs: list[DecodedLog] = field(default_factory=list)
    headers: dict[int, Header] = field(default_factory=dict)
    #: tx hash -> (from, nonce, gas price)
    tx_context: dict[bytes, tuple[bytes, int, int]] = field(default_factory=dict)
    #: (strategy address, pool id, block)
    new_strategies: list[tuple[bytes, int, int]] = field(default_factory=list)
    new_tokens: list[tuple[bytes, str | None, int | None]] = field(default_factory=list)
    #: new strategy -> what its getStrategyId() answered (`fetch_strategy_ids`)
    strategy_ids: dict[bytes, Clean[bytes | None]] = field(default_factory=dict)
    #: (block, contract, topic0) -> logs with a topic0 no decoder knows (per block: a reorg takes its own back)
    unknown: Counter[tuple[int, bytes, bytes]] = field(default_factory=Counter)
    #: Values stored other than as read, for ``qf_indexer_values_sanitised_total`` once committed.
    sanitised: list[Sanitised] = field(default_factory=list)
    decode_errors: int = 0
    rpc_logs: int = 0
    #: How the range's eth_getLogs was filtered; logs a topic filter returned that were dropped here.
    log_query: Mode = "addresses"
    dropped_logs: int = 0


def header_of(block: Mapping[str, Any]) -> Header:
    time = timestamp(int(block["timestamp"], 16))
    return Header(
        number=int(block["number"], 16),
        hash=from_hex(block["hash"]),
        parent_hash=from_hex(block["parentHash"]),
        time=time.value,
        time_sanitised=time.reasons,
    )


def fetch_headers(rpc: Node, numbers: list[int]) -> dict[int, Header]:
    blocks = rpc.get_blocks(numbers)
    headers = {}
    for n, block in zip(numbers, blocks, strict=True):
        if block is None:
            raise ChainMoved(f"block {n} is not on the node (any more)", missing_block=n)
        headers[n] = header_of(block)
    return headers


def _hex(address: bytes) -> str:
    return to_hex(address)


def _decode_all(raw: list[dict[str, Any]], out: Fetched, emitters: Mapping[str, frozenset[bytes]]) -> list[DecodedLog]:
    """Decode, count unknown topics, and leave out core/Registry/feed events another contract emitted."""
    decoded = []
    for entry in raw:
        try:
            row = decode_log(entry)
        except DecodeError as exc:
            out.decode_errors += 1
            log.warning("log_undecodable", error=str(exc), block=int(entry["blockNumber"], 16))
            continue
        if row is None:
            topic = from_hex(entry["topics"][0]) if entry.get("topics") else b""
            out.unknown[(int(entry["blockNumber"], 16), from_hex(entry["address"]), topic)] += 1
            continue
        role = EMITTER_ROLES.get(row.name)
        if role is not None and row.contract not in emitters.get(role, frozenset()):
            out.sanitised.append(Sanitised(f"{row.table}.contract", _hex(row.contract), (f"not_the_{role}",)))
            continue
        for column, reasons in row.sanitised:
            out.sanitised.append(Sanitised(f"{row.table}.{column}", _hex(row.contract), reasons))
        decoded.append(row)
    return decoded


def fetch_range(
    rpc: Node,
    from_block: int,
    to_block: int,
    *,
    core: bytes,
    registry: bytes | None = None,
    feeds: Sequence[bytes] = (),
    strategies: Mapping[bytes, tuple[int, int]],
    known_tokens: set[bytes],
    contiguous_from: int | None = None,
    helpers: Sequence[Node] = (),
    address_limit: int = DEFAULT_ADDRESS_LIMIT,
) -> Fetched:
    """Everything needed to commit [from_block, to_block].

    Headers are fetched for the blocks that carry logs and the range's ends, and
    for every block from ``contiguous_from`` on: the blocks a reorg can still
    reach, whose hashes the fork-point search walks back through.
    """
    out = Fetched(from_block, to_block)
    known = [core, *([registry] if registry else []), *feeds, *strategies]
    emitters = {"core": frozenset([core]), "registry": frozenset([registry] if registry else []),
                "feed": frozenset(feeds)}  # fmt: skip
    query = plan_log_query([_hex(a) for a in known], address_limit)
    raw = rpc.get_logs(from_block, to_block, query.addresses, query.topics)
    out.rpc_logs = len(raw)
    out.log_query = query.mode
    others: list[dict[str, Any]] = []
    if query.mode == "topics":
        # Decode only our contracts' logs: another contract may reuse a topic0 with other parameters.
        raw, others = split_known(raw, set(known))
    logs = _decode_all(raw, out, emitters)

    # Strategies created in this range: Allo emits a new strategy's first events
    # in the PoolCreated transaction itself, so take their logs from that block.
    found = {}
    for row in logs:
        strategy = strategy_of(row)
        if strategy is not None and strategy not in strategies and strategy not in found:
            pool_id = pool_id_of(row)
            assert pool_id is not None
            found[strategy] = (pool_id, row.block_number)
    out.new_strategies = [(strategy, pool_id, block) for strategy, (pool_id, block) in found.items()]
    created = {strategy: block for strategy, (_, block) in found.items()}
    if query.mode == "topics":  # the topic query already returned the new strategies' logs
        kept, out.dropped_logs = logs_of_new(others, created)
        logs += _decode_all(kept, out, emitters)
    elif found:  # one more query for all of them (a backfill may find thousands in one range)
        follow = plan_log_query([_hex(s) for s in found], address_limit)
        more = rpc.get_logs(min(created.values()), to_block, follow.addresses, follow.topics)
        out.rpc_logs += len(more)
        kept, out.dropped_logs = logs_of_new(more, created)
        logs += _decode_all(kept, out, emitters)
    logs.sort(key=lambda r: (r.block_number, r.log_index))
    out.logs = logs

    numbers = {r.block_number for r in logs} | {from_block, to_block}
    if contiguous_from is not None and contiguous_from <= to_block:
        numbers |= set(range(max(from_block, contiguous_from), to_block + 1))
    out.headers = fetch_headers(rpc, sorted(numbers))
    for n, header in out.headers.items():
        parent = out.headers.get(n - 1)
        if parent is not None and header.parent_hash != parent.hash:
            raise ChainMoved(f"block {n} does not link to block {n - 1}: the node switched forks")
    for row in logs:
        if out.headers[row.block_number].hash != row.block_hash:
            raise ChainMoved(f"block {row.block_number} changed while range {from_block}..{to_block} was fetched")
    for n, header in out.headers.items():
        if header.time_sanitised:
            out.sanitised.append(Sanitised("blocks.block_time", f"block {n}", header.time_sanitised))

    _fetch_tx_context(rpc, logs, out, helpers)
    _fetch_tokens(rpc, logs, known_tokens, out)
    _fetch_new_strategy_ids(rpc, list(found), out)
    return out


def _fetch_new_strategy_ids(rpc: Node, strategies: list[bytes], out: Fetched) -> None:
    out.strategy_ids = fetch_strategy_ids(rpc, strategies)
    for strategy, answer in out.strategy_ids.items():
        if answer.changed:
            out.sanitised.append(Sanitised("strategies.strategy_id", _hex(strategy), answer.reasons))


def fetch_strategy_ids(rpc: Node, strategies: Sequence[bytes]) -> dict[bytes, Clean[bytes | None]]:
    """What each strategy's ``getStrategyId()`` answers: its id, or None with the reason.

    Asked once per strategy, when its pool is discovered: the id is immutable in
    Allo's BaseStrategy. Whoever deployed the strategy chose the answer, so a
    revert, an empty or short answer is an id of None (kind ``unknown``), never
    an error; only a node that cannot be reached fails the batch (and it is
    retried). One JSON-RPC batch per `STRATEGY_ID_BATCH` strategies; a batch
    with a revert in it is asked again one call at a time.
    """
    answers: list[Any] = []
    for start in range(0, len(strategies), STRATEGY_ID_BATCH):
        calls: list[tuple[str, list[Any]]] = [
            ("eth_call", [{"to": _hex(s), "data": STRATEGY_ID_SELECTOR}, "latest"])
            for s in strategies[start : start + STRATEGY_ID_BATCH]
        ]
        try:
            answers += rpc.batch(calls)
        except RpcError:
            answers += _tolerant_batch(rpc, calls)
    return {s: abi_bytes32(a) for s, a in zip(strategies, answers, strict=True)}


def _fetch_tx_context(
    rpc: Node, logs: list[DecodedLog], out: Fetched, helpers: Sequence[Node] = ()
) -> None:
    by_block: dict[int, set[bytes]] = defaultdict(set)
    for row in logs:
        if row.table == "allocated":
            by_block[row.block_number].add(row.tx_hash)
    full_blocks = sorted(n for n, txs in by_block.items() if len(txs) >= FULL_BLOCK_THRESHOLD)
    singles = [to_hex(h) for n, txs in sorted(by_block.items()) if len(txs) < FULL_BLOCK_THRESHOLD for h in txs]
    clients = [rpc, *helpers]

    def blocks_part(i: int) -> list[dict[str, Any] | None]:
        part = full_blocks[i :: len(clients)]
        txs: list[dict[str, Any] | None] = []
        for block in clients[i].get_blocks(part, full=True) if part else []:
            if block is None:
                raise ChainMoved("a block with donations disappeared during the fetch")
            txs.extend(block["transactions"])
        part_singles = singles[i :: len(clients)]
        if part_singles:
            txs.extend(clients[i].get_transactions(part_singles))
        return txs

    # Nodes answer transaction lookups far slower than logs; spread them over
    # a few connections (each client is used by one thread at a time).
    if len(clients) > 1 and len(full_blocks) + len(singles) > 50:
        with ThreadPoolExecutor(len(clients), thread_name_prefix="tx-context") as pool:
            parts = list(pool.map(blocks_part, range(len(clients))))
    else:
        clients = [rpc]
        parts = [blocks_part(0)]
    transactions = [tx for part in parts for tx in part]
    for tx in transactions:
        if tx is None:
            raise ChainMoved("a donation transaction disappeared during the fetch")
        tx_hash = from_hex(tx["hash"])
        # EIP-2681 caps nonces at 2^64-1, beyond the bigint column; a gas price is whatever the node says.
        nonce = bounded(int(tx["nonce"], 16), 0, BIGINT_MAX, saturate=True)
        gas_price = bounded(int(tx["gasPrice"], 16), 0, UINT256_MAX, saturate=True)
        for name, value in (("tx_nonce", nonce), ("gas_price", gas_price)):
            if value.changed:
                out.sanitised.append(Sanitised(f"allocated.{name}", tx["hash"], value.reasons))
        assert nonce.value is not None
        assert gas_price.value is not None
        out.tx_context[tx_hash] = (from_hex(tx["from"]), nonce.value, gas_price.value)
    missing = {row.tx_hash for row in logs if row.table == "allocated"} - out.tx_context.keys()
    if missing:
        raise ChainMoved(f"{len(missing)} donation transactions were not found in their blocks")


def _fetch_tokens(rpc: Node, logs: list[DecodedLog], known: set[bytes], out: Fetched) -> None:
    seen: set[bytes] = set()
    for row in logs:
        token: Any = None
        if row.name == "PoolCreated":
            token = row.values[3]
        elif row.table == "allocated":
            token = row.values[2]
        if isinstance(token, bytes) and token not in known:
            seen.add(token)
    if not seen:
        return
    contracts = sorted(t for t in seen if t != NATIVE)
    if NATIVE in seen:
        out.new_tokens.append((NATIVE, "ETH", 18))
    calls = []
    for token in contracts:
        calls.append(("eth_call", [{"to": _hex(token), "data": DECIMALS_SELECTOR}, "latest"]))
        calls.append(("eth_call", [{"to": _hex(token), "data": SYMBOL_SELECTOR}, "latest"]))
    answers = _tolerant_batch(rpc, calls)
    for i, token in enumerate(contracts):
        # Whoever deployed the token chose these answers: any bytes, a revert, 100 kB, 2^256-1.
        decimals = abi_uint(answers[2 * i], max_value=DECIMALS_MAX)
        symbol = abi_string(answers[2 * i + 1], max_chars=SYMBOL_MAX_CHARS)
        for name, value in (("decimals", decimals), ("symbol", symbol)):
            if value.changed:
                out.sanitised.append(Sanitised(f"tokens.{name}", _hex(token), value.reasons))
        out.new_tokens.append((token, symbol.value, decimals.value))


def _tolerant_batch(rpc: Node, calls: list[tuple[str, list[Any]]]) -> list[Any]:
    """A token that does not implement decimals()/symbol() answers with an error: that is a None."""
    out: list[Any] = []
    for call in calls:
        try:
            out.append(rpc.call(*call))
        except RpcError:
            out.append(None)
    return out
