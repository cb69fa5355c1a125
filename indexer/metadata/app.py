"""Wiring for the metadata fetcher: settings in, a fetcher running beside the indexer or on its own.

``qf index`` calls :func:`start_in_background` once it holds the writer lock
(when ``QF_IPFS_GATEWAYS`` is set): a daemon thread with its own connection
and HTTP client, whose series join the indexer's registry (and which counts
sanitised documents in the indexer's ``qf_indexer_values_sanitised_total``). ``qf metadata``
calls :func:`run_metadata` to run the same loop as its own process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog
from prometheus_client import CollectorRegistry

from qf_sentinel.indexer.metadata.gateway import Gateways
from qf_sentinel.indexer.metadata.metrics import MetadataMetrics
from qf_sentinel.indexer.metadata.schedule import RetryPolicy
from qf_sentinel.indexer.metadata.store import MetadataStore
from qf_sentinel.indexer.metadata.worker import FetcherConfig, MetadataFetcher
from qf_sentinel.indexer.metrics import SanitisedValues
from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.settings import Settings

log = structlog.get_logger()


def fetcher_config(settings: Settings) -> FetcherConfig:
    return FetcherConfig(
        concurrency=settings.ipfs_concurrency,
        max_bytes=settings.ipfs_max_bytes,
        timeout_seconds=settings.ipfs_timeout_seconds,
        retry=RetryPolicy(base_seconds=settings.ipfs_retry_base_seconds, max_seconds=settings.ipfs_retry_max_seconds),
    )


def build_fetcher(
    settings: Settings,
    database_url: str,
    registry: CollectorRegistry | None = None,
    sanitised: SanitisedValues | None = None,
) -> MetadataFetcher:
    if not settings.ipfs_gateways:
        raise ConfigError("no IPFS gateway: set QF_IPFS_GATEWAYS to fetch metadata")
    metrics = MetadataMetrics(registry)
    gateways = Gateways(settings.ipfs_gateways, timeout_seconds=settings.ipfs_timeout_seconds, metrics=metrics)
    return MetadataFetcher(MetadataStore(database_url), gateways, metrics, fetcher_config(settings),
                           sanitised=sanitised)  # fmt: skip


def start_in_background(
    settings: Settings, database_url: str, registry: CollectorRegistry, sanitised: SanitisedValues | None = None
) -> Callable[[], None]:
    """Start the fetcher on a daemon thread; returns the function that stops it.

    Stopping waits for the batch in flight at most one gateway timeout, then
    leaves the thread to die with the process: its claims are leased, not
    locked, so nothing is lost.
    """
    fetcher = build_fetcher(settings, database_url, registry, sanitised)
    stop = threading.Event()
    thread = threading.Thread(target=_run_logged, args=(fetcher, stop), name="qf-metadata", daemon=True)
    thread.start()
    log.info("metadata_fetcher_started", gateways=fetcher.gateways.labels)

    def stop_fetcher() -> None:
        stop.set()
        thread.join(timeout=settings.ipfs_timeout_seconds + 5)
        if not thread.is_alive():
            fetcher.close()

    return stop_fetcher


def run_metadata(settings: Settings, database_url: str, stop: threading.Event, *, once: bool = False) -> int:
    """The ``qf metadata`` loop: until ``stop`` is set, or (``once``) until nothing is due; returns how many
    pointers were handled when ``once``."""
    fetcher = build_fetcher(settings, database_url)
    log.info("metadata_fetcher_started", gateways=fetcher.gateways.labels)
    try:
        if once:
            return fetcher.drain()
        fetcher.run(stop)
        return 0
    finally:
        fetcher.close()


def _run_logged(fetcher: MetadataFetcher, stop: threading.Event) -> None:
    # A bug in the fetcher must not pass silently on its thread; the indexer keeps running either way.
    try:
        fetcher.run(stop)
    except Exception:
        log.exception("metadata_fetcher_crashed")
        raise
