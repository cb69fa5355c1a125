"""One wallet's first incoming transfers, asked of the node with a bounded number of calls.

A :class:`Task` names a wallet, the block range still to search (from where the last search stopped,
up to the wallet's bound) and the assets: the native coin, unless already found, and the ERC-20
tokens it donated. :meth:`Finder.search` finds, per asset, the earliest incoming transfer in that
range, with its block's time and whether the funder has code, spending at most ``max_calls`` RPC
calls (a batch is one call). It stops early, never waits: the outcome says how far every asset not
found was searched, so the next attempt resumes there.

Native funding uses the first method the node answered (:mod:`~indexer.funding.capabilities`), in
the configured order; a method that would need more calls than the budget allows (``trace_filter``
capped at 300 blocks over a long chain, ``trace_block`` over many blocks) gives way to the next.
Tokens use ``eth_getLogs`` for ``Transfer(*, wallet, *)`` of the token, with the indexer's range
planner (ranges shrink on a provider's refusal). Not thread-safe: one finder per thread.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from qf_sentinel.indexer.errors import ChainMoved
from qf_sentinel.indexer.funding.capabilities import Capabilities, is_method_missing
from qf_sentinel.indexer.funding.errors import BudgetExhausted, FundingError, MethodMissing, TooCostly
from qf_sentinel.indexer.funding.transfers import (
    TRANSFER_TOPIC,
    Transfer,
    address_topic,
    first,
    from_ots_operations,
    from_traces,
    from_transfer_logs,
    ots_page,
)
from qf_sentinel.indexer.ranges import BlockRange, RangePlanner, RangePolicy, parse_range_hint
from qf_sentinel.indexer.rpc import ResilientRpc
from qf_sentinel.qf.errors import QFError, RpcError
from qf_sentinel.qf.eth import to_hex
from qf_sentinel.qf.funding.graph import NATIVE, ZERO_ADDRESS, Method

log = structlog.get_logger()

#: Transactions per Otterscan search page.
OTS_PAGE_SIZE = 25
#: Wallets named in one trace_filter (toAddress) or eth_getLogs (topic) of a batch search.
ADDRESSES_PER_CALL = 200
#: Calls in one JSON-RPC batch of block and code lookups.
LOOKUPS_PER_BATCH = 200
#: A wallet's search may span this many attempts (each resuming where the last stopped); a method that would
#: need more is skipped for the next one (trace_filter capped at 300 blocks over millions of blocks).
RESUMABLE_ATTEMPTS = 16
#: Block times and hashes, and funders' code, remembered across wallets (many share blocks and funders).
CACHE_ENTRIES = 50_000


@dataclass(frozen=True, slots=True)
class Task:
    """A wallet to search: blocks ``from_block``..``to_block``, for the native coin and ``tokens``, except
    the assets in ``found`` (already stored)."""

    wallet: bytes
    depth: int
    tokens: tuple[bytes, ...]
    from_block: int
    to_block: int
    found: frozenset[bytes] = frozenset()

    @property
    def assets(self) -> list[bytes]:
        return [a for a in (NATIVE, *self.tokens) if a not in self.found]


@dataclass(frozen=True, slots=True)
class Found:
    """A first incoming transfer, with its block's time and whether its funder has code."""

    transfer: Transfer
    time: float
    funder_is_contract: bool | None


@dataclass(slots=True)
class Outcome:
    """What a search found, how far it got, and what it cost."""

    task: Task
    found: list[Found] = field(default_factory=list)
    #: Every asset of the task not found had no incoming transfer up to this block.
    searched_to: int = -1
    #: The method that answered for the native coin (None: not searched, or no method).
    native_method: Method | None = None
    #: The node has no method for native funding (or none within the budget): only an import can fill it.
    native_unavailable: bool = False
    #: Why, when ``native_unavailable``.
    note: str | None = None
    calls: int = 0
    error: QFError | None = None
    skipped_entries: int = 0
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return self.error is None and self.searched_to >= self.task.to_block


class _Budget:
    def __init__(self, max_calls: int) -> None:
        self.max_calls = max_calls
        self.used = 0

    @property
    def left(self) -> int:
        return self.max_calls - self.used

    def spend(self, calls: int = 1) -> None:
        if self.used + calls > self.max_calls:
            raise BudgetExhausted(f"the wallet's {self.max_calls} RPC calls are spent (QF_FUNDING_MAX_CALLS)")
        self.used += calls


