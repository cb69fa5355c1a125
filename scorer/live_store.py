"""The gate's live state in the sidecar: built from the index, kept current block by block, and told of every call.

:class:`LiveStore` holds one chain's :class:`qf.model.live.LiveState`. At start
(and after a reorg below what it applied) it replays every indexed donation of
the chain (:func:`qf.model.loader.load_contributions`). Then, each time the
indexer announces a commit (``NOTIFY qf_views_refreshed``, payload
``chain:checkpoint``), and every ``interval_seconds`` in case one was missed,
it reads only the rows after its cursor and lands them. Before that, it checks
the cursor's block is still indexed with the same hash; if not, a reorg went
below it and the state is rebuilt (the attempts of the last
:data:`qf.model.live.ATTEMPT_TTL` seconds are carried over).

The other indexed chains' donations are followed the same way (a cursor per
chain, a rebuild after a reorg on any of them), as their donors' history: one
address is one donor on every chain (:func:`qf.model.loader.load_elsewhere`).

Every ``ScoreContribution`` is featurised and then counted as an attempt under
one lock (microseconds), so a burst shows while it happens, before any of it is
mined; when the donation is indexed it lands without counting twice. A restart
loses the attempts (not the index): the state is rebuilt from the database.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import structlog
from psycopg import sql

from qf_sentinel.qf.db import CONNECT_TIMEOUT_SECONDS, VIEWS_REFRESHED_CHANNEL, connect, error_line, parse_url
from qf_sentinel.qf.funding.db import load_graph, request_funding
from qf_sentinel.qf.funding.graph import FundingGraph
from qf_sentinel.qf.model import live
from qf_sentinel.qf.model.funding_features import FundingEvidence as Evidence
from qf_sentinel.qf.model.funding_features import evidence_of
from qf_sentinel.qf.model.loader import cursor_holds, load_contributions, load_elsewhere
from qf_sentinel.scorer.metrics import ScorerMetrics

log = structlog.get_logger("scorer.live")
#: The funding worker's findings are read again this often (with the next index update).
FUNDING_RELOAD_SECONDS = 30.0
FloatArray = npt.NDArray[np.float64]


class LiveStore:
    """One chain's live state: rebuilt, updated from the index, read and told of each call (module docstring)."""

    def __init__(self, chain_id: int, metrics: ScorerMetrics | None = None) -> None:
        self.chain_id = chain_id
        self._metrics = metrics
        self._state = live.LiveState()
        self._lock = threading.Lock()
        self._update_lock = threading.Lock()  # one update or rebuild at a time
        self.cursor: tuple[int, bytes] | None = None
        #: the other chains' cursors: chain -> (block, hash) of the last of its donations applied
        self.elsewhere: dict[int, tuple[int, bytes]] = {}
        self.ready = False
        self._symbols: dict[bytes, str] = {}
        self._decimals: dict[bytes, int] = {}
        #: what the funding worker has found (qf.wallet_funding), reloaded every FUNDING_RELOAD_SECONDS
        self.funding: FundingGraph | None = None
        self._funding_loaded = -math.inf
        #: wallets asked about whose funding is not known yet: queued for the funding worker at the next update
        self._unfunded: set[bytes] = set()

    # -- the request path ---------------------------------------------------------------------

    def observe(self, c: live.Contribution) -> tuple[FloatArray, bool, Evidence]:
        """``(features as of c.time, donor known, funding evidence)``, then ``c`` counted as an attempt."""
        row = np.zeros(live.N_FEATURES)
        wallet = bytes.fromhex(str(c.donor)[2:])
        with self._lock:
            state = self._state
            state.features(c, row)
            known = state.is_known(c.donor)
            found = evidence_of(self.funding, c, state, token_decimals=self._decimals.get(c.token or b"", 18))
            state.attempt(c)
            if self.funding is not None and self.funding.first_funding(wallet, as_of=c.time) is None:
                self._unfunded.add(wallet)
        return row, known, found

    def symbol(self, token: bytes) -> str:
        """The token's symbol as the index read it (printable, at most 12 characters), or "" if unknown."""
        return self._symbols.get(token, "")

    def time_floor(self) -> float:
        """The newest indexed donation's time: a replayed call older than this is scored as of it."""
        return self._state.latest_landed

    # -- following the index ------------------------------------------------------------------

    def rebuild(self, conn: psycopg.Connection[Any]) -> int:
        """Replay every indexed donation into a new state and swap it in; returns how many."""
        started = time.perf_counter()
        with self._update_lock:
            contributions, cursor = load_contributions(conn, self.chain_id)
            others, elsewhere = load_elsewhere(conn, self.chain_id)
            self._decimals = _decimals(conn, self.chain_id)
            self.load(contributions, cursor, _symbols(conn, self.chain_id), others=others)
            self.elsewhere = elsewhere
            self.reload_funding(conn)
        self._record("rebuild", time.perf_counter() - started)
        log.info("live_state_rebuilt", chain_id=self.chain_id, donations=len(contributions),
                 other_chains=len(elsewhere), donations_elsewhere=len(others),
                 block=cursor[0] if cursor else None, seconds=round(time.perf_counter() - started, 3))  # fmt: skip
        return len(contributions)

    def load(
        self, contributions: list[live.Contribution], cursor: tuple[int, bytes] | None, symbols: dict[bytes, str],
        *, others: list[live.Contribution] | None = None,
    ) -> None:
        """Serve a state replayed from ``contributions`` (indexed, chain order) and ``others`` (other chains' donations,
        time order, landed as history), keeping recent pending attempts."""
        state = live.LiveState()
        state.replay(contributions)
        for c in others or ():
            state.land(c, here=False)
        with self._lock:
            for donor, project, at in self._state.pending_attempts():
                if at > state.latest_landed:
                    state.attempt(live.Contribution(donor=donor, project=project, pool=_pool(project),
                                                    amount=math.nan, time=at))  # fmt: skip
            self._state, self.cursor, self._symbols = state, cursor, symbols
        self.ready = True

    def reload_funding(self, conn: psycopg.Connection[Any]) -> None:
        """Read what the funding worker has found, and queue the wallets asked about that it has not."""
        graph = load_graph(conn, self.chain_id)
        with self._lock:
            self.funding, self._funding_loaded = graph, time.monotonic()
            wallets, self._unfunded = sorted(self._unfunded), set()
        if wallets:
            request_funding(conn, self.chain_id, wallets)
            conn.commit()

    def update(self, conn: psycopg.Connection[Any]) -> int:
        """Land the rows indexed since the cursor (rebuilding after a reorg below it); returns how many."""
        if time.monotonic() - self._funding_loaded >= FUNDING_RELOAD_SECONDS:
            self.reload_funding(conn)
        cursors = ([(self.chain_id, self.cursor)] if self.cursor is not None else []) + sorted(self.elsewhere.items())
        for chain, (block, block_hash) in cursors:
            if not cursor_holds(conn, chain, (block, block_hash)):
                log.info("live_state_reorg", chain_id=chain, block=block, serving=self.chain_id)
                return self.rebuild(conn)
        started = time.perf_counter()
        with self._update_lock:
            after = self.cursor[0] if self.cursor else None
            contributions, cursor = load_contributions(conn, self.chain_id, after_block=after)
            others, moved = load_elsewhere(conn, self.chain_id, after={c: b for c, (b, _) in self.elsewhere.items()})
            if contributions or others:
                with self._lock:
                    for c in others:
                        self._state.land(c, here=False)
                    for c in contributions:
                        self._state.land(c)
                    self._state.forget_stale_attempts(time.time())
                    if contributions:
                        self.cursor = cursor
                    self.elsewhere.update(moved)
        if contributions or others:
            self._record("incremental", time.perf_counter() - started)
        return len(contributions)

    def _record(self, kind: str, seconds: float) -> None:
        m = self._metrics
        if m is None:
            return
        m.live_state_updates.labels(kind=kind).inc()
        m.live_state_update_seconds.observe(seconds)
        m.live_state_contributions.labels(kind="landed").set(self._state.landed)
        m.live_state_contributions.labels(kind="attempts").set(self._state.attempts)
        if self.cursor is not None:
            m.live_state_block.set(self.cursor[0])

    async def follow(
        self, dsn: str, *, stop_event: asyncio.Event, interval_seconds: float = 30.0, retry_seconds: float = 5.0,
        on_error: Callable[[BaseException], None] = lambda exc: None,
    ) -> None:  # fmt: skip
        """Apply the index's new rows on each NOTIFY for any chain (every chain's donors count, see the module
        docstring), and every ``interval_seconds``, until stopped."""
        params = parse_url(dsn)
        timeout: dict[str, Any] = {} if "connect_timeout" in params else {"connect_timeout": CONNECT_TIMEOUT_SECONDS}

        def apply() -> None:
            with connect(dsn) as conn:
                self.update(conn)

        while not stop_event.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, **timeout) as listener:
                    await listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(VIEWS_REFRESHED_CHANNEL)))
                    await asyncio.to_thread(apply)  # anything indexed while not listening
                    while not stop_event.is_set():
                        await _wait(listener, interval_seconds, stop_event)  # a commit on any chain, or the interval
                        if stop_event.is_set():
                            break
                        await asyncio.to_thread(apply)
            except (psycopg.Error, OSError) as exc:
                log.warning("live_state_follow_failed", error=error_line(exc, password=params.get("password")),
                            retry_seconds=retry_seconds)  # fmt: skip
                on_error(exc)
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop_event.wait(), timeout=retry_seconds)


