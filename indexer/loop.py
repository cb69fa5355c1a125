"""The indexing loop: backfill and live follow are the same loop.

Each ``step`` looks at the head, and either fetches the next block range and
commits it (with its checkpoint) in one transaction, or, when caught up, checks
that the checkpoint block is still canonical. A parent-hash mismatch at either
place is a reorg: find the common ancestor, delete everything above it in one
transaction, and go on from there. Because the checkpoint only moves with the
rows it covers, a crash at any point resumes with no gap and no duplicate.

Start-up has two steps, and the types keep them in order: an :class:`Indexer`
holds the edges (a :class:`~indexer.ports.Node` and an
:class:`~indexer.ports.IndexStore`, Protocols) and the configuration;
:meth:`Indexer.prepare` checks the node, loads the chain's state and returns
the :class:`PreparedIndexer` that steps and runs. There is no ``step()``
before ``prepare()``, and no state that may still be missing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import psycopg
import structlog

from qf_sentinel.indexer.decode import ALLOCATED_CONTEXT_COLUMNS, TABLES, DecodedLog
from qf_sentinel.indexer.errors import ChainMoved, RangeRefused, ReorgTooDeep
from qf_sentinel.indexer.fetch import Fetched, fetch_range, fetch_strategy_ids
from qf_sentinel.indexer.heads import HeadWatcher
from qf_sentinel.indexer.logquery import DEFAULT_ADDRESS_LIMIT
from qf_sentinel.indexer.metrics import ChainMetrics, IndexerMetrics
from qf_sentinel.indexer.ports import IndexStore, Node
from qf_sentinel.indexer.ranges import (
    BlockRange,
    RangeHint,
    RangePlanner,
    RangePolicy,
    is_range_error,
    parse_range_hint,
)
from qf_sentinel.indexer.reorg import find_fork_point
from qf_sentinel.indexer.store import Batch, BlockRow, ChainState
from qf_sentinel.qf import backoff
from qf_sentinel.qf.errors import ChainIdMismatch, ConfigError, DatabaseError, RpcError, RpcUnavailable
from qf_sentinel.qf.eth import from_hex, to_hex
from qf_sentinel.qf.http_metrics import HealthState

log = structlog.get_logger()

EVENT_TABLES = tuple(TABLES)
#: Views are refreshed at most every (this x the last refresh's duration): at most ~20% of the time.
REFRESH_BUDGET_FACTOR = 4.0
#: Refetches after a moved chain wait this long, doubling per repeat up to the cap; a streak this
#: long is logged as a warning (a node that keeps reporting blocks it does not have).
CHAIN_MOVED_FIRST_WAIT_SECONDS = 0.1
CHAIN_MOVED_MAX_WAIT_SECONDS = 5.0
CHAIN_MOVED_WARN_STREAK = 3
#: The wait after a failed step while the database or the node is away: doubling from the first to the most.
OUTAGE_FIRST_WAIT_SECONDS = 0.5
OUTAGE_MAX_WAIT_SECONDS = 10.0

#: The node and store types an indexer was built with (``indexer.app``: ResilientRpc and Store; a test: its fakes).
N = TypeVar("N", bound=Node)
S = TypeVar("S", bound=IndexStore)


@dataclass(frozen=True, slots=True)
class IndexerConfig:
    """The loop's configuration, built from the settings by ``indexer.app`` (whose defaults apply)."""

    chain_id: int | None
    core: bytes
    start_block: int
    #: The Allo v2 Registry whose profile events are indexed too (None: profiles are not indexed).
    registry: bytes | None
    #: Price feeds whose answers are indexed too (token -> feed).
    price_feeds: Mapping[bytes, bytes]
    poll_interval_seconds: float
    confirmations: int
    max_reorg_depth: int
    range_policy: RangePolicy
    refresh_debounce_seconds: float
    #: Blocks behind the head that still count as "caught up" for /readyz.
    ready_lag_blocks: int = 2
    #: When the node's genesis differs from the one the rows came from (a restarted devnet):
    #: delete the old chain's rows (True) or stop with an error (False, the default).
    reset_on_new_chain: bool = False
    #: Above this many contracts, eth_getLogs names topic0s and filters addresses locally (indexer.logquery).
    log_address_limit: int = DEFAULT_ADDRESS_LIMIT
    #: A ws(s):// URL whose newHeads wake the caught-up wait early (None: the poll interval alone).
    ws_url: str | None = None


