"""Wiring for ``qf index``: settings in, a running indexer out.

Resolves the node, the core contract and the start block (explicit settings,
or the devnet's recorded deployment), opens the store, takes the writer lock
(or waits as a hot standby), starts the metrics endpoint, and runs the loop
until a signal asks it to stop.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from types import FrameType

import structlog
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from indexer.funding.app import enabled as funding_enabled
from indexer.funding.app import start_in_background as start_funding_worker
from indexer.loop import EVENT_TABLES, Indexer, IndexerConfig, StepResult
from indexer.metadata.app import start_in_background as start_metadata_fetcher
from indexer.metrics import IndexerMetrics, SanitisedValues
from indexer.ranges import RangePolicy
from indexer.rpc import ResilientRpc
from indexer.sanitise import FEED_DECIMALS_MAX, Sanitised, abi_uint
from indexer.store import Store
from qf.chain.devnet import devnet_url, load_devnet_deployment
from qf.chain.rpc import redact_rpc_url
from qf.db import connect
from qf.db.embedded import resolve_database_url
from qf.db.migrate import apply_migrations
from qf.errors import ChainIdMismatch, ConfigError, QFError, RpcError
from qf.eth import from_hex, to_hex
from qf.http_metrics import HealthState, serve_metrics
from qf.settings import Settings

log = structlog.get_logger()

#: Connections used to look up donation transactions in parallel.
TX_LOOKUP_CONNECTIONS = 4


#: Selector of IAllo's ``getRegistry()``.
GET_REGISTRY_SELECTOR = "0x5ab1bd53"


def resolve_target(settings: Settings) -> tuple[list[str], bytes, int]:
    """(RPC URLs, core address, start block) from settings, else the devnet deployment."""
    deployment = load_devnet_deployment(settings)
    urls = list(settings.rpc_urls)
    if not urls:
        if deployment is None:
            raise ConfigError("no RPC URL: set QF_RPC_URLS (or run `qf devnet` first)")
        urls = [devnet_url(settings)]
    core = settings.core_address or (deployment.core if deployment and not settings.rpc_urls else None)
    if core is None:
        raise ConfigError("no core contract: set QF_CORE_ADDRESS to the Allo v2 core address")
    start = settings.start_block
    if start is None:
        start = deployment.start_block if deployment and core == deployment.core else 0
    return urls, from_hex(core), start


def resolve_ws_url(settings: Settings) -> str | None:
    """QF_WS_URL; else, when following the local devnet, its anvil's WebSocket (same port as HTTP); else None."""
    if settings.ws_url or settings.rpc_urls:
        return settings.ws_url
    if load_devnet_deployment(settings) is None:
        return None
    return "ws://" + devnet_url(settings).removeprefix("http://")


def resolve_registry(settings: Settings, rpc: ResilientRpc, core: bytes) -> bytes | None:
    """The Registry to index: QF_REGISTRY_ADDRESS, the devnet's, else what the core's ``getRegistry()`` says.

    A core without ``getRegistry`` (or a node refusing the call) means no profiles, logged once.
    """
    if settings.registry_address:
        return from_hex(settings.registry_address)
    deployment = load_devnet_deployment(settings)
    if deployment is not None and from_hex(deployment.core) == core:
        return from_hex(deployment.registry)
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


#: Selector of AggregatorV3's ``decimals()``.
DECIMALS_SELECTOR = "0x313ce567"


def resolve_price_feeds(settings: Settings, core: bytes) -> dict[bytes, bytes]:
    """Token -> USD price feed: QF_PRICE_FEEDS, else the devnet deployment's (for its own core), else none."""
    if settings.price_feeds is not None:
        return {from_hex(t): from_hex(f) for t, f in settings.price_feeds.items()}
    deployment = load_devnet_deployment(settings)
    if deployment is not None and from_hex(deployment.core) == core:
        return {from_hex(t): from_hex(f) for t, f in deployment.price_feeds.items()}
    return {}


