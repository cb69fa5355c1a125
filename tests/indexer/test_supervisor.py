"""Several chains on threads of their own: what one chain meets never stops or holds up another.

The jobs here are stand-ins for a chain's start-up and loop (the real ones run against two anvils in
``test_multichain.py``): they block, fail or finish on cue, so each rule of ``indexer.supervisor`` is
shown exactly, with no timing assumed.
"""

from __future__ import annotations

import threading

import psycopg
import pytest

from qf_sentinel.indexer.errors import ReorgTooDeep
from qf_sentinel.indexer.supervisor import RETRY_MAX_SECONDS, ChainJob, retry_delay_seconds, run_chain, supervise
from qf_sentinel.qf.errors import ChainIdMismatch, RpcUnavailable
from qf_sentinel.qf.http_metrics import HealthGroup, HealthState

#: Guards against a hang only.
GUARD_SECONDS = 60.0


def test_a_failing_chain_stops_alone_while_the_others_run_to_their_end() -> None:
    """One chain fails for good while another is mid-way: the other finishes, each end is reported, and the
    failed chain's hook ran once."""
    failed_first = threading.Event()
    hooked: list[BaseException] = []

    def healthy(stop: threading.Event) -> None:
        assert failed_first.wait(GUARD_SECONDS)  # still running when the other chain has failed

    def broken(stop: threading.Event) -> None:
        failed_first.set()
        raise ChainIdMismatch("node serves chain 1, but QF_CHAIN_ID is 10")

    ends = supervise([ChainJob("a", healthy), ChainJob("b", broken, hooked.append)], threading.Event())
    assert [(e.name, type(e.error)) for e in ends] == [("a", type(None)), ("b", ChainIdMismatch)]
    assert [str(e) for e in hooked] == ["node serves chain 1, but QF_CHAIN_ID is 10"]


def test_an_unavailable_node_or_database_at_start_is_waited_out() -> None:
    """Start-up attempts that meet a node or a database away are made again until one succeeds."""
    failures: list[Exception] = [RpcUnavailable("refused", url="http://x"), psycopg.OperationalError("gone")]
    attempts = []

    def flaky(stop: threading.Event) -> None:
        attempts.append(1)
        if failures:
            raise failures.pop(0)

    end = run_chain(ChainJob("a", flaky), threading.Event())
    assert (end.error, end.attempts, len(attempts)) == (None, 3, 3)


def test_a_batch_does_not_wait_out_an_unavailable_node() -> None:
    """`qf index --until-caught-up`: a node away at start fails that chain at once."""
    def down(stop: threading.Event) -> None:
        raise RpcUnavailable("refused", url="http://x")

    end = run_chain(ChainJob("a", down), threading.Event(), wait_out_outages=False)
    assert isinstance(end.error, RpcUnavailable)
    assert end.attempts == 1


@pytest.mark.parametrize("error", [ReorgTooDeep(200, 128), ZeroDivisionError("a bug")])
def test_errors_waiting_cannot_fix_end_the_chain(error: Exception) -> None:
    """A reorg deeper than allowed, or a bug: the chain ends with it after one attempt."""
    def fails(stop: threading.Event) -> None:
        raise error

    end = run_chain(ChainJob("a", fails), threading.Event())
    assert (end.error, end.attempts) == (error, 1)


def test_stop_ends_a_chain_waiting_out_its_node() -> None:
    """A chain between start-up attempts ends as soon as the process is asked to stop, without error."""
    stop = threading.Event()

    def down(stop_: threading.Event) -> None:
        stop.set()  # the signal arrives while the node is still away
        raise RpcUnavailable("refused", url="http://x")

    end = run_chain(ChainJob("a", down), stop)
    assert (end.error, end.attempts) == (None, 1)


def test_start_up_retries_back_off_to_a_cap() -> None:
    delays = [retry_delay_seconds(n) for n in range(1, 12)]
    assert delays[0] == 0.5
    assert delays == sorted(delays)
    assert delays[-1] == RETRY_MAX_SECONDS


def test_a_process_is_alive_while_any_chain_ticks_and_ready_when_all_are() -> None:
    """/healthz: a chain whose node is down is no reason to restart the process; /readyz: every chain caught up."""
    up, down = HealthState(stale_after_seconds=60), HealthState(stale_after_seconds=60)
    down.last_tick -= 3600  # its loop has not ticked for an hour
    group = HealthGroup([up, down])
    up.tick(caught_up=True)
    assert group.alive()
    assert not group.ready()
    down.tick(caught_up=True)
    assert group.ready()
    up.last_tick -= 3600
    down.last_tick -= 3600
    assert not group.alive()
    assert not HealthGroup([]).ready()
