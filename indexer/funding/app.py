"""Wiring for the funding worker: settings in, a worker running beside the indexer or on its own.

Each chain has its own worker. ``qf index`` calls :func:`start_in_background` for a chain once it holds
that chain's writer lock, when the chain's funding is on (``QF_FUNDING`` or the chains file's
``funding``; by default on the local devnet only): a daemon thread with its own connection and node
clients, whose series (labelled by chain) join the indexer's registry. ``qf funding`` runs the same
loop as its own process, a thread per chain (:func:`run_funding`), ``qf funding lookup`` searches given
wallets of one chain now (:func:`lookup`).
Before the first search the shipped known sources are added (never replacing an operator's label).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import structlog

from qf_sentinel.indexer.funding.capabilities import Capabilities, probe
from qf_sentinel.indexer.funding.finder import Finder
from qf_sentinel.indexer.funding.metrics import ChainFundingMetrics, FundingMetrics
from qf_sentinel.indexer.funding.store import FundingStore
from qf_sentinel.indexer.funding.worker import FundingWorker, WorkerConfig
from qf_sentinel.indexer.rpc import ResilientRpc
from qf_sentinel.qf.chain.config import ChainConfig, configured_chains
from qf_sentinel.qf.chain.devnet_records import load_devnet_deployments
from qf_sentinel.qf.chain.rpc import redact_rpc_url
from qf_sentinel.qf.db import connect
from qf_sentinel.qf.errors import ChainIdMismatch, ConfigError
from qf_sentinel.qf.funding.graph import Method
from qf_sentinel.qf.funding.sources import load_shipped
from qf_sentinel.qf.settings import Settings

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class FundingTarget:
    """The node(s) one chain's worker asks, and how."""

    #: The chain the node must serve (None: whatever it serves).
    chain_id: int | None
    rpc_urls: tuple[str, ...]
    rpc_rate_limit: float | None
    rpc_timeout_seconds: float


def target_of(chain: ChainConfig) -> FundingTarget:
    """A chain's funding nodes (its QF_FUNDING_RPC_URLS / ``funding_rpc_urls``, else its own)."""
    return FundingTarget(chain.chain_id, chain.funding_rpc_urls, chain.rpc_rate_limit, chain.rpc_timeout_seconds)


def funding_targets(settings: Settings) -> list[FundingTarget]:
    """Every chain ``qf funding`` searches: the chains file's, else QF_FUNDING_RPC_URLS or QF_RPC_URLS (one chain),
    else every chain of the local devnet."""
    if settings.chains_file is None and (settings.funding_rpc_urls or settings.rpc_urls):
        urls = settings.funding_rpc_urls or settings.rpc_urls
        return [FundingTarget(settings.chain_id, urls, settings.rpc_rate_limit, settings.rpc_timeout_seconds)]
    if settings.chains_file is None and not load_devnet_deployments(settings):
        raise ConfigError("no RPC URL for funding lookups: set QF_FUNDING_RPC_URLS or QF_RPC_URLS (or run `qf devnet`)")
    return [target_of(chain) for chain in configured_chains(settings)]


def worker_config(settings: Settings, target: FundingTarget) -> WorkerConfig:
    # A rate limit is per client: several search threads would multiply it.
    concurrency = 1 if target.rpc_rate_limit is not None else settings.funding_concurrency
    return WorkerConfig(max_depth=settings.funding_max_depth, max_calls=settings.funding_max_calls,
                        concurrency=concurrency)  # fmt: skip


