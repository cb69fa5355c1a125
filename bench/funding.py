"""Funding discovery speed on the devnet: one wallet's lookup, a whole round's donors, and event indexing with and
without the funding worker beside it.

    .venv/bin/python bench/funding.py [--honest-donors 2000] [--repeats 3] [--out PATH]

Starts its own anvil (a free port) with the contracts deployed and an embedded PostgreSQL in a temporary
directory, simulates a round (``qf simulate``'s planner, every funding pattern: exchanges, personal wallets,
direct fan-out, peel chains, staggered, via an exchange) and backfills it. Then, in one run:

* lookup:  every donor searched once by a ``Finder`` on the devnet's trace_filter (as the worker does: one
           wallet at a time, block times and funders' code remembered across wallets), median, p95 and max ms
           per wallet; and the same with a cold finder per wallet (nothing remembered);
* round:   the worker (`qf funding --once`: 4 search threads, queue, reorg guard, results in Postgres) over
           every donor and their funders, into an empty funding table; seconds, and donors per second,
           extrapolated to Round 9's 8,131 donors (the replay's own funding, one faucet for every wallet, is
           cheaper to search than this round's, which has peel chains and in-round funding);
* indexing: the event backfill of the same chain into fresh databases, alternately with the funding worker
           running beside it on its own thread (as `qf index` with QF_FUNDING on) and without; median seconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from qf_sentinel.indexer.app import build_indexer
from qf_sentinel.indexer.funding.app import build_worker, funding_targets, start_in_background
from qf_sentinel.indexer.funding.capabilities import probe
from qf_sentinel.indexer.funding.finder import Finder, Task
from qf_sentinel.indexer.funding.metrics import FundingMetrics
from qf_sentinel.indexer.metrics import IndexerMetrics
from qf_sentinel.indexer.rpc import ResilientRpc
from qf_sentinel.qf.chain.anvil import DEV_PRIVATE_KEY, AnvilOptions, start_anvil
from qf_sentinel.qf.chain.deploy import deploy_contracts
from qf_sentinel.qf.chain.rpc import RpcClient
from qf_sentinel.qf.db import connect, with_database
from qf_sentinel.qf.db.embedded import start_server
from qf_sentinel.qf.db.migrate import apply_migrations
from qf_sentinel.qf.funding.sources import store_sources
from qf_sentinel.qf.http_metrics import HealthState
from qf_sentinel.qf.settings import Settings
from qf_sentinel.qf.sim.execute import execute_plan
from qf_sentinel.qf.sim.labels import round_sources
from qf_sentinel.qf.sim.scenario import plan_simulated_round

ROUND9_DONORS = 8_131


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_db(server_url: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:12]}"
    with connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = with_database(server_url, name)
    with connect(url) as conn:
        apply_migrations(conn)
    return url


def settings(url: str, deployment: Any, db_url: str, home: Path) -> Settings:
    return Settings.from_env({}, home=home, database_url=db_url, rpc_urls=url, core_address=deployment.core,
                             registry_address=deployment.registry, price_feeds=deployment.price_feeds,
                             start_block=deployment.start_block, indexer_metrics_port=0, poll_interval_seconds=0.05,
                             refresh_debounce_seconds=0.0)  # fmt: skip


def backfill(s: Settings, *, with_funding: bool) -> float:
    metrics = IndexerMetrics()
    indexer = build_indexer(s, metrics, HealthState())
    assert indexer.store.try_lock()
    indexer = indexer.prepare()
    stop_funding = None
    if with_funding:
        health = indexer.health
        target = funding_targets(s)[0]
        stop_funding = start_in_background(s, indexer.store.url, FundingMetrics(CollectorRegistry()), target,
                                           busy=lambda: not health.caught_up)  # fmt: skip
    try:
        started = time.perf_counter()
        indexer.run(threading.Event(), until_caught_up=True)
        return time.perf_counter() - started
    finally:
        if stop_funding:
            stop_funding()
        indexer.store.close()
        indexer.rpc.close()
        for helper in indexer.helpers:
            helper.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--honest-donors", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="qf-bench-funding-"))
    port = free_port()
    anvil = start_anvil(AnvilOptions(port=port), log_path=work / "anvil.log")
    server = start_server(work / "pgdata", cleanup_mode="delete")
    try:
        url = f"http://127.0.0.1:{port}"
        rpc = RpcClient(url)
        deployment = deploy_contracts(rpc, DEV_PRIVATE_KEY)
        plan = plan_simulated_round(42, honest_donors=args.honest_donors, projects_per_pool=40,
                                    fan_out_clusters=8, self_donation_projects=4)  # fmt: skip
        started = time.perf_counter()
        execute_plan(rpc, deployment, plan, DEV_PRIVATE_KEY)
        simulate_seconds = time.perf_counter() - started
        head = rpc.block_number()
        rpc.close()
        server_url = server.get_uri()
        result: dict[str, Any] = {"honest_donors": args.honest_donors, "donors": len({d.donor for d in plan.donations}),
                                  "blocks": head, "simulate_seconds": round(simulate_seconds, 1)}  # fmt: skip

        # -- the round's donors through the worker ------------------------------------------------
        db = fresh_db(server_url)
        s = settings(url, deployment, db, work)
        backfill(s, with_funding=False)
        with connect(db) as conn:
            store_sources(conn, round_sources(plan, 31337, deployment.deployer))
        worker = build_worker(s, db)
        try:
            started = time.perf_counter()
            searched = worker.drain()
            seconds = time.perf_counter() - started
        finally:
            worker.close()
        with connect(db) as conn:
            donors = conn.execute("SELECT count(*) FROM qf.funding_wallets WHERE depth = 1").fetchone()
            statuses = dict(conn.execute("SELECT status, count(*) FROM qf.funding_wallets GROUP BY 1").fetchall())
            calls = conn.execute("SELECT avg(rpc_calls)::float8, max(rpc_calls) FROM qf.funding_wallets").fetchone()
        assert donors is not None
        assert calls is not None
        per_second = donors[0] / seconds
        result["round"] = {
            "wallets_searched": searched, "donors": donors[0], "statuses": statuses, "seconds": round(seconds, 2),
            "donors_per_second": round(per_second, 1), "rpc_calls_per_wallet_mean": round(calls[0], 2),
            "rpc_calls_per_wallet_max": calls[1],
            "round9_extrapolated_seconds": round(ROUND9_DONORS / per_second, 1),
        }  # fmt: skip

        # -- one wallet at a time through trace_filter ---------------------------------------------
        node = ResilientRpc([url])
        caps = probe(node)
        wallets = sorted({bytes.fromhex(plan.wallets[d.donor].address[2:]) for d in plan.donations})
        for label, warm in (("warm", True), ("cold", False)):
            finder = Finder(node, caps, max_calls=64)
            timings = []
            for wallet in wallets:
                if not warm:
                    finder = Finder(node, caps, max_calls=64)
                started = time.perf_counter()
                outcome = finder.search(Task(wallet, 1, (), 0, head))
                timings.append((time.perf_counter() - started) * 1000)
                assert outcome.error is None, outcome
                assert outcome.found, outcome
            timings.sort()
            result[f"lookup_{label}_ms"] = {
                "median": round(statistics.median(timings), 2), "p95": round(timings[int(0.95 * len(timings))], 2),
                "max": round(timings[-1], 2), "wallets": len(timings),
            }  # fmt: skip
        result["trace_range_blocks"] = caps.trace_range_blocks
        node.close()

        # -- event indexing with and without the worker beside it ------------------------------------
        runs: dict[str, list[float]] = {"funding_off": [], "funding_on": []}
        for _ in range(args.repeats):
            for mode in ("funding_off", "funding_on"):
                db = fresh_db(server_url)
                runs[mode].append(backfill(settings(url, deployment, db, work), with_funding=mode == "funding_on"))
        result["indexing_seconds"] = {m: round(statistics.median(v), 3) for m, v in runs.items()}
        result["indexing_runs"] = {m: [round(x, 3) for x in v] for m, v in runs.items()}
        text = json.dumps(result, indent=2)
        print(text)
        if args.out:
            args.out.write_text(text + "\n")
    finally:
        server.cleanup()
        anvil.terminate()
        anvil.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