@dataclass(frozen=True, slots=True)
class StepResult:
    caught_up: bool
    committed_blocks: int = 0
    events: int = 0
    reorg_depth: int | None = None
    #: Wait this long before the next step (the node's chain is moving under the fetch).
    retry_in: float = 0.0


class Indexer(Generic[N, S]):
    """One chain, one core contract, one writer: the edges and the configuration, before start-up.

    ``rpc`` and ``helpers`` (extra connections to the same endpoints, for
    parallel transaction lookups) are nodes, ``store`` the chain's store; the
    owner keeps their concrete types (to take the writer lock, to close them).
    """

    def __init__(
        self,
        config: IndexerConfig,
        rpc: N,
        store: S,
        *,
        metrics: ChainMetrics | None = None,
        health: HealthState | None = None,
        helpers: Sequence[N] = (),
    ) -> None:
        self.config = config
        self.rpc = rpc
        #: Extra connections (same endpoints) for parallel transaction lookups.
        self.helpers = tuple(helpers)
        self.store = store
        self.metrics = metrics or IndexerMetrics().chain(store.chain_id)
        self.health = health or HealthState()
        self.chain_id = store.chain_id

    def prepare(self) -> PreparedIndexer[N, S]:
        """Check the node, record or load this chain's state, restore discovered strategies: the loop, ready to step."""
        served = self.rpc.chain_id()
        if served != self.chain_id or (self.config.chain_id is not None and served != self.config.chain_id):
            raise ChainIdMismatch(
                f"node {self.rpc.current_url} serves chain {served}, expected {self.config.chain_id or self.chain_id}"
            )
        code = self.rpc.call("eth_getCode", [to_hex(self.config.core), "latest"])
        if code in (None, "0x", "0x0"):
            raise ConfigError(f"no contract at core address 0x{self.config.core.hex()} on chain {served}")
        genesis_block = self.rpc.get_block(0)
        genesis = from_hex(genesis_block["hash"]) if genesis_block else None
        stored = self.store.genesis_hash()
        if genesis is not None and stored is not None and stored != genesis:
            if not self.config.reset_on_new_chain:
                raise ConfigError(
                    f"the database holds chain {served} from genesis 0x{stored.hex()[:12]}..., but the node's genesis "
                    f"is 0x{genesis.hex()[:12]}...: another chain (a restarted devnet?). "
                    "Use another database, or `qf index --reset-chain` to delete the old rows"
                )
            deleted = self.store.forget_chain()
            log.warning("chain_reset", chain_id=served, deleted={k: v for k, v in deleted.items() if v})
        loaded = _Loaded.read(self.store, self.config, self.metrics)
        unread = self.store.unread_strategies()  # stored before their id was read (migration 024): read it once
        recorded = bool(unread) and bool(self.store.record_strategy_ids(fetch_strategy_ids(self.rpc, unread)))
        if genesis is not None and self.store.genesis_hash() != genesis:
            self.store.set_genesis_hash(genesis)
        return PreparedIndexer(self, loaded, dirty_views=recorded)


@dataclass(frozen=True, slots=True)
class _Loaded:
    """What the loop reads from the store at start and after a reorg, a lost connection or a takeover."""

    state: ChainState
    strategies: dict[bytes, tuple[int, int]]
    tokens: set[bytes]

    @classmethod
    def read(cls, store: IndexStore, config: IndexerConfig, metrics: ChainMetrics) -> _Loaded:
        state = store.load_state() or store.init_state(config.core, config.start_block)
        if state.core != config.core:
            state = store.init_state(config.core, config.start_block)  # raises ConfigError
        loaded = cls(state, store.strategies(), store.known_tokens())
        metrics.last_block.set(state.checkpoint_block or 0)
        return loaded


