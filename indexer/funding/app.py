"""Wiring for the funding worker: settings in, a worker running beside the indexer or on its own.

``qf index`` calls :func:`start_in_background` once it holds the writer lock, when funding is on
(``QF_FUNDING``; by default on the local devnet only): a daemon thread with its own connection and
node clients, whose series join the indexer's registry. ``qf funding`` runs the same loop as its own
process (:func:`run_funding`), ``qf funding lookup`` searches given wallets now (:func:`lookup`).
Before the first search the shipped known sources are added (never replacing an operator's label).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import structlog
from prometheus_client import CollectorRegistry

from indexer.funding.capabilities import Capabilities, probe
from indexer.funding.finder import Finder
from indexer.funding.metrics import FundingMetrics
from indexer.funding.store import FundingStore
from indexer.funding.worker import FundingWorker, WorkerConfig
from indexer.rpc import ResilientRpc
from qf.chain.devnet import devnet_url, load_devnet_deployment
from qf.db import connect
from qf.errors import ChainIdMismatch, ConfigError
from qf.funding.graph import Method
from qf.funding.sources import load_shipped
from qf.settings import Settings

log = structlog.get_logger()


def enabled(settings: Settings) -> bool:
    """QF_FUNDING; unset: on when following the local devnet (whose anvil answers trace_filter), else off."""
    if settings.funding is not None:
        return settings.funding
    return not settings.rpc_urls and not settings.funding_rpc_urls and load_devnet_deployment(settings) is not None


def resolve_rpc_urls(settings: Settings) -> list[str]:
    """QF_FUNDING_RPC_URLS, else QF_RPC_URLS, else the local devnet's."""
    if settings.funding_rpc_urls:
        return list(settings.funding_rpc_urls)
    if settings.rpc_urls:
        return list(settings.rpc_urls)
    if load_devnet_deployment(settings) is None:
        raise ConfigError("no RPC URL for funding lookups: set QF_FUNDING_RPC_URLS or QF_RPC_URLS (or run `qf devnet`)")
    return [devnet_url(settings)]


def worker_config(settings: Settings) -> WorkerConfig:
    # A rate limit is per client: several search threads would multiply it.
    concurrency = 1 if settings.rpc_rate_limit is not None else settings.funding_concurrency
    return WorkerConfig(max_depth=settings.funding_max_depth, max_calls=settings.funding_max_calls,
                        concurrency=concurrency)  # fmt: skip


def build_worker(
    settings: Settings, database_url: str, *, registry: CollectorRegistry | None = None, chain_id: int | None = None
) -> FundingWorker:
    """A worker for the chain the funding node serves (which must be ``chain_id`` / QF_CHAIN_ID when set)."""
    urls = resolve_rpc_urls(settings)
    order = [Method(m) for m in settings.funding_methods]
    metrics = FundingMetrics(registry)
    clients: list[ResilientRpc] = []

    def client() -> ResilientRpc:
        rpc = ResilientRpc(urls, timeout_seconds=settings.rpc_timeout_seconds,
                           requests_per_second=settings.rpc_rate_limit, metrics=metrics)  # fmt: skip
        clients.append(rpc)
        return rpc

    probe_rpc = client()
    try:
        served = probe_rpc.chain_id()
        for expected in (chain_id, settings.chain_id):
            if expected is not None and served != expected:
                raise ChainIdMismatch(f"funding node {probe_rpc.current_url} serves chain {served}, not {expected}")
        with connect(database_url) as conn:
            load_shipped(conn)
    except BaseException:
        probe_rpc.close()
        raise

    def finder(capabilities: Capabilities) -> Finder:
        return Finder(client(), capabilities, max_calls=settings.funding_max_calls)

    def close_clients() -> None:
        for rpc in clients:
            rpc.close()

    return FundingWorker(FundingStore(database_url, served), finder, lambda: probe(probe_rpc, order), metrics,
                         worker_config(settings), on_close=close_clients)  # fmt: skip


def start_in_background(
    settings: Settings, database_url: str, registry: CollectorRegistry, chain_id: int,
    busy: Callable[[], bool] | None = None,
) -> Callable[[], None]:  # fmt: skip
    """Start the worker on a daemon thread; returns the function that stops it.

    While ``busy()`` (``qf index``: the indexer is not caught up with the head) the worker waits, so a
    backfill runs exactly as fast with funding on as off; it searches in the gaps of live follow.
    Stopping waits for the batch in flight at most one RPC timeout per wallet; its claims are leased,
    not locked, so a search cut short is simply done again.
    """
    worker = build_worker(settings, database_url, registry=registry, chain_id=chain_id)
    stop = threading.Event()
    thread = threading.Thread(target=_run_logged, args=(worker, stop, busy), name="qf-funding", daemon=True)
    thread.start()
    log.info("funding_worker_started", chain_id=chain_id, rpc=resolve_rpc_urls(settings)[0].split("?")[0][:60])

    def stop_worker() -> None:
        stop.set()
        thread.join(timeout=settings.rpc_timeout_seconds * 2 + 5)
        if not thread.is_alive():
            worker.close()

    return stop_worker


def run_funding(settings: Settings, database_url: str, stop: threading.Event, *, once: bool = False) -> int:
    """The ``qf funding`` loop: until ``stop`` is set, or (``once``) until nothing is due; returns how many
    wallets were searched when ``once``."""
    worker = build_worker(settings, database_url)
    log.info("funding_worker_started", chain_id=worker.store.chain_id)
    try:
        if once:
            return worker.drain()
        worker.run(stop)
        return 0
    finally:
        worker.close()


def lookup(settings: Settings, database_url: str, wallets: Sequence[bytes]) -> tuple[int, int]:
    """Search ``wallets`` (and their funders, up to the depth) now; returns (chain id, wallets searched)."""
    worker = build_worker(settings, database_url)
    try:
        return worker.store.chain_id, worker.lookup(wallets)
    finally:
        worker.close()


def _run_logged(worker: FundingWorker, stop: threading.Event, busy: Callable[[], bool] | None) -> None:
    # A bug in the worker must not pass silently on its thread; the indexer keeps running either way.
    try:
        worker.run(stop, busy=busy)
    except Exception:
        log.exception("funding_worker_crashed")
        raise
