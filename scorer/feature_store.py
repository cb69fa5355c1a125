"""Every donor's feature vector and funded projects, held in memory and refreshed when the index changes.

The scorer never queries Postgres on the request path: a :class:`FeatureSnapshot`
holds, for one chain, the feature matrix computed by the very code training
uses (:func:`qf.model.loader.load_dataset`, then :func:`qf.model.features.feature_matrix`
over all donations), so a donor
scores the same here as in the training report. It also keeps each donor's
funded projects as indices into the served recommender's ``project_ids``, the
history :func:`scorer.engine.recommend` excludes and scores from.

:func:`build_snapshot` is pure (a :class:`qf.model.dataset.Dataset` in, a
snapshot out); :func:`load_snapshot` adds the database read. :class:`FeatureStore`
holds the current snapshot of a chain, swaps it atomically and, in
:meth:`FeatureStore.follow`, reloads it when the indexer announces a refresh
(``NOTIFY qf_views_refreshed``, see :meth:`indexer.store.Store.refresh_views`)
or, failing that, every ``interval_seconds``.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import structlog
from psycopg import sql

from qf_sentinel.qf.db import (
    CONNECT_TIMEOUT_SECONDS,
    VIEWS_REFRESHED_CHANNEL,
    connect,
    describe_url,
    error_line,
    parse_url,
)
from qf_sentinel.qf.errors import DataError
from qf_sentinel.qf.eth import from_hex
from qf_sentinel.qf.model import features
from qf_sentinel.qf.model.bundle import projects_key
from qf_sentinel.qf.model.dataset import Dataset
from qf_sentinel.qf.model.loader import load_dataset
from qf_sentinel.scorer.errors import NotReady, UnknownDonor

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: The channel the indexer notifies after each analytics refresh; the payload is "chain_id:checkpoint_block".

log = structlog.get_logger()


@dataclass(frozen=True, slots=True, eq=False)
class FeatureSnapshot:
    """One chain's donors at one moment: address -> row, the feature matrix, funded projects (CSR).

    The arrays are shared by every request: never write to them.
    """

    chain_id: int
    #: 20-byte address -> row of ``matrix``
    index: Mapping[bytes, int]
    #: [n_donors, len(FEATURE_NAMES)], C-contiguous float64
    matrix: FloatArray
    #: row r funded ``funded_indices[funded_indptr[r]:funded_indptr[r + 1]]`` (sorted, distinct)
    funded_indptr: IntArray
    funded_indices: IntArray
    #: the recommender project ids the funded indices refer to, and their :func:`projects_key`
    project_ids: tuple[str, ...]
    projects_key: str
    refreshed_at: datetime

    @property
    def n_donors(self) -> int:
        return int(self.matrix.shape[0])

    def row(self, donor: bytes) -> int | None:
        """The donor's row, or None for a donor with no indexed donation (a cold start)."""
        return self.index.get(donor)

    def require(self, donor: bytes) -> int:
        """The donor's row; :class:`UnknownDonor` when there is none."""
        row = self.index.get(donor)
        if row is None:
            raise UnknownDonor(donor, chain_id=self.chain_id)
        return row

    def funded(self, row: int) -> IntArray:
        """Sorted project indices the donor of ``row`` funded (a view, no copy)."""
        return self.funded_indices[self.funded_indptr[row] : self.funded_indptr[row + 1]]

    @classmethod
    def empty(cls, chain_id: int, project_ids: Sequence[str], refreshed_at: datetime) -> FeatureSnapshot:
        """A chain with no donors yet: everyone is a cold start."""
        return cls(
            chain_id=chain_id,
            index={},
            matrix=np.zeros((0, len(features.FEATURE_NAMES))),
            funded_indptr=np.zeros(1, dtype=np.int64),
            funded_indices=np.zeros(0, dtype=np.int64),
            project_ids=tuple(project_ids),
            projects_key=projects_key(project_ids),
            refreshed_at=refreshed_at,
        )


