"""The funding loop: queue new donors, claim due wallets, search them on the node, record what was found.

Runs beside the indexer, never inside it (the IPFS metadata fetcher is the model): its own thread in
``qf index`` or its own process (``qf funding``), its own database connection
(:mod:`~indexer.funding.store`) and its own node clients, one per search thread
(:mod:`~indexer.funding.finder`). A node without a trace API costs the indexer nothing: the worker
finds no native method at start, says so (log ``funding_capabilities``, metric
``qf_indexer_funding_method_available``), finds ERC-20 funding from logs and marks native funding
``unavailable`` (for ``qf funding import``). A failed search is retried on the metadata fetcher's
backoff schedule; the clock and the random source are parameters, so tests step time.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
import structlog

from qf_sentinel.indexer.funding.capabilities import NATIVE_METHODS, Capabilities
from qf_sentinel.indexer.funding.errors import MethodMissing
from qf_sentinel.indexer.funding.finder import Finder, Outcome, Task
from qf_sentinel.indexer.funding.metrics import ChainFundingMetrics
from qf_sentinel.indexer.funding.store import Claimed, FundingStore
from qf_sentinel.indexer.metadata.schedule import RetryPolicy, outage_wait_seconds
from qf_sentinel.qf.errors import DatabaseError, RpcUnavailable
from qf_sentinel.qf.eth import to_hex
from qf_sentinel.qf.funding.graph import DEFAULT_MAX_DEPTH, NATIVE, Method

log = structlog.get_logger()
Clock = Callable[[], datetime]
#: Fewest wallets per search batch (a batch walks the block range once for all of its wallets).
MIN_BATCH = 32


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """How deep, how much per wallet, how many at once, and when to retry."""

    max_depth: int = DEFAULT_MAX_DEPTH
    max_calls: int = 64
    concurrency: int = 4
    batch_size: int = 256
    poll_seconds: float = 2.0
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(base_seconds=30.0, max_seconds=3600.0))
    #: How long a claim lasts: far longer than a batch of searches takes.
    lease_seconds: float = 600.0


class FundingWorker:
    """One chain's worker: ``run_once`` handles what is due; ``run`` repeats it until told to stop."""

    def __init__(
        self,
        store: FundingStore,
        finder_factory: Callable[[Capabilities], Finder],
        probe: Callable[[], Capabilities],
        metrics: ChainFundingMetrics,
        config: WorkerConfig,
        *,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self._on_close = on_close
        self.finder_factory = finder_factory
        self.probe = probe
        self.metrics = metrics
        self.config = config
        self.clock = clock
        self.rng = rng or random.Random()
        self.capabilities: Capabilities | None = None
        self._local = threading.local()
        self._generation = 0  # bumped when capabilities are asked again: threads then build new finders
        self._pool = ThreadPoolExecutor(max_workers=max(config.concurrency, 1), thread_name_prefix="qf-funding")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.store.close()
        if self._on_close is not None:
            self._on_close()

    # -- capabilities ------------------------------------------------------------------------------
    def detect(self) -> Capabilities:
        """Ask the node which methods it answers (again); wallets no method could do before are queued again."""
        caps = self.probe()
        self.capabilities = caps
        self._generation += 1
        for method in NATIVE_METHODS:
            self.metrics.method_available.labels(method.value).set(1 if method in caps.native else 0)
        self.metrics.method_available.labels(Method.TRANSFER_LOGS.value).set(1)
        if caps.native and (requeued := self.store.reset_unavailable()):
            log.info("funding_requeued_unavailable", wallets=requeued, native_methods=caps.labels)
        if not caps.native:
            log.warning("funding_native_unavailable", hint="the node has no trace_filter, ots_* or trace_block: "
                        "native funding is left for `qf funding import`; ERC-20 funding comes from logs")  # fmt: skip
        return caps

    def _finder(self) -> Finder:
        local = self._local
        if getattr(local, "generation", None) != self._generation:
            assert self.capabilities is not None
            local.finder = self.finder_factory(self.capabilities)
            local.generation = self._generation
        finder: Finder = local.finder
        return finder

    # -- one round -----------------------------------------------------------------------------------
    def run_once(self) -> int:
        """Queue new donors, then search the wallets due now (``concurrency`` at a time); return how many."""
        if self.capabilities is None:
            self.detect()
        self.store.queue_donors()
        return self._round()

    def _round(self, wallets: Sequence[bytes] | None = None) -> int:
        rollbacks = self.store.rollbacks()
        checkpoint = self.store.checkpoint()
        if checkpoint is None:
            return 0
        now = self.clock()
        lease = now + timedelta(seconds=self.config.lease_seconds)
        limit = self.config.batch_size if wallets is None else len(wallets)
        claimed = self.store.claim(now, limit=limit, lease_until=lease, wallets=wallets)
        if not claimed:
            self.metrics.pending.set(self.store.pending_count())
            return 0
        tasks = [_task(c, checkpoint) for c in claimed]
        # Batches of at least MIN_BATCH wallets, one per search thread: a batch walks the chain once for all.
        groups = max(1, min(self.config.concurrency, len(tasks) // MIN_BATCH))
        batches = [tasks[i::groups] for i in range(groups)]
        by_wallet = {o.task.wallet: o for batch in self._pool.map(self._search_many, batches) for o in batch}
        outcomes = [by_wallet[t.wallet] for t in tasks]
        retry_at = [self.config.retry.next_attempt(now, c.attempts + 1, self.rng) for c in claimed]
        recorded = self.store.record(outcomes, rollbacks=rollbacks, now=self.clock(), retry_at=retry_at,
                                     max_depth=self.config.max_depth)  # fmt: skip
        self._observe(outcomes, recorded.done, recorded.unavailable, recorded.retry, recorded.discarded)
        if any(isinstance(o.error, MethodMissing) for o in outcomes):
            self.detect()
        return len(claimed)

    def lookup(self, wallets: Sequence[bytes]) -> int:
        """Search ``wallets`` now, and their funders hop by hop up to the depth limit (``qf funding lookup``);
        returns how many wallets were searched. Wallets already done are not searched again."""
        if self.capabilities is None:
            self.detect()
        self.store.request(wallets)
        searched = 0
        hop = list(wallets)
        for _ in range(self.config.max_depth):
            if not hop:
                break
            searched += self._round(wallets=hop)
            hop = self.store.funders_of(hop)
        return searched

    def _search(self, task: Task) -> Outcome:
        return self._finder().search(task)

    def _search_many(self, tasks: Sequence[Task]) -> list[Outcome]:
        return self._finder().search_many(tasks)

    def drain(self) -> int:
        """Run until nothing is due now (failures wait for their retry time, so this ends); return how many."""
        total = 0
        while handled := self.run_once():
            total += handled
        return total

    def run(self, stop: threading.Event, *, busy: Callable[[], bool] | None = None) -> None:
        """Search until ``stop`` is set, waiting ``poll_seconds`` whenever nothing is due or ``busy()`` says the
        indexer beside it needs the machine (a backfill); database and node outages are waited out."""
        outage = 0
        while not stop.is_set():
            if busy is not None and busy():
                stop.wait(self.config.poll_seconds)
                continue
            try:
                handled = self.run_once()
                outage = 0
            except (psycopg.OperationalError, DatabaseError, RpcUnavailable) as exc:
                outage += 1
                wait = outage_wait_seconds(outage, self.config.poll_seconds)
                log.warning("funding_unavailable", error=str(exc).splitlines()[0][:200], retry_in_seconds=wait)
                self.store.close()
                stop.wait(wait)
                continue
            if handled < self.config.batch_size:
                stop.wait(self.config.poll_seconds)

    def _observe(self, outcomes: Sequence[Outcome], done: int, unavailable: int, retry: int, discarded: int) -> None:
        m = self.metrics
        for word, n in (("done", done), ("unavailable", unavailable), ("retry", retry), ("discarded", discarded)):
            if n:
                m.wallets.labels(word).inc(n)
        for o in outcomes:
            m.search_seconds.observe(o.seconds)
            if o.skipped_entries:
                m.skipped_entries.inc(o.skipped_entries)
            if o.error is None:
                for f in o.found:
                    kind = "native" if f.transfer.asset == NATIVE else "token"
                    m.transfers.labels(f.transfer.method.value, kind).inc()
            else:
                log.info("funding_search_failed", wallet=to_hex(o.task.wallet), error=str(o.error)[:200],
                         searched_to=o.searched_to, calls=o.calls)  # fmt: skip
        m.pending.set(self.store.pending_count())
        log.debug("funding_batch", wallets=len(outcomes), done=done, unavailable=unavailable, retry=retry,
                  discarded=discarded)  # fmt: skip


def _task(claimed: Claimed, checkpoint: int) -> Task:
    start = 0 if claimed.searched_to_block is None else claimed.searched_to_block + 1
    return Task(claimed.wallet, claimed.depth, claimed.tokens, start, min(claimed.until_block, checkpoint),
                claimed.found)  # fmt: skip
