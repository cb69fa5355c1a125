"""Several chains in one database, indexed at once by one `qf index`: two real anvils with different chain ids.

Each chain is compared with its own node (every event once, under its chain id); a chain whose node is
down, behind the fault-injecting proxy, holds up neither the other chain's backfill nor its live follow,
and catches up once its node is back; a chain that cannot start fails alone, named in the one error line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from psycopg import sql

from qf_sentinel.indexer.app import run_indexer
from qf_sentinel.indexer.decode import EVENTS
from qf_sentinel.indexer.funding.app import run_funding
from qf_sentinel.indexer.loop import EVENT_TABLES
from qf_sentinel.qf.db import connect
from qf_sentinel.qf.settings import Settings
from qf_sentinel.qf.sim.execute import execute_plan
from qf_sentinel.qf.sim.scenario import plan_simulated_round
from tests.fixtures.chain import Chain, free_port
from tests.fixtures.rpc_proxy import FaultPolicy, FaultProxy
from tests.indexer.harness import chain_events
from tests.indexer.live import LivePool
from tests.indexer.test_indexing import SMALL
from tests.indexer.test_resilience import Indexing

SECOND_CHAIN_ID = 31338
#: Guards against a hang only: every wait below is a polling loop, and nothing asserts how long it took.
HANG_GUARD_SECONDS = 180.0


def chains_toml(*chains: tuple[Chain, str], funding: bool = False, **extra: str) -> str:
    """A chains file for (chain, the URL to reach its node at); ``extra`` adds lines to every table."""
    tables = []
    for chain, url in chains:
        d = chain.deployment
        feeds = ", ".join(f'"{token}" = "{feed}"' for token, feed in d.price_feeds.items())
        lines = [
            "[[chains]]", f"chain_id = {d.chain_id}", f'name = "test {d.chain_id}"', f'rpc_urls = ["{url}"]',
            f'core = "{d.core}"', f'registry = "{d.registry}"', f"start_block = {d.start_block}",
            f"price_feeds = {{ {feeds} }}", f"funding = {'true' if funding else 'false'}",
            *(f"{key} = {value}" for key, value in extra.items()),
        ]  # fmt: skip
        tables.append("\n".join(lines))
    return "\n\n".join(tables) + "\n"


def stored_by_chain(db_url: str) -> dict[int, set[tuple[str, bytes, int]]]:
    """chain id -> (event name, tx hash, log index) of every stored event."""
    names = {spec.table: spec.name for spec in EVENTS.values()}
    found: dict[int, set[tuple[str, bytes, int]]] = {}
    with connect(db_url) as conn:
        for table in EVENT_TABLES:
            query = sql.SQL("SELECT chain_id, tx_hash, log_index FROM {}").format(sql.Identifier("qf", table))
            for chain_id, tx_hash, log_index in conn.execute(query).fetchall():
                found.setdefault(chain_id, set()).add((names[table], bytes(tx_hash), log_index))
    return found


def checkpoint(db_url: str, chain_id: int) -> int:
    with connect(db_url) as conn:
        row = conn.execute("SELECT checkpoint_block FROM qf.chains WHERE chain_id = %s", (chain_id,)).fetchone()
    return -1 if row is None or row[0] is None else int(row[0])


def wait_until(condition: Callable[[], bool], what: str, process: Indexing | None = None) -> None:
    deadline = time.monotonic() + HANG_GUARD_SECONDS
    while not condition():
        if process is not None and not process.alive():
            pytest.fail(f"qf index exited while waiting for {what}:\n{process.log_path.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            log = process.log_path.read_text()[-3000:] if process is not None else ""
            pytest.fail(f"gave up waiting for {what}\n{log}")
        time.sleep(0.1)


@pytest.fixture
def second(new_anvil: Callable[..., Chain]) -> Chain:
    """A second anvil with the contracts deployed, serving chain 31338."""
    other = new_anvil(chain_id=SECOND_CHAIN_ID)
    assert other.rpc.chain_id() == SECOND_CHAIN_ID
    return other


def test_two_chains_are_indexed_at_once_into_one_database(
    chain: Chain, second: Chain, db_url: str, tmp_path: Path
) -> None:
    """A round on each chain (some donors on both), one chains file, one `qf index --until-caught-up`: each
    chain's events are stored exactly once under its own chain id, and `qf funding` finds funding on both."""
    plans = plan_simulated_round(21, **SMALL), plan_simulated_round(21, chain=1, both_chains_share=0.5, **SMALL)
    both = {plans[0].wallets[d.donor].address for d in plans[0].donations} & {
        plans[1].wallets[d.donor].address for d in plans[1].donations}  # fmt: skip
    assert both, "the plans should share donors"
    for node, plan in zip((chain, second), plans, strict=True):
        execute_plan(node.rpc, node.deployment, plan, node.funder_key)
    config = tmp_path / "chains.toml"
    config.write_text(chains_toml((chain, chain.url), (second, second.url), funding=True))
    settings = Settings.from_env({}, home=tmp_path, database_url=db_url, chains_file=config, indexer_metrics_port=0,
                                 refresh_debounce_seconds=0.0, rpc_timeout_seconds=5.0)  # fmt: skip

    run_indexer(settings, until_caught_up=True)

    stored = stored_by_chain(db_url)
    assert set(stored) == {chain.rpc.chain_id(), SECOND_CHAIN_ID}
    assert stored[chain.rpc.chain_id()] == chain_events(chain)
    assert stored[SECOND_CHAIN_ID] == chain_events(second)
    with connect(db_url) as conn:
        gave_on_both = {r[0] for r in conn.execute(
            "SELECT donor FROM qf.donations GROUP BY 1 HAVING count(DISTINCT chain_id) = 2").fetchall()}  # fmt: skip
    assert gave_on_both == both

    assert run_funding(settings, db_url, threading.Event(), once=True) > 0
    with connect(db_url) as conn:
        funded = dict(conn.execute("SELECT chain_id, count(funder) FROM qf.donor_funding GROUP BY 1").fetchall())
    assert set(funded) == {chain.rpc.chain_id(), SECOND_CHAIN_ID}
    assert all(n > 0 for n in funded.values())


