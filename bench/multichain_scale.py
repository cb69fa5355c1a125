"""What one PostgreSQL holds for a multi-chain round: a chain's cost when four others share its database.

    .venv/bin/python bench/multichain_scale.py [--database-url URL] [--scale 1000000] [--chains 5]
        [--repeats 3] [--commit-donations 20000] [--commit-runs 3] [--commit-only] [--no-score]

``--scale 50000`` took 8 minutes here (2 cores, shared); the full 5 x 1M 34 minutes with
``--commit-runs 0``, and the commit path at 10,000 donations per chain about 5 more.

In one run, on one server, two scratch databases written directly with the
generator of ``bench/views_refresh.py`` (10 pools x 100 recipients per chain,
donors = donations / 5, skewed): **one** chain of ``--scale`` donations, and
``--chains`` chains of ``--scale`` each (31337, 10, 42161, 137, 8453, ...).
Each chain's donors are a range of numbers; a chain's range overlaps the next
chain's by a quarter (:data:`SHARED`), so those wallets give on both chains, as
real donors do. Both databases get a USD price for both tokens. Then, in each
(medians of ``--repeats``), and the ratio many / one:

* analytics: ``qf.rebuild_analytics()`` once (it rebuilds every chain, so the
  many-chain figure is also given per chain), and ``qf.refresh_analytics()``
  after one block of 20 donations and after 1,000 donations on the first chain;
* every view and recipe of ``bench/views_query.py`` (:data:`views_query.QUERIES`)
  restricted to the first chain (:func:`chain_filtered`: each queried relation
  read through ``WHERE chain_id = ...``, as an analyst of one chain writes it),
  and the README recipes round-wide (every chain: expected to grow with the data);
* matching: ``match_round`` of a round of pool 3 of the first chain, and in the
  many-chain database of a round of pool 3 on every chain (USD, across chains);
* ``qf score``'s work (``load_dataset``, ``score_pool``, ``store_pool_scores``)
  for pool 3 of the first chain, with a model version trained by the real
  pipeline on the scorer tests' synthetic round (seconds; what is timed is the
  loading and scoring, not the model's quality);
* the indexer's commit path (first, in small fresh databases of their own;
  ``--commit-donations`` per chain, ``--commit-only`` for this part alone):
  ``Store.commit_batch`` of prepared batches (50 blocks of 20 donations each),
  one thread per chain as ``qf index`` runs them, the first chain alone, then
  every chain at once; in three modes (:data:`COMMIT_MODES`): with
  ``Store.refresh_views`` debounced as the loop does by default, with the
  refresh only once caught up (a long QF_REFRESH_DEBOUNCE_SECONDS), and the
  writes alone. Indexing 5M donations from nodes does not fit on this machine;
  this is the part of indexing the chains share (the database), without the
  node's share (RPC), which each chain has to itself.

Targets (issue 28): per-chain indexing throughput with every chain at once
>= 0.8x the chain alone; every view and recipe within 2x of its single-chain
figure. Prints JSON. Without --database-url a throwaway embedded PostgreSQL is
started (and deleted).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from psycopg import Connection, sql

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(Path(__file__).resolve().parent), str(REPO)]

import views_query  # noqa: E402 - sibling benchmarks, found through the path set above
import views_refresh  # noqa: E402

from qf_sentinel.indexer.loop import REFRESH_BUDGET_FACTOR  # noqa: E402
from qf_sentinel.indexer.store import Batch, BlockRow, Store  # noqa: E402
from qf_sentinel.qf.db import connect, with_database  # noqa: E402
from qf_sentinel.qf.db.embedded import start_server  # noqa: E402
from qf_sentinel.qf.db.migrate import apply_migrations  # noqa: E402

CHAINS = (31337, 10, 42161, 137, 8453, 324, 100, 59144)
#: Share of a chain's donor range that the next chain's range also holds (those wallets give on both).
SHARED = 0.25
POOL = 3
#: USD per token: TST (pg_temp.addr(1, 1)) and ETH (pg_temp.addr(1, 2)).
PRICES = {1: 1.0, 2: 3000.0}
BLOCKS_PER_BATCH = 50
REFRESH_DEBOUNCE_SECONDS = 1.0  # QF_REFRESH_DEBOUNCE_SECONDS' default
ALLOCATED_COLUMNS = ("chain_id", "block_number", "block_hash", "tx_hash", "tx_index", "log_index", "contract",
                     "recipient_id", "amount", "token", "sender", "origin", "tx_from", "tx_nonce", "gas_price",
                     "block_time")  # fmt: skip

# -- pure ----------------------------------------------------------------------------------------------

# A relation read in FROM (not JOIN: the joined ones are matched on chain_id or through the row read).
_FROM = re.compile(r"\bFROM (qf\.(\w+))(?: (?!WHERE\b|GROUP\b|ORDER\b|JOIN\b|LIMIT\b)(\w+))?")


def chain_filtered(query: str) -> str:
    """``query`` with each relation it reads FROM restricted to ``%(chain)s``.

    ``FROM qf.donations WHERE ...`` becomes ``FROM (SELECT * FROM qf.donations
    WHERE chain_id = %(chain)s) donations WHERE ...``; PostgreSQL pulls such a
    subquery up into the query, so it is planned as if the analyst had added
    ``chain_id = ...`` to the WHERE clause.
    """

    def wrap(m: re.Match[str]) -> str:
        return f"FROM (SELECT * FROM {m[1]} WHERE chain_id = %(chain)s) {m[3] or m[2]}"

    return _FROM.sub(wrap, query)


def donor_offsets(chains: int, donors: int) -> list[int]:
    """Where each chain's donor numbers start: each range overlaps the next by :data:`SHARED`."""
    step = round(donors * (1 - SHARED))
    return [k * step for k in range(chains)]