def record_price_feeds(
    url: str, chain_id: int, feeds: dict[bytes, bytes], rpc: ResilientRpc, sanitised: SanitisedValues
) -> None:
    """Write the token -> feed map (with each feed's decimals, read from it) to qf.price_feeds.

    A feed whose decimals() reverts or answers something that is not 0..36 is left out, logged and
    counted (``price_feeds.decimals``): its answers are still indexed, but price nothing (donations in its
    token are unpriced, as without a feed). A feed's answer must not stop the indexer from starting.
    """
    rows = []
    for token, feed in feeds.items():
        try:
            answer = rpc.call("eth_call", [{"to": to_hex(feed), "data": DECIMALS_SELECTOR}, "latest"])
        except RpcError:
            answer = None
        decimals = abi_uint(answer, max_value=FEED_DECIMALS_MAX)
        if decimals.value is None:
            sanitised.report([Sanitised("price_feeds.decimals", to_hex(feed), decimals.reasons)])
            log.warning("price_feed_unusable", feed=to_hex(feed), token=to_hex(token), reasons=list(decimals.reasons))
            continue
        rows.append((chain_id, token, feed, decimals.value))
    if not rows:
        return
    with connect(url) as conn:
        conn.cursor().executemany(
            "INSERT INTO qf.price_feeds (chain_id, token, feed, decimals) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (chain_id, token) DO UPDATE SET feed = EXCLUDED.feed, decimals = EXCLUDED.decimals",
            rows,
        )
    log.info("price_feeds", feeds={to_hex(t): to_hex(f) for t, f in feeds.items()})


def build_indexer(
    settings: Settings, metrics: IndexerMetrics, health: HealthState, *, reset_on_new_chain: bool = False
) -> Indexer:
    urls, core, start = resolve_target(settings)

    def client() -> ResilientRpc:
        return ResilientRpc(
            urls,
            timeout_seconds=settings.rpc_timeout_seconds,
            requests_per_second=settings.rpc_rate_limit,
            metrics=metrics,
        )

    rpc = client()
    # Parallel transaction lookups only when the endpoints are not rate limited
    # (a limit is per client, so helpers would multiply it).
    helpers = [client() for _ in range(TX_LOOKUP_CONNECTIONS - 1)] if settings.rpc_rate_limit is None else []
    chain_id = rpc.chain_id()
    if settings.chain_id is not None and settings.chain_id != chain_id:
        raise ChainIdMismatch(f"node {rpc.current_url} serves chain {chain_id}, but QF_CHAIN_ID is {settings.chain_id}")
    url = resolve_database_url(settings)
    with connect(url) as conn:
        apply_migrations(conn)
    store = Store(url, chain_id, EVENT_TABLES)
    registry = resolve_registry(settings, rpc, core)
    feeds = resolve_price_feeds(settings, core)
    record_price_feeds(url, chain_id, feeds, rpc, metrics.sanitised)
    config = IndexerConfig(
        chain_id=settings.chain_id,
        core=core,
        registry=registry,
        price_feeds=feeds,
        start_block=start,
        poll_interval_seconds=settings.poll_interval_seconds,
        confirmations=settings.confirmations,
        max_reorg_depth=settings.max_reorg_depth,
        range_policy=RangePolicy(
            initial_blocks=min(settings.log_range_blocks, settings.log_range_max_blocks),
            max_blocks=settings.log_range_max_blocks,
        ),
        refresh_debounce_seconds=settings.refresh_debounce_seconds,
        reset_on_new_chain=reset_on_new_chain,
        log_address_limit=settings.log_address_limit,
        ws_url=resolve_ws_url(settings),
    )
    return Indexer(config, rpc, store, metrics=metrics, health=health, helpers=helpers)


