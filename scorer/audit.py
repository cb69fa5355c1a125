"""The audit log: every decision, written to ``qf.scorer_decisions`` in batches, off the request path.

A handler only puts a row on a bounded queue (no I/O, no await); a background
task drains it every ``flush_seconds`` or ``batch_rows`` rows and COPYs the batch
in one transaction. If the database is down the batch is retried with a backoff
while new rows keep queueing; only when the queue is full are rows dropped, and
counted (``qf_scorer_audit_rows_dropped_total``), so a stuck database can slow
nothing but the audit log itself. ``close()`` flushes what is left.

:func:`delete_expired` is the retention job (default 90 days), run by
``qf serve`` on a schedule and by ``qf retention``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
import structlog

from scorer.metrics import ScorerMetrics

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


def _finite(value: object) -> object:
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class AuditLog:
    def __init__(
        self, dsn: str, metrics: ScorerMetrics, *, max_queue: int = 100_000, batch_rows: int = 1000,
        flush_seconds: float = 0.2,
    ) -> None:  # fmt: skip
        self._dsn = dsn
        self._metrics = metrics
        self._queue: asyncio.Queue[AuditRow] = asyncio.Queue(maxsize=max_queue)
        self._batch_rows = batch_rows
        self._flush_seconds = flush_seconds
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    def record(self, row: AuditRow) -> None:
        """Queue a row; never blocks (a full queue drops the row and counts it)."""
        try:
            self._queue.put_nowait(row)
        except asyncio.QueueFull:
            self._metrics.audit_dropped.inc()
        self._metrics.audit_queue.set(self._queue.qsize())

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def close(self, timeout_seconds: float = 10.0) -> None:
        """Stop after writing what is queued (or giving up after the timeout)."""
        self._closing.set()
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._task, timeout_seconds)
            self._task.cancel()

    async def _run(self) -> None:
        conn: psycopg.AsyncConnection[Any] | None = None
        pending: list[AuditRow] = []
        backoff = 0.5
        while True:
            if not pending:
                pending = await self._take()
            if not pending and self._closing.is_set():
                break
            if not pending:
                continue
            try:
                if conn is None or conn.closed:
                    conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=False)
                await self._write(conn, pending)
                self._metrics.audit_written.inc(len(pending))
                pending = []
                backoff = 0.5
            except (psycopg.DataError, psycopg.IntegrityError, ValueError) as exc:
                # The batch itself is bad: retrying cannot help, and must not block the rows behind it.
                log.error("audit_batch_rejected", error=str(exc).splitlines()[0], rows=len(pending))
                self._metrics.audit_dropped.inc(len(pending))
                pending = []
                if conn is not None:
                    await conn.rollback()
            except (psycopg.Error, OSError) as exc:
                log.warning("audit_write_failed", error=str(exc).splitlines()[0], rows=len(pending), retry_in=backoff)
                if conn is not None:
                    await conn.close()
                conn = None
                if self._closing.is_set():
                    break
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            self._metrics.audit_queue.set(self._queue.qsize())
        if conn is not None:
            await conn.close()

    async def _take(self) -> list[AuditRow]:
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

    async def _write(self, conn: psycopg.AsyncConnection[Any], rows: list[AuditRow]) -> None:
        async with conn.transaction(), conn.cursor() as cur:
            cols = ", ".join(COLUMNS)
            async with cur.copy(f"COPY qf.scorer_decisions ({cols}) FROM STDIN") as copy:
                for row in rows:
                    await copy.write_row(row.values())


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
