"""The indexer under crashes, flaky RPCs, a restarted database, standbys, signals and bad configuration."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from structlog.testing import capture_logs

from qf_sentinel.qf.db import connect, with_database
from qf_sentinel.qf.db.embedded import pg_ctl, start_server, system_user
from qf_sentinel.qf.sim.execute import execute_plan
from qf_sentinel.qf.sim.scenario import plan_simulated_round
from tests.fixtures.chain import Chain, free_port
from tests.fixtures.postgres import RestartablePostgres
from tests.fixtures.rpc_proxy import Fault, FaultPolicy, FaultProxy
from tests.indexer.harness import (
    Prepared,
    backfill,
    chain_events,
    close,
    make_indexer,
    sample,
    snapshot,
    stored_keys,
    sync,
)
from tests.indexer.live import LivePool
from tests.indexer.test_indexing import SMALL


def index_env(chain: Chain, db_url: str, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QF_")}
    env |= {
        "QF_HOME": str(home), "QF_DATABASE_URL": db_url, "QF_RPC_URLS": chain.url,
        "QF_CORE_ADDRESS": chain.deployment.core, "QF_START_BLOCK": str(chain.deployment.start_block),
        "QF_INDEXER_METRICS_PORT": "0", "QF_POLL_INTERVAL_SECONDS": "0.05", "QF_LOG_FORMAT": "json",
        "QF_REFRESH_DEBOUNCE_SECONDS": "0.2", "QF_REGISTRY_ADDRESS": chain.deployment.registry,
        "QF_PRICE_FEEDS": ",".join(f"{t}={f}" for t, f in chain.deployment.price_feeds.items()),
    }  # fmt: skip
    return env | extra


class Indexing:
    """A `qf index` process whose log goes to a file (a pipe could fill up and block it)."""

    def __init__(self, env: dict[str, str], log_dir: Path, *args: str) -> None:
        self.log_path = log_dir / f"index-{time.monotonic_ns()}.log"
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "qf_sentinel", "index", *args], env=env, stdout=log, stderr=log,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def terminate(self, timeout: float = 60) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        return code, self.log_path.read_text()

    def alive(self) -> bool:
        return self.proc.poll() is None


def index_until_caught_up(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`qf index --until-caught-up` to completion, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "qf_sentinel", "index", "--until-caught-up"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll ``condition`` (a database that is not there yet counts as False)."""
    deadline = time.monotonic() + timeout

    def holds() -> bool:
        try:
            return condition()
        except psycopg.Error:
            return False

    while not holds():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)


