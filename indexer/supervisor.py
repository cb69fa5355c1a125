"""Several chains in one process: a thread per chain, and no chain waits on another.

``qf index`` reads every configured chain at once (``indexer.app``). Each chain's whole life runs on
a thread of its own: start-up (node checks, the writer lock, state), the loop, its funding worker.
What one chain meets stays with it:

- a node that is down, or a database that is away, at start-up is waited out on that chain's thread
  (0.5 s doubling to 30 s; the loop itself already waits out outages once running), while the other
  chains index; a batch (``qf index --until-caught-up``) does not wait: that chain fails;
- an error that waiting cannot fix (a node serving another chain, no core contract, a reorg deeper
  than allowed, or a bug) stops that chain alone: it is logged (``chain_failed``), its
  ``qf_indexer_chain_failed`` is 1, and the others go on. When every chain has ended, :func:`supervise`
  returns what each ended with, and the command fails if any chain failed.

Why threads and not a process per chain: the loop spends its time waiting on the node and on
PostgreSQL (both release the GIL); threads share one metrics endpoint with a ``chain_id`` label, one
signal handler, one embedded-database user and one IPFS fetcher, and the chains file stays one
command. A chain that needs a core to itself can still have a process: ``qf index --chain N`` runs one
chain of the same file, and the per-chain writer lock lets processes split the chains between them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg
import structlog

from qf_sentinel.qf import backoff
from qf_sentinel.qf.errors import DatabaseError, QFError, RpcUnavailable

log = structlog.get_logger()

#: Waits between start-up attempts of a chain whose node or database is away.
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0
#: Errors a chain waits out (and tries again) instead of failing: a node or a database not answering.
TRANSIENT: tuple[type[Exception], ...] = (RpcUnavailable, psycopg.OperationalError, DatabaseError)


@dataclass(frozen=True, slots=True)
class ChainJob:
    """One chain's work: ``attempt(stop)`` starts it and indexes until it is done or ``stop`` is set."""

    name: str
    attempt: Callable[[threading.Event], None]
    #: Called once if the chain fails for good (metrics, cleanup); never raises into the supervisor.
    on_failure: Callable[[BaseException], None] | None = None


@dataclass(frozen=True, slots=True)
class ChainEnd:
    """How a chain's thread ended: ``error`` is None when it finished or was stopped."""

    name: str
    error: BaseException | None
    attempts: int


def retry_delay_seconds(failures: int) -> float:
    """The wait after ``failures`` consecutive failed start-ups (>= 1)."""
    return backoff.delay(failures, first=RETRY_FIRST_SECONDS, cap=RETRY_MAX_SECONDS)


def run_chain(job: ChainJob, stop: threading.Event, *, wait_out_outages: bool = True) -> ChainEnd:
    """Run one chain until it ends: with ``wait_out_outages``, a node or database away is waited out and the
    chain started again; anything else (or an outage without it) ends the chain."""
    failures = 0
    while True:
        try:
            job.attempt(stop)
            return ChainEnd(job.name, None, failures + 1)
        except TRANSIENT as exc:
            if not wait_out_outages:
                return _failed(job, exc, failures + 1)
            failures += 1
            delay = retry_delay_seconds(failures)
            log.warning("chain_unavailable", chain=job.name, error=_line(exc), retry_in=delay, attempts=failures)
            if stop.wait(delay):
                return ChainEnd(job.name, None, failures)
        except Exception as exc:
            return _failed(job, exc, failures + 1)


def _failed(job: ChainJob, exc: Exception, attempts: int) -> ChainEnd:
    if isinstance(exc, QFError):
        log.error("chain_failed", chain=job.name, error=_line(exc), others="go on")
    else:  # a bug: with its traceback
        log.exception("chain_failed", chain=job.name, error=_line(exc), others="go on")
    if job.on_failure is not None:
        try:
            job.on_failure(exc)
        except Exception:
            log.exception("chain_failure_hook_failed", chain=job.name)
    return ChainEnd(job.name, exc, attempts)


def supervise(
    jobs: Sequence[ChainJob], stop: threading.Event, *, wait_out_outages: bool = True, join_seconds: float = 0.5
) -> list[ChainEnd]:
    """Run every job on a thread of its own (:func:`run_chain`); return how each ended, in the jobs' order.

    The calling thread only waits (in short joins, so that it still handles signals); ``stop`` ends
    every chain at its next step.
    """
    ends: list[ChainEnd | None] = [None] * len(jobs)

    def main(i: int, job: ChainJob) -> None:
        ends[i] = run_chain(job, stop, wait_out_outages=wait_out_outages)

    threads = [threading.Thread(target=main, args=(i, job), name=f"qf-chain-{job.name}") for i, job in
               enumerate(jobs)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(timeout=join_seconds)
    return [end if end is not None else ChainEnd(job.name, RuntimeError("thread ended without a result"), 0)
            for end, job in zip(ends, jobs, strict=True)]  # fmt: skip


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