def build_snapshot(
    dataset: Dataset,
    project_ids: Sequence[str],
    refreshed_at: datetime,
    coordination: features.CoordinationScore | None = None,
) -> FeatureSnapshot:
    """The snapshot of a dataset: features exactly as training computes them, history in recommender indices.

    Donations to projects the recommender does not know (a pool created after
    training) are left out of the history: they cannot be recommended anyway.
    ``coordination`` is the served version's coordination model
    (:attr:`scorer.models.ModelBundle.coordination_score`); the snapshot must be
    rebuilt when the version changes.
    """
    d = dataset.donations
    n_donors = len(dataset.donors)
    matrix = features.feature_matrix(dataset, coordination=coordination)
    index = {from_hex(address): i for i, address in enumerate(dataset.donors["address"])}

    wanted = {key: i for i, key in enumerate(project_ids)}
    to_recommender = np.fromiter((wanted.get(key, -1) for key in d.project_ids), np.int64, len(d.project_ids))
    n_projects = max(len(project_ids), 1)
    project = to_recommender[d.project] if d.project.size else np.zeros(0, dtype=np.int64)
    known = project >= 0
    pairs = np.unique(d.donor[known] * n_projects + project[known])  # sorted by donor, then project
    indptr = np.zeros(n_donors + 1, dtype=np.int64)
    np.cumsum(np.bincount(pairs // n_projects, minlength=n_donors), out=indptr[1:])
    return FeatureSnapshot(
        chain_id=dataset.chain_id,
        index=index,
        matrix=matrix,
        funded_indptr=indptr,
        funded_indices=np.ascontiguousarray(pairs % n_projects, dtype=np.int64),
        project_ids=tuple(project_ids),
        projects_key=projects_key(project_ids),
        refreshed_at=refreshed_at,
    )


def load_snapshot(
    conn: psycopg.Connection[Any],
    chain_id: int,
    project_ids: Sequence[str],
    coordination: features.CoordinationScore | None = None,
) -> FeatureSnapshot:
    """Read the chain from the database (one repeatable-read transaction) and build its snapshot.

    ``conn`` must not be in autocommit mode nor inside a transaction:
    :func:`qf.model.loader.load_dataset` sets the isolation level first.
    """
    refreshed_at = datetime.now(UTC)
    try:
        dataset = load_dataset(conn, chain_id)
    except DataError:  # no donation indexed yet
        return FeatureSnapshot.empty(chain_id, project_ids, refreshed_at)
    return build_snapshot(dataset, project_ids, refreshed_at, coordination)


class FeatureStore:
    """The current snapshot of one chain; swapped atomically, read once per request.

    ``project_ids`` gives the served recommender's project list at reload time
    (usually ``lambda: model_store.current().recommender.project_ids``) and
    ``coordination`` the served version's coordination model (its
    ``coordination_score``); reload after swapping in another version, so the
    ``coordination_anomaly`` column and the project indices are that version's.
    """

    def __init__(
        self,
        chain_id: int,
        project_ids: Callable[[], Sequence[str]],
        snapshot: FeatureSnapshot | None = None,
        coordination: Callable[[], features.CoordinationScore | None] = lambda: None,
    ) -> None:
        self.chain_id = chain_id
        self._project_ids = project_ids
        self._coordination = coordination
        self._snapshot = snapshot
        self._swap_lock = threading.Lock()

    def current(self) -> FeatureSnapshot:
        """The snapshot to use for one whole request."""
        snapshot = self._snapshot
        if snapshot is None:
            raise NotReady(f"the features of chain {self.chain_id} are not loaded yet")
        return snapshot

    def swap(self, new: FeatureSnapshot) -> FeatureSnapshot | None:
        """Serve ``new`` from now on; returns the snapshot it replaced."""
        if new.chain_id != self.chain_id:
            raise ValueError(f"a snapshot of chain {new.chain_id} cannot serve chain {self.chain_id}")
        with self._swap_lock:
            old, self._snapshot = self._snapshot, new
        return old

    def build(
        self,
        conn: psycopg.Connection[Any],
        project_ids: Sequence[str],
        coordination: features.CoordinationScore | None,
    ) -> FeatureSnapshot:
        """A snapshot for a model version about to be served (not swapped in)."""
        return load_snapshot(conn, self.chain_id, project_ids, coordination)

    def reload(self, conn: psycopg.Connection[Any]) -> FeatureSnapshot:
        """Load a new snapshot and swap it in; on error the old one stays and the error propagates."""
        for _ in range(3):
            coordination = self._coordination()
            snapshot = load_snapshot(conn, self.chain_id, self._project_ids(), coordination)
            with self._swap_lock:
                # A version swapped in meanwhile has its own snapshot already: never replace it with an older one.
                if self._coordination() is coordination:
                    self._snapshot = snapshot
                    return snapshot
        raise NotReady("the model version kept changing while the features were loading")

    async def follow(
        self,
        dsn: str,
        *,
        stop_event: asyncio.Event,
        interval_seconds: float = 60.0,
        debounce_seconds: float = 5.0,
        retry_seconds: float = 5.0,
        on_reload: Callable[[FeatureSnapshot], None] = lambda snapshot: None,
        on_error: Callable[[BaseException], None] = lambda exc: None,
    ) -> None:
        """Keep the snapshot fresh until ``stop_event`` is set.

        LISTENs on :data:`VIEWS_REFRESHED_CHANNEL` and reloads when a notification for
        this chain arrives (a payload naming another chain is ignored), at most
        once per ``debounce_seconds``: a burst of notifications becomes one
        reload at the end of the quiet period. Reloads also every
        ``interval_seconds`` in case a notification was missed, and right after
        each (re)connection. A failing reload is logged and the old snapshot
        kept; a lost connection is retried every ``retry_seconds``. Loading
        runs in a worker thread, so the event loop keeps serving. ``on_reload``
        gets each snapshot swapped in, ``on_error`` each failed reload or lost
        connection (the sidecar's metrics).
        """
        logger = log.bind(chain_id=self.chain_id, database=describe_url(dsn))
        params = parse_url(dsn)
        timeout: dict[str, Any] = {} if "connect_timeout" in params else {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
        follower = _Follower(
            self, dsn, logger, interval=interval_seconds, debounce=debounce_seconds, on_reload=on_reload,
            on_error=on_error,
        )  # fmt: skip
        while not stop_event.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, **timeout) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(VIEWS_REFRESHED_CHANNEL)))
                    logger.info("features_listening", channel=VIEWS_REFRESHED_CHANNEL)
                    follower.pending = True  # anything may have changed while not listening
                    await follower.run(conn, stop_event)
            except (psycopg.Error, OSError) as exc:
                error = error_line(exc, password=params.get("password"))
                logger.warning("features_listen_failed", error=error, retry_seconds=retry_seconds)
                on_error(exc)
                await _wait_or_stop(stop_event, retry_seconds)
        logger.info("features_follow_stopped")


