"""Wake-ups for live follow: the node's ``newHeads`` over a WebSocket.

When caught up, the loop (``indexer.loop``) used to sleep the poll interval and
then ask for the head. With a WebSocket URL it waits on :class:`HeadWatcher`
instead: a background thread, with its own asyncio loop, subscribes to
``newHeads`` through web3.py's ``WebSocketProvider`` and wakes the loop as soon
as a header arrives. The WebSocket is only a wake-up signal: every fetch stays
on HTTP (``indexer.rpc``), so what is indexed does not depend on it.

The poll interval stays the wait's timeout, so polling is the fallback for a
refused, dropped or confused WebSocket: the failure is logged and counted
(``qf_indexer_ws_errors_total{kind}``), and the subscription is retried after
a growing wait. Nothing here raises into the indexing loop.

The decisions (what a header says, what kind a failure is, how long to wait
before retrying) are the pure functions at the top; the thread below them
only does the waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Mapping
from typing import Literal

import structlog
from web3 import AsyncWeb3, WebSocketProvider
from web3.exceptions import PersistentConnectionError, ProviderConnectionError, TimeExhausted, Web3RPCError
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from qf_sentinel.indexer.metrics import ChainMetrics
from qf_sentinel.qf import backoff
from qf_sentinel.qf.chain.rpc import redact_rpc_url

log = structlog.get_logger()

#: Where the wait for the next step ended: a header over the WebSocket, or the poll interval.
WakeSource = Literal["newheads", "poll"]
#: Where a subscription attempt was when it failed.
Phase = Literal["connect", "subscribe", "stream"]
#: The bounded label values of ``qf_indexer_ws_errors_total``.
FailureKind = Literal["connect", "timeout", "dropped", "rpc", "malformed", "error"]

#: Waits before retrying a failed subscription: doubling from the first up to the cap.
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0
#: Opening handshake and eth_subscribe answer; a server that accepts and then says nothing is a failure
#: (web3.py waits for an answer by yielding to its loop in a tight cycle: keep this short).
OPEN_TIMEOUT_SECONDS = 5.0
#: Keepalive pings, so a connection that died silently is noticed.
PING_SECONDS = 20.0
#: The loop checks its stop event this often while it waits for a header (a threading.Event
#: cannot wait on two events at once); a stop is honoured within this long.
STOP_CHECK_SECONDS = 0.25


def head_number(message: object) -> int | None:
    """The block number of a ``newHeads`` notification as web3.py formats it; None if it is not one."""
    if not isinstance(message, Mapping):
        return None
    header = message.get("result")
    if not isinstance(header, Mapping):
        return None
    number = header.get("number")
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        return None
    return number


def failure_kind(exc: BaseException, phase: Phase) -> FailureKind:
    """The label a failure is counted under: bounded, and enough to tell the node's fault from ours."""
    if phase == "connect" and isinstance(exc, OSError | ProviderConnectionError | InvalidHandshake | InvalidURI):
        return "connect"
    if isinstance(exc, TimeoutError | TimeExhausted):  # before OSError: TimeoutError is one
        return "timeout"
    if isinstance(exc, Web3RPCError):  # the node answered eth_subscribe with an error
        return "rpc"
    if isinstance(exc, ConnectionClosed | PersistentConnectionError | ProviderConnectionError | OSError):
        return "dropped"
    if isinstance(exc, ValueError | TypeError | KeyError):  # undecodable JSON, or web3.py could not format it
        return "malformed"
    return "connect" if phase == "connect" else "error"


def retry_delay_seconds(failures: int) -> float:
    """The wait before the next attempt after ``failures`` consecutive failures (>= 1)."""
    return backoff.delay(failures, first=RETRY_FIRST_SECONDS, cap=RETRY_MAX_SECONDS)