class Finder:
    """Searches wallets on one node (one ``ResilientRpc``), within a per-wallet call budget."""

    def __init__(
        self, rpc: ResilientRpc, capabilities: Capabilities, *, max_calls: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        if max_calls < 1:
            raise ValueError("max_calls must be at least 1")
        self.rpc = rpc
        self.capabilities = capabilities
        self.max_calls = max_calls
        self.clock = clock
        self._blocks: OrderedDict[int, tuple[bytes, float]] = OrderedDict()
        self._code: OrderedDict[bytes, bool] = OrderedDict()

    def search_many(self, tasks: Sequence[Task]) -> list[Outcome]:
        """Search many wallets at once where the node allows it, then each wallet alone for what is left.

        ``trace_filter`` takes a list of recipients and ``eth_getLogs`` a list of topics, so a batch walks the
        block range once for all its wallets (at most ``max_calls`` calls per pass, else the pass is not made)
        instead of once per wallet; a wallet's share of those calls is counted in its outcome. What the batch
        pass cannot do (Otterscan or trace_block searches, a pass that would cost too much, a pass that failed)
        is searched wallet by wallet with :meth:`search`, within each wallet's own budget.
        """
        started = self.clock()
        budget = _Budget(self.max_calls * 4)
        found: dict[tuple[bytes, bytes], Transfer] = {}
        handled: dict[bytes, set[bytes]] = {t.wallet: set() for t in tasks}
        live = [t for t in tasks if t.from_block <= t.to_block]
        try:
            if self.capabilities.native[:1] == (Method.TRACE_FILTER,):
                natives = [t for t in live if NATIVE in t.assets]
                if self._bulk_traces(natives, budget, found):
                    for t in natives:
                        handled[t.wallet].add(NATIVE)
            for token in sorted({a for t in live for a in t.assets if a != NATIVE}):
                holders = [t for t in live if token in t.assets]
                if self._bulk_logs(holders, token, budget, found):
                    for t in holders:
                        handled[t.wallet].add(token)
            enriched = self._enrich_many(list(found.values()), budget)
        except (FundingError, ChainMoved, QFError) as exc:
            log.info("funding_batch_failed", wallets=len(tasks), error=str(exc)[:200], calls=budget.used)
            enriched, handled = {}, {t.wallet: set() for t in tasks}
        share = -(-budget.used // max(len(tasks), 1))
        batch_seconds = (self.clock() - started) / max(len(tasks), 1)
        outcomes = []
        for task in tasks:
            done = handled[task.wallet]
            rest = Task(task.wallet, task.depth, task.tokens, task.from_block, task.to_block, task.found | done)
            out = self.search(rest) if rest.assets and task.from_block <= task.to_block else Outcome(
                rest, searched_to=task.to_block)  # fmt: skip
            out.task = task
            out.found = [enriched[(task.wallet, a)] for a in sorted(done) if (task.wallet, a) in enriched] + out.found
            if NATIVE in done:
                out.native_method = Method.TRACE_FILTER
            out.calls += share
            out.seconds += batch_seconds
            outcomes.append(out)
        return outcomes

    def _bulk_traces(self, tasks: Sequence[Task], budget: _Budget, found: dict[tuple[bytes, bytes], Transfer]) -> bool:
        """Every task's first incoming native transfer by trace_filter over the batch's range, window by window;
        False (nothing searched) when the pass would take more calls than the budget has."""
        if not tasks:
            return True
        lo, hi = min(t.from_block for t in tasks), max(t.to_block for t in tasks)
        window = self.capabilities.trace_range_blocks or (hi - lo + 1)
        chunks = -(-len(tasks) // ADDRESSES_PER_CALL)
        if math.ceil((hi - lo + 1) / window) * chunks > budget.left:
            return False
        by_wallet = {t.wallet: t for t in tasks}
        a = lo
        while a <= hi:
            b = min(hi, a + window - 1)
            active = [t.wallet for t in tasks
                      if (t.wallet, NATIVE) not in found and t.from_block <= b and t.to_block >= a]  # fmt: skip
            refused = False
            for start in range(0, len(active), ADDRESSES_PER_CALL):
                chunk = active[start : start + ADDRESSES_PER_CALL]
                budget.spend()
                query = {"fromBlock": hex(a), "toBlock": hex(b), "toAddress": [to_hex(w) for w in chunk]}
                try:
                    traces = self.rpc.call("trace_filter", [query])
                except RpcError as exc:
                    hint = parse_range_hint(exc.rpc_message, exc.code, a, b)
                    if hint is None or b == a:
                        raise
                    window = max(1, min(hint.max_blocks or (b - a + 1) // 2, (b - a + 1) // 2 or 1))
                    refused = True
                    break
                for transfer in sorted(from_traces(traces, set(chunk), Method.TRACE_FILTER).transfers):
                    task = by_wallet[transfer.wallet]
                    key = (transfer.wallet, NATIVE)
                    if key not in found and task.from_block <= transfer.block <= task.to_block:
                        found[key] = transfer
            if not refused:
                a = b + 1
        return True

    def _bulk_logs(
        self, tasks: Sequence[Task], token: bytes, budget: _Budget, found: dict[tuple[bytes, bytes], Transfer]
    ) -> bool:
        """Every task's first incoming transfer of ``token`` from Transfer logs naming many recipients at once."""
        if not tasks:
            return True
        lo, hi = min(t.from_block for t in tasks), max(t.to_block for t in tasks)
        by_wallet = {t.wallet: t for t in tasks}
        wallets = sorted(by_wallet)
        for start in range(0, len(wallets), ADDRESSES_PER_CALL):
            chunk = wallets[start : start + ADDRESSES_PER_CALL]
            topics: list[Any] = [TRANSFER_TOPIC, None, [address_topic(w) for w in chunk]]
            span = hi - lo + 1
            planner = RangePlanner.start(RangePolicy(initial_blocks=span, max_blocks=span))
            a = lo
            while (window := planner.propose(a, hi)) is not None:
                budget.spend()
                try:
                    logs = self.rpc.get_logs(window.from_block, window.to_block, [to_hex(token)], topics)
                except RpcError as exc:
                    hint = parse_range_hint(exc.rpc_message, exc.code, window.from_block, window.to_block)
                    if hint is None:
                        raise
                    planner = planner.refused(BlockRange(*window), hint)
                    continue
                for transfer in sorted(from_transfer_logs(logs, set(chunk), token).transfers):
                    task = by_wallet[transfer.wallet]
                    key = (transfer.wallet, token)
                    if key not in found and task.from_block <= transfer.block <= task.to_block:
                        found[key] = transfer
                planner = planner.succeeded(window)
                a = window.to_block + 1
        return True

    def _enrich_many(self, transfers: Sequence[Transfer], budget: _Budget) -> dict[tuple[bytes, bytes], Found]:
        """:meth:`_enrich` for many transfers, their block and code lookups batched."""
        for t in transfers:
            remembered = self._blocks.get(t.block)
            if remembered is not None and remembered[0] != t.block_hash:
                del self._blocks[t.block]
        blocks = sorted({t.block for t in transfers} - self._blocks.keys())
        funders = sorted({t.funder for t in transfers if t.funder != ZERO_ADDRESS} - self._code.keys())
        calls: list[tuple[str, list[Any]]] = [("eth_getBlockByNumber", [hex(b), False]) for b in blocks]
        calls += [("eth_getCode", [to_hex(f), "latest"]) for f in funders]
        keys: list[Any] = [*blocks, *funders]
        for start in range(0, len(calls), LOOKUPS_PER_BATCH):
            budget.spend()
            answers = self.rpc.batch(calls[start : start + LOOKUPS_PER_BATCH])
            for key, (method, _), answer in zip(keys[start:], calls[start : start + LOOKUPS_PER_BATCH], answers,
                                                strict=False):  # fmt: skip
                self._learn(method, key, answer)
        return {(t.wallet, t.asset): self._enrich(t, budget) for t in transfers}

    def _learn(self, method: str, key: Any, answer: Any) -> None:
        if method == "eth_getCode":
            self._remember(self._code, key, isinstance(answer, str) and answer not in ("0x", "0x0", ""))
        elif isinstance(answer, dict) and isinstance(answer.get("hash"), str):
            entry = (bytes.fromhex(answer["hash"][2:]), float(int(str(answer["timestamp"]), 16)))
            self._remember(self._blocks, key, entry)
        else:
            raise ChainMoved(f"block {key} of a transfer is gone from the node", missing_block=int(key))

    def search(self, task: Task) -> Outcome:
        """Search the task's assets one by one; a transfer found is kept (with its block's time) even if a later
        asset's search stops, so every attempt makes progress however small the budget."""
        started = self.clock()
        out = Outcome(task, searched_to=task.from_block - 1)
        budget = _Budget(self.max_calls)
        #: asset -> last block searched without finding it
        progress = dict.fromkeys(task.assets, task.from_block - 1)
        try:
            if task.from_block <= task.to_block:
                for asset in task.assets:
                    if asset == NATIVE:
                        transfer = self._native(task, budget, progress, out)
                    else:
                        transfer = self._token(task, asset, budget, progress, out)
                    if transfer is not None:
                        out.found.append(self._enrich(transfer, budget))
                        del progress[asset]
        except (FundingError, ChainMoved, QFError) as exc:
            out.error = exc
        searched = [p for a, p in progress.items() if not (a == NATIVE and out.native_unavailable)]
        out.searched_to = min(searched, default=task.to_block) if task.from_block <= task.to_block else task.to_block
        out.calls = budget.used
        out.seconds = self.clock() - started
        return out

    # -- the native coin -----------------------------------------------------------------------
    def _native(self, task: Task, budget: _Budget, progress: dict[bytes, int], out: Outcome) -> Transfer | None:
        methods = self.capabilities.native
        if not methods:
            out.native_unavailable = True
            out.note = ("the node answers no trace_filter, ots_* or trace_block: native funding cannot be found here "
                        "(set QF_FUNDING_RPC_URLS to a node that has them, or use `qf funding import`)")  # fmt: skip
            return None
        costly: list[str] = []
        for method in methods:
            search = {Method.TRACE_FILTER: self._trace_filter, Method.OTS: self._ots,
                      Method.TRACE_BLOCK: self._trace_block}[method]  # fmt: skip
            try:
                found = search(task, budget, progress, out)
            except TooCostly as exc:
                costly.append(str(exc))
                continue
            except RpcError as exc:
                if is_method_missing(exc):
                    raise MethodMissing(f"{exc.method}: the node no longer answers it") from exc
                raise
            out.native_method = method
            return found
        out.native_unavailable = True
        out.note = "; ".join(costly)
        return None

    def _trace_filter(self, task: Task, budget: _Budget, progress: dict[bytes, int], out: Outcome) -> Transfer | None:
        lo, hi = progress[NATIVE] + 1, task.to_block
        window = self.capabilities.trace_range_blocks or (hi - lo + 1)
        if math.ceil((hi - lo + 1) / window) > budget.left * RESUMABLE_ATTEMPTS:
            raise TooCostly(f"trace_filter is capped at {window} blocks: blocks {lo}..{hi} need more than "
                            f"{RESUMABLE_ATTEMPTS} attempts of {budget.max_calls} calls")  # fmt: skip
        wallet = to_hex(task.wallet)
        a = lo
        while a <= hi:
            b = min(hi, a + window - 1)
            budget.spend()
            try:
                query = {"fromBlock": hex(a), "toBlock": hex(b), "toAddress": [wallet]}
                traces = self.rpc.call("trace_filter", [query])
            except RpcError as exc:
                hint = parse_range_hint(exc.rpc_message, exc.code, a, b)
                if hint is None or b == a:
                    raise
                window = max(1, min(hint.max_blocks or (b - a + 1) // 2, (b - a + 1) // 2 or 1))
                continue
            read = from_traces(traces, {task.wallet}, Method.TRACE_FILTER)
            out.skipped_entries += read.skipped
            if (found := first(read.transfers)) is not None:
                return found
            progress[NATIVE] = b
            a = b + 1
        return None

    def _trace_block(self, task: Task, budget: _Budget, progress: dict[bytes, int], out: Outcome) -> Transfer | None:
        lo, hi = progress[NATIVE] + 1, task.to_block
        if hi - lo + 1 > budget.left * RESUMABLE_ATTEMPTS:
            raise TooCostly(f"trace_block needs one call per block: {hi - lo + 1} blocks need more than "
                            f"{RESUMABLE_ATTEMPTS} attempts of {budget.max_calls} calls")  # fmt: skip
        for number in range(lo, hi + 1):
            budget.spend()
            read = from_traces(self.rpc.call("trace_block", [hex(number)]), {task.wallet}, Method.TRACE_BLOCK)
            out.skipped_entries += read.skipped
            if (found := first(read.transfers)) is not None:
                return found
            progress[NATIVE] = number
        return None

    def _ots(self, task: Task, budget: _Budget, progress: dict[bytes, int], out: Outcome) -> Transfer | None:
        hi = task.to_block
        after = max(progress[NATIVE], 0)  # ots searches blocks after this one; genesis holds no transactions
        while True:
            budget.spend()
            page = ots_page(self.rpc.call("ots_searchTransactionsAfter", [to_hex(task.wallet), after, OTS_PAGE_SIZE]),
                            task.wallet)  # fmt: skip
            out.skipped_entries += page.skipped
            for block, tx, direct in page.steps:
                if block > hi:
                    progress[NATIVE] = hi
                    return None
                if direct is not None:
                    return direct
                budget.spend()
                read = from_ots_operations(self.rpc.call("ots_getInternalOperations", [tx["hash"]]), tx, task.wallet)
                out.skipped_entries += read.skipped
                if (found := first(read.transfers)) is not None:
                    return found
                progress[NATIVE] = block - 1  # later transactions of this block are still to look at
            if page.newest or page.last_block <= after:
                progress[NATIVE] = hi
                return None
            progress[NATIVE] = page.last_block
            after = page.last_block

    # -- tokens -----------------------------------------------------------------------------------
    def _token(
        self, task: Task, token: bytes, budget: _Budget, progress: dict[bytes, int], out: Outcome
    ) -> Transfer | None:
        lo, hi = progress[token] + 1, task.to_block
        span = hi - lo + 1
        planner = RangePlanner.start(RangePolicy(initial_blocks=span, max_blocks=span))
        topics = [TRANSFER_TOPIC, None, address_topic(task.wallet)]
        while (window := planner.propose(lo, hi)) is not None:
            budget.spend()
            try:
                logs = self.rpc.get_logs(window.from_block, window.to_block, [to_hex(token)], topics)
            except RpcError as exc:
                hint = parse_range_hint(exc.rpc_message, exc.code, window.from_block, window.to_block)
                if hint is None:
                    raise
                planner = planner.refused(BlockRange(*window), hint)
                continue
            read = from_transfer_logs(logs, {task.wallet}, token)
            out.skipped_entries += read.skipped
            if (found := first(read.transfers)) is not None:
                return found
            planner = planner.succeeded(window)
            progress[token] = window.to_block
            lo = window.to_block + 1
        return None

    # -- block times and funders' code ------------------------------------------------------------
    def _enrich(self, transfer: Transfer, budget: _Budget) -> Found:
        """The transfer with its block's time (its hash checked against the one the answer named) and whether its
        funder has code: one batch call, none when both are remembered."""
        calls: list[tuple[str, list[Any]]] = []
        remembered = self._blocks.get(transfer.block)
        if remembered is not None and remembered[0] != transfer.block_hash:
            del self._blocks[transfer.block]  # remembered from before a reorg: ask again
        if transfer.block not in self._blocks:
            calls.append(("eth_getBlockByNumber", [hex(transfer.block), False]))
        funder = transfer.funder
        if funder != ZERO_ADDRESS and funder not in self._code:
            calls.append(("eth_getCode", [to_hex(funder), "latest"]))
        if calls:
            budget.spend()
            for (method, _), answer in zip(calls, self.rpc.batch(calls), strict=True):
                self._learn(method, funder if method == "eth_getCode" else transfer.block, answer)
        block_hash, block_time = self._blocks[transfer.block]
        if block_hash != transfer.block_hash:
            raise ChainMoved(f"block {transfer.block} changed while the wallet was searched")
        return Found(transfer, block_time, None if funder == ZERO_ADDRESS else self._code.get(funder))

    @staticmethod
    def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
        cache[key] = value
        if len(cache) > CACHE_ENTRIES:
            cache.popitem(last=False)
