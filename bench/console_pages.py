"""What a round operator waits for in `qf console`: every page, served by uvicorn, at real size.

    .venv/bin/python bench/console_pages.py [--database-url URL] [--scales round9,1m] [--repeats 7]
                                            [--decisions 1000000]

Scales (the data of ``bench/views_query.py``):

* ``round9``: all of Gitcoin Round 9 (69,015 donations, 8,131 donors, 641
  projects) written into the event tables as the indexer stores the replay;
* ``1m``: 1,000,000 synthetic donations over 10 pools (200,000 donors).

On top, as a deployment accumulates them: batch scores for every donor of the
pool (``qf.donor_risk``, scores drawn deterministically from the donor's
address: the page's cost does not depend on the model), an audit log of
``--decisions`` sidecar decisions over those donors (3% BLOCK, 7% REVIEW, as a
90-day log of a busy round), and an experiment with 10,000 assignments.

Each page is fetched over HTTP from a console on loopback by a logged-in
client: median of ``--repeats`` after one warm-up. Baselines measured in the
same run: ``/healthz`` (HTTP, session, one ``SELECT 1``: the floor of any
page) and each page's own queries called directly over psycopg (what the page
would cost with no HTTP and no template; for the round page, its cache lookup).
The round page is timed cold (its three matchings computed) and cached.

Without --database-url a throwaway embedded PostgreSQL is started (and deleted).
The machine should be otherwise idle.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from psycopg import Connection

sys.path.insert(0, str(Path(__file__).parent))
import views_query

from qf_sentinel.console import queries
from qf_sentinel.console.app import create_app, server_config
from qf_sentinel.console.comparison import ComparisonCache, compare
from qf_sentinel.console.config import ConsoleConfig
from qf_sentinel.qf.db import connect
from qf_sentinel.qf.db.embedded import start_server
from qf_sentinel.qf.db.migrate import apply_migrations
from qf_sentinel.qf.experiments import store as experiment_store
from qf_sentinel.qf.experiments.logic import ExperimentConfig

TOKEN = "bench-reviewer-token-0123456789"


def seed_console_data(conn: Connection[Any], chain: int, pool: int, decisions: int) -> dict[str, Any]:
    """Batch scores for every donor of the pool, an audit log over them, an experiment with outcomes."""
    conn.execute(
        """
        INSERT INTO qf.donor_risk (chain_id, pool_id, donor, model_version, score, level, decision, reasons,
                                   community, community_flagged_share, weight)
        SELECT %(chain)s, %(pool)s, donor, 'bench', s,
               CASE WHEN s >= 0.7 THEN 'HIGH' WHEN s >= 0.4 THEN 'MEDIUM' ELSE 'LOW' END,
               CASE WHEN s >= 0.97 THEN 'BLOCK' WHEN s >= 0.90 THEN 'REVIEW' ELSE 'APPROVE' END,
               ARRAY['community_amount_cv', 'fresh_wallet', 'coordination_anomaly'],
               (get_byte(donor, 1) %% 60), (get_byte(donor, 2) / 255.0), CASE WHEN s >= 0.9 THEN 0.2 ELSE 1 END
        FROM (SELECT DISTINCT a.sender AS donor, (get_byte(a.sender, 0) * 256 + get_byte(a.sender, 19)) / 65535.0 AS s
              FROM qf.allocated a JOIN qf.strategies st ON st.chain_id = a.chain_id AND st.address = a.contract
              WHERE a.chain_id = %(chain)s AND st.pool_id = %(pool)s) d
        """,
        {"chain": chain, "pool": pool},
    )
    conn.execute(
        """
        WITH donors AS (SELECT array_agg(donor ORDER BY donor) AS d FROM qf.donor_risk WHERE pool_id = %(pool)s)
        INSERT INTO qf.scorer_decisions (decision_id, created_at, client, method, chain_id, donor, pool_id,
                                         risk_score, level, decision, cold_start, reasons, model_version, latency_ms)
        SELECT gen_random_uuid(), now() - make_interval(secs => (%(n)s - i) * 7.0), 'dapp', 'ScoreContribution',
               %(chain)s, donors.d[1 + ((i::bigint * 7919) %% cardinality(donors.d))::int], %(pool)s,
               (i %% 100) / 100.0, 'LOW',
               CASE WHEN i %% 100 < 3 THEN 'BLOCK' WHEN i %% 100 < 10 THEN 'REVIEW' ELSE 'APPROVE' END, false,
               '[{"feature": "community_amount_cv", "value": 0.1, "contribution": 0.4}]'::jsonb, 'bench', 0.8
        FROM generate_series(1, %(n)s) i, donors
        """,
        {"chain": chain, "pool": pool, "n": decisions},
    )
    config = ExperimentConfig(name="project_list", variants=("baseline", "recommend", "cluster"), baseline="baseline",
                              policy="hash")
    experiment_store.ensure_experiment(conn, config)
    donors = [bytes(r[0]) for r in conn.execute(
        "SELECT donor FROM qf.donor_risk WHERE pool_id = %s ORDER BY donor LIMIT 10000", (pool,))]  # fmt: skip
    conn.commit()
    rng = np.random.default_rng(0)
    for i, donor in enumerate(donors):
        user = "0x" + donor.hex()
        experiment_store.assign(conn, config, user, rng)
        if i % 4 == 0:
            experiment_store.record_outcome(conn, config.name, user, 1.0)
    conn.commit()
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE")  # what autovacuum does to an insert-mostly audit log: index-only scans
    conn.autocommit = False
    flagged = conn.execute(
        "SELECT '0x' || encode(donor, 'hex') FROM qf.scorer_decisions WHERE decision = 'BLOCK' LIMIT 1").fetchone()
    assert flagged is not None
    return {"flagged": flagged[0]}


def timed(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def serve(config: ConsoleConfig) -> tuple[uvicorn.Server, threading.Thread, str]:
    server = uvicorn.Server(server_config(create_app(config), "127.0.0.1", 0))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


def logged_in(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=600)
    page = client.get("/login").text
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    client.post("/login", data={"token": TOKEN, "next": "/", "csrf_token": csrf})
    assert client.get("/").status_code == 200
    return client


def bench_scale(url: str, scale: str, params: dict[str, Any], repeats: int, models: Path) -> None:
    chain, pool, donor = params["chain"], params["pool"], params["flagged"]
    config = ConsoleConfig(database_url=url, models_dir=models, reviewers={"bench": TOKEN}, chain_id=chain,
                           session_secret=secrets.token_hex(32))  # fmt: skip
    server, thread, base = serve(config)
    client = logged_in(base)
    raw = connect(url, autocommit=True)
    donor_bytes = bytes.fromhex(donor[2:])

    def get(path: str) -> Callable[[], Any]:
        def fetch() -> None:
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code, response.text[:300])

        return fetch

    started = time.perf_counter()
    get(f"/rounds/{pool}")()
    cold_round = time.perf_counter() - started
    started = time.perf_counter()
    compare(raw, chain, pool)
    cold_compare = time.perf_counter() - started
    cache = ComparisonCache()  # the baseline's own, warmed by timed()'s first call
    pages: list[tuple[str, str, Callable[[], Any]]] = [
        ("/", "rounds + KPIs", lambda: (queries.rounds(raw, [chain]), queries.indexer_status(raw, [chain]))),
        (f"/rounds/{pool}", "round (cached)", lambda: (
            queries.round_header(raw, chain, pool), queries.pool_tokens(raw, chain, pool),
            cache.get(raw, chain, pool))),
        (f"/rounds/{pool}/matching.csv", "matching CSV (cached)", lambda: (queries.round_header(raw, chain, pool),
                                                                           cache.get(raw, chain, pool))),
        ("/donors", "flagged donors", lambda: queries.flagged_donors(raw, [chain], queries.DonorFilter())),
        ("/donors?decision=BLOCK", "donors, BLOCK",
         lambda: queries.flagged_donors(raw, [chain], queries.DonorFilter(decision="BLOCK"))),
        (f"/donors/{donor}", "one donor's evidence", lambda: (
            queries.donor_chains(raw, [chain], donor_bytes), queries.donor_features(raw, chain, donor_bytes),
            queries.donor_decisions(raw, chain, donor_bytes),
            queries.donor_donations(raw, chain, donor_bytes), queries.donor_scores(raw, chain, donor_bytes))),
        ("/review", "review queue", lambda: (queries.review_queue(raw, [chain], "pending"),
                                             queries.queue_counts(raw, [chain]))),
        ("/review?status=all&offset=2000", "review queue, page 41", lambda: queries.review_queue(raw, [chain], "all",
                                                                                                 2000)),
        ("/experiments", "experiments", lambda: experiment_store.stats(raw, "project_list")),
        ("/model", "model", lambda: None),
    ]  # fmt: skip
    floor = timed(get("/healthz"), repeats)
    print(f"{scale}: round page cold (three matchings) {cold_round:.3f} s (compare() alone {cold_compare:.3f} s); "
          f"/healthz floor {floor * 1000:.1f} ms", flush=True)  # fmt: skip
    print(f"  {'page':<34} {'served':>10} {'queries':>10} {'ratio':>7}", flush=True)
    for path, name, baseline in pages:
        page = timed(get(path), repeats)
        query = timed(baseline, repeats)
        ratio = f"x{page / query:5.2f}" if query > 1e-4 else "   -"
        print(f"  {name:<34} {page * 1000:8.1f} ms {query * 1000:8.1f} ms {ratio:>7}   {path}", flush=True)
    raw.close()
    client.close()
    server.should_exit = True
    thread.join(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="server where databases may be created (default: embedded)")
    parser.add_argument("--scales", default="round9,1m")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--decisions", type=int, default=1_000_000)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="qf-bench-console-"))
    server = None
    server_url = args.database_url
    if server_url is None:
        server = start_server(workdir / "pgdata", cleanup_mode="delete")
        server_url = server.get_uri()
    try:
        for scale in args.scales.split(","):
            with views_query.scratch_database(server_url) as url:
                started = time.perf_counter()
                with connect(url) as conn:
                    apply_migrations(conn)
                    if scale == "round9":
                        params = views_query.load_round9(conn)
                    else:
                        params = views_query.load_synthetic(conn, 1_000_000)
                    params |= seed_console_data(conn, params["chain"], params["pool"], args.decisions)
                print(f"{scale}: loaded in {time.perf_counter() - started:.1f} s; pool {params['pool']}, "
                      f"{args.decisions:,} audit decisions", flush=True)  # fmt: skip
                bench_scale(url, scale, params, args.repeats, workdir / "models")
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