def run_indexer(settings: Settings, *, until_caught_up: bool = False, reset_on_new_chain: bool = False) -> None:
    """The ``qf index`` process: lock, prepare, loop, stop cleanly on SIGTERM/SIGINT."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del frame
        log.info("shutdown_requested", signal=signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    metrics, health = IndexerMetrics(), HealthState()
    stop_metrics = None
    if settings.indexer_metrics_port:
        _, stop_metrics = serve_metrics(metrics, health, settings.metrics_host, settings.indexer_metrics_port)
        log.info("metrics_listening", url=f"http://{settings.metrics_host}:{settings.indexer_metrics_port}/metrics")
    indexer = build_indexer(settings, metrics, health, reset_on_new_chain=reset_on_new_chain)
    stop_fetcher = stop_funding = None
    try:
        # Every log line of this run names its chain (several indexers may share one log pipeline).
        with structlog.contextvars.bound_contextvars(chain_id=indexer.chain_id):
            if not indexer.store.wait_for_lock(poll_seconds=1.0, should_stop=stop.is_set):
                return
            metrics.is_writer.set(1)
            indexer.prepare()
            if settings.ipfs_gateways:  # metadata on its own thread and connection: it never holds up a batch
                stop_fetcher = start_metadata_fetcher(
                    settings, indexer.store.url, metrics.registry, metrics.sanitised
                )
            if funding_enabled(settings):  # funding on its own thread, connection and node clients, likewise
                stop_funding = start_funding_worker(settings, indexer.store.url, metrics.registry, indexer.chain_id,
                                                    busy=lambda: not health.caught_up)  # fmt: skip
            state = indexer.state
            assert state is not None
            ws = indexer.config.ws_url
            log.info("indexer_started", core=to_hex(state.core), from_block=state.next_block,
                     rpc=indexer.rpc.current_url, ws=redact_rpc_url(ws) if ws else None)  # fmt: skip
            with _Progress(indexer) as on_step:
                indexer.run(stop, until_caught_up=until_caught_up, on_step=on_step)
            log.info("indexer_stopped", checkpoint=indexer.state.checkpoint_block if indexer.state else None)
    finally:
        if stop_funding:
            stop_funding()
        if stop_fetcher:
            stop_fetcher()
        indexer.store.close()
        indexer.rpc.close()
        for helper in indexer.helpers:
            helper.close()
        if stop_metrics:
            stop_metrics()
        for s, handler in previous.items():
            signal.signal(s, handler)


class _Progress:
    """Backfill progress (blocks/s, events/s) on a terminal; a log line per minute elsewhere."""

    def __init__(self, indexer: Indexer) -> None:
        self.indexer = indexer
        self.started = time.monotonic()
        self.blocks = 0
        self.events = 0
        self.last_log = self.started
        self.tty = sys.stderr.isatty()
        self.bar = Progress(
            TextColumn("backfill"), BarColumn(), TextColumn("{task.completed}/{task.total} blocks"),
            TextColumn("{task.fields[bps]:.0f} blocks/s, {task.fields[eps]:.0f} events/s"),
            console=Console(stderr=True), transient=True, disable=not self.tty,
        )  # fmt: skip
        self.task = self.bar.add_task("backfill", total=None, bps=0.0, eps=0.0)

    def __enter__(self) -> _Progress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)

    def __call__(self, result: StepResult) -> None:
        self.blocks += result.committed_blocks
        self.events += result.events
        elapsed = max(time.monotonic() - self.started, 1e-9)
        state = self.indexer.state
        assert state is not None
        done = (state.checkpoint_block or state.start_block) - state.start_block
        total = max(self.indexer.head - state.start_block, 1)
        self.bar.update(self.task, completed=done, total=total, bps=self.blocks / elapsed, eps=self.events / elapsed)
        if not self.tty and time.monotonic() - self.last_log > 60:
            self.last_log = time.monotonic()
            log.info(
                "backfill_progress",
                block=state.checkpoint_block,
                head=self.indexer.head,
                blocks_per_second=round(self.blocks / elapsed),
                events_per_second=round(self.events / elapsed),
            )
