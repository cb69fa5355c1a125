"""Live follow woken by ``newHeads`` over a WebSocket (QF_WS_URL), with polling as the fallback.

The node is a real anvil (its WebSocket shares the HTTP port); the failing
servers are real WebSocket servers on loopback that misbehave on purpose. No
test measures time: which wake-up ended a wait is read from the metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from web3.exceptions import ProviderConnectionError, TimeExhausted, Web3RPCError
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from qf_sentinel.indexer.heads import failure_kind, head_number, retry_delay_seconds
from qf_sentinel.qf.chain.config import configured_chains
from qf_sentinel.qf.db import connect
from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.settings import Settings
from tests.fixtures.chain import Chain, free_port
from tests.indexer.harness import Prepared, close, make_indexer, sample, sync
from tests.indexer.live import LivePool

#: Guards against a hang only; nothing asserts how long anything took.
HANG_GUARD_SECONDS = 60.0


def ws_url_of(chain: Chain) -> str:
    return chain.url.replace("http://", "ws://", 1)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting: {what}")
        time.sleep(0.01)


def donation_stored(db_url: str, tx_hash: str) -> bool:
    with connect(db_url) as conn:
        return conn.execute("SELECT 1 FROM qf.donations WHERE tx_hash = %s", (tx_hash,)).fetchone() is not None


class Following:
    """The indexer's ``run`` on a thread, as ``qf index`` runs it once caught up."""

    def __init__(self, indexer: Prepared) -> None:
        self.indexer = indexer
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.indexer.run(self.stop)
        except BaseException as exc:  # reported by the test, not lost on the thread
            self.errors.append(exc)

    def __enter__(self) -> Following:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=HANG_GUARD_SECONDS)
        assert not self.thread.is_alive()
        assert self.errors == []


def test_a_header_over_the_websocket_wakes_the_caught_up_indexer(chain: Chain, db_url: str, tmp_path: Path) -> None:
    """With a 30 s poll interval, a mined donation is stored after a newHeads wake-up, with no poll in between."""
    pool = LivePool(chain)
    indexer = make_indexer(chain, db_url, tmp_path, ws_url=ws_url_of(chain), poll_interval_seconds=30.0)
    try:
        sync(indexer)
        with Following(indexer):
            wait_until(lambda: sample(indexer, "qf_indexer_ws_connected") == 1, "the newHeads subscription")
            tx_hash = pool.donate(pool.donors[0], pool.recipients[0], 10**14)
            wait_until(lambda: donation_stored(db_url, tx_hash), "the donation in qf.donations")
            assert sample(indexer, "qf_indexer_wakeups_total", source="newheads") >= 1
            assert sample(indexer, "qf_indexer_wakeups_total", source="poll") == 0
            assert sample(indexer, "qf_indexer_ws_heads_total") >= 1
            assert indexer.heads is not None
            assert indexer.heads.latest_head == chain.rpc.block_number()
        assert indexer.heads is None  # the watcher thread ended with the loop
        assert sample(indexer, "qf_indexer_ws_connected") == 0
        assert sample(indexer, "qf_indexer_ws_errors_total", kind="dropped") == 0
    finally:
        close(indexer)


async def _close_at_once(ws: ServerConnection) -> None:
    """Accepts the handshake, then drops the TCP connection under the client."""
    await ws.recv()
    ws.transport.abort()


async def _subscribe_then_garbage(ws: ServerConnection) -> None:
    """Answers eth_subscribe like a node, then sends a notification that is no header."""
    request = json.loads(await ws.recv())
    await ws.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": "0x1"}))
    await ws.send(json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                              "params": {"subscription": "0x1", "result": {"hash": "0xab"}}}))  # fmt: skip
    with contextlib.suppress(ConnectionClosed):
        await ws.wait_closed()


class LoopbackServer:
    """A real WebSocket server on 127.0.0.1 running ``handler``, on its own thread and event loop."""

    def __init__(self, handler: Callable[[ServerConnection], Awaitable[None]]) -> None:
        self.handler = handler
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)
        self._thread.start()
        assert self._ready.wait(HANG_GUARD_SECONDS)

    async def _serve(self) -> None:
        self._loop, self._done = asyncio.get_running_loop(), asyncio.Event()
        async with serve(self.handler, "127.0.0.1", 0) as server:
            self.url = f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}"
            self._ready.set()
            await self._done.wait()

    def close(self) -> None:
        assert self._loop is not None
        assert self._done is not None
        self._loop.call_soon_threadsafe(self._done.set)
        self._thread.join(timeout=HANG_GUARD_SECONDS)


@pytest.fixture
def bad_ws_server() -> Iterator[Callable[[Callable[[ServerConnection], Awaitable[None]]], str]]:
    """Factory of loopback WebSocket servers (closed after the test); returns the server's URL."""
    servers: list[LoopbackServer] = []

    def start(handler: Callable[[ServerConnection], Awaitable[None]]) -> str:
        servers.append(LoopbackServer(handler))
        return servers[-1].url

    yield start
    for server in servers:
        server.close()


