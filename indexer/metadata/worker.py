"""The fetch loop: claim due pointers, fetch and verify them through the gateways, record the outcome.

Runs beside the indexer, never inside it: its own thread (or the ``qf
metadata`` process), its own connection (``indexer.metadata.store``), its own
HTTP client (``indexer.metadata.gateway``). What a pointer becomes is decided
here: not IPFS (protocol 1) is skipped; an IPFS document is stored once every
block of it has been verified (as jsonb when `indexer.sanitise.json_document`
makes it storable JSON, repairs counted in ``qf_indexer_values_sanitised_total``,
else as bytes); a failure is retried on the backoff schedule
(``indexer.metadata.schedule``) when retrying can help, else marked invalid.
The clock and the random source are parameters, so tests step time.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
import structlog
from multiformats import CID

from qf_sentinel.indexer.metadata.cid import parse_cid
from qf_sentinel.indexer.metadata.errors import MetadataError
from qf_sentinel.indexer.metadata.gateway import Gateways
from qf_sentinel.indexer.metadata.metrics import MetadataMetrics
from qf_sentinel.indexer.metadata.schedule import RetryPolicy, outage_wait_seconds
from qf_sentinel.indexer.metadata.store import Document, MetadataStore, Pending
from qf_sentinel.indexer.metadata.unixfs import read_file
from qf_sentinel.indexer.metrics import SanitisedValues
from qf_sentinel.indexer.sanitise import Sanitised, json_document
from qf_sentinel.qf.errors import DatabaseError

log = structlog.get_logger()

#: Allo's metadata protocol id for IPFS.
IPFS = 1
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class FetcherConfig:
    """How much to fetch at once, how large a document may be, and when to retry."""

    concurrency: int = 4
    max_bytes: int = 1024 * 1024
    max_blocks: int = 1024
    batch_size: int = 64
    timeout_seconds: float = 20.0
    poll_seconds: float = 5.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def lease_seconds(self) -> float:
        """How long a claim lasts: longer than a batch normally takes; it decides when a dead fetcher's claims
        are tried again."""
        return max(600.0, 4 * self.timeout_seconds * self.batch_size / max(self.concurrency, 1))


class MetadataFetcher:
    """One fetcher: ``run_once`` handles what is due; ``run`` repeats it until told to stop."""

    def __init__(
        self,
        store: MetadataStore,
        gateways: Gateways,
        metrics: MetadataMetrics,
        config: FetcherConfig,
        *,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
        sanitised: SanitisedValues | None = None,
    ) -> None:
        self.store = store
        #: Shared with the indexer when both run in one process (one counter per registry).
        self.sanitised = sanitised or SanitisedValues(metrics.registry)
        self.gateways = gateways
        self.metrics = metrics
        self.config = config
        self.clock = clock
        self.rng = rng or random.Random()
        self._pool = ThreadPoolExecutor(max_workers=max(config.concurrency, 1), thread_name_prefix="qf-ipfs")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.gateways.close()
        self.store.close()

    def run_once(self) -> int:
        """Claim the pointers due now, fetch them (``concurrency`` at a time), record each; return how many."""
        now = self.clock()
        due = self.store.claim(now, limit=self.config.batch_size,
                               lease_until=now + timedelta(seconds=self.config.lease_seconds))  # fmt: skip
        ipfs = []
        for pending in due:
            if pending.protocol == IPFS:
                ipfs.append(pending)
            else:
                self.store.skip(pending, f"metadata protocol {pending.protocol} is not IPFS (1)")
                self.metrics.skipped.inc()
        for pending, outcome in zip(ipfs, self._pool.map(self._fetch, ipfs), strict=True):
            self._record(pending, outcome)
        self.metrics.pending.set(self.store.pending_count())
        return len(due)

    def drain(self) -> int:
        """Run until nothing is due now (failures are rescheduled later, so this ends); return how many."""
        total = 0
        while handled := self.run_once():
            total += handled
        return total

    def run(self, stop: threading.Event) -> None:
        """Fetch until ``stop`` is set, waiting ``poll_seconds`` whenever nothing is due; database outages are
        waited out (the connection is reopened)."""
        outage = 0
        while not stop.is_set():
            try:
                handled = self.run_once()
                outage = 0
            except (psycopg.OperationalError, DatabaseError) as exc:
                outage += 1
                wait = outage_wait_seconds(outage, self.config.poll_seconds)
                log.warning("metadata_database_unavailable", error=str(exc).splitlines()[0], retry_in_seconds=wait)
                self.store.close()
                stop.wait(wait)
                continue
            if handled < self.config.batch_size:
                stop.wait(self.config.poll_seconds)

    def _fetch(self, pending: Pending) -> Document | MetadataError:
        """Every block of the document, verified; or the error that stopped it. Runs on a pool thread."""
        try:
            root = parse_cid(pending.pointer)
            served_by: list[str] = []

            def get_block(cid: CID) -> bytes:
                block, gateway = self.gateways.get_block(cid)
                served_by.append(gateway)
                return block

            file = read_file(root, get_block, max_bytes=self.config.max_bytes, max_blocks=self.config.max_blocks)
        except MetadataError as exc:
            return exc
        return Document(pending.pointer, file.content, file.blocks, served_by[0])

    def _record(self, pending: Pending, outcome: Document | MetadataError) -> None:
        now = self.clock()
        if isinstance(outcome, Document):
            # The document's bytes are verified, not its content: anyone may pin anything.
            body = json_document(outcome.content)
            stored = self.store.store(pending, outcome, now, body.value)
            reasons = body.reasons + (("refused",) if body.value is not None and stored == "bytes" else ())
            if reasons:
                self.sanitised.report([Sanitised("ipfs_metadata.body", pending.pointer, reasons)])
            self.metrics.stored.labels(stored).inc()
            log.info("metadata_stored", cid=pending.pointer, format=stored, size_bytes=len(outcome.content),
                     blocks=outcome.blocks, gateway=outcome.gateway)  # fmt: skip
            return
        attempts = pending.attempts + 1
        retry_at = self.config.retry.next_attempt(now, attempts, self.rng) if outcome.retriable else None
        self.store.fail(pending, str(outcome), retry_at)
        self.metrics.failures.labels(outcome.reason).inc()
        log.info("metadata_fetch_failed", cid=pending.pointer, error=str(outcome), attempts=attempts,
                 retry_at=retry_at.isoformat() if retry_at else None)  # fmt: skip
