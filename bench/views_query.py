"""What analysts pay in psql: every view and table, and each README recipe, at real size.

    .venv/bin/python bench/views_query.py [--database-url URL] [--scales round9,1m] [--repeats 5]
                                          [--no-cli]

Scales:

* ``round9``: all of Gitcoin Round 9 (69,015 donations, 8,131 donors, 641
  projects) written into the event tables with ``qf.sim.direct.write_plan``,
  as the indexer would store the replay, then refreshed as the indexer does;
* ``1m``: 1,000,000 synthetic donations over 10 pools (the generator of
  ``bench/views_refresh.py``: 100 recipients per pool, 200,000 donors, skewed).

Each query of :data:`QUERIES` is timed against the same question asked of the
raw event tables (``qf.allocated`` joined to ``qf.strategies``, the cheapest
way to the answer without the view) in the same run: median of ``--repeats``
runs after one warm-up, and the ratio view / raw. Queries that return many rows
are wrapped in ``sum(length(row::text))`` so every column is computed, as psql
would print it, without timing the terminal. Then, unless ``--no-cli``,
``qf matching`` end to end as a user runs it (process start to printed
table) against the same database: with the server already running (the
documented default: the embedded server stays up until ``qf db stop``), and,
for the embedded server, the first call after ``qf db stop``; the kernels
alone in-process are the baseline.

Targets (issue 11): at Round 9 scale a pool-filtered query <= 100 ms and a full
scan <= 1 s; at 1M pool-filtered <= 1 s; ``qf matching`` <= 1.0 s standard and
<= 1.5 s COCM on Round 9.

Without --database-url a throwaway embedded PostgreSQL is started (and deleted).
The machine should be otherwise idle.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import Connection, sql

from qf_sentinel.qf.db import connect, with_database
from qf_sentinel.qf.db.embedded import start_server
from qf_sentinel.qf.db.migrate import apply_migrations

REPO = Path(__file__).resolve().parents[1]
ROUND9 = REPO / "data" / "gitcoin-round9-contributions.csv.xz"
ROUND9_CHAIN = 31337

_IN_POOL = "JOIN qf.strategies s ON s.chain_id = a.chain_id AND s.address = a.contract WHERE s.pool_id = %(pool)s"


@dataclass(frozen=True, slots=True)
class Query:
    """One question: asked of a view (what analysts run) and of the raw event tables (the baseline)."""

    relation: str
    #: "pool" (filtered to one pool), "full" (the whole relation) or "recipe" (a README example)
    kind: str
    view: str
    raw: str


def _rows(select: str) -> str:
    """Compute every column of every row (as psql would print them) and return one number."""
    return f"SELECT count(*), sum(length(t::text)) FROM ({select}) t"


QUERIES: tuple[Query, ...] = (
    # qf.donations -------------------------------------------------------------------------
    Query("qf.donations", "pool",
          "SELECT count(*), count(DISTINCT donor) FROM qf.donations WHERE pool_id = %(pool)s",
          f"SELECT count(*), count(DISTINCT a.sender) FROM qf.allocated a {_IN_POOL}"),
    Query("qf.donations", "pool",
          _rows("SELECT DISTINCT donor FROM qf.donations WHERE pool_id = %(pool)s"),
          _rows(f"SELECT DISTINCT '0x' || encode(a.sender, 'hex') FROM qf.allocated a {_IN_POOL}")),
    Query("qf.donations", "pool",
          "SELECT recipient_status, in_window, count(*), sum(amount) FROM qf.donations WHERE pool_id = %(pool)s "
          "GROUP BY 1, 2",
          f"SELECT count(*), sum(a.amount) FROM qf.allocated a {_IN_POOL}"),
    Query("qf.donations", "pool",
          _rows("SELECT * FROM qf.donations WHERE pool_id = %(pool)s"),
          _rows(f"SELECT a.* FROM qf.allocated a {_IN_POOL}")),
    Query("qf.donations", "pool",
          "SELECT * FROM qf.donations WHERE donor = %(donor)s ORDER BY block_number",
          "SELECT a.* FROM qf.allocated a WHERE a.sender = decode(substr(%(donor)s, 3), 'hex') ORDER BY block_number"),
    Query("qf.donations", "full",
          _rows("SELECT * FROM qf.donations"),
          _rows("SELECT a.* FROM qf.allocated a")),
    # README recipes over qf.donations
    Query("qf.donations", "recipe",
          "SELECT pool_id, token_symbol, count(*), sum(amount) FROM qf.donations GROUP BY 1, 2",
          "SELECT s.pool_id, a.token, count(*), sum(a.amount) FROM qf.allocated a "
          "JOIN qf.strategies s ON s.chain_id = a.chain_id AND s.address = a.contract GROUP BY 1, 2"),
    Query("qf.donations", "recipe",
          "SELECT pool_id, count(*) FILTER (WHERE donor_nonce < 3) * 1.0 / count(*) FROM qf.donations GROUP BY 1",
          "SELECT s.pool_id, count(*) FILTER (WHERE a.tx_nonce < 3) * 1.0 / count(*) FROM qf.allocated a "
          "JOIN qf.strategies s ON s.chain_id = a.chain_id AND s.address = a.contract GROUP BY 1"),
    # qf.pools, qf.recipient_status, qf.recipient_status_history ---------------------------------
    Query("qf.pools", "pool",
          "SELECT * FROM qf.pools WHERE pool_id = %(pool)s",
          "SELECT * FROM qf.pool_created WHERE pool_id = %(pool)s"),
    Query("qf.pools", "full", _rows("SELECT * FROM qf.pools"), _rows("SELECT * FROM qf.pool_created")),
    Query("qf.recipient_status", "pool",
          "SELECT status_name, count(*) FROM qf.recipient_status WHERE pool_id = %(pool)s GROUP BY 1",
          "SELECT count(*) FROM qf.registered g JOIN qf.strategies s ON s.chain_id = g.chain_id "
          "AND s.address = g.contract WHERE s.pool_id = %(pool)s"),
    Query("qf.recipient_status", "full",
          _rows("SELECT * FROM qf.recipient_status"), _rows("SELECT * FROM qf.registered")),
    Query("qf.recipient_status_history", "pool",
          _rows("SELECT h.* FROM qf.recipient_status_history h JOIN qf.strategies s ON s.chain_id = h.chain_id "
                "AND s.address = h.contract WHERE s.pool_id = %(pool)s"),
          _rows("SELECT u.* FROM qf.recipient_status_updated u JOIN qf.strategies s ON s.chain_id = u.chain_id "
                "AND s.address = u.contract WHERE s.pool_id = %(pool)s")),
    Query("qf.recipient_status_history", "full",
          _rows("SELECT * FROM qf.recipient_status_history"), _rows("SELECT * FROM qf.recipient_status_updated")),
    # The analytics tables ------------------------------------------------------------------
    Query("qf.project_totals", "recipe",
          "SELECT pool_id, recipient_id, unique_donors, sum_sqrt_amount_raw FROM qf.project_totals "
          "ORDER BY 4 DESC LIMIT 10",
          "SELECT a.recipient_id, count(*) FROM qf.allocated a GROUP BY 1 ORDER BY 2 DESC LIMIT 10"),
    Query("qf.project_totals", "pool",
          "SELECT recipient_id, unique_donors, amount FROM qf.project_totals WHERE pool_id = %(pool)s "
          "ORDER BY amount DESC LIMIT 20",
          f"SELECT a.recipient_id, count(DISTINCT a.sender), sum(a.amount) FROM qf.allocated a {_IN_POOL} "
          "GROUP BY 1 ORDER BY 3 DESC LIMIT 20"),
    Query("qf.project_totals", "full", _rows("SELECT * FROM qf.project_totals"),
          _rows("SELECT a.contract, a.recipient_id, a.token, count(*), sum(a.amount) FROM qf.allocated a "
                "GROUP BY 1, 2, 3")),
    Query("qf.round_matching", "recipe",
          "SELECT '0x' || encode(recipient_id, 'hex') AS recipient, match, match_capped FROM qf.round_matching "
          "WHERE pool_id = %(pool)s ORDER BY match DESC LIMIT 5",
          f"SELECT a.recipient_id, sum(a.amount) FROM qf.allocated a {_IN_POOL} GROUP BY 1 ORDER BY 2 DESC LIMIT 5"),
    Query("qf.round_matching", "full", _rows("SELECT * FROM qf.round_matching"),
          _rows("SELECT a.contract, a.recipient_id, sum(a.amount) FROM qf.allocated a GROUP BY 1, 2")),
    Query("qf.donor_features", "recipe",
          "SELECT '0x' || encode(donor, 'hex'), first_nonce, donation_count, round_amount_share, top_project_share "
          "FROM qf.donor_features WHERE fresh_wallet ORDER BY donation_count DESC LIMIT 10",
          "SELECT a.sender, count(*) FROM qf.allocated a GROUP BY 1 HAVING min(a.tx_nonce) < 3 "
          "ORDER BY 2 DESC LIMIT 10"),
    Query("qf.donor_features", "pool",
          "SELECT * FROM qf.donor_features WHERE donor = decode(substr(%(donor)s, 3), 'hex')",
          "SELECT count(*), sum(a.amount) FROM qf.allocated a WHERE a.sender = decode(substr(%(donor)s, 3), 'hex')"),
    Query("qf.donor_features", "full", _rows("SELECT * FROM qf.donor_features"),
          _rows("SELECT a.sender, count(*), sum(a.amount), min(a.block_time), max(a.block_time) "
                "FROM qf.allocated a GROUP BY 1")),
    Query("qf.round_stats", "recipe", "SELECT * FROM qf.round_stats",
          "SELECT s.pool_id, count(*), count(DISTINCT a.sender), sum(a.amount) FROM qf.allocated a "
          "JOIN qf.strategies s ON s.chain_id = a.chain_id AND s.address = a.contract GROUP BY 1"),
    Query("qf.round_stats", "pool", "SELECT * FROM qf.round_stats WHERE pool_id = %(pool)s",
          f"SELECT count(*), count(DISTINCT a.sender), sum(a.amount) FROM qf.allocated a {_IN_POOL}"),
    # Matching runs (one stored run per method by the CLI part, or written here) -----------------
    Query("qf.matching_results", "pool",
          "SELECT r.method, m.recipient_id, m.match FROM qf.matching_runs r JOIN qf.matching_results m USING (run_id) "
          "WHERE r.pool_id = %(pool)s ORDER BY r.run_id DESC, m.match DESC LIMIT 20",
          f"SELECT a.recipient_id, sum(a.amount) FROM qf.allocated a {_IN_POOL} GROUP BY 1 ORDER BY 2 DESC LIMIT 20"),
)  # fmt: skip


def median_seconds(conn: Connection[Any], query: str, params: dict[str, Any], repeats: int) -> float:
    conn.execute(query, params).fetchall()  # warm-up: caches, plan
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        conn.execute(query, params).fetchall()
        times.append(time.perf_counter() - started)
    conn.rollback()
    return statistics.median(times)


def load_round9(conn: Connection[Any]) -> dict[str, Any]:
    from qf_sentinel.qf.sim.direct import write_plan  # noqa: PLC0415 - only this scale needs the planner
    from qf_sentinel.qf.sim.gitcoin import load_round9 as plan_round9  # noqa: PLC0415

    plan = plan_round9(ROUND9)
    written = write_plan(conn, plan, chain_id=ROUND9_CHAIN, start_time=1_615_000_000, block_seconds=120)
    conn.execute("ANALYZE")
    conn.commit()
    return {"pool": written.pools[0][0], "chain": ROUND9_CHAIN}


def load_synthetic(conn: Connection[Any], donations: int) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).parent))
    import views_refresh  # noqa: PLC0415 - the sibling benchmark's generator

    views_refresh.seed(conn, donations)
    conn.execute("SELECT qf.refresh_analytics()")
    conn.execute("ANALYZE")
    conn.commit()
    return {"pool": 3, "chain": 31337}


def busiest_donor(conn: Connection[Any], pool: int) -> str:
    row = conn.execute(
        "SELECT '0x' || encode(a.sender, 'hex') FROM qf.allocated a JOIN qf.strategies s ON s.chain_id = a.chain_id "
        "AND s.address = a.contract WHERE s.pool_id = %s GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
        (pool,),
    ).fetchone()
    conn.rollback()
    assert row is not None
    return str(row[0])


def run_queries(conn: Connection[Any], params: dict[str, Any], repeats: int) -> list[tuple[Query, float, float]]:
    results = []
    for q in QUERIES:
        view = median_seconds(conn, q.view, params, repeats)
        raw = median_seconds(conn, q.raw, params, repeats)
        results.append((q, view, raw))
        print(f"  {q.relation:<30} {q.kind:<7} {view * 1000:9.1f} ms   raw {raw * 1000:9.1f} ms   "
              f"x{view / raw:5.2f}   {q.view[:70]}", flush=True)  # fmt: skip
    return results


def qf_command(args: list[str], env: dict[str, str], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([str(REPO / ".venv" / "bin" / "qf"), *args], env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def cli_matching(url: str, home: Path | None, pool: int, repeats: int) -> None:
    """``qf matching`` end to end, against the kernels alone in this process."""
    from qf_sentinel.qf.matching import compute_matching  # noqa: PLC0415
    from qf_sentinel.qf.matching.db import load_round  # noqa: PLC0415

    with connect(url) as conn:
        matrix = load_round(conn, ROUND9_CHAIN, pool)
    for method in ("standard", "cocm"):
        compute_matching(matrix.contributions, matrix.pool_amount, method=method)  # type: ignore[arg-type]
        kernel = []
        for _ in range(repeats):
            started = time.perf_counter()
            compute_matching(matrix.contributions, matrix.pool_amount, method=method)  # type: ignore[arg-type]
            kernel.append(time.perf_counter() - started)
        env = os.environ | {"QF_DATABASE_URL": url}
        running = qf_command(["matching", "--pool", str(pool), "--method", method], env, repeats)
        line = (f"  qf matching --method {method:<9} server running: {statistics.median(running):.3f} s "
                f"(kernel alone {statistics.median(kernel):.3f} s)")  # fmt: skip
        if home is not None:
            env = {k: v for k, v in os.environ.items() if k != "QF_DATABASE_URL"} | {"QF_HOME": str(home)}
            embedded = qf_command(["matching", "--pool", str(pool), "--method", method], env, repeats)
            cold = []
            for _ in range(repeats):
                qf_command(["db", "stop"], env, 1)
                cold += qf_command(["matching", "--pool", str(pool), "--method", method], env, 1)
            line += (f"; embedded, running: {statistics.median(embedded):.3f} s; "
                     f"embedded, first call after `qf db stop`: {statistics.median(cold):.3f} s")  # fmt: skip
            qf_command(["db", "url"], env, 1)  # leave it running for the caller
        print(line, flush=True)


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    name = f"bench_query_{uuid.uuid4().hex[:12]}"
    with connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(server_url, name)
    finally:
        with connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def summary(scale: str, results: list[tuple[Query, float, float]]) -> None:
    for kind in ("pool", "recipe", "full"):
        rows = [(q, v, r) for q, v, r in results if q.kind == kind]
        if rows:
            worst = max(rows, key=lambda x: x[1])
            ratios = [v / r for _, v, r in rows]
            print(f"  {scale} {kind:<7} slowest {worst[1] * 1000:.1f} ms ({worst[0].relation}); "
                  f"median ratio view/raw x{statistics.median(ratios):.2f}", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="server where databases may be created (default: embedded)")
    parser.add_argument("--scales", default="round9,1m")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-cli", action="store_true", help="skip the `qf matching` end-to-end timings")
    args = parser.parse_args()

    workdir = None
    server_url = args.database_url
    home = None
    if server_url is None:
        workdir = Path(tempfile.mkdtemp(prefix="qf-bench-query-"))
        home = workdir
        server = start_server(workdir / "pgdata", cleanup_mode="delete")
        server_url = server.get_uri()
    try:
        for scale in args.scales.split(","):
            if scale == "round9" and home is not None:
                url = server.get_uri("qf")  # the embedded default database, so `qf --home` finds it
                with connect(server_url, autocommit=True) as conn:
                    conn.execute("DROP DATABASE IF EXISTS qf WITH (FORCE)")
                    conn.execute("CREATE DATABASE qf")
                ctx: Any = nullcontext(url)
            else:
                ctx = scratch_database(server_url)
            with ctx as url:
                started = time.perf_counter()
                with connect(url) as conn:
                    apply_migrations(conn)
                    params = load_round9(conn) if scale == "round9" else load_synthetic(conn, 1_000_000)
                    params["donor"] = busiest_donor(conn, params["pool"])
                    print(f"{scale}: loaded in {time.perf_counter() - started:.1f} s; pool {params['pool']}",
                          flush=True)  # fmt: skip
                    results = run_queries(conn, params, args.repeats)
                summary(scale, results)
                if scale == "round9" and not args.no_cli:
                    cli_matching(url, home, params["pool"], args.repeats)
    finally:
        if workdir is not None:
            subprocess.run([str(REPO / ".venv" / "bin" / "qf"), "--home", str(workdir), "db", "stop"],
                           check=False, capture_output=True)  # fmt: skip
            server.cleanup()
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