async def _wait(
    conn: psycopg.AsyncConnection[Any], timeout: float, stop_event: asyncio.Event
) -> list[psycopg.Notify] | None:
    """Notifications within ``timeout`` (the first ends the wait), or None when the time ran out or we stop."""

    async def receive() -> list[psycopg.Notify]:
        return [note async for note in conn.notifies(timeout=timeout, stop_after=1)]

    receiving = asyncio.create_task(receive())
    stopping = asyncio.create_task(stop_event.wait())
    try:
        await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (receiving, stopping):
            if not task.done():
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
    if receiving.cancelled():
        return None
    notes = receiving.result()
    return notes or None


def _decimals(conn: psycopg.Connection[Any], chain_id: int) -> dict[bytes, int]:
    rows = conn.execute("SELECT address, decimals FROM qf.tokens WHERE chain_id = %s AND decimals IS NOT NULL",
                        (chain_id,)).fetchall()  # fmt: skip
    conn.commit()
    return {bytes(address): int(decimals) for address, decimals in rows}


def _symbols(conn: psycopg.Connection[Any], chain_id: int) -> dict[bytes, str]:
    """Token symbols for reasons: from the chain, so hostile: printable characters only, short."""
    rows = conn.execute("SELECT address, symbol FROM qf.tokens WHERE chain_id = %s AND symbol IS NOT NULL",
                        (chain_id,)).fetchall()  # fmt: skip
    conn.commit()
    symbols = {}
    for address, symbol in rows:
        shown = "".join(ch for ch in str(symbol) if ch.isprintable() and ch.isascii())[:12].strip()
        if shown:
            symbols[bytes(address)] = shown
    symbols.setdefault(b"\xee" * 20, "ETH")
    return symbols


def _pool(project: Any) -> str:
    return str(project).partition(":")[0]
