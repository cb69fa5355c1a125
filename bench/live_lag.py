"""Live lag polled vs woken by newHeads over WebSocket, in the same run on a fresh devnet.

    .venv/bin/python bench/live_lag.py [--donations 40] [--poll-intervals 0.5,0.1] [--jitter 0.5] [--out lag.json]

Starts anvil from npm on a free 127.0.0.1 port (its WebSocket shares the HTTP
port) with the contracts deployed, and an embedded PostgreSQL in a temporary
directory. Then, for each mode, into its own empty database: an indexer in
process catches up and follows the head while single-donation blocks are mined
one at a time, 0.2 s plus a random 0-``--jitter`` s apart (a fixed gap beats
against the poll interval) (`bench/indexer_backfill.py::live_lag`); the lag is the time from
`evm_mine` returning to the donation being visible in qf.donations. Modes:
polling at each of ``--poll-intervals`` (0.5 s is QF_POLL_INTERVAL_SECONDS's
default), and QF_WS_URL set to the anvil's ws:// URL with the default poll
interval as the fallback. Each mode reports p50/p95 and the wake-ups by source
(``qf_indexer_wakeups_total``), so a WebSocket figure is known to come from
newHeads and not from a poll. Prints (and with ``--out`` writes) JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from indexer_backfill import fresh_db, live_lag

from qf_sentinel.qf.chain.anvil import DEV_PRIVATE_KEY, AnvilOptions, start_anvil
from qf_sentinel.qf.chain.deploy import deploy_contracts
from qf_sentinel.qf.chain.rpc import RpcClient
from qf_sentinel.qf.db.embedded import start_server
from qf_sentinel.qf.logs import configure_logging

DEFAULT_POLL_SECONDS = 0.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--donations", type=int, default=40, help="single-donation blocks per mode")
    parser.add_argument("--poll-intervals", default="0.5,0.1", help="polling modes, seconds, comma-separated")
    parser.add_argument("--jitter", type=float, default=0.5, help="blocks 0.2 s + up to this much (random) apart")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    configure_logging("console", "warning")  # stdout is the JSON
    intervals = [float(x) for x in args.poll_intervals.split(",") if x.strip()]
    work = Path(tempfile.mkdtemp(prefix="qf-bench-lag-"))
    port = free_port()
    anvil = start_anvil(AnvilOptions(port=port), log_path=work / "anvil.log")
    server = start_server(work / "pgdata", cleanup_mode="delete")
    try:
        http_url, ws_url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
        rpc = RpcClient(http_url)
        core = deploy_contracts(rpc, DEV_PRIVATE_KEY).core.lower()
        rpc.close()
        server_url = server.get_uri()
        modes: list[dict[str, Any]] = []
        for interval in intervals:
            modes.append(live_lag(http_url, core, fresh_db(server_url), work, args.donations,
                                  poll_interval_seconds=interval, gap_jitter_seconds=args.jitter))  # fmt: skip
        modes.append(live_lag(http_url, core, fresh_db(server_url), work, args.donations, ws_url=ws_url,
                              poll_interval_seconds=DEFAULT_POLL_SECONDS, gap_jitter_seconds=args.jitter))  # fmt: skip
        default_polling = next((m for m in modes if m["mode"] == "polling"
                                and m["poll_interval_seconds"] == DEFAULT_POLL_SECONDS), None)  # fmt: skip
        result: dict[str, Any] = {"donations_per_mode": args.donations, "modes": modes}
        if default_polling is not None:
            ws = modes[-1]
            result["p50_polling_default_over_websocket"] = round(default_polling["p50_seconds"] / ws["p50_seconds"], 1)
            result["p95_polling_default_over_websocket"] = round(default_polling["p95_seconds"] / ws["p95_seconds"], 1)
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
