"""Wiring for ``qf index``: settings in, a running indexer per chain out.

The chains come from ``qf.chain.config`` (a chains file, the single-chain
variables, or every chain of the local devnet). :func:`build_indexer` wires one
chain: its node clients (with that chain's metrics), the Registry and price
feeds it reads (recorded by ``indexer.price_feeds``), its store.
:func:`run_indexer` serves one metrics endpoint for every chain and runs each on
a thread of its own (``indexer.supervisor``): take the chain's writer lock (or
wait as its hot standby), prepare, start the chain's funding worker, loop until
done or until a signal asks every chain to stop, with the backfill progress of
``indexer.progress`` on the terminal.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Collection
from types import FrameType

import structlog

from qf_sentinel.indexer.errors import ChainsFailed
from qf_sentinel.indexer.funding.app import start_in_background as start_funding_worker
from qf_sentinel.indexer.funding.app import target_of as funding_target
from qf_sentinel.indexer.funding.metrics import FundingMetrics
from qf_sentinel.indexer.loop import EVENT_TABLES, Indexer, IndexerConfig, PreparedIndexer
from qf_sentinel.indexer.metadata.app import start_in_background as start_metadata_fetcher
from qf_sentinel.indexer.metrics import IndexerMetrics
from qf_sentinel.indexer.price_feeds import record_price_feeds
from qf_sentinel.indexer.progress import Progress
from qf_sentinel.indexer.ranges import RangePolicy
from qf_sentinel.indexer.rpc import ResilientRpc
from qf_sentinel.indexer.store import Store
from qf_sentinel.indexer.supervisor import ChainJob, supervise
from qf_sentinel.qf.chain.config import ChainConfig, configured_chains
from qf_sentinel.qf.chain.rpc import redact_rpc_url
from qf_sentinel.qf.db import connect
from qf_sentinel.qf.db.embedded import resolve_database_url
from qf_sentinel.qf.db.migrate import apply_migrations
from qf_sentinel.qf.errors import ChainIdMismatch, QFError
from qf_sentinel.qf.eth import from_hex, to_hex
from qf_sentinel.qf.http_metrics import HealthGroup, HealthState, serve_metrics
from qf_sentinel.qf.settings import Settings

log = structlog.get_logger()

#: Connections used to look up donation transactions in parallel.
TX_LOOKUP_CONNECTIONS = 4


#: Selector of IAllo's ``getRegistry()``.
GET_REGISTRY_SELECTOR = "0x5ab1bd53"


def resolve_registry(rpc: ResilientRpc, core: bytes) -> bytes | None:
    """The Registry a chain's core names: its ``getRegistry()`` (for a chain whose configuration names none).

    A core without ``getRegistry`` (or a node refusing the call) means no profiles, logged once.
    """
    try:
        answer = rpc.call("eth_call", [{"to": to_hex(core), "data": GET_REGISTRY_SELECTOR}, "latest"])
        word = from_hex(answer)
    except (QFError, ValueError, TypeError) as exc:
        log.warning("registry_unknown", reason=str(exc)[:200], hint="set QF_REGISTRY_ADDRESS to index profiles")
        return None
    if len(word) != 32 or word[:12] != bytes(12) or word[12:] == bytes(20):
        log.warning("registry_unknown", reason="getRegistry() gave no address", hint="set QF_REGISTRY_ADDRESS")
        return None
    return word[12:]


def served_chain_id(chain: ChainConfig, metrics: IndexerMetrics | None = None) -> int:
    """The chain id the chain's node serves, which must be the configured one (if any).

    With ``metrics`` and a configured chain id, the question counts in that chain's RPC series: a node
    that never answers shows as that chain's RPC errors.
    """
    observer = metrics.chain(chain.chain_id) if metrics is not None and chain.chain_id is not None else None
    probe = ResilientRpc(chain.rpc_urls, timeout_seconds=chain.rpc_timeout_seconds,
                         requests_per_second=chain.rpc_rate_limit, metrics=observer)  # fmt: skip
    try:
        served = probe.chain_id()
        if chain.chain_id is not None and served != chain.chain_id:
            raise ChainIdMismatch(f"node {probe.current_url} serves chain {served}, but {chain.origin} is "
                                  f"{chain.chain_id}")  # fmt: skip
    finally:
        probe.close()
    return served


def build_indexer(
    settings: Settings, metrics: IndexerMetrics, health: HealthState, *, reset_on_new_chain: bool = False,
    chain: ChainConfig | None = None,
) -> Indexer[ResilientRpc, Store]:  # fmt: skip
    """One chain's indexer (the first configured chain unless ``chain`` is given), not yet holding its lock."""
    chain = chain or configured_chains(settings)[0]
    chain_id = served_chain_id(chain, metrics)
    chain_metrics = metrics.chain(chain_id)

    def client() -> ResilientRpc:
        return ResilientRpc(chain.rpc_urls, timeout_seconds=chain.rpc_timeout_seconds,
                            requests_per_second=chain.rpc_rate_limit, metrics=chain_metrics)  # fmt: skip

    rpc = client()
    # Parallel transaction lookups only when the endpoints are not rate limited
    # (a limit is per client, so helpers would multiply it).
    helpers = [client() for _ in range(TX_LOOKUP_CONNECTIONS - 1)] if chain.rpc_rate_limit is None else []
    try:
        url = resolve_database_url(settings)
        with connect(url) as conn:
            apply_migrations(conn)
        store = Store(url, chain_id, EVENT_TABLES)
        registry = chain.registry if chain.registry is not None else resolve_registry(rpc, chain.core)
        record_price_feeds(url, chain_id, dict(chain.price_feeds), rpc, metrics.sanitised)
    except BaseException:
        for c in (rpc, *helpers):
            c.close()
        raise
    config = IndexerConfig(
        chain_id=chain_id,
        core=chain.core,
        registry=registry,
        price_feeds=chain.price_feeds,
        start_block=chain.start_block,
        poll_interval_seconds=chain.poll_interval_seconds,
        confirmations=chain.confirmations,
        max_reorg_depth=chain.max_reorg_depth,
        range_policy=RangePolicy(
            initial_blocks=min(chain.log_range_blocks, chain.log_range_max_blocks),
            max_blocks=chain.log_range_max_blocks,
        ),
        refresh_debounce_seconds=settings.refresh_debounce_seconds,
        reset_on_new_chain=reset_on_new_chain,
        log_address_limit=chain.log_address_limit,
        ws_url=chain.ws_url,
    )
    return Indexer(config, rpc, store, metrics=chain_metrics, health=health, helpers=helpers)