class HeadWatcher:
    """Subscribes to ``newHeads`` on a background thread; :meth:`wait` returns when one arrives."""

    def __init__(self, url: str, metrics: ChainMetrics) -> None:
        self.url = url
        self.metrics = metrics
        #: The newest block number a header announced (None before the first).
        self.latest_head: int | None = None
        #: Headers received since start (``qf_indexer_ws_heads_total`` of this watcher alone).
        self.heads_received = 0
        #: Set while a subscription is live (tests and the bench wait on it).
        self.subscribed = threading.Event()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._thread_main, name="qf-ws-heads", daemon=True)

    # -- the indexing loop's side ---------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()
        self._ready.wait()

    def wait(self, timeout_seconds: float, stop: threading.Event) -> WakeSource | None:
        """Wait for a header, at most ``timeout_seconds``; None when ``stop`` was set meanwhile.

        The wake-up is consumed here, before the step it causes: a header arriving during
        that step wakes the next wait at once, so none is lost.
        """
        remaining = timeout_seconds
        while remaining > 0 and not stop.is_set():
            slice_seconds = min(remaining, STOP_CHECK_SECONDS)
            if self._wake.wait(slice_seconds):
                self._wake.clear()
                return "newheads"
            remaining -= slice_seconds
        return None if stop.is_set() else "poll"

    def stop(self) -> None:
        """Cancel the subscription and join the thread (idempotent)."""
        self._stopping.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
                loop.call_soon_threadsafe(task.cancel)
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    # -- the thread ------------------------------------------------------------------------------
    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._task = loop.create_task(self._follow())
            self._ready.set()
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # a bug here must not take the process down: polling goes on
            log.exception("ws_watcher_crashed", error=repr(exc)[:200])
        finally:
            self._ready.set()
            self.subscribed.clear()
            self.metrics.ws_connected.set(0)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _follow(self) -> None:
        failures = 0
        url = redact_rpc_url(self.url)
        while not self._stopping.is_set():
            phase: list[Phase] = ["connect"]
            heads_before = self.heads_received
            try:
                kind, error = await self._session(phase)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # web3.py names the full URL in its messages: credentials and keys must not reach the logs.
                kind, error = failure_kind(exc, phase[0]), str(exc).replace(self.url, url)[:200] or type(exc).__name__
            finally:
                self.subscribed.clear()
                self.metrics.ws_connected.set(0)
            # A session that delivered headers starts the backoff again.
            failures = 1 if self.heads_received > heads_before else failures + 1
            delay = retry_delay_seconds(failures)
            self.metrics.ws_errors.labels(kind).inc()
            log.warning("ws_heads_failed", url=url, kind=kind, error=error, retry_in=delay, fallback="polling")
            await asyncio.sleep(delay)

    async def _session(self, phase: list[Phase]) -> tuple[FailureKind, str]:
        """One connection: subscribe, then wake the loop per header until the stream ends (how it ended)."""
        provider = WebSocketProvider(
            self.url,
            websocket_kwargs={"open_timeout": OPEN_TIMEOUT_SECONDS,
                              "ping_interval": PING_SECONDS, "ping_timeout": PING_SECONDS},
            request_timeout=OPEN_TIMEOUT_SECONDS,
            max_connection_retries=1,  # the retries and their backoff are ours
        )  # fmt: skip
        async with AsyncWeb3(provider) as w3:
            phase[0] = "subscribe"
            await w3.eth.subscribe("newHeads")
            phase[0] = "stream"
            self.subscribed.set()
            self.metrics.ws_connected.set(1)
            log.info("ws_heads_subscribed", url=redact_rpc_url(self.url))
            # web3.py raises a failure of its reader task from this iterator, or just ends it at a clean close.
            async for message in w3.socket.process_subscriptions():
                number = head_number(message)
                if number is None:
                    return "malformed", f"not a newHeads header: {str(message)[:120]}"
                self.latest_head = number
                self.heads_received += 1
                self.metrics.ws_heads.inc()
                self._wake.set()
        return "dropped", "the node closed the subscription"