def test_kill_9_at_random_points_leaves_no_gap_or_duplicate(
    chain: Chain, db_url: str, second_db: str, tmp_path: Path
) -> None:
    """SIGKILL during backfill and during live follow, then restart: equal to one clean backfill."""
    execute_plan(chain.rpc, chain.deployment, plan_simulated_round(31, **SMALL), chain.funder_key)
    env = index_env(chain, db_url, tmp_path, QF_LOG_RANGE_BLOCKS="5", QF_LOG_RANGE_MAX_BLOCKS="20")
    rng = random.Random(99)
    for _ in range(4):  # during backfill
        proc = Indexing(env, tmp_path)
        time.sleep(rng.uniform(1.0, 2.5))
        proc.kill()
    pool = LivePool(chain)
    for _ in range(3):  # during live follow, with donations arriving
        proc = Indexing(env, tmp_path)
        for _ in range(rng.randint(2, 5)):
            pool.donate(rng.choice(pool.donors), rng.choice(pool.recipients), rng.randint(1, 10**15))
            time.sleep(rng.uniform(0.05, 0.4))
        proc.kill()
    done = index_until_caught_up(env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert stored_keys(db_url) == chain_events(chain)
    backfill(chain, second_db, tmp_path)
    assert snapshot(db_url) == snapshot(second_db)


@pytest.mark.parametrize("hint", [True, False])
def test_faulty_rpc_converges_to_the_clean_result(
    chain: Chain, db_url: str, second_db: str, tmp_path: Path,
    fault_proxy: Callable[..., FaultProxy], dead_url: str, hint: bool,
) -> None:  # fmt: skip
    """429s, 5xx, timeouts, dropped connections, bad logs and range refusals (with and without a
    hint), with a second endpoint down: the database equals a clean backfill."""
    execute_plan(chain.rpc, chain.deployment, plan_simulated_round(32, **SMALL), chain.funder_key)
    policy = FaultPolicy.seeded(0.3, seed=5, max_log_span=25, range_hint=hint, stall_seconds=0.8)
    proxy = fault_proxy(chain.url, policy)
    indexer = make_indexer(
        chain, db_url, tmp_path, url=f"{proxy.url},{dead_url}", rpc_timeout_seconds=0.4, log_range_blocks=200
    )
    try:
        sync(indexer)
    finally:
        close(indexer)
    injected = proxy.stats.injected
    assert injected[Fault.RANGE_TOO_LARGE_HINT if hint else Fault.RANGE_TOO_LARGE] > 0
    assert sum(injected[f] for f in (Fault.HTTP_429, Fault.HTTP_500, Fault.HTTP_502, Fault.HTTP_503)) > 0
    assert injected[Fault.TIMEOUT] + injected[Fault.DROP] > 0
    backfill(chain, second_db, tmp_path)
    assert snapshot(db_url) == snapshot(second_db)


@pytest.fixture
def own_postgres() -> Iterator[tuple[str, Path]]:
    """A PostgreSQL server of this test's own, so it can be restarted without disturbing others."""
    workdir = Path(tempfile.mkdtemp(prefix="qf-test-restart-"))
    server = start_server(workdir / "pgdata", cleanup_mode="delete")
    with connect(server.get_uri(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE restart_test")
    try:
        yield with_database(server.get_uri(), "restart_test"), workdir / "pgdata"
    finally:
        server.cleanup()


def test_postgres_restart_under_the_indexer(chain: Chain, own_postgres: tuple[str, Path], tmp_path: Path) -> None:
    """The database restarts while the indexer follows the head: it reconnects and misses nothing."""
    db_url, pgdata = own_postgres
    pool = LivePool(chain)
    indexer = make_indexer(chain, db_url, tmp_path)
    with following(indexer) as (_, errors):
        for donor in pool.donors[:3]:
            pool.donate(donor, pool.recipients[0], 10**14)
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=pgdata, user=system_user(), timeout=60)
        for donor in pool.donors[3:6]:
            pool.donate(donor, pool.recipients[1], 10**14)
        wait_until(lambda: stored_keys(db_url) == chain_events(chain))
    assert not errors
    assert sample(indexer, "qf_indexer_is_writer") == 1


@contextmanager
def following(indexer: Prepared) -> Iterator[tuple[threading.Thread, list[BaseException]]]:
    """The indexer following the head in a thread (and what it raised); stopped and closed when the block ends."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            indexer.run(stop)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield thread, errors
    finally:
        stop.set()
        thread.join(timeout=30)
        close(indexer)


def test_standby_takes_over_when_the_writer_dies(chain: Chain, db_url: str, tmp_path: Path) -> None:
    """A second `qf index` waits on the chain's lock and takes over after the first is killed."""
    pool = LivePool(chain)
    env = index_env(chain, db_url, tmp_path)
    writer = Indexing(env, tmp_path)
    wait_until(lambda: stored_keys(db_url) == chain_events(chain))
    standby = Indexing(env, tmp_path)
    try:
        wait_until(lambda: "standby_waiting" in standby.log_path.read_text())
        time.sleep(0.5)
        assert standby.alive()
        assert writer.alive()
        writer.kill()
        for donor in pool.donors[:3]:
            pool.donate(donor, pool.recipients[2], 10**14)
        wait_until(lambda: stored_keys(db_url) == chain_events(chain))
    finally:
        code, err = standby.terminate()
    assert code == 0, err[-2000:]
    events = [json.loads(line)["event"] for line in err.splitlines() if line.startswith("{")]
    assert events.index("standby_waiting") < events.index("indexer_started")
    assert events[-1] == "indexer_stopped"


def test_sigterm_stops_cleanly_and_resumes(chain: Chain, db_url: str, second_db: str, tmp_path: Path) -> None:
    """SIGTERM mid-backfill exits 0 with a consistent checkpoint; a restart completes the job."""
    execute_plan(chain.rpc, chain.deployment, plan_simulated_round(33, **SMALL), chain.funder_key)
    env = index_env(chain, db_url, tmp_path, QF_LOG_RANGE_BLOCKS="3", QF_LOG_RANGE_MAX_BLOCKS="3")
    proc = Indexing(env, tmp_path)
    # Mid-backfill: just after start-up (a fixed 2 s sleep raced the start-up on a loaded machine).
    wait_until(lambda: '"indexer_started"' in proc.log_path.read_text())
    time.sleep(0.3)
    code, err = proc.terminate()
    assert code == 0, err[-2000:]
    assert '"shutdown_requested"' in err
    # From the moment the chain is known, every line names it (structlog's context variables).
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    started = next(i for i, line in enumerate(lines) if line["event"] == "indexer_started")
    assert {line.get("chain_id") for line in lines[started:]} == {chain.rpc.chain_id()}
    done = index_until_caught_up(env)
    assert done.returncode == 0
    backfill(chain, second_db, tmp_path)
    assert snapshot(db_url) == snapshot(second_db)


def test_metrics_health_and_readiness(chain: Chain, db_url: str, tmp_path: Path) -> None:
    """/metrics exports the indexer's series; /healthz and /readyz answer once caught up."""
    port = free_port()
    env = index_env(chain, db_url, tmp_path, QF_INDEXER_METRICS_PORT=str(port))
    proc = Indexing(env, tmp_path)
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    try:
        wait_until(ready)
        with urllib.request.urlopen(f"{base}/metrics", timeout=2) as response:
            text = response.read().decode()
        with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
            assert response.status == 200
    finally:
        proc.terminate()
    head = chain.rpc.block_number()
    for series in (
        "qf_indexer_last_indexed_block",
        "qf_indexer_chain_head_block",
        "qf_indexer_blocks_behind",
        "qf_indexer_head_lag_seconds",
        "qf_indexer_events_ingested_total",
        "qf_indexer_rpc_requests_total",
        "qf_indexer_rpc_request_seconds_bucket",
        "qf_indexer_batch_seconds_count",
        "qf_indexer_reorgs_total",
    ):
        assert series in text, series
    chain_id = chain.rpc.chain_id()  # every series of a chain's loop is labelled with the chain
    last = next(line for line in text.splitlines()
                if line.startswith(f'qf_indexer_last_indexed_block{{chain_id="{chain_id}"}} '))  # fmt: skip
    assert head - 2 <= float(last.split()[1]) <= head


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"QF_CHAIN_ID": "5"}, "QF_CHAIN_ID is 5"),
        ({"QF_CORE_ADDRESS": "0x" + "12" * 20}, "no contract at core address"),
        ({"QF_RPC_URLS": "http://127.0.0.1:1", "QF_RPC_TIMEOUT_SECONDS": "0.2"}, "127.0.0.1:1"),
    ],
)
def test_bad_configuration_is_one_line(
    chain: Chain, db_url: str, tmp_path: Path, extra: dict[str, str], fragment: str
) -> None:
    """Wrong chain id, a core address without code, or an unreachable node: one clear line."""
    env = index_env(chain, db_url, tmp_path, **extra)
    proc = index_until_caught_up(env)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ")
    assert fragment in last


