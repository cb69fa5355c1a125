"""The contribution gate's online path against the donor model's path, in the same run; the live state's cost.

    .venv/bin/python bench/gate_online.py [--calls 20000] [--million]

1. Server-side time per ``ScoreContribution`` (the service's whole handler after
   authentication: parsing, wallet facts, live features, the model, reasons,
   the audit row queued), measured in the sidecar's own process and event loop
   for ``--calls`` calls each:

   * *online*: a model version with the contribution gate; the live state holds
     all of Round 9 as replayed (69,015 donations); wallet facts come from the
     cache (warmed once per wallet, as a busy dApp's repeat wallets would);
   * *today*: the same version with the gate removed, the path before it (the
     donor snapshot of Round 9's 8,131 donors; a cold start scored on the amount).

   Calls are Round 9 contributions in time order (donor, recipient, amount),
   as a backend would ask; median, p99 and their ratio.
2. The live state's update per indexed block (20 donations) at Round 9 scale and,
   with ``--million``, after 1,000,000 synthetic donations (75,000 donors, 1,000
   projects in 10 pools, popularity-skewed); median of 200 blocks.
3. Memory of the live state: the process's RSS growth while replaying 1M donations.

Real parts: an embedded PostgreSQL for the audit log, the real pipeline training
the version (on the synthetic round of ``tests/scorer/synthetic.py``), the real
service class. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def percentiles(seconds: list[float]) -> dict[str, float]:
    us = np.array(seconds) * 1e6
    return {"p50_us": round(float(np.median(us)), 1), "p99_us": round(float(np.percentile(us, 99)), 1),
            "mean_us": round(float(us.mean()), 1)}  # fmt: skip


def synthetic_million(n: int, seed: int = 0) -> list[Any]:
    from qf_sentinel.qf.model import live  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 1.2, 75_000)  # a donor gives about 13 times, some far more
    donors = rng.choice(75_000, size=n, p=activity / activity.sum())
    popularity = 1.0 / np.arange(1, 1001) ** 0.8  # a project's share falls with its rank
    projects = rng.choice(1000, size=n, p=popularity / popularity.sum()).astype(np.int64)
    amounts = np.round(rng.lognormal(1.0, 1.0, n), 2) + 0.01
    times = np.sort(rng.uniform(0, 14 * 86_400, n))
    blocks = (times // 12).astype(np.int64)
    columns = zip(donors.tolist(), projects.tolist(), amounts.tolist(), times.tolist(), blocks.tolist(), strict=True)
    return [
        live.Contribution(donor=f"0x{d:040x}", project=f"{p % 10}:0x{p:040x}", pool=str(p % 10), amount=float(a),
                          time=float(t), nonce=int(d % 50), block=int(b))
        for d, p, a, t, b in columns
    ]


def block_update_us(state: Any, template: list[Any], blocks: int = 200, per_block: int = 20) -> dict[str, float]:
    """Median time to land one block of ``per_block`` donations into an already loaded state."""
    from qf_sentinel.qf.model import live  # noqa: PLC0415

    t0 = state.latest_landed
    rng = np.random.default_rng(1)
    timings = []
    for b in range(blocks):
        picks = rng.integers(0, len(template), per_block)
        rows = [dataclasses.replace(template[i], time=t0 + 12.0 * (b + 1)) for i in picks.tolist()]
        started = time.perf_counter()
        for c in rows:
            state.land(c)
        timings.append(time.perf_counter() - started)
    assert isinstance(state, live.LiveState)
    us = np.array(timings) * 1e6
    return {"per_block_median_us": round(float(np.median(us)), 1),
            "per_block_p99_us": round(float(np.percentile(us, 99)), 1), "donations_per_block": per_block}  # fmt: skip


async def server_side(work: Path, db_url: str, calls: int) -> dict[str, Any]:
    from psycopg_pool import ConnectionPool  # noqa: PLC0415

    from qf_sentinel.qf.model import live  # noqa: PLC0415
    from qf_sentinel.qf.sim.gitcoin import load_round9  # noqa: PLC0415
    from qf_sentinel.qf.train.offline import BLOCK_SECONDS, START_TIME  # noqa: PLC0415
    from qf_sentinel.qf.train.pipeline import train  # noqa: PLC0415
    from qf_sentinel.qf.train.plans import dataset_from_plan  # noqa: PLC0415
    from qf_sentinel.scorer.api.v1 import scorer_pb2 as pb  # noqa: PLC0415
    from qf_sentinel.scorer.audit import AuditLog  # noqa: PLC0415
    from qf_sentinel.scorer.feature_store import FeatureStore, build_snapshot  # noqa: PLC0415
    from qf_sentinel.scorer.live_store import LiveStore  # noqa: PLC0415
    from qf_sentinel.scorer.metrics import ScorerMetrics  # noqa: PLC0415
    from qf_sentinel.scorer.models import ModelStore, load_bundle  # noqa: PLC0415
    from qf_sentinel.scorer.service import ScorerService  # noqa: PLC0415
    from qf_sentinel.scorer.wallet_facts import WalletFacts, WalletFactsClient  # noqa: PLC0415
    from tests.scorer.synthetic import CONFIG, synthetic_dataset  # noqa: PLC0415

    version = train(synthetic_dataset(), work / "models", dataclasses.replace(CONFIG, gate=True)).version_dir
    gated = load_bundle(version)
    chain_id = int(gated.chain_id or 0)
    plain = dataclasses.replace(gated, gate=None)
    dataset = dataset_from_plan(load_round9(ROOT / "data" / "gitcoin-round9-contributions.csv.xz"),
                                chain_id=chain_id, start_time=START_TIME, block_seconds=BLOCK_SECONDS)  # fmt: skip
    contributions = live.contributions_of(dataset)
    metrics = ScorerMetrics()
    snapshot = build_snapshot(dataset, gated.recommender.project_ids, dataset_now(), gated.coordination_score)
    features = FeatureStore(chain_id, lambda: gated.recommender.project_ids, snapshot)
    store = LiveStore(chain_id, metrics)
    started = time.perf_counter()
    store.load(contributions, None, {})
    load_seconds = time.perf_counter() - started
    round9_update = block_update_us(store._state, contributions)
    wallets = WalletFactsClient("http://127.0.0.1:9", metrics, ttl_seconds=1e9)
    for address in dataset.donors["address"]:
        wallets._cache[bytes.fromhex(address[2:])] = (time.monotonic(), WalletFacts(3, False, 10**18, "node"))
    audit = AuditLog(db_url, metrics)
    audit.start()
    pool: ConnectionPool[Any] = ConnectionPool(db_url, min_size=1, max_size=2, open=True)
    results: dict[str, Any] = {"live_state_load_seconds_round9": round(load_seconds, 2),
                               "live_state_block_update_round9": round9_update}  # fmt: skip
    d = dataset.donations
    addresses = dataset.donors["address"].to_numpy()
    order = np.linspace(0, d.size - 1, calls).astype(np.int64)
    requests = []
    for i in order.tolist():
        pool_id, _, recipient = d.project_ids[d.project[i]].partition(":")
        requests.append(pb.Contribution(
            donor=addresses[d.donor[i]], recipient_id=recipient, pool_id=pool_id, chain_id=chain_id,
            token="0x" + "11" * 20, amount=f"{max(d.amount[i], 0.01):.2f}",
        ))  # fmt: skip
    for name, bundle in (("today", plain), ("online", gated)):
        service = ScorerService(models=ModelStore(bundle), features=features, models_root=work / "models",
                                metrics=metrics, audit=audit, pool=pool, max_batch=256, live=store,
                                wallets=wallets)  # fmt: skip
        for c in requests[:200]:  # warm-up: numba kernels, caches
            await service._score_one(bundle, service._parse(bundle, c, "c"), "bench")
        gc.collect()
        timings = []
        for c in requests:
            t = time.perf_counter()
            await service._score_one(bundle, service._parse(bundle, c, "c"), "bench")
            timings.append(time.perf_counter() - t)
        results[name] = percentiles(timings)
    results["online_over_today_p50"] = round(results["online"]["p50_us"] / results["today"]["p50_us"], 2)
    results["online_over_today_p99"] = round(results["online"]["p99_us"] / results["today"]["p99_us"], 2)
    await audit.close()
    pool.close()
    await wallets.close()
    return results


def dataset_now() -> Any:
    from datetime import UTC, datetime  # noqa: PLC0415

    return datetime.now(UTC)


def million() -> dict[str, Any]:
    from qf_sentinel.qf.model import live  # noqa: PLC0415

    rows = synthetic_million(1_000_000)
    gc.collect()
    before = rss_mb()
    state = live.LiveState()
    started = time.perf_counter()
    state.replay(rows)
    seconds = time.perf_counter() - started
    gc.collect()
    grown = rss_mb() - before
    update = block_update_us(state, rows)
    probe = rows[-1]
    timings = []
    for i in range(2000):
        t = time.perf_counter()
        state.features(dataclasses.replace(rows[-1 - i * 97], time=probe.time + 1))
        timings.append(time.perf_counter() - t)
    return {"donations": len(rows), "replay_seconds": round(seconds, 1), "live_state_rss_mb": round(grown, 1),
            "block_update": update, "features": percentiles(timings)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--million", action="store_true", help="also the 1M-donation live state (about 2 GB, minutes)")
    args = parser.parse_args()

    from qf_sentinel.qf.db import connect, with_database  # noqa: PLC0415
    from qf_sentinel.qf.db.embedded import start_server  # noqa: PLC0415
    from qf_sentinel.qf.db.migrate import apply_migrations  # noqa: PLC0415
    from qf_sentinel.qf.logs import configure_logging  # noqa: PLC0415

    configure_logging("json", "error")
    work = Path(tempfile.mkdtemp(prefix="qf-bench-gate-"))
    server = start_server(work / "pgdata", cleanup_mode="delete")
    try:
        with connect(server.get_uri(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        db_url = with_database(server.get_uri(), "bench")
        with connect(db_url) as conn:
            apply_migrations(conn)
        results = asyncio.run(server_side(work, db_url, args.calls))
        if args.million:
            results["million"] = million()
    finally:
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
