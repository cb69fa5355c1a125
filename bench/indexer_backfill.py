"""Backfill speed of the indexer against the node's own limit and a naive indexer.

    .venv/bin/python bench/indexer_backfill.py --rpc-url URL --core ADDRESS [--repeats 3]

Run it against a devnet that holds the Round 9 replay (`qf replay-gitcoin`, or
`bench/replay_round9.py --keep`). In one run, on the same blocks, it measures:

* bare:   a loop of eth_getLogs over the indexed contracts, 2,000-block ranges,
          no decoding, no database: the node's own limit for reading the events;
* ours:   `qf index` (in process) into an empty database until caught up;
* naive:  a web3.py indexer as people write it first: `contract.events.X.get_logs`
          per event type, then for every donation `get_transaction` and
          `get_block`, and one INSERT per row.

Each is repeated (naive once: it is slow) and the medians and their ratios are
printed as JSON. Then the live lag: donations are mined one block at a time
while the indexer follows the head, and the time from `evm_mine` returning to
the row being visible in qf.donations is measured (p50, p95); with `--ws-url`
also with the indexer woken by newHeads (`bench/live_lag.py` compares the two
on a fresh devnet).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import eth_abi
import psycopg
from eth_account import Account
from web3 import HTTPProvider, Web3

from qf_sentinel.indexer.app import build_indexer
from qf_sentinel.indexer.metrics import IndexerMetrics
from qf_sentinel.qf.chain.abi import NATIVE_TOKEN, load_artifact
from qf_sentinel.qf.chain.anvil import DEV_PRIVATE_KEY
from qf_sentinel.qf.chain.rpc import RpcClient
from qf_sentinel.qf.chain.tx import TxRequest, TxSender, wait_for_receipts
from qf_sentinel.qf.db import connect, with_database
from qf_sentinel.qf.db.embedded import start_server
from qf_sentinel.qf.http_metrics import HealthState
from qf_sentinel.qf.settings import Settings

SPAN = 2000


def strategies_of(rpc: RpcClient, core: str, head: int) -> list[str]:
    topic = "0x69bcb5a6cf6a3c95185cbb451e77787240c866dd2e8332597e3013ff18a1aba1"
    logs = rpc.call(
        "eth_getLogs", [{"fromBlock": "0x0", "toBlock": hex(head), "address": core, "topics": [topic]}]
    )
    return ["0x" + lg["data"][26:66] for lg in logs]


def bare(rpc: RpcClient, addresses: list[str], head: int) -> tuple[float, int]:
    started, n = time.perf_counter(), 0
    for a in range(0, head + 1, SPAN):
        n += len(
            rpc.call(
                "eth_getLogs",
                [{"fromBlock": hex(a), "toBlock": hex(min(a + SPAN - 1, head)), "address": addresses}],
            )
        )
    return time.perf_counter() - started, n


def bare_with_transactions(rpc: RpcClient, addresses: list[str], head: int) -> float:
    """The node's limit for what the indexer must read: the logs, plus every donation's transaction."""
    allocated = "0x" + load_artifact("DonationStrategy").event_topics()["Allocated"][2:]
    started = time.perf_counter()
    for a in range(0, head + 1, SPAN):
        logs = rpc.call(
            "eth_getLogs",
            [{"fromBlock": hex(a), "toBlock": hex(min(a + SPAN - 1, head)), "address": addresses}],
        )
        hashes = sorted({lg["transactionHash"] for lg in logs if lg["topics"][0] == allocated})
        for i in range(0, len(hashes), 100):
            rpc.batch([("eth_getTransactionByHash", [h]) for h in hashes[i : i + 100]])
    return time.perf_counter() - started


def fresh_db(server_url: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(server_url, name)


def ours(url: str, core: str, db_url: str, home: Path) -> tuple[float, int]:
    settings = Settings.from_env(
        {},
        home=home,
        database_url=db_url,
        rpc_urls=url,
        core_address=core,
        start_block=0,
        indexer_metrics_port=0,
    )
    started = time.perf_counter()
    indexer = build_indexer(settings, IndexerMetrics(), HealthState())
    assert indexer.store.try_lock()
    indexer.prepare().run(threading.Event(), until_caught_up=True)
    elapsed = time.perf_counter() - started
    with connect(db_url) as conn:
        events = sum(
            conn.execute(f"SELECT count(*) FROM qf.{t}").fetchone()[0]
            for t in (
                "pool_created",
                "pool_funded",
                "pool_metadata_updated",
                "registered",
                "updated_registration",
                "recipient_status_updated",
                "timestamps_updated",
                "allocated",
                "distributed",
                "funds_distributed",
            )
        )
    indexer.store.close()
    indexer.rpc.close()
    for helper in indexer.helpers:
        helper.close()
    return elapsed, events


NAIVE_SCHEMA = """
CREATE TABLE naive_events (tx_hash text, log_index int, event text, block_number bigint, args text,
                           tx_from text, tx_nonce bigint, gas_price numeric, block_time bigint,
                           PRIMARY KEY (tx_hash, log_index))
