"""Backfill progress of ``qf index``: a bar per chain on a terminal, a log line per chain per minute elsewhere.

:func:`indexer.app.run_indexer` opens one :class:`Progress` for the process and
hands each chain's loop the ``on_step`` callback of :meth:`Progress.for_chain`.
The figures (blocks and events per second since the chain started, blocks done
of the span to the node's head) are plain arithmetic, :func:`backfill_span`;
the bar (rich, on stderr) and the log line are the only output.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TypeVar

import structlog
from rich.console import Console
from rich.progress import BarColumn, TextColumn
from rich.progress import Progress as Bar

from qf_sentinel.indexer.loop import PreparedIndexer, StepResult
from qf_sentinel.indexer.ports import IndexStore, Node
from qf_sentinel.indexer.store import ChainState

log = structlog.get_logger()

#: Seconds between two ``backfill_progress`` log lines of a chain (when stderr is not a terminal).
LOG_EVERY_SECONDS = 60

N = TypeVar("N", bound=Node)
S = TypeVar("S", bound=IndexStore)


def backfill_span(state: ChainState, head: int) -> tuple[int, int]:
    """Blocks indexed since the start block, and the blocks from the start block to ``head`` (at least 1)."""
    done = (state.checkpoint_block or state.start_block) - state.start_block
    return done, max(head - state.start_block, 1)


class Progress:
    """Backfill progress (blocks/s, events/s) per chain on a terminal; a log line per chain per minute elsewhere."""

    def __init__(self, chains: int) -> None:
        self.tty = sys.stderr.isatty()
        self.bar = Bar(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} blocks"),
            TextColumn("{task.fields[bps]:.0f} blocks/s, {task.fields[eps]:.0f} events/s"),
            console=Console(stderr=True), transient=True, disable=not self.tty,
        )  # fmt: skip
        self.chains = chains

    def __enter__(self) -> Progress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)

    def for_chain(self, indexer: PreparedIndexer[N, S]) -> Callable[[StepResult], None]:
        """The ``on_step`` of one chain's loop (rich's progress is safe to update from several threads)."""
        label = "backfill" if self.chains == 1 else f"backfill {indexer.chain_id}"
        task = self.bar.add_task(label, total=None, bps=0.0, eps=0.0)
        started = last_log = time.monotonic()
        blocks = events = 0

        def on_step(result: StepResult) -> None:
            nonlocal blocks, events, last_log
            blocks += result.committed_blocks
            events += result.events
            elapsed = max(time.monotonic() - started, 1e-9)
            state = indexer.state
            done, total = backfill_span(state, indexer.head)
            self.bar.update(task, completed=done, total=total, bps=blocks / elapsed, eps=events / elapsed)
            if not self.tty and time.monotonic() - last_log > LOG_EVERY_SECONDS:
                last_log = time.monotonic()
                log.info("backfill_progress", block=state.checkpoint_block, head=indexer.head,
                         blocks_per_second=round(blocks / elapsed),
                         events_per_second=round(events / elapsed))  # fmt: skip

        return on_step
