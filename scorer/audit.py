"""The audit log: every decision, written to ``qf.scorer_decisions`` in batches, off the request path.

A handler only puts a row on a bounded queue (no I/O, no await); a background
task drains it every ``flush_seconds`` or ``batch_rows`` rows and COPYs the batch
in one transaction. If the database is down the batch is kept and retried with
a backoff (at most 5 s) while new rows keep queueing, so an outage loses
nothing until the queue is full (100,000 rows: about five minutes at 300
decisions/s); rows dropped then are counted (``qf_scorer_audit_rows_dropped_total``),
and ``qf_scorer_audit_queue_depth`` shows what is buffered. A stuck database can
slow nothing but the audit log itself. A row the database refuses as bad data
is isolated by splitting its batch, logged and counted
(``qf_scorer_audit_rows_refused_total``); the rest of the batch is written.
``close()`` flushes what is left.

While the writer keeps up, a row is queued as it is (recording costs nothing
on the request path). Once more than a batch is waiting (the database is slow
or away), new rows are queued encoded instead (one pickled bytes object, about
1.2 KB against 3.5 KB as objects, about 0.1 ms to make); once a backlog of at
least ``TRIM_AFTER_ROWS`` has been written the freed heap is handed back to the
OS (glibc ``malloc_trim``), so an outage leaves no lasting growth of the
sidecar's memory. The pickles never leave the process.

:func:`delete_expired` is the retention job (default 90 days), run by
``qf serve`` on a schedule and by ``qf retention``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import json
import math
import pickle
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
import structlog

from qf_sentinel.qf import backoff
from qf_sentinel.qf.db import error_line
from qf_sentinel.scorer.metrics import ScorerMetrics

log = structlog.get_logger("scorer.audit")

COLUMNS = (
    "decision_id", "created_at", "client", "method", "chain_id", "donor", "recipient_id", "pool_id", "token",
    "amount", "risk_score", "level", "decision", "cold_start", "anomaly", "reasons", "features", "context",
    "model_version", "latency_ms",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class AuditRow:
    decision_id: str
    created_at: datetime
    client: str
    method: str
    model_version: str
    latency_ms: float
    chain_id: int | None = None
    donor: bytes | None = None
    recipient_id: bytes | None = None
    pool_id: int | None = None
    token: bytes | None = None
    amount: Decimal | None = None
    risk_score: float | None = None
    level: str | None = None
    decision: str | None = None
    cold_start: bool | None = None
    anomaly: dict[str, Any] | None = None
    reasons: list[dict[str, Any]] | None = None
    features: dict[str, float] | None = None
    context: dict[str, str] | None = None

    def values(self) -> tuple[Any, ...]:
        def as_json(value: object) -> str | None:
            return None if value is None else json.dumps(_finite(value), allow_nan=False, default=str)

        return (
            self.decision_id, self.created_at, self.client, self.method, self.chain_id, self.donor,
            self.recipient_id, self.pool_id, self.token, self.amount, self.risk_score, self.level, self.decision,
            self.cold_start, as_json(self.anomaly), as_json(self.reasons), as_json(self.features),
            as_json(self.context), self.model_version, self.latency_ms,
        )  # fmt: skip


#: What the queue holds: a row, or (in a backlog) its encoded form.
Queued = AuditRow | bytes


def _finite(value: object) -> object:
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


#: What a database or the row itself refuses as bad data: retrying cannot help, splitting the batch can.
BAD_DATA = (psycopg.DataError, psycopg.IntegrityError, ValueError, TypeError)
CONNECT_TIMEOUT_SECONDS = 5
#: A backlog this large, once written, is worth returning its memory to the OS.
TRIM_AFTER_ROWS = 1000
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 5.0


class AuditLog:
    def __init__(
        self, dsn: str, metrics: ScorerMetrics, *, max_queue: int = 100_000, batch_rows: int = 1000,
        flush_seconds: float = 0.2,
    ) -> None:  # fmt: skip
        self._dsn = dsn
        self._metrics = metrics
        #: rows as recorded, or (once a backlog builds) encoded by ``_encode``
        self._queue: asyncio.Queue[Queued] = asyncio.Queue(maxsize=max_queue)
        self._batch_rows = batch_rows
        self._flush_seconds = flush_seconds
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        #: taken off the queue, not written yet: a batch, or the parts of one being split around a bad row
        self._chunks: list[list[Queued]] = []
        #: the largest backlog since the heap was last trimmed
        self._backlog_peak = 0

    @property
    def buffered(self) -> int:
        """Rows recorded and not yet written (queued or in the batch being written)."""
        return self._queue.qsize() + sum(len(chunk) for chunk in self._chunks)

    def record(self, row: AuditRow) -> None:
        """Queue a row; never blocks (a full queue drops the row and counts it)."""
        item: Queued = row
        if self._queue.qsize() >= self._batch_rows:  # a backlog: keep it compact
            try:
                item = _encode(row)
            except BAD_DATA as exc:  # a value with no JSON form: refused at once, as the database would
                self._refuse(row.decision_id, row.client, row.method, exc)
                return
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._metrics.audit_dropped.inc()
        buffered = self.buffered
        self._backlog_peak = max(self._backlog_peak, buffered)
        self._metrics.audit_queue.set(buffered)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def close(self, timeout_seconds: float = 10.0) -> None:
        """Stop after writing what is buffered; after the timeout what is left is counted as dropped and logged."""
        self._closing.set()
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), timeout_seconds)
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            lost = self.buffered
            if lost:
                log.error("audit_rows_lost_at_shutdown", rows=lost, waited_seconds=timeout_seconds)
                self._metrics.audit_dropped.inc(lost)

    async def _run(self) -> None:
        conn: psycopg.AsyncConnection[Any] | None = None
        failures = 0  # failed writes in a row
        try:
            while True:
                if not self._chunks:
                    batch = await self._take()
                    if batch:
                        self._chunks.append(batch)
                    elif self._closing.is_set():
                        break
                    else:
                        continue
                try:
                    if conn is None or conn.closed:
                        conn = await psycopg.AsyncConnection.connect(
                            self._dsn, autocommit=False, connect_timeout=CONNECT_TIMEOUT_SECONDS
                        )
                    await self._write_chunks(conn)
                except (psycopg.Error, OSError) as exc:
                    # The database is away: keep the rows (new ones keep queueing) and try again later.
                    self._metrics.dependency_errors.labels(dependency="audit").inc()
                    self._metrics.dependency_up.labels(dependency="audit").set(0)
                    failures += 1
                    wait = backoff.delay(failures, first=FIRST_BACKOFF_SECONDS, cap=MAX_BACKOFF_SECONDS)
                    log.warning("audit_write_failed", error=error_line(exc),
                                buffered=self.buffered, retry_in=wait)  # fmt: skip
                    if conn is not None:
                        await conn.close()
                    conn = None
                    await asyncio.sleep(wait)
                else:
                    self._written(recovered=failures > 0)
                    failures = 0
                self._metrics.audit_queue.set(self.buffered)
        finally:
            if conn is not None:
                await conn.close()

    def _written(self, *, recovered: bool) -> None:
        """The buffered chunks are written: the dependency is up, and a drained backlog's memory goes back."""
        if recovered:
            log.info("audit_write_recovered", buffered=self.buffered)
        self._metrics.dependency_up.labels(dependency="audit").set(1)
        if self._backlog_peak >= TRIM_AFTER_ROWS and self.buffered == 0:
            self._backlog_peak = 0
            trim_heap()

    async def _write_chunks(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Write the buffered chunks in order; a chunk refused as bad data is split until the bad row is alone.

        One bad row (a value the database cannot store) then costs only itself,
        logged and counted, and never the decisions of other clients that
        happened to share its batch. A connection error propagates with the
        unwritten chunks still buffered.
        """
        while self._chunks:
            chunk = self._chunks[0]
            try:
                await self._write(conn, chunk)
            except BAD_DATA as exc:
                self._chunks.pop(0)
                if len(chunk) == 1:
                    self._refuse(*_identity(chunk[0]), exc)
                else:
                    middle = len(chunk) // 2
                    self._chunks[0:0] = [chunk[:middle], chunk[middle:]]
                continue
            self._chunks.pop(0)
            self._metrics.audit_written.inc(len(chunk))

    def _refuse(self, decision_id: str, client: str, method: str, exc: BaseException) -> None:
        log.error("audit_row_refused", decision_id=decision_id, client=client, method=method,
                  error=error_line(exc))  # fmt: skip
        self._metrics.audit_refused.inc()

    async def _take(self) -> list[Queued]:
        """Rows queued over one flush period (up to batch_rows): one COPY per period, not one per decision."""
        try:
            rows = [await asyncio.wait_for(self._queue.get(), self._flush_seconds)]
        except TimeoutError:
            return []
        if self._queue.qsize() < self._batch_rows - 1 and not self._closing.is_set():
            with contextlib.suppress(TimeoutError):  # let the period's rows gather (or stop early on close)
                await asyncio.wait_for(self._closing.wait(), self._flush_seconds)
        while len(rows) < self._batch_rows and not self._queue.empty():
            rows.append(self._queue.get_nowait())
        return rows

    async def _write(self, conn: psycopg.AsyncConnection[Any], rows: list[Queued]) -> None:
        async with conn.transaction(), conn.cursor() as cur:
            cols = ", ".join(COLUMNS)
            async with cur.copy(f"COPY qf.scorer_decisions ({cols}) FROM STDIN") as copy:
                for item in rows:
                    await copy.write_row(_values(item))


def _encode(row: AuditRow) -> bytes:
    return pickle.dumps((row.decision_id, row.client, row.method, row.values()), protocol=pickle.HIGHEST_PROTOCOL)


def _values(item: Queued) -> tuple[Any, ...]:
    """The COPY row of a queued item (a refusal to encode as JSON raises here, as bad data)."""
    if isinstance(item, AuditRow):
        return item.values()
    values: tuple[Any, ...] = pickle.loads(item)[3]  # noqa: S301 (our own, in-process)
    return values


def _identity(item: Queued) -> tuple[str, str, str]:
    """(decision_id, client, method) of a queued item, for the refusal's log line."""
    if isinstance(item, AuditRow):
        return item.decision_id, item.client, item.method
    decision_id, client, method, _ = pickle.loads(item)  # noqa: S301 (our own, in-process)
    return decision_id, client, method


def trim_heap() -> None:
    """Hand freed heap memory back to the OS (glibc only; elsewhere nothing happens)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return
    trim(0)


def delete_expired(conn: psycopg.Connection[Any], *, days: int, batch: int = 10_000) -> int:
    """Delete audit rows older than ``days``, in batches (short locks on a big table); returns the count."""
    total = 0
    while True:
        with conn.transaction():
            cur = conn.execute(
                "DELETE FROM qf.scorer_decisions WHERE decision_id IN ("
                " SELECT decision_id FROM qf.scorer_decisions WHERE created_at < now() - make_interval(days => %s)"
                " LIMIT %s)",
                (days, batch),
            )
        total += cur.rowcount
        if cur.rowcount < batch:
            return total