def ratio(many: float, one: float) -> float:
    return round(many / one, 2) if one > 0 else float("inf")


def compare(one: float, many: float, *, target: float | None = None, lower_is_better: bool = True) -> dict[str, Any]:
    """One figure in both databases, their ratio and whether it meets the target (many/one <= target,
    or, for a throughput, >= target)."""
    r = ratio(many, one)
    out: dict[str, Any] = {"one": round(one, 4), "many": round(many, 4), "ratio": r}
    if target is not None:
        out["target"] = target
        out["met"] = r <= target if lower_is_better else r >= target
    return out


def allocation_batches(chain_id: int, donations: int, donors: int, seed: int) -> list[Batch]:
    """``donations`` Allocated rows over the seeded pools (skewed recipients and donors, as the SQL generator
    draws them), as decoded batches of :data:`BLOCKS_PER_BATCH` blocks; prepared before timing, as the
    indexer prepares a batch before its transaction."""
    rng = np.random.default_rng(seed)
    per_block = views_refresh.DONATIONS_PER_BLOCK
    pools = 1 + rng.integers(0, views_refresh.POOLS, donations)
    recipients = np.floor(views_refresh.RECIPIENTS_PER_POOL * rng.random(donations) ** 2).astype(int)
    donor_ids = np.floor(donors * rng.random(donations) ** 1.5).astype(int)
    amounts = rng.integers(1, 10**6, donations)  # times 10**13 below (numpy's int64 would overflow)

    def addr(kind: int, n: int) -> bytes:
        return bytes([kind]) + int(n).to_bytes(19, "big")

    batches: list[Batch] = []
    start = datetime.fromtimestamp(views_refresh.START_TIME, UTC)
    for first in range(0, donations, per_block * BLOCKS_PER_BATCH):
        last = min(donations, first + per_block * BLOCKS_PER_BATCH)
        rows: list[tuple[object, ...]] = []
        blocks: list[BlockRow] = []
        for i in range(first, last):
            number = 10 + i // per_block
            block_hash = number.to_bytes(32, "big")
            if i % per_block == 0 or i == first:
                blocks.append(BlockRow(number, block_hash, (number - 1).to_bytes(32, "big"), start))
            donor = addr(4, int(donor_ids[i]))
            amount = int(amounts[i]) * 10**13
            rows.append((chain_id, number, block_hash, (i + 1).to_bytes(32, "big"), i % per_block, i % per_block,
                         addr(2, int(pools[i])), addr(3, int(recipients[i])), amount, addr(1, 1), donor,
                         donor, donor, i // donors, 10**9, start))  # fmt: skip
        to_block = blocks[-1].number
        batch = Batch(from_block=blocks[0].number, to_block=to_block, to_hash=blocks[-1].hash, blocks=blocks)
        batch.rows["allocated"] = (ALLOCATED_COLUMNS, rows)
        batches.append(batch)
    return batches


# -- the database edge ----------------------------------------------------------------------------------


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    name = f"bench_scale_{uuid.uuid4().hex[:12]}"
    with connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(server_url, name)
    finally:
        with connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def seed(conn: Connection[Any], chains: Sequence[int], donations: int) -> float:
    """Every migration, then each chain's pools and donations and a USD price per token; returns seconds."""
    started = time.perf_counter()
    apply_migrations(conn)
    for chain, offset in zip(chains, donor_offsets(len(chains), max(1, donations // 5)), strict=False):
        views_refresh.seed_chain(conn, donations, chain, offset)
        for token, usd in PRICES.items():
            conn.execute(
                "INSERT INTO qf.imported_prices VALUES (%s, pg_temp.addr(1, %s), to_timestamp(%s), %s, 'bench')",
                (chain, token, views_refresh.START_TIME - 2 * 86_400, usd),
            )
    conn.commit()
    conn.execute("ANALYZE")
    conn.commit()
    return time.perf_counter() - started


def timed(conn: Connection[Any], query: str) -> float:
    return views_refresh.timed(conn, query)


def median_of(repeats: int, run: Callable[[], object], *, warm_up: bool = True) -> float:
    if warm_up:
        run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def analytics(conn: Connection[Any], chain: int, donations: int, repeats: int) -> dict[str, float]:
    """Rebuild everything once, then the refresh after a block and after 1,000 donations on ``chain``."""
    offset_of_donors = 0  # the first chain's donors start at 0 in both databases
    full = timed(conn, "SELECT qf.rebuild_analytics()")
    block: list[float] = []
    batch: list[float] = []
    offset = donations
    for _ in range(repeats):
        views_refresh.append(conn, offset, views_refresh.DONATIONS_PER_BLOCK, chain, offset_of_donors)
        offset += views_refresh.DONATIONS_PER_BLOCK
        block.append(timed(conn, "SELECT qf.refresh_analytics()"))
        views_refresh.append(conn, offset, 1000, chain, offset_of_donors)
        offset += 1000
        batch.append(timed(conn, "SELECT qf.refresh_analytics()"))
    conn.execute("ANALYZE")
    conn.commit()
    return {"rebuild": full, "block_refresh": statistics.median(block), "batch_refresh": statistics.median(batch)}


def busiest_donor(conn: Connection[Any], chain: int) -> str:
    row = conn.execute(
        "SELECT '0x' || encode(a.sender, 'hex') FROM qf.allocated a JOIN qf.strategies s ON s.chain_id = a.chain_id "
        "AND s.address = a.contract WHERE a.chain_id = %s AND s.pool_id = %s GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
        (chain, POOL),
    ).fetchone()
    conn.rollback()
    assert row is not None
    return str(row[0])


def queries(conn: Connection[Any], chain: int, repeats: int) -> dict[str, float]:
    """Median seconds of each view query on ``chain`` alone (key ``chain:i``) and each recipe round-wide."""
    params = {"chain": chain, "pool": POOL, "donor": busiest_donor(conn, chain)}
    out: dict[str, float] = {}
    for i, q in enumerate(views_query.QUERIES):
        out[f"chain:{i}"] = views_query.median_seconds(conn, chain_filtered(q.view), params, repeats)
        if q.kind == "recipe":
            out[f"round:{i}"] = views_query.median_seconds(conn, q.view, params, repeats)
    return out


def matching(conn: Connection[Any], chains: Sequence[int], repeats: int) -> dict[str, float]:
    """``match_round`` of pool 3 of the first chain, and (several chains) of pool 3 on each; one stored run of
    the first chain's pool, which ``qf.matching_results``'s query reads."""
    from qf_sentinel.qf.matching.rounds import add_round  # noqa: PLC0415
    from qf_sentinel.qf.matching.service import match_pool, match_round, store  # noqa: PLC0415

    store(conn, match_pool(conn, chains[0], POOL), "standard")
    add_round(conn, "bench-one", [(chains[0], POOL)])
    out = {"round_one_chain": median_of(repeats, lambda: match_round(conn, "bench-one"))}
    if len(chains) > 1:
        add_round(conn, "bench-all", [(c, POOL) for c in chains])
        out["round_all_chains"] = median_of(repeats, lambda: match_round(conn, "bench-all"))
    conn.commit()
    return out


def score(conn: Connection[Any], chain: int, bundle: Any) -> dict[str, float]:
    """``qf score --pool 3``'s work on ``chain``, timed by step."""
    from qf_sentinel.batch import score_pool, store_pool_scores  # noqa: PLC0415
    from qf_sentinel.qf.model.loader import load_dataset  # noqa: PLC0415

    started = time.perf_counter()
    dataset = load_dataset(conn, chain)
    loaded = time.perf_counter()
    scores = score_pool(dataset, bundle, POOL)
    scored = time.perf_counter()
    store_pool_scores(conn, scores)
    stored = time.perf_counter()
    return {"load_dataset": loaded - started, "score_pool": scored - loaded, "store": stored - scored,
            "total": stored - started, "donors_scored": float(len(scores.donors))}  # fmt: skip


def trained_bundle(root: Path) -> Any:
    """A model version trained by the real pipeline on the scorer tests' synthetic round, its kernels warmed
    on that round (numba compiles on first use: neither database should pay for it)."""
    from qf_sentinel.batch import score_pool  # noqa: PLC0415
    from qf_sentinel.scorer.models import load_bundle  # noqa: PLC0415
    from tests.scorer.synthetic import POOLS, synthetic_dataset, train_version  # noqa: PLC0415

    dataset = synthetic_dataset()
    bundle = load_bundle(train_version(root, dataset))
    score_pool(dataset, bundle, POOLS[0])
    return bundle


def commit_path(
    server_url: str, chains: Sequence[int], donations: int, *, debounce: float | None = REFRESH_DEBOUNCE_SECONDS
) -> dict[int, float]:
    """Donations per second each chain's writer commits, every chain of ``chains`` at once into one fresh
    database, a thread per chain as ``qf index`` runs them, the analytics refreshed as the loop does with
    QF_REFRESH_DEBOUNCE_SECONDS ``debounce`` (math.inf: only once caught up) and once at the end; with
    ``debounce`` None never (the writes alone)."""
    donors = max(1, donations // 5)
    prepared = {c: allocation_batches(c, donations, donors, seed=k) for k, c in enumerate(chains)}
    with scratch_database(server_url) as url:
        with connect(url) as conn:
            apply_migrations(conn)
            for c in chains:
                views_refresh.seed_chain(conn, 0, c)
            conn.commit()
        stores = {c: Store(url, c, ("allocated",)) for c in chains}
        for c, s in stores.items():
            assert s.try_lock(), c
            s.init_state(bytes(20), 0)
        gate = threading.Barrier(len(chains))
        seconds: dict[int, float] = {}
        errors: list[BaseException] = []

        def write(chain: int) -> None:
            store = stores[chain]
            try:
                gate.wait()
                started = last_refresh = time.perf_counter()
                last_took = 0.0
                checkpoint: int | None = None
                for batch in prepared[chain]:
                    store.commit_batch(batch, checkpoint)
                    checkpoint = batch.to_block
                    if debounce is None:
                        continue
                    wait = max(debounce, REFRESH_BUDGET_FACTOR * last_took)
                    if time.perf_counter() - last_refresh >= wait:
                        took = store.refresh_views(wait=False)  # as the loop: never queue behind another chain
                        last_took = last_took if took is None else took
                        last_refresh = time.perf_counter()
                if debounce is not None:
                    store.refresh_views()
                seconds[chain] = time.perf_counter() - started
            except BaseException as exc:  # reported by the caller
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(c,), name=f"chain-{c}") for c in chains]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for s in stores.values():
            s.close()
        if errors:
            raise errors[0]
        with connect(url) as conn:
            counts = dict(conn.execute("SELECT chain_id, count(*) FROM qf.allocated GROUP BY 1").fetchall())
        assert counts == dict.fromkeys(chains, donations), counts
    return {c: donations / s for c, s in seconds.items()}


#: How the commit path is measured: the loop's default, the refresh deferred until caught up, no refresh.
COMMIT_MODES: dict[str, float | None] = {"refresh_debounced_1s": REFRESH_DEBOUNCE_SECONDS,
                                         "refresh_when_caught_up": math.inf, "writes_only": None}  # fmt: skip


def commit_paths(server_url: str, chains: Sequence[int], donations: int, runs: int) -> dict[str, Any]:
    """The commit path alone and with every chain at once, in each of :data:`COMMIT_MODES`, in turn."""
    out: dict[str, Any] = {"donations_per_chain": donations, "runs": runs}
    for mode, debounce in COMMIT_MODES.items():
        alone: list[float] = []
        together: dict[int, list[float]] = {c: [] for c in chains}
        for _ in range(runs):
            alone.append(commit_path(server_url, chains[:1], donations, debounce=debounce)[chains[0]])
            for c, rate in commit_path(server_url, chains, donations, debounce=debounce).items():
                together[c].append(rate)
        alone_rate = statistics.median(alone)
        per_chain = {c: statistics.median(r) for c, r in together.items()}
        out[mode] = {
            "alone_donations_per_second": round(alone_rate),
            "at_once_donations_per_second": {str(c): round(r) for c, r in per_chain.items()},
            "at_once_total_donations_per_second": round(sum(per_chain.values())),
            "worst_chain_vs_alone": compare(alone_rate, min(per_chain.values()), target=0.8, lower_is_better=False),
        }
    return out


def measure_database(
    server_url: str, chains: Sequence[int], donations: int, repeats: int, bundle: Any | None, log: Callable[[str], None]
) -> dict[str, Any]:
    with scratch_database(server_url) as url, connect(url) as conn:
        figures: dict[str, Any] = {"seed": seed(conn, chains, donations)}
        log(f"{len(chains)} chain(s): seeded {len(chains) * donations:,} donations in {figures['seed']:.1f} s")
        figures["analytics"] = analytics(conn, chains[0], donations, repeats)
        log(f"  analytics {figures['analytics']}")
        figures["matching"] = matching(conn, chains, repeats)
        log(f"  matching {figures['matching']}")
        figures["queries"] = queries(conn, chains[0], repeats)
        log(f"  {len(figures['queries'])} queries, slowest {max(figures['queries'].values()):.3f} s")
        if bundle is not None:
            figures["score"] = score(conn, chains[0], bundle)
            log(f"  score {figures['score']}")
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        figures["database_bytes"] = int(size[0]) if size else 0
        conn.rollback()
    return figures


def report(one: dict[str, Any], many: dict[str, Any], commit: dict[str, Any], chains: int) -> dict[str, Any]:
    """The figures side by side, with ratios and targets."""
    a1, an = one["analytics"], many["analytics"]
    out: dict[str, Any] = {
        "seed_seconds": compare(one["seed"], many["seed"]),
        "database_bytes": compare(one["database_bytes"], many["database_bytes"]),
        "analytics": {
            "rebuild_every_chain": compare(a1["rebuild"], an["rebuild"]),
            "rebuild_per_chain": compare(a1["rebuild"], an["rebuild"] / chains, target=2.0),
            "block_refresh": compare(a1["block_refresh"], an["block_refresh"], target=2.0),
            "batch_refresh": compare(a1["batch_refresh"], an["batch_refresh"], target=2.0),
        },
        "matching": {
            "round_one_chain": compare(one["matching"]["round_one_chain"], many["matching"]["round_one_chain"],
                                       target=2.0),
            "round_of_every_chain_vs_one_chain_alone": compare(one["matching"]["round_one_chain"],
                                                               many["matching"]["round_all_chains"]),
        },
    }
    rows = []
    for key, seconds in one["queries"].items():
        scope, i = key.split(":")
        q = views_query.QUERIES[int(i)]
        row = {"relation": q.relation, "kind": q.kind, "scope": scope, "sql": q.view[:120]}
        row |= compare(seconds, many["queries"][key], target=2.0 if scope == "chain" else None)
        rows.append(row)
    out["queries"] = rows
    chain_rows = [r for r in rows if r["scope"] == "chain"]
    out["queries_met"] = f"{sum(r['met'] for r in chain_rows)} of {len(chain_rows)}"
    out["queries_worst_ratio"] = max(r["ratio"] for r in chain_rows)
    if "score" in one and "score" in many:
        out["score"] = {k: compare(one["score"][k], many["score"][k], target=2.0 if k == "total" else None)
                        for k in one["score"]}  # fmt: skip
    out["commit_path"] = commit
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="server where databases may be created (default: embedded)")
    parser.add_argument("--scale", type=int, default=1_000_000, help="donations per chain")
    parser.add_argument("--chains", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--commit-donations", type=int, default=20_000, help="donations per chain, commit path")
    parser.add_argument("--commit-runs", type=int, default=3, help="0: skip the commit path")
    parser.add_argument("--no-score", action="store_true", help="skip training a model and the scoring")
    parser.add_argument("--commit-only", action="store_true", help="only the commit path")
    args = parser.parse_args()
    if not 2 <= args.chains <= len(CHAINS):
        parser.error(f"--chains is 2 to {len(CHAINS)}")
    chains = CHAINS[: args.chains]

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="qf-bench-scale-"))
    server_url = args.database_url
    server = None
    if server_url is None:
        server = start_server(workdir / "pgdata", cleanup_mode="delete")
        server_url = server.get_uri()
    started = time.perf_counter()
    try:
        # The commit path first (small, fresh databases), alone and at once in turn.
        commit = commit_paths(server_url, chains, args.commit_donations, args.commit_runs) if args.commit_runs else {}
        log(f"commit path: {commit}")
        if args.commit_only:
            print(json.dumps(commit, indent=2))
            return
        bundle = None if args.no_score else trained_bundle(workdir / "models")
        one = measure_database(server_url, chains[:1], args.scale, args.repeats, bundle, log)
        many = measure_database(server_url, chains, args.scale, args.repeats, bundle, log)
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"), "cores": os.cpu_count(), "chains": list(chains),
        "donations_per_chain": args.scale, "shared_donor_share": SHARED, "repeats": args.repeats,
        "seconds": round(time.perf_counter() - started, 1),
    } | report(one, many, commit, len(chains))  # fmt: skip
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
