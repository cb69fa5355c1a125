"""Time a full replay of Gitcoin Round 9 on a fresh devnet.

    .venv/bin/python bench/replay_round9.py [--block-seconds 120] [--limit N]

Starts its own anvil on a free 127.0.0.1 port, deploys, replays, and prints
planning time, execution time, transactions and transactions per second. The
figures in the README come from this script.
"""

from __future__ import annotations

import argparse
import json
import socket
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from qf_sentinel.qf.chain.anvil import DEV_PRIVATE_KEY, AnvilOptions, start_anvil
from qf_sentinel.qf.chain.deploy import deploy_contracts
from qf_sentinel.qf.chain.rpc import RpcClient
from qf_sentinel.qf.sim.execute import execute_plan
from qf_sentinel.qf.sim.gitcoin import load_round9

ROUND9 = Path(__file__).resolve().parents[1] / "data" / "gitcoin-round9-contributions.csv.xz"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--block-seconds", type=int, default=120)
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = start_anvil(AnvilOptions(port=port), log_path=Path(tempfile.mkdtemp()) / "anvil.log")
    try:
        rpc = RpcClient(f"http://127.0.0.1:{port}", timeout_seconds=300)
        deployment = deploy_contracts(rpc, DEV_PRIVATE_KEY)
        started = time.monotonic()
        plan = load_round9(ROUND9)
        if args.limit:
            plan = replace(plan, donations=plan.donations[: args.limit])
        planned = time.monotonic() - started
        result = execute_plan(rpc, deployment, plan, DEV_PRIVATE_KEY, block_seconds=args.block_seconds)
        print(
            json.dumps(
                {
                    "donations": result.donations,
                    "skipped": result.skipped,
                    "wallets": len(plan.wallets),
                    "projects": len(plan.projects),
                    "transactions": result.transactions,
                    "blocks": result.last_block - result.first_block + 1,
                    "block_seconds": args.block_seconds,
                    "plan_seconds": round(planned, 1),
                    "execute_seconds": round(result.seconds, 1),
                    "transactions_per_second": round(result.transactions / result.seconds),
                },
                indent=2,
            )
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