def test_postgres_outage_of_seconds_under_the_indexer(
    chain: Chain, restartable_pg: RestartablePostgres, tmp_path: Path
) -> None:
    """The database is away for seconds (not a quick restart): reconnecting fails a few times, the indexer keeps
    waiting instead of dying, and catches up once the database is back. (The soak found it dying.)"""
    pool = LivePool(chain)
    indexer = make_indexer(chain, restartable_pg.url, tmp_path)
    with following(indexer) as (thread, errors):
        for donor in pool.donors[:3]:
            pool.donate(donor, pool.recipients[0], 10**14)
        wait_until(lambda: stored_keys(restartable_pg.url) == chain_events(chain))
        restartable_pg.stop()
        for donor in pool.donors[3:6]:
            pool.donate(donor, pool.recipients[1], 10**14)
        time.sleep(4)  # several failed reconnections
        assert thread.is_alive(), errors
        restartable_pg.start()
        wait_until(lambda: stored_keys(restartable_pg.url) == chain_events(chain))
    assert not errors


def test_a_node_lacking_blocks_it_reports_is_retried_with_backoff(
    chain: Chain, db_url: str, tmp_path: Path, fault_proxy: Callable[..., FaultProxy]
) -> None:
    """A node (a lagging replica behind a load balancer) reports a head whose last blocks it then lacks. The
    indexer commits what the node has, retries the rest with a growing wait, warns and counts each retry, and
    catches up when the blocks appear. (The soak found it retrying the same range in a tight loop, silently.)"""
    pool = LivePool(chain)
    for donor in pool.donors[:3]:
        pool.donate(donor, pool.recipients[0], 10**14)
    known = _head(chain)
    for donor in pool.donors[3:6]:
        pool.donate(donor, pool.recipients[1], 10**14)
    proxy = fault_proxy(chain.url, FaultPolicy(blocks_known_up_to=known))
    indexer = make_indexer(chain, db_url, tmp_path, url=proxy.url)
    with capture_logs() as events, following(indexer) as (thread, errors):
        wait_until(lambda: indexer.state is not None and indexer.state.checkpoint_block == known)
        before = sample(indexer, "qf_indexer_chain_moved_total")
        time.sleep(3.0)
        retries = sample(indexer, "qf_indexer_chain_moved_total") - before
        assert thread.is_alive(), errors
        assert indexer.state.checkpoint_block == known  # nothing above what the node has
        proxy.set_policy(FaultPolicy())
        wait_until(lambda: stored_keys(db_url) == chain_events(chain))
    assert not errors
    # Waits of 0.1, 0.2, 0.4, ... s: a handful of retries in 3 s, where a tight loop made hundreds.
    assert 1 <= retries <= 8, retries
    assert proxy.stats.injected[Fault.BLOCK_UNKNOWN] >= 3
    warnings = [e for e in events if e["event"] == "chain_keeps_moving_during_fetch"]
    assert warnings
    assert warnings[0]["log_level"] == "warning"
    assert f"block {known + 1} is not on the node" in warnings[-1]["reason"]


def _head(chain: Chain) -> int:
    request = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
    with urllib.request.urlopen(
        urllib.request.Request(chain.url, json.dumps(request).encode(), {"content-type": "application/json"})
    ) as answer:
        return int(json.load(answer)["result"], 16)