"""


def naive(url: str, core: str, strategies: list[str], head: int, db_url: str) -> tuple[float, int]:
    w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 120}))
    core_c = w3.eth.contract(address=Web3.to_checksum_address(core), abi=load_artifact("QFAllo").abi)
    strategy_abi = load_artifact("DonationStrategy").abi
    contracts = [core_c] + [
        w3.eth.contract(address=Web3.to_checksum_address(s), abi=strategy_abi) for s in strategies
    ]
    started = time.perf_counter()
    rows = 0
    with psycopg.connect(db_url) as conn:
        conn.execute(NAIVE_SCHEMA)
        for contract in contracts:
            for event in contract.events:
                for a in range(0, head + 1, SPAN):
                    for ev in event.get_logs(from_block=a, to_block=min(a + SPAN - 1, head)):
                        tx_from = nonce = gas_price = block_time = None
                        if ev["event"] == "Allocated":
                            tx = w3.eth.get_transaction(ev["transactionHash"])
                            block = w3.eth.get_block(ev["blockNumber"])
                            tx_from, nonce, gas_price, block_time = (
                                tx["from"],
                                tx["nonce"],
                                tx["gasPrice"],
                                block["timestamp"],
                            )
                        conn.execute(
                            "INSERT INTO naive_events VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                            "ON CONFLICT DO NOTHING",
                            (
                                ev["transactionHash"].hex(),
                                ev["logIndex"],
                                ev["event"],
                                ev["blockNumber"],
                                json.dumps(dict(ev["args"]), default=str),
                                tx_from,
                                nonce,
                                gas_price,
                                block_time,
                            ),
                        )
                        rows += 1
        conn.commit()
    return time.perf_counter() - started, rows


def live_lag(
    url: str, core: str, db_url: str, home: Path, donations: int, *,
    ws_url: str | None = None, poll_interval_seconds: float = 0.1, gap_jitter_seconds: float = 0.0,
) -> dict[str, Any]:
    """Mine single-donation blocks while the indexer follows; seconds from mined to visible.

    With ``ws_url`` the caught-up indexer is woken by newHeads (the poll interval is its fallback);
    the wake-ups are counted by source, so the figures say which one served them. Blocks are
    0.2 s apart, plus up to ``gap_jitter_seconds`` at random (seeded): a fixed gap beats against
    a poll interval and skews the polled figures.
    """
    jitter = random.Random(7)
    rpc = RpcClient(url)
    chain_id = rpc.chain_id()
    sender = TxSender(rpc, chain_id)
    funder = Account.from_key(DEV_PRIVATE_KEY).address.lower()
    core_art, strategy_art = load_artifact("QFAllo"), load_artifact("DonationStrategy")
    donor = Account.from_key(bytes.fromhex(uuid.uuid4().hex * 2))
    recipient = Account.from_key(bytes.fromhex(uuid.uuid4().hex * 2))
    rpc.call("evm_setAutomine", [True])
    now = int(rpc.call("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)

    def send(key: bytes, frm: str, to: str, data: bytes = b"", value: int = 0) -> dict[str, Any]:
        return wait_for_receipts(rpc, sender.send([TxRequest(key, frm, to, data, value, 6_000_000)]))[0]

    for who in (donor.address, recipient.address):
        send(DEV_PRIVATE_KEY, funder, who.lower(), value=10**20)
    receipt = send(
        DEV_PRIVATE_KEY,
        funder,
        core,
        core_art.encode_call(
            "createDonationPool",
            [
                b"\x07" * 32,
                NATIVE_TOKEN,
                0,
                (1, "bench"),
                [now, now + 10**6, now, now + 10**6],
                [NATIVE_TOKEN],
            ],
        ),
    )
    created = receipt["logs"][-1]
    pool_id, strategy = int(created["topics"][1], 16), "0x" + created["data"][26:66]
    data = eth_abi.encode(
        ["address", "address", "(uint256,string)"], [recipient.address, recipient.address, (1, "r")]
    )
    send(
        recipient.key,
        recipient.address.lower(),
        core,
        core_art.encode_call("registerRecipient", [pool_id, data]),
    )
    send(
        DEV_PRIVATE_KEY,
        funder,
        strategy,
        strategy_art.encode_call("reviewRecipients", [[recipient.address], [2]]),
    )

    settings = Settings.from_env(
        {},
        home=home,
        database_url=db_url,
        rpc_urls=url,
        core_address=core,
        start_block=0,
        indexer_metrics_port=0,
        poll_interval_seconds=poll_interval_seconds,
        refresh_debounce_seconds=1.0,
        ws_url=ws_url,
    )
    metrics = IndexerMetrics()
    indexer = build_indexer(settings, metrics, HealthState())
    assert indexer.store.try_lock()
    indexer = indexer.prepare()
    stop = threading.Event()
    indexer.run(stop, until_caught_up=True)
    thread = threading.Thread(target=indexer.run, args=(stop,), daemon=True)
    thread.start()
    if ws_url:
        deadline = time.monotonic() + 30
        while metrics.registry.get_sample_value("qf_indexer_ws_connected") != 1:
            if time.monotonic() > deadline:
                raise SystemExit(f"no newHeads subscription at {ws_url}")
            time.sleep(0.01)
    lags = []
    rpc.call("evm_setAutomine", [False])
    with psycopg.connect(db_url, autocommit=True) as conn:
        for _ in range(donations):
            call = core_art.encode_call(
                "allocate",
                [
                    pool_id,
                    eth_abi.encode(
                        ["address", "address", "uint256"], [recipient.address, NATIVE_TOKEN, 10**15]
                    ),
                ],
            )
            (tx_hash,) = sender.send(
                [TxRequest(donor.key, donor.address.lower(), core, call, 10**15, 500_000)]
            )
            rpc.call("evm_mine")
            mined = time.perf_counter()
            while not conn.execute("SELECT 1 FROM qf.donations WHERE tx_hash = %s", (tx_hash,)).fetchone():
                time.sleep(0.005)
            lags.append(time.perf_counter() - mined)
            time.sleep(0.2 + jitter.uniform(0.0, gap_jitter_seconds))
    rpc.call("evm_setAutomine", [True])
    stop.set()
    thread.join()
    lags.sort()
    indexer.store.close()
    indexer.rpc.close()
    for helper in indexer.helpers:
        helper.close()
    wakeups = {
        source: int(metrics.registry.get_sample_value("qf_indexer_wakeups_total", {"source": source}) or 0)
        for source in ("newheads", "poll")
    }
    return {
        "mode": "websocket" if ws_url else "polling",
        "poll_interval_seconds": poll_interval_seconds,
        "gap_seconds": [0.2, 0.2 + gap_jitter_seconds],
        "wakeups": wakeups,
        "donations": donations,
        "p50_seconds": round(statistics.median(lags), 3),
        "p95_seconds": round(lags[int(0.95 * (len(lags) - 1))], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rpc-url", required=True)
    parser.add_argument("--core", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--live-donations", type=int, default=40)
    parser.add_argument("--to-block", type=int, help="index only up to this block (default: the head)")
    parser.add_argument("--ws-url", help="also measure the live lag woken by newHeads at this ws:// URL")
    args = parser.parse_args()
    core = args.core.lower()
    rpc = RpcClient(args.rpc_url, timeout_seconds=300)
    head = args.to_block if args.to_block is not None else rpc.block_number()
    strategies = strategies_of(rpc, core, head)
    work = Path(tempfile.mkdtemp(prefix="qf-bench-"))
    server = start_server(work / "pgdata", cleanup_mode="delete")
    try:
        server_url = server.get_uri()
        bare_runs = [bare(rpc, [core, *strategies], head) for _ in range(args.repeats)]
        with_tx = [bare_with_transactions(rpc, [core, *strategies], head) for _ in range(args.repeats)]
        our_runs = [ours(args.rpc_url, core, fresh_db(server_url), work) for _ in range(args.repeats)]
        result: dict[str, Any] = {
            "blocks": head + 1,
            "logs": bare_runs[0][1],
            "events_indexed": our_runs[0][1],
            "bare_getlogs_seconds": [round(s, 2) for s, _ in bare_runs],
            "ours_seconds": [round(s, 2) for s, _ in our_runs],
        }
        bare_median = statistics.median(s for s, _ in bare_runs)
        ours_median = statistics.median(s for s, _ in our_runs)
        result["ours_events_per_second"] = round(our_runs[0][1] / ours_median)
        result["ours_over_bare"] = round(ours_median / bare_median, 2)
        result["bare_logs_and_transactions_seconds"] = [round(s, 2) for s in with_tx]
        result["ours_over_bare_logs_and_transactions"] = round(ours_median / statistics.median(with_tx), 2)
        if not args.skip_naive:
            naive_seconds, naive_rows = naive(args.rpc_url, core, strategies, head, fresh_db(server_url))
            result["naive_seconds"] = round(naive_seconds, 1)
            result["naive_rows"] = naive_rows
            result["naive_over_ours"] = round(naive_seconds / ours_median, 1)
        if args.live_donations:
            result["live_lag"] = live_lag(args.rpc_url, core, fresh_db(server_url), work, args.live_donations)
            if args.ws_url:
                result["live_lag_ws"] = live_lag(
                    args.rpc_url, core, fresh_db(server_url), work, args.live_donations, ws_url=args.ws_url
                )
        print(json.dumps(result, indent=2))
    finally:
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