def close_indexer(indexer: Indexer[ResilientRpc, Store] | PreparedIndexer[ResilientRpc, Store]) -> None:
    indexer.store.close()
    indexer.rpc.close()
    for helper in indexer.helpers:
        helper.close()


class _Process:
    """What the chains of one ``qf index`` share: metrics, health, the IPFS fetcher, the progress display."""

    def __init__(self, settings: Settings, chains: int) -> None:
        self.settings = settings
        self.metrics = IndexerMetrics()
        self.health = HealthGroup([])
        self.funding_metrics: FundingMetrics | None = None
        self.progress = Progress(chains)
        self._lock = threading.Lock()
        self._stop_fetcher: Callable[[], None] | None = None
        #: Chain ids as their nodes answered them, for the process's own log lines.
        self.chain_ids: list[int] = []

    def context(self) -> dict[str, object]:
        """What the process's own log lines say about its chains: the chain id when there is one."""
        if self.progress.chains == 1 and len(self.chain_ids) == 1:
            return {"chain_id": self.chain_ids[0]}
        return {"chain_ids": list(self.chain_ids)}

    def funding(self) -> FundingMetrics:
        with self._lock:
            if self.funding_metrics is None:
                self.funding_metrics = FundingMetrics(self.metrics.registry)
            return self.funding_metrics

    def start_metadata_once(self, database_url: str) -> None:
        """IPFS metadata is no chain's: one fetcher per process, started once a chain holds its writer lock."""
        if not self.settings.ipfs_gateways:
            return
        with self._lock:
            if self._stop_fetcher is None:  # on its own thread and connection: it never holds up a batch
                self._stop_fetcher = start_metadata_fetcher(self.settings, database_url, self.metrics.registry,
                                                            self.metrics.sanitised)  # fmt: skip

    def stop_metadata(self) -> None:
        if self._stop_fetcher is not None:
            self._stop_fetcher()


