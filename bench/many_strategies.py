"""eth_getLogs by address list or by topic0 when the indexer knows thousands of strategies.

    PYTHONPATH=. .venv/bin/python bench/many_strategies.py [--pools 5000] [--repeats 3]

Starts a fresh anvil devnet, deploys the contracts, creates ``--pools`` donation
pools (many per block), then registers a recipient in a few of them and
donates. Into an embedded PostgreSQL it then indexes with ``QF_LOG_ADDRESS_LIMIT``
above the number of pools (address path) and below it (topic path), each
repeated, in two phases:

* backfill: from the deployment block to the head into an empty database; the
  strategies are discovered on the way (one follow-up query per range for them);
* steady:   from the end of pool creation to the head, every strategy already
  known (the database is a copy of one indexed up to that block): the address
  path names all of them in each query.

For each phase and path it prints, as JSON, the median seconds, eth_getLogs
calls, request and response bytes (counted at the HTTP transport), and the
topic path's ratio to the address path. Every run's database must equal the
first run's (else the bench stops): both paths store the same rows.

One run (2 shared cores, 5,010 pools over 67 blocks, 200 donations, 10-block
ranges, medians of 3): anvil accepts 5,010 addresses in one eth_getLogs. Topic
over address path: backfill seconds 0.92 (4.73 / 5.11), calls 0.8 (8 / 10),
request bytes 0.011 (15 kB / 1.42 MB), response bytes 1.23 (11.5 / 9.3 MB: the
topic follow-up returns the range's core logs again); steady seconds 1.02
(4.20 / 4.11), calls 0.83 (5 / 6), request bytes 0.009 (11 kB / 1.13 MB),
response bytes 1.0. On anvil the time goes elsewhere (headers, transactions,
COPY), not into the address list.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import eth_abi
import httpx
import orjson
from eth_account import Account
from psycopg import sql

from qf_sentinel.indexer.app import build_indexer
from qf_sentinel.indexer.metrics import IndexerMetrics
from qf_sentinel.indexer.rpc import ResilientRpc
from qf_sentinel.qf.chain.abi import NATIVE_TOKEN, load_artifact
from qf_sentinel.qf.chain.anvil import DEV_PRIVATE_KEY, AnvilOptions, start_anvil, stop_process
from qf_sentinel.qf.chain.deploy import deploy_contracts
from qf_sentinel.qf.chain.deployment import Deployment
from qf_sentinel.qf.chain.rpc import RpcClient
from qf_sentinel.qf.chain.tx import TxRequest, TxSender, block_receipts
from qf_sentinel.qf.db import connect, with_database
from qf_sentinel.qf.db.embedded import start_server
from qf_sentinel.qf.http_metrics import HealthState
from qf_sentinel.qf.logs import configure_logging
from qf_sentinel.qf.settings import Settings
from tests.fixtures.chain import free_port
from tests.indexer.harness import snapshot

POOLS_PER_BLOCK = 250
FUNDER = Account.from_key(DEV_PRIVATE_KEY).address.lower()


class CountingTransport(httpx.BaseTransport):
    """Counts JSON-RPC calls and their request/response bytes by method (a batch's bytes go to its first call)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.calls: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.received: Counter[str] = Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        parsed = orjson.loads(body)
        methods = [c["method"] for c in parsed] if isinstance(parsed, list) else [parsed["method"]]
        self.calls.update(methods)
        response = self.inner.handle_request(request)
        content = response.read()
        self.sent[methods[0]] += len(body)
        self.received[methods[0]] += len(content)
        return httpx.Response(response.status_code, headers=response.headers, content=content)

    def close(self) -> None:
        self.inner.close()


def mine_batch(rpc: RpcClient, sender: TxSender, requests: list[TxRequest]) -> list[dict[str, Any]]:
    """Send ``requests`` with automine off, mine one block per POOLS_PER_BLOCK; the receipts in order."""
    blocks, hashes = [], []
    for start in range(0, len(requests), POOLS_PER_BLOCK):
        hashes += sender.send(requests[start : start + POOLS_PER_BLOCK])
        rpc.call("evm_mine")
        blocks.append(rpc.block_number())
    receipts = block_receipts(rpc, blocks)
    return [receipts[h] for h in hashes]


def create_round(rpc: RpcClient, deployment: Deployment, pools: int, donated_pools: int, donations: int) -> int:
    """Create ``pools`` pools, then donate into the first ``donated_pools``; the block where creation ended."""
    sender = TxSender(rpc, rpc.chain_id())
    core, strategy_art = load_artifact("QFAllo"), load_artifact("DonationStrategy")
    now = int(rpc.call("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
    windows = [now, now + 10**7, now, now + 10**7]

    def pool_call(i: int) -> bytes:
        return core.encode_call(
            "createDonationPool",
            [i.to_bytes(32, "big"), NATIVE_TOKEN, 0, (1, f"bench pool {i}"), windows, [NATIVE_TOKEN]],
        )

    gas = int(
        rpc.call("eth_estimateGas", [{"from": FUNDER, "to": deployment.core, "data": "0x" + pool_call(0).hex()}]), 16
    )
    rpc.call("evm_setAutomine", [False])
    try:
        receipts = mine_batch(
            rpc,
            sender,
            [TxRequest(DEV_PRIVATE_KEY, FUNDER, deployment.core, pool_call(i), 0, gas * 2) for i in range(pools)],
        )
        created_until = rpc.block_number()
        created = [r["logs"][-1] for r in receipts[:donated_pools]]
        targets = [(int(lg["topics"][1], 16), "0x" + lg["data"][26:66]) for lg in created]
        people = [Account.create() for _ in range(len(targets) + 1)]
        donor, recipients = people[0], people[1:]
        mine_batch(
            rpc,
            sender,
            [TxRequest(DEV_PRIVATE_KEY, FUNDER, p.address.lower(), value=10**20, gas=21_000) for p in people],
        )
        registrations = []
        for (pool_id, _), who in zip(targets, recipients, strict=True):
            data = eth_abi.encode(["address", "address", "(uint256,string)"], [who.address, who.address, (1, "r")])
            registrations.append(
                TxRequest(
                    who.key,
                    who.address.lower(),
                    deployment.core,
                    core.encode_call("registerRecipient", [pool_id, data]),
                )
            )
        mine_batch(rpc, sender, registrations)
        reviews = [
            TxRequest(
                DEV_PRIVATE_KEY, FUNDER, strategy, strategy_art.encode_call("reviewRecipients", [[who.address], [2]])
            )
            for (_, strategy), who in zip(targets, recipients, strict=True)
        ]
        mine_batch(rpc, sender, reviews)
        gifts = []
        for i in range(donations):
            (pool_id, _), who = targets[i % len(targets)], recipients[i % len(targets)]
            data = eth_abi.encode(["address", "address", "uint256"], [who.address, NATIVE_TOKEN, 10**15])
            gifts.append(
                TxRequest(
                    donor.key,
                    donor.address.lower(),
                    deployment.core,
                    core.encode_call("allocate", [pool_id, data]),
                    10**15,
                    500_000,
                )
            )
        # A few donations per block over many blocks: the steady phase reads ranges that hold them.
        for start in range(0, len(gifts), 5):
            mine_batch(rpc, sender, gifts[start : start + 5])
    finally:
        rpc.call("evm_setAutomine", [True])
    return created_until


def new_database(server_url: str, template: str | None = None) -> str:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with connect(server_url, autocommit=True) as conn:
        if template is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        else:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
            )
    return name


def index(url: str, deployment: Deployment, db_url: str, home: Path, limit: int, span: int) -> dict[str, Any]:
    """Index up to the head through a counting transport; seconds and eth_getLogs traffic."""
    settings = Settings.from_env(
        {}, home=home, database_url=db_url, rpc_urls=url, core_address=deployment.core,
        start_block=deployment.start_block, indexer_metrics_port=0, log_address_limit=limit,
        log_range_blocks=span, log_range_max_blocks=span, rpc_timeout_seconds=120,
    )  # fmt: skip
    metrics = IndexerMetrics()
    indexer = build_indexer(settings, metrics, HealthState())
    transport = CountingTransport()
    indexer.rpc.close()
    indexer.rpc = ResilientRpc([url], timeout_seconds=120, metrics=indexer.metrics, transport=transport)
    assert indexer.store.try_lock()
    try:
        started = time.perf_counter()
        indexer.prepare().run(threading.Event(), until_caught_up=True)
        seconds = time.perf_counter() - started
    finally:
        indexer.store.close()
        indexer.rpc.close()
        for helper in indexer.helpers:
            helper.close()
    modes = {m: int(indexer.metrics.log_queries.labels(m)._value.get()) for m in ("addresses", "topics")}
    return {
        "seconds": seconds,
        "getlogs_calls": transport.calls["eth_getLogs"],
        "getlogs_request_bytes": transport.sent["eth_getLogs"],
        "getlogs_response_bytes": transport.received["eth_getLogs"],
        "ranges": modes,
        "logs_dropped": int(indexer.metrics.logs_dropped._value.get()),
    }


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"seconds_runs": [round(r["seconds"], 2) for r in runs]}
    for key in ("seconds", "getlogs_calls", "getlogs_request_bytes", "getlogs_response_bytes"):
        out[key] = round(statistics.median(r[key] for r in runs), 3)
    out["ranges"] = runs[0]["ranges"]
    out["logs_dropped"] = runs[0]["logs_dropped"]
    return out


def ratios(topics: dict[str, Any], addresses: dict[str, Any]) -> dict[str, float | None]:
    keys = ("seconds", "getlogs_calls", "getlogs_request_bytes", "getlogs_response_bytes")
    return {k: round(topics[k] / addresses[k], 3) if addresses[k] else None for k in keys}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pools", type=int, default=5000)
    parser.add_argument("--donated-pools", type=int, default=10)
    parser.add_argument("--donations", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--span", type=int, default=10, help="eth_getLogs block span (QF_LOG_RANGE_BLOCKS)")
    parser.add_argument("--steady-span", type=int, default=10, help="block span in the steady phase")
    args = parser.parse_args()
    configure_logging("console", "warning")  # not one line per discovered strategy
    work = Path(tempfile.mkdtemp(prefix="qf-bench-many-"))
    port = free_port()
    anvil = start_anvil(AnvilOptions(port=port), log_path=work / "anvil.log")
    server = start_server(work / "pgdata", cleanup_mode="delete")
    url = f"http://127.0.0.1:{port}"
    try:
        rpc = RpcClient(url, timeout_seconds=300)
        deployment = deploy_contracts(rpc, DEV_PRIVATE_KEY)
        started = time.perf_counter()
        # The template is indexed before the donations exist: up to the end of pool creation.
        created_until = create_round(rpc, deployment, args.pools, 0, 0)
        server_url = server.get_uri()
        template = new_database(server_url)
        index(url, deployment, with_database(server_url, template), work, args.pools + 10, args.span)
        # Then a few more pools (found in the steady phase too), their recipients and donations.
        create_round(rpc, deployment, args.donated_pools, args.donated_pools, args.donations)
        setup_seconds = time.perf_counter() - started
        head = rpc.block_number()
        limits = {"addresses": args.pools * 2 + 10, "topics": 100}
        result: dict[str, Any] = {
            "pools": args.pools + args.donated_pools,
            "donations": args.donations,
            "blocks": head - deployment.start_block + 1,
            "pools_created_by_block": created_until,
            "setup_seconds": round(setup_seconds, 1),
            "limits": limits,
        }
        reference: dict[str, Any] | None = None
        for phase, span, base in (("backfill", args.span, None), ("steady", args.steady_span, template)):
            runs: dict[str, list[dict[str, Any]]] = {"addresses": [], "topics": []}
            for _ in range(args.repeats):
                for mode, limit in limits.items():  # interleaved, so drift hits both alike
                    db_url = with_database(server_url, new_database(server_url, base))
                    runs[mode].append(index(url, deployment, db_url, work, limit, span))
                    rows = snapshot(db_url)
                    if reference is None:
                        reference = rows
                    elif rows != reference:
                        raise SystemExit(f"{phase}/{mode}: the database differs from the first run's")
            by_mode = {mode: summary(r) for mode, r in runs.items()}
            result[phase] = {**by_mode, "topics_over_addresses": ratios(by_mode["topics"], by_mode["addresses"])}
        print(json.dumps(result, indent=2))
    finally:
        server.cleanup()
        stop_process(anvil.pid)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