@pytest.mark.parametrize(
    ("server", "kind"),
    [("closed port", "connect"), ("drops the connection", "dropped"), ("sends a non-header", "malformed")],
)
def test_a_failing_websocket_falls_back_to_polling(
    server: str, kind: str, chain: Chain, db_url: str, tmp_path: Path,
    bad_ws_server: Callable[[Callable[[ServerConnection], Awaitable[None]]], str],
) -> None:  # fmt: skip
    """Refused, dropped or garbled: the failure is counted by kind, and donations are still followed by polling."""
    if server == "closed port":
        url = f"ws://127.0.0.1:{free_port()}"
    else:
        url = bad_ws_server(_close_at_once if server == "drops the connection" else _subscribe_then_garbage)
    pool = LivePool(chain)
    indexer = make_indexer(chain, db_url, tmp_path, ws_url=url, poll_interval_seconds=0.05)
    try:
        sync(indexer)
        with Following(indexer):
            wait_until(lambda: sample(indexer, "qf_indexer_ws_errors_total", kind=kind) >= 1, f"a {kind} failure")
            tx_hash = pool.donate(pool.donors[0], pool.recipients[0], 10**14)
            wait_until(lambda: donation_stored(db_url, tx_hash), "the donation in qf.donations")
            assert sample(indexer, "qf_indexer_wakeups_total", source="poll") >= 1
            assert sample(indexer, "qf_indexer_wakeups_total", source="newheads") == 0
            assert sample(indexer, "qf_indexer_ws_heads_total") == 0
            assert sample(indexer, "qf_indexer_ws_connected") == 0
    finally:
        close(indexer)


# -- the pure parts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", ["http://127.0.0.1:8545", "https://node.example", "127.0.0.1:8545", "ws://", "ws://host:99999",
            "ws://host:port", "ws://host:0", "wss:///path"],
)  # fmt: skip
def test_the_ws_url_setting_refuses_what_is_not_a_websocket_url(raw: str) -> None:
    """QF_WS_URL takes ws:// or wss:// with a host and a valid port; anything else is a ConfigError naming it."""
    with pytest.raises(ConfigError, match="QF_WS_URL must be a ws:// or wss:// URL"):
        Settings.from_env({"QF_WS_URL": raw})


def test_the_ws_url_setting_keeps_a_good_url_and_hides_credentials_when_refusing() -> None:
    assert Settings.from_env({"QF_WS_URL": "ws://127.0.0.1:8545"}).ws_url == "ws://127.0.0.1:8545"
    assert Settings.from_env({"QF_WS_URL": "wss://node.example/v3/key"}).ws_url == "wss://node.example/v3/key"
    assert Settings.from_env({}).ws_url is None
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"QF_WS_URL": "https://user:secret@node.example/v3/apikey?token=x"})
    assert "secret" not in str(refused.value)
    assert "apikey" not in str(refused.value)
    assert "token" not in str(refused.value)
    assert "https://node.example" in str(refused.value)


def test_rpc_urls_still_refuse_websocket() -> None:
    """The WebSocket is a wake-up signal only: QF_RPC_URLS stays HTTP."""
    with pytest.raises(ConfigError, match="not an http"):
        Settings.from_env({"QF_RPC_URLS": "ws://127.0.0.1:8545"})


def test_head_number_reads_web3_formatted_headers_and_rejects_the_rest() -> None:
    assert head_number({"subscription": "0x1", "result": {"number": 7, "hash": b"\x01"}}) == 7
    assert head_number({"subscription": "0x1", "result": {"number": 0}}) == 0
    for bad in (None, "0x7", {"result": "0x7"}, {"result": {"hash": "0xab"}}, {"result": {"number": "0x7"}},
                {"result": {"number": -1}}, {"result": {"number": True}}):  # fmt: skip
        assert head_number(bad) is None


def test_failure_kinds_are_bounded_and_told_apart() -> None:
    assert failure_kind(ConnectionRefusedError(), "connect") == "connect"
    assert failure_kind(ProviderConnectionError("no"), "connect") == "connect"
    assert failure_kind(TimeoutError(), "connect") == "connect"
    assert failure_kind(TimeExhausted("slow"), "subscribe") == "timeout"
    assert failure_kind(Web3RPCError("method not found"), "subscribe") == "rpc"
    assert failure_kind(ConnectionResetError(), "stream") == "dropped"
    assert failure_kind(json.JSONDecodeError("x", "doc", 0), "stream") == "malformed"
    assert failure_kind(RuntimeError("bug"), "stream") == "error"


def test_retries_back_off_to_a_cap() -> None:
    delays = [retry_delay_seconds(n) for n in range(1, 12)]
    assert delays[0] == 0.5
    assert delays == sorted(delays)
    assert delays[-1] == 30.0
    assert all(b <= 2 * a for a, b in itertools.pairwise(delays))


def test_the_devnet_default_wakes_by_its_anvils_websocket(chain: Chain, tmp_path: Path) -> None:
    """With no QF_RPC_URLS the indexer follows the devnet, and its anvil's WebSocket (the HTTP port) wakes it;
    with explicit RPC URLs only QF_WS_URL does."""
    (tmp_path / "devnet").mkdir()
    (tmp_path / "devnet" / "deployment.json").write_text(chain.deployment.to_json())
    devnet = Settings.from_env({}, home=tmp_path, anvil_port=8547)

    def ws_url(settings: Settings) -> str | None:
        return configured_chains(settings)[0].ws_url

    core = chain.deployment.core
    assert ws_url(devnet) == "ws://127.0.0.1:8547"
    assert ws_url(devnet.with_(ws_url="ws://elsewhere:1")) == "ws://elsewhere:1"
    assert ws_url(devnet.with_(rpc_urls=("http://node:8545",), core_address=core)) is None
    assert ws_url(devnet.with_(rpc_urls=("http://node:8545",), core_address=core, ws_url="wss://node")) == "wss://node"
    elsewhere = Settings.from_env({}, home=tmp_path / "no-devnet")
    assert ws_url(elsewhere.with_(rpc_urls=("http://node:8545",), core_address=core)) is None