def build_worker(
    settings: Settings, database_url: str, *, target: FundingTarget | None = None,
    metrics: FundingMetrics | None = None,
) -> FundingWorker:  # fmt: skip
    """A worker for the chain ``target``'s node serves (the first of :func:`funding_targets` by default)."""
    target = target or funding_targets(settings)[0]
    order = [Method(m) for m in settings.funding_methods]
    families = metrics or FundingMetrics()
    clients: list[ResilientRpc] = []

    def client(observer: ChainFundingMetrics | None) -> ResilientRpc:
        rpc = ResilientRpc(target.rpc_urls, timeout_seconds=target.rpc_timeout_seconds,
                           requests_per_second=target.rpc_rate_limit, metrics=observer)  # fmt: skip
        clients.append(rpc)
        return rpc

    probe_rpc = client(None)
    try:
        served = probe_rpc.chain_id()
        if target.chain_id is not None and served != target.chain_id:
            raise ChainIdMismatch(f"funding node {probe_rpc.current_url} serves chain {served}, not {target.chain_id}")
        with connect(database_url) as conn:
            load_shipped(conn)
    except BaseException:
        probe_rpc.close()
        raise
    chain_metrics = families.chain(served)

    def finder(capabilities: Capabilities) -> Finder:
        return Finder(client(chain_metrics), capabilities, max_calls=settings.funding_max_calls)

    def close_clients() -> None:
        for rpc in clients:
            rpc.close()

    return FundingWorker(FundingStore(database_url, served), finder, lambda: probe(probe_rpc, order), chain_metrics,
                         worker_config(settings, target), on_close=close_clients)  # fmt: skip


def start_in_background(
    settings: Settings, database_url: str, metrics: FundingMetrics, target: FundingTarget,
    busy: Callable[[], bool] | None = None,
) -> Callable[[], None]:  # fmt: skip
    """Start one chain's worker on a daemon thread; returns the function that stops it.

    While ``busy()`` (``qf index``: the chain's indexer is not caught up with the head) the worker waits, so
    a backfill runs exactly as fast with funding on as off; it searches in the gaps of live follow.
    Stopping waits for the batch in flight at most one RPC timeout per wallet; its claims are leased,
    not locked, so a search cut short is simply done again.
    """
    worker = build_worker(settings, database_url, target=target, metrics=metrics)
    stop = threading.Event()
    thread = threading.Thread(target=_run_logged, args=(worker, stop, busy), daemon=True,
                              name=f"qf-funding-{worker.store.chain_id}")  # fmt: skip
    thread.start()
    log.info("funding_worker_started", chain_id=worker.store.chain_id, rpc=redact_rpc_url(target.rpc_urls[0]))

    def stop_worker() -> None:
        stop.set()
        thread.join(timeout=target.rpc_timeout_seconds * 2 + 5)
        if not thread.is_alive():
            worker.close()

    return stop_worker


def run_funding(settings: Settings, database_url: str, stop: threading.Event, *, once: bool = False) -> int:
    """The ``qf funding`` loop over every chain (:func:`funding_targets`), a thread each: until ``stop`` is set,
    or (``once``) until nothing is due on any; returns how many wallets were searched when ``once``."""
    targets = funding_targets(settings)
    metrics = FundingMetrics()
    searched = [0] * len(targets)
    failures: list[BaseException] = []

    def one(i: int, target: FundingTarget) -> None:
        try:
            worker = build_worker(settings, database_url, target=target, metrics=metrics)
        except Exception as exc:  # reported below: one chain's node down does not stop the others
            log.warning("funding_worker_not_started", chain_id=target.chain_id, error=str(exc)[:200])
            failures.append(exc)
            return
        with structlog.contextvars.bound_contextvars(chain_id=worker.store.chain_id):
            log.info("funding_worker_started", chain_id=worker.store.chain_id)
            try:
                if once:
                    searched[i] = worker.drain()
                else:
                    worker.run(stop)
            except Exception as exc:  # reported below, once every chain is done
                log.exception("funding_worker_failed")
                failures.append(exc)
            finally:
                worker.close()

    threads = [threading.Thread(target=one, args=(i, t), name=f"qf-funding-{i}") for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(timeout=0.5)
    if failures:  # after the other chains finished: one chain's failure does not cut them short
        raise failures[0]
    return sum(searched)


def lookup(settings: Settings, database_url: str, wallets: Sequence[bytes],
           chain_id: int | None = None) -> tuple[int, int]:  # fmt: skip
    """Search ``wallets`` (and their funders, up to the depth) now on one chain (``chain_id``, else the first);
    returns (chain id, wallets searched)."""
    targets = funding_targets(settings)
    target = next((t for t in targets if chain_id is None or t.chain_id in (chain_id, None)), None)
    if target is None:
        raise ConfigError(f"chain {chain_id} is not configured (chains: {', '.join(str(t.chain_id) for t in targets)})")
    if chain_id is not None and target.chain_id is None:
        target = replace(target, chain_id=chain_id)
    worker = build_worker(settings, database_url, target=target)
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