class _Follower:
    """The reload schedule of :meth:`FeatureStore.follow` (kept across reconnections)."""

    def __init__(
        self, store: FeatureStore, dsn: str, logger: Any, *, interval: float, debounce: float,
        on_reload: Callable[[FeatureSnapshot], None], on_error: Callable[[BaseException], None],
    ) -> None:  # fmt: skip
        self.store = store
        self.on_reload = on_reload
        self.on_error = on_error
        self.dsn = dsn
        self.log = logger
        self.interval = interval
        self.debounce = debounce
        self.pending = False
        self.last_reload = -math.inf

    async def run(self, conn: psycopg.AsyncConnection[Any], stop_event: asyncio.Event) -> None:
        while not stop_event.is_set():
            now = time.monotonic()
            due = self.last_reload + (self.debounce if self.pending else self.interval)
            if now >= due:
                await self.reload()
                continue
            notes = await _notifications(conn, due - now, stop_event)
            if any(_concerns(note.payload, self.store.chain_id) for note in notes):
                self.pending = True

    async def reload(self) -> None:
        self.pending = False
        self.last_reload = time.monotonic()
        try:
            snapshot = await asyncio.to_thread(self._load)
        except (psycopg.OperationalError, OSError) as exc:  # the database is away: the old snapshot keeps serving
            self.log.warning("features_reload_failed", error=error_line(exc), keeping="the previous snapshot")
            self.on_error(exc)
            return
        except Exception as exc:  # anything else too, with its traceback
            self.log.exception("features_reload_failed", error=str(exc), keeping="the previous snapshot")
            self.on_error(exc)
            return
        self.on_reload(snapshot)
        self.log.info(
            "features_reloaded", donors=snapshot.n_donors, seconds=round(time.monotonic() - self.last_reload, 3)
        )

    def _load(self) -> FeatureSnapshot:
        with connect(self.dsn) as conn:
            return self.store.reload(conn)


async def _notifications(
    conn: psycopg.AsyncConnection[Any], timeout: float, stop_event: asyncio.Event
) -> list[psycopg.Notify]:
    """Notifications received within ``timeout`` seconds (at least one ends the wait), or none once stopped."""

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
    return receiving.result() if not receiving.cancelled() else []


async def _wait_or_stop(stop_event: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(stop_event.wait(), timeout=seconds)


def _concerns(payload: str, chain_id: int) -> bool:
    """Whether a notification is about ``chain_id`` ("chain_id:checkpoint"; anything else is taken to be)."""
    chain, _, _ = payload.partition(":")
    return not chain.isdigit() or int(chain) == chain_id
