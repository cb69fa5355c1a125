"""ScoreContribution over gRPC on loopback: latency at fixed offered loads, from a load generator in another process.

    .venv/bin/python bench/scorer_grpc.py [--rates 200,500,1000,1500,2000] [--seconds 5]

Set-up (all real parts): a throwaway embedded PostgreSQL with every migration;
a model version trained by the real pipeline on the synthetic round of
``tests/scorer/synthetic.py``; the sidecar (``scorer.server.Sidecar``: auth,
metrics, audit log writing every decision to Postgres; rate limit off) in this
process. The load generator is a separate process (``multiprocessing``, spawn)
with a grpc.aio channel: an *open-loop* schedule of one request every 1/rate s,
each latency measured from its scheduled send time (so a stalled server is
charged for the queue it causes, no coordinated omission). Donors cycle over
the round's donors plus unknown ones (cold starts).

Per offered rate: achieved rate, p50/p95/p99/max in ms, errors. Then the
highest offered rate whose p99 stayed under 10 ms. Prints one JSON object.

The version served here has no contribution gate (the donor model's path). The
gate's online path, server-side time with live state and cached wallet facts
against this path in the same run, is ``bench/gate_online.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOKEN = "bench-token-0123456789abcdef"


def load(target: str, rate: float, seconds: float, donors: list[str], chain_id: int, out: Any) -> None:
    """Runs in the load-generator process: open-loop requests, returns latencies (s) and error count."""
    import grpc  # noqa: PLC0415 - imported in the child process
    from grpc import aio  # noqa: PLC0415

    from qf_sentinel.scorer.api.v1 import scorer_pb2 as pb  # noqa: PLC0415
    from qf_sentinel.scorer.api.v1 import scorer_pb2_grpc  # noqa: PLC0415

    async def run() -> tuple[list[float], int, float]:
        channel = aio.insecure_channel(target)
        stub = scorer_pb2_grpc.ScorerStub(channel)
        metadata = (("authorization", f"Bearer {TOKEN}"),)
        requests = [
            pb.ScoreContributionRequest(contribution=pb.Contribution(
                donor=d, recipient_id="0x" + "22" * 20, pool_id="7", chain_id=chain_id, token="0x" + "11" * 20,
                amount="5"))
            for d in donors
        ]  # fmt: skip
        # Warm up the channel and the server's first calls.
        for r in requests[:50]:
            await stub.ScoreContribution(r, metadata=metadata, timeout=5)
        latencies: list[float] = []
        errors = 0
        n = int(rate * seconds)
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05

        async def one(i: int) -> None:
            nonlocal errors
            scheduled = start + i / rate
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                await stub.ScoreContribution(requests[i % len(requests)], metadata=metadata, timeout=5)
                latencies.append(loop.time() - scheduled)
            except grpc.RpcError:
                errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = time.perf_counter() - began
        await channel.close()
        return latencies, errors, elapsed

    out.put(asyncio.run(run()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="200,500,1000,1500,2000")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()

    from qf_sentinel.qf.db import connect, with_database  # noqa: PLC0415
    from qf_sentinel.qf.db.embedded import start_server  # noqa: PLC0415
    from qf_sentinel.qf.db.migrate import apply_migrations  # noqa: PLC0415
    from qf_sentinel.qf.settings import Settings  # noqa: PLC0415
    from tests.scorer.harness import running_sidecar  # noqa: PLC0415
    from tests.scorer.synthetic import CHAIN_ID, synthetic_dataset, train_version  # noqa: PLC0415

    work = Path(tempfile.mkdtemp(prefix="qf-bench-grpc-"))
    server = start_server(work / "pgdata", cleanup_mode="delete")
    results: dict[str, Any] = {"seconds_per_rate": args.seconds}
    try:
        with connect(server.get_uri(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        db_url = with_database(server.get_uri(), "bench")
        with connect(db_url) as conn:
            apply_migrations(conn)
        dataset = synthetic_dataset()
        train_version(work / "models", dataset)
        donors = list(dataset.donors["address"]) + ["0x" + f"{i:040x}" for i in range(100)]
        settings = Settings.from_env({
            "QF_HOME": str(work), "QF_SCORER_TOKENS": f"bench:{TOKEN}", "QF_SCORER_RATE_LIMIT_PER_MINUTE": "0",
            "QF_SCORER_MAX_CONCURRENT_RPCS": "10000", "QF_LOG_LEVEL": "error", "QF_LOG_FORMAT": "json",
        })  # fmt: skip
        from qf_sentinel.qf.logs import configure_logging  # noqa: PLC0415

        configure_logging("json", "error")  # no access-log line per request
        with running_sidecar(settings, db_url, work / "models") as sidecar:
            context = multiprocessing.get_context("spawn")
            per_rate = []
            for rate in (float(r) for r in args.rates.split(",")):
                queue = context.Queue()
                proc = context.Process(target=load, args=(sidecar.target, rate, args.seconds, donors, CHAIN_ID, queue))
                proc.start()
                latencies, errors, elapsed = queue.get(timeout=args.seconds * 10 + 60)
                proc.join()
                ms = np.array(latencies) * 1000
                row = {
                    "offered_rps": rate,
                    "achieved_rps": round(len(latencies) / elapsed, 1),
                    "p50_ms": round(float(np.percentile(ms, 50)), 3),
                    "p95_ms": round(float(np.percentile(ms, 95)), 3),
                    "p99_ms": round(float(np.percentile(ms, 99)), 3),
                    "max_ms": round(float(ms.max()), 3),
                    "errors": errors,
                }
                print(json.dumps(row), file=sys.stderr, flush=True)
                per_rate.append(row)
        results["rates"] = per_rate
        ok = [r["offered_rps"] for r in per_rate if r["p99_ms"] < 10 and r["errors"] == 0]
        results["max_rps_with_p99_under_10ms"] = max(ok) if ok else None
    finally:
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