def metrics_of(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def sample(text: str, name: str, chain_id: int) -> float | None:
    match = re.search(rf'^{name}{{chain_id="{chain_id}"}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else None


def status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_a_chain_whose_node_is_down_holds_up_no_other_chain(
    chain: Chain, second: Chain, migrated_db_url: str, tmp_path: Path, fault_proxy: Callable[..., FaultProxy]
) -> None:
    """`qf index` following two chains, the second behind the fault proxy: while its node is down (from the
    start, and again later) the first chain backfills and follows new donations, the process stays healthy
    and its metrics say which chain is behind; each time the node comes back, the second chain catches up."""
    db_url = migrated_db_url
    first_id = chain.rpc.chain_id()
    pools = LivePool(chain), LivePool(second)
    for pool in pools:
        for donor in pool.donors[:2]:
            pool.donate(donor, pool.recipients[0], 10**15)
    proxy = fault_proxy(second.url, FaultPolicy(down=True))
    config = tmp_path / "chains.toml"
    config.write_text(chains_toml((chain, chain.url), (second, proxy.url)))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QF_")} | {
        "QF_HOME": str(tmp_path / "home"), "QF_DATABASE_URL": db_url, "QF_CHAINS_FILE": str(config),
        "QF_INDEXER_METRICS_PORT": str(port), "QF_POLL_INTERVAL_SECONDS": "0.05", "QF_LOG_FORMAT": "json",
        "QF_REFRESH_DEBOUNCE_SECONDS": "0.2", "QF_RPC_TIMEOUT_SECONDS": "1",
    }  # fmt: skip
    process = Indexing(env, tmp_path)
    try:
        # Down from the start: the first chain backfills to its head regardless.
        wait_until(lambda: checkpoint(db_url, first_id) >= chain.rpc.block_number(), "the first chain's backfill",
                   process)  # fmt: skip
        assert checkpoint(db_url, SECOND_CHAIN_ID) == -1
        wait_until(lambda: sample(metrics_of(port), "qf_indexer_ready", first_id) == 1, "the first chain ready",
                   process)  # fmt: skip
        assert sample(metrics_of(port), "qf_indexer_ready", SECOND_CHAIN_ID) in (None, 0.0)
        assert status(port, "/healthz") == 200  # one chain ticking: the process is not stalled
        assert status(port, "/readyz") == 503  # not every chain is caught up
        # ... and follows the head.
        pools[0].donate(pools[0].donors[2], pools[0].recipients[1], 10**15)
        wait_until(lambda: stored_by_chain(db_url).get(first_id) == chain_events(chain), "a new donation on the first "
                   "chain while the second's node is down", process)  # fmt: skip
        def waiting_out() -> list[str]:
            return [line for line in process.log_path.read_text().splitlines() if '"chain_unavailable"' in line]

        wait_until(lambda: bool(waiting_out()), "the second chain waiting out its node", process)
        assert all(f'"test {SECOND_CHAIN_ID}"' in line for line in waiting_out())

        proxy.set_policy(FaultPolicy())
        wait_until(lambda: stored_by_chain(db_url).get(SECOND_CHAIN_ID) == chain_events(second),
                   "the second chain catching up once its node is back", process)  # fmt: skip

        # Down again while running: the first chain goes on following; the second resumes where it was.
        proxy.set_policy(FaultPolicy(down=True))
        pools[0].donate(pools[0].donors[3], pools[0].recipients[2], 10**15)
        pools[1].donate(pools[1].donors[3], pools[1].recipients[2], 10**15)
        wait_until(lambda: stored_by_chain(db_url).get(first_id) == chain_events(chain),
                   "the first chain following while the second's node is down again", process)  # fmt: skip
        assert stored_by_chain(db_url).get(SECOND_CHAIN_ID) != chain_events(second)
        proxy.set_policy(FaultPolicy())
        wait_until(lambda: stored_by_chain(db_url).get(SECOND_CHAIN_ID) == chain_events(second),
                   "the second chain catching up again", process)  # fmt: skip
        text = metrics_of(port)
        for chain_id in (first_id, SECOND_CHAIN_ID):
            assert sample(text, "qf_indexer_last_indexed_block", chain_id) is not None
            assert sample(text, "qf_indexer_chain_failed", chain_id) == 0
        assert re.search(rf'qf_indexer_rpc_errors_total{{chain_id="{SECOND_CHAIN_ID}",', text)
        assert not re.search(rf'qf_indexer_rpc_errors_total{{chain_id="{first_id}",', text)
    finally:
        code, log = process.terminate()
    assert code == 0, log[-3000:]


@pytest.mark.parametrize("failure", ["node_down", "wrong_chain_id"])
def test_a_chain_that_cannot_start_fails_alone(
    chain: Chain, second: Chain, db_url: str, tmp_path: Path, dead_url: str, failure: str
) -> None:
    """`qf index --until-caught-up`: the first chain is indexed to its head, the second (no node answering, or
    a node serving another chain than the file says) fails, and the one error line names it."""
    pool = LivePool(chain)
    pool.donate(pool.donors[0], pool.recipients[0], 10**15)
    config = tmp_path / "chains.toml"
    if failure == "node_down":
        config.write_text(chains_toml((chain, chain.url), (second, dead_url)))
        fragment = "127.0.0.1"
    else:
        text = chains_toml((chain, chain.url), (second, second.url))
        config.write_text(text.replace(f"chain_id = {SECOND_CHAIN_ID}", "chain_id = 31339"))
        fragment = "serves chain 31338, but chains.toml [[chains]] #2 (test 31338) chain_id is 31339"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QF_")} | {
        "QF_HOME": str(tmp_path / "home"), "QF_DATABASE_URL": db_url, "QF_INDEXER_METRICS_PORT": "0",
        "QF_RPC_TIMEOUT_SECONDS": "0.5", "QF_LOG_FORMAT": "json",
    }  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "qf_sentinel", "index", "--config", str(config), "--until-caught-up"],
                          env=env, capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 1 of 2 chains failed: "), last
    assert "test 3133" in last, last
    assert fragment in last, last
    assert "Traceback" not in done.stderr
    assert stored_by_chain(db_url).get(chain.rpc.chain_id()) == chain_events(chain)