class PreparedIndexer(Generic[N, S]):
    """The loop of a prepared :class:`Indexer` (made by :meth:`Indexer.prepare` only): ``step``, ``run``, ``flush``.

    ``state`` is the chain's checkpoint as committed, ``strategies`` and
    ``tokens`` the contracts discovered so far; all three move with each batch
    and are re-read after a reorg or a lost connection.
    """

    def __init__(self, indexer: Indexer[N, S], loaded: _Loaded, *, dirty_views: bool = False) -> None:
        self.config = indexer.config
        self.rpc: N = indexer.rpc
        self.helpers: tuple[N, ...] = indexer.helpers
        self.store: S = indexer.store
        self.metrics = indexer.metrics
        self.health = indexer.health
        self.chain_id = indexer.chain_id
        self.state = loaded.state
        self.strategies = loaded.strategies
        self.tokens = loaded.tokens
        self.planner = RangePlanner.start(self.config.range_policy)
        #: Rows changed since the views were last refreshed.
        self._dirty_views = dirty_views
        self._last_refresh = 0.0
        self._last_refresh_seconds = 0.0
        self._last_finality_check = 0.0
        #: Highest block the node calls final (or head - confirmations); recorded with each batch.
        self._finalized: int | None = None
        self.head = 0
        #: Consecutive fetches that met a moving chain, and the block the node lacked in the last one.
        self._moved_streak = 0
        self._missing_block: int | None = None
        #: Started at the first caught-up wait of ``run`` (never for a backfill), stopped when it returns.
        self.heads: HeadWatcher | None = None

    def reload(self) -> None:
        """(Re)read state from the database: after a reorg, a lost connection or a takeover."""
        loaded = _Loaded.read(self.store, self.config, self.metrics)
        self.state, self.strategies, self.tokens = loaded.state, loaded.strategies, loaded.tokens

    # -- one iteration ----------------------------------------------------------------------
    def step(self) -> StepResult:
        started = time.monotonic()
        self.head = self.rpc.block_number()
        self.metrics.head_block.set(self.head)
        self._maybe_update_finality()
        # A block the node just lacked caps this step: index what it has, and retry the rest later.
        missing, self._missing_block = self._missing_block, None
        reach = self.head if missing is None else min(self.head, missing - 1)
        span = self.planner.propose(self.state.next_block, reach)
        if span is None:
            depth = self._check_tip()
            self._maybe_refresh(force=False)
            # After a repair the blocks above the common ancestor still need re-indexing.
            return self._tick(StepResult(caught_up=depth is None, reorg_depth=depth))
        try:
            fetched = fetch_range(
                self.rpc, span.from_block, span.to_block,
                core=self.config.core, registry=self.config.registry, feeds=tuple(self.config.price_feeds.values()),
                strategies=self.strategies,
                known_tokens=self.tokens,
                contiguous_from=self.head - self.config.max_reorg_depth, helpers=self.helpers,
                address_limit=self.config.log_address_limit,
            )  # fmt: skip
        except RpcError as exc:
            if not is_range_error(exc.rpc_message, exc.code):
                raise
            hint = parse_range_hint(exc.rpc_message, exc.code, span.from_block, span.to_block)
            self._refused(span, hint, exc)
            return self._tick(StepResult(caught_up=False))
        except RangeRefused as exc:
            self._refused(span, RangeHint.of(exc), exc)
            return self._tick(StepResult(caught_up=False))
        except ChainMoved as exc:
            return self._tick(StepResult(caught_up=False, retry_in=self._chain_moved(span, exc)))
        if missing is None:  # a fetch that stopped short of a missing block does not end the streak
            self._moved_streak = 0

        first = fetched.headers[span.from_block]
        if self.state.checkpoint_hash is not None and first.parent_hash != self.state.checkpoint_hash:
            depth = self._repair_reorg()
            return self._tick(StepResult(caught_up=False, reorg_depth=depth))

        batch = self._batch(fetched)
        self.store.commit_batch(batch, expected_checkpoint=self.state.checkpoint_block)
        self._after_commit(batch, fetched)
        self.planner = self.planner.succeeded(span)
        self.metrics.batch_seconds.observe(time.monotonic() - started)
        self.metrics.range_blocks.set(self.planner.size)
        self._maybe_refresh(force=False)
        caught_up = span.to_block >= self.head
        log.debug("batch_committed", from_block=span.from_block, to_block=span.to_block, events=batch.event_count)
        return self._tick(StepResult(caught_up=caught_up, committed_blocks=span.blocks, events=batch.event_count))

    def _chain_moved(self, span: BlockRange, exc: ChainMoved) -> float:
        """Count and log a refetch; the wait before it, doubling while the node keeps moving."""
        self._moved_streak += 1
        self.metrics.chain_moved.inc()
        if exc.missing_block is not None and exc.missing_block > span.from_block:
            self._missing_block = exc.missing_block
        wait = backoff.delay(self._moved_streak, first=CHAIN_MOVED_FIRST_WAIT_SECONDS, cap=CHAIN_MOVED_MAX_WAIT_SECONDS)
        fields = {"reason": str(exc), "from_block": span.from_block, "to_block": span.to_block,
                  "streak": self._moved_streak, "retry_in": round(wait, 2)}  # fmt: skip
        if self._moved_streak >= CHAIN_MOVED_WARN_STREAK:
            log.warning("chain_keeps_moving_during_fetch", **fields)
        else:
            log.info("chain_moved_during_fetch", **fields)
        return wait

    def _tick(self, result: StepResult) -> StepResult:
        last = self.state.checkpoint_block or 0
        self.metrics.blocks_behind.set(max(0, self.head - last))
        ready = self.head - last <= self.config.ready_lag_blocks
        self.metrics.ready.set(1 if ready else 0)
        self.health.tick(caught_up=ready)
        return result

    def _refused(self, span: BlockRange, hint: RangeHint | None, exc: Exception) -> None:
        self.planner = self.planner.refused(span, hint)  # raises on a refused single block
        log.info("log_range_refused", from_block=span.from_block, to_block=span.to_block,
                 next_size=self.planner.size, reason=str(exc)[:200])  # fmt: skip
        self.metrics.range_blocks.set(self.planner.size)

    def _batch(self, fetched: Fetched) -> Batch:
        last = fetched.headers[fetched.to_block]
        batch = Batch(from_block=fetched.from_block, to_block=fetched.to_block, to_hash=last.hash,
                      finalized_block=self._finalized)  # fmt: skip
        grouped: dict[str, list[tuple[object, ...]]] = {}
        for row in fetched.logs:
            grouped.setdefault(row.table, []).append(self._row(row, fetched))
        for table, columns in TABLES.items():
            if table in grouped:
                batch.rows[table] = (columns, grouped[table])
        batch.blocks = [BlockRow(h.number, h.hash, h.parent_hash, h.time) for h in fetched.headers.values()]
        batch.strategies = list(fetched.new_strategies)
        batch.strategy_ids = fetched.strategy_ids
        batch.tokens = list(fetched.new_tokens)
        batch.unknown = fetched.unknown
        return batch

    def _row(self, row: DecodedLog, fetched: Fetched) -> tuple[object, ...]:
        base = row.row(self.chain_id)
        if row.table != "allocated":
            return base
        sender, nonce, gas_price = fetched.tx_context[row.tx_hash]
        if base[-1] is None:  # IStrategy's four-field Allocated: tx.origin is the transaction's sender
            base = (*base[:-1], sender)
        context = {"tx_from": sender, "tx_nonce": nonce, "gas_price": gas_price,
                   "block_time": fetched.headers[row.block_number].time}  # fmt: skip
        return base + tuple(context[c] for c in ALLOCATED_CONTEXT_COLUMNS)

    def _after_commit(self, batch: Batch, fetched: Fetched) -> None:
        self.state = ChainState(
            self.chain_id, self.state.core, self.state.start_block, batch.to_block, batch.to_hash,
            batch.finalized_block or self.state.finalized_block,
        )  # fmt: skip
        for address, pool_id, block in batch.strategies:
            self.strategies[address] = (pool_id, block)
            log.info("strategy_discovered", pool_id=pool_id, strategy=to_hex(address), block=block)
        self.tokens.update(t for t, _, _ in batch.tokens)
        for row in fetched.logs:
            self.metrics.events.labels(row.name).inc()
        if fetched.unknown:
            self.metrics.unknown_topics.inc(sum(fetched.unknown.values()))
        if fetched.sanitised:
            self.metrics.sanitised.report(fetched.sanitised)
        if fetched.decode_errors:
            self.metrics.decode_errors.inc(fetched.decode_errors)
        self.metrics.log_queries.labels(fetched.log_query).inc()
        if fetched.dropped_logs:
            self.metrics.logs_dropped.inc(fetched.dropped_logs)
        self.metrics.last_block.set(batch.to_block)
        last_time = fetched.headers[batch.to_block].time.timestamp()
        self.metrics.head_lag.set(max(0.0, time.time() - last_time))
        if batch.event_count:
            self._dirty_views = True

    # -- reorgs -----------------------------------------------------------------------------
    def _check_tip(self) -> int | None:
        """Caught up: is our checkpoint block still the canonical one?"""
        if self.state.checkpoint_block is None:
            return None
        block = self.rpc.get_block(self.state.checkpoint_block)
        if block is not None and from_hex(block["hash"]) == self.state.checkpoint_hash:
            return None
        return self._repair_reorg()

    def _repair_reorg(self) -> int:
        assert self.state.checkpoint_block is not None
        tip = self.state.checkpoint_block
        floor = max(self.state.start_block - 1, tip - self.config.max_reorg_depth)
        stored = self.store.stored_block_numbers(above=floor)
        stored_hashes = self.store.block_hashes(stored)

        def canonical(numbers: Sequence[int]) -> list[bytes | None]:
            blocks = self.rpc.get_blocks(list(numbers))
            return [None if b is None else from_hex(b["hash"]) for b in blocks]

        reorg = find_fork_point(stored_hashes, canonical, max_depth=self.config.max_reorg_depth)
        ancestor, depth = reorg.common_ancestor, reorg.depth
        ancestor_hash = stored_hashes.get(ancestor)
        if ancestor_hash is None and ancestor >= self.state.start_block:
            ancestor_hash = canonical([ancestor])[0]
        deleted = self.store.rollback_to(ancestor, ancestor_hash)
        self.reload()
        self.metrics.reorgs.inc()
        self.metrics.last_reorg_depth.set(depth)
        log.warning("reorg_repaired", common_ancestor=ancestor, depth=depth,
                    deleted={k: v for k, v in deleted.items() if v})  # fmt: skip
        self._dirty_views = True
        self._maybe_refresh(force=True)
        return depth

    # -- finality and views ----------------------------------------------------------------
    def _maybe_update_finality(self) -> None:
        now = time.monotonic()
        if now - self._last_finality_check < 10.0:
            return
        self._last_finality_check = now
        finalized: int | None = None
        try:
            block = self.rpc.get_block("finalized")
            finalized = int(block["number"], 16) if block else None
        except RpcError:
            finalized = None
        if finalized is None:
            finalized = self.head - self.config.confirmations
        self.metrics.finalized_block.set(max(finalized, 0))
        self._finalized = max(finalized, 0)
        # Keep every hash a repairable reorg could reach, even where the node calls it final.
        keep_from = min(finalized, (self.state.checkpoint_block or 0) - self.config.max_reorg_depth)
        if keep_from > 0:
            pruned = self.store.prune_blocks(below=keep_from)
            if pruned:
                log.debug("block_hashes_pruned", below=keep_from, rows=pruned)

    def _maybe_refresh(self, *, force: bool) -> None:
        if not self._dirty_views:
            return
        # A full refresh grows with the data: wait at least REFRESH_BUDGET_FACTOR times as long as the
        # last one took, so refreshing never takes more than a fixed share of the loop's time.
        wait = max(self.config.refresh_debounce_seconds, REFRESH_BUDGET_FACTOR * self._last_refresh_seconds)
        if not force and time.monotonic() - self._last_refresh < wait:
            return
        # Between batches, a refresh another chain is running is not waited for (it may take our rows, or
        # the next try will); at the end of a backfill and at shutdown it is (force), so the views are current.
        seconds = self.store.refresh_views(wait=force)
        if seconds is None:
            self._last_refresh = time.monotonic()
            log.debug("views_refresh_deferred", reason="another chain's refresh holds the lock")
            return
        self.metrics.refresh_seconds.observe(seconds)
        self._last_refresh = time.monotonic()
        self._last_refresh_seconds = seconds
        self._dirty_views = False
        log.debug("views_refreshed", seconds=round(seconds, 3))

    def flush(self) -> None:
        """Refresh views now if anything changed (end of backfill, shutdown)."""
        self._maybe_refresh(force=True)

    # -- the loop ---------------------------------------------------------------------------
    def run(
        self,
        stop: threading.Event,
        *,
        until_caught_up: bool = False,
        on_step: Callable[[StepResult], None] | None = None,
    ) -> None:
        """Step until ``stop`` is set (or, with ``until_caught_up``, until the head is reached).

        Database outages are waited out: the connection is dropped, re-opened, the
        writer lock re-taken (as a standby if another writer took over meanwhile)
        and the state re-read, so the batch in flight is simply fetched again.
        RPC outages are waited out the same way. A reorg deeper than allowed
        stops the loop with ``ReorgTooDeep``, having deleted nothing.
        """
        try:
            self._run(stop, until_caught_up=until_caught_up, on_step=on_step)
        finally:  # however the loop ends, the WebSocket thread ends with it
            self._stop_heads()

    def _run(
        self, stop: threading.Event, *, until_caught_up: bool, on_step: Callable[[StepResult], None] | None
    ) -> None:
        outage = 0  # failed steps in a row
        while not stop.is_set():
            try:
                result = self.step()
                if result.caught_up:
                    self.flush()  # refreshes the analytics: it meets a database outage as often as step() does
                outage = 0
            except ReorgTooDeep:
                raise
            except (psycopg.OperationalError, DatabaseError) as exc:  # StaleCheckpoint, or a failed reconnect
                outage += 1
                wait = _outage_wait(outage)
                log.warning("database_unavailable", error=str(exc).splitlines()[0][:200], retry_in=wait)
                self.store.reset()
                self.metrics.is_writer.set(0)
                stop.wait(wait)
                self._regain(stop)
                continue
            except RpcUnavailable as exc:
                outage += 1
                wait = _outage_wait(outage)
                log.warning("rpc_unavailable", error=str(exc)[:200], retry_in=wait)
                stop.wait(wait)
                continue
            if on_step is not None:
                on_step(result)
            if result.retry_in:
                stop.wait(result.retry_in)
            elif result.caught_up:
                if until_caught_up:
                    return
                self._wait_for_head(stop)
        try:
            self.flush()
        except (psycopg.OperationalError, DatabaseError) as exc:  # stopping during an outage: the next run refreshes
            log.warning("final_refresh_skipped", error=str(exc).splitlines()[0][:200])

    def _wait_for_head(self, stop: threading.Event) -> None:
        """Caught up: wait the poll interval, or less when the WebSocket announces a header first."""
        if self.config.ws_url is None:
            if not stop.wait(self.config.poll_interval_seconds):
                self.metrics.wakeups.labels("poll").inc()
            return
        if self.heads is None:
            self.heads = HeadWatcher(self.config.ws_url, self.metrics)
            self.heads.start()
        source = self.heads.wait(self.config.poll_interval_seconds, stop)
        if source is not None:
            self.metrics.wakeups.labels(source).inc()

    def _stop_heads(self) -> None:
        if self.heads is not None:
            self.heads.stop()
            self.heads = None

    def _regain(self, stop: threading.Event) -> None:
        """After a lost connection: reconnect, re-take the writer lock, reload state."""
        while not stop.is_set():
            try:
                if self.store.wait_for_lock(poll_seconds=1.0, should_stop=stop.is_set):
                    self.metrics.is_writer.set(1)
                    self.reload()
                    log.info("database_recovered", checkpoint=self.state.checkpoint_block)
                return
            except (psycopg.OperationalError, DatabaseError) as exc:  # still down: qf.db.connect raises DatabaseError
                log.info("database_still_unavailable", error=str(exc).splitlines()[0][:200])
                self.store.reset()
                stop.wait(1.0)


def _outage_wait(failures: int) -> float:
    """Seconds to wait after ``failures`` failed steps in a row (the database or the node away)."""
    return backoff.delay(failures, first=OUTAGE_FIRST_WAIT_SECONDS, cap=OUTAGE_MAX_WAIT_SECONDS)