def _chain_job(
    chain: ChainConfig, process: _Process, *, until_caught_up: bool, reset_on_new_chain: bool,
) -> ChainJob:  # fmt: skip
    """One chain's life on its thread: build, lock (or stand by), prepare, funding worker, loop."""
    settings = process.settings
    health = HealthState()
    process.health.members.append(health)

    def attempt(stop: threading.Event) -> None:
        # Every log line of this chain names it (several chains share one log pipeline).
        with structlog.contextvars.bound_contextvars(chain_id=chain.chain_id, chain=chain.name):
            indexer = build_indexer(settings, process.metrics, health, reset_on_new_chain=reset_on_new_chain,
                                    chain=chain)  # fmt: skip
            if indexer.chain_id not in process.chain_ids:
                process.chain_ids.append(indexer.chain_id)
            stop_funding = None
            try:
                with structlog.contextvars.bound_contextvars(chain_id=indexer.chain_id):
                    if not indexer.store.wait_for_lock(poll_seconds=1.0, should_stop=stop.is_set):
                        return
                    indexer.metrics.is_writer.set(1)
                    running = indexer.prepare()
                    process.start_metadata_once(indexer.store.url)
                    if chain.funding:  # funding on its own thread, connection and node clients
                        stop_funding = _start_funding(process, indexer.store.url, chain, health)
                    state = running.state
                    ws = indexer.config.ws_url
                    log.info("indexer_started", core=to_hex(state.core), from_block=state.next_block,
                             rpc=indexer.rpc.current_url, ws=redact_rpc_url(ws) if ws else None)  # fmt: skip
                    running.run(stop, until_caught_up=until_caught_up, on_step=process.progress.for_chain(running))
                    log.info("indexer_stopped", checkpoint=running.state.checkpoint_block)
            finally:
                if stop_funding:
                    stop_funding()
                indexer.metrics.is_writer.set(0)
                close_indexer(indexer)

    def failed(exc: BaseException) -> None:
        del exc
        if chain.chain_id is not None:
            process.metrics.chain(chain.chain_id).chain_failed.set(1)

    return ChainJob(chain.name, attempt, failed)


def _start_funding(process: _Process, database_url: str, chain: ChainConfig,
                   health: HealthState) -> Callable[[], None] | None:  # fmt: skip
    """The chain's funding worker, waiting while the chain backfills; a funding node that cannot be used is
    logged and the chain indexes without it (funding is beside the indexer, never in its way)."""
    try:
        return start_funding_worker(process.settings, database_url, process.funding(), funding_target(chain),
                                    busy=lambda: not health.caught_up)  # fmt: skip
    except QFError as exc:
        log.warning("funding_worker_not_started", error=str(exc)[:200], hint="`qf funding` can run it later")
        return None


def run_indexer(
    settings: Settings, *, until_caught_up: bool = False, reset_on_new_chain: bool = False,
    only: Collection[int] = (),
) -> None:  # fmt: skip
    """The ``qf index`` process: every configured chain (``only``: those chain ids) on a thread of its own,
    stopped cleanly on SIGTERM/SIGINT.

    Following the head, a chain whose node or database is away at start is waited out, as an outage is
    once it runs; with ``until_caught_up`` (a batch) it fails instead. A chain that fails stops alone: the
    others go on, and the command then fails naming it.
    """
    chains = configured_chains(settings, only=only)
    with connect(resolve_database_url(settings)) as conn:  # a database problem at start: one line, at once
        apply_migrations(conn)
    stop = threading.Event()
    process = _Process(settings, len(chains))

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del frame
        log.info("shutdown_requested", signal=signal.Signals(signum).name, **process.context())
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    jobs = [_chain_job(c, process, until_caught_up=until_caught_up, reset_on_new_chain=reset_on_new_chain)
            for c in chains]  # fmt: skip
    for chain in chains:
        if chain.chain_id is not None:  # known before the node answers: a chain that never starts is visible too
            process.metrics.chain(chain.chain_id).chain_failed.set(0)
    stop_metrics = None
    try:
        if settings.indexer_metrics_port:
            _, stop_metrics = serve_metrics(process.metrics, process.health, settings.metrics_host,
                                            settings.indexer_metrics_port)  # fmt: skip
            log.info("metrics_listening", url=f"http://{settings.metrics_host}:{settings.indexer_metrics_port}/metrics")
        if len(chains) > 1:
            log.info("indexing_chains", chains=[c.name for c in chains])
        with process.progress:
            ends = supervise(jobs, stop, wait_out_outages=not until_caught_up)
    finally:
        process.stop_metadata()
        if stop_metrics:
            stop_metrics()
        for s, handler in previous.items():
            signal.signal(s, handler)
    failures = {end.name: end.error for end in ends if end.error is not None}
    if len(chains) == 1 and failures:
        raise next(iter(failures.values()))
    if failures:
        raise ChainsFailed(failures, chains=len(chains))
