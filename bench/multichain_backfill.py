"""Several chains backfilled at once by one `qf index` (a thread per chain) against the same chains one at a time.

Reads the devnet's chains (run `make demo` first: its round spans both chains), and for each run backfills
every chain into a fresh, migrated database three ways: all at once (what `qf index` does), and each chain
alone, one after the other. The funding worker is off: this measures indexing. Prints JSON.

    .venv/bin/python bench/multichain_backfill.py [--home .qf] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from psycopg import sql

from qf_sentinel.indexer.app import run_indexer
from qf_sentinel.qf.chain.config import configured_chains
from qf_sentinel.qf.db import connect, with_database
from qf_sentinel.qf.db.embedded import resolve_database_url
from qf_sentinel.qf.db.migrate import apply_migrations
from qf_sentinel.qf.logs import configure_logging
from qf_sentinel.qf.settings import Settings

PREFIX = "bench_multichain_"


def fresh_db(server_url: str) -> str:
    name = f"{PREFIX}{uuid.uuid4().hex[:12]}"
    with connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(server_url, name)
    with connect(url) as conn:
        apply_migrations(conn)
    return url


def drop_db(server_url: str, url: str) -> None:
    with connect(url) as conn:
        name = conn.info.dbname
    assert name.startswith(PREFIX), name
    with connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def timed_backfill(settings: Settings, db: str, only: list[int]) -> float:
    started = time.perf_counter()
    run_indexer(settings.with_(database_url=db), until_caught_up=True, only=only)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=Path(".qf"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    configure_logging("console", "warning")
    base = Settings.from_env(home=args.home).with_(indexer_metrics_port=0, funding=False, log_level="warning")
    server = resolve_database_url(base)
    chains = [c.chain_id for c in configured_chains(base) if c.chain_id is not None]
    heads: dict[int, Any] = {}
    events: dict[int, Any] = {}
    together: list[float] = []
    alone: dict[int, list[float]] = {c: [] for c in chains}
    for _ in range(args.runs):
        db = fresh_db(server)
        together.append(timed_backfill(base, db, chains))
        with connect(db) as conn:
            heads = dict(conn.execute("SELECT chain_id, checkpoint_block FROM qf.chains").fetchall())
            events = dict(conn.execute("SELECT chain_id, count(*) FROM qf.allocated GROUP BY 1").fetchall())
        drop_db(server, db)
        for chain in chains:
            db = fresh_db(server)
            alone[chain].append(timed_backfill(base, db, [chain]))
            drop_db(server, db)
    one_after_another = [sum(alone[c][i] for c in chains) for i in range(args.runs)]
    print(json.dumps({
        "chains": {c: {"blocks": heads.get(c), "allocations": events.get(c),
                       "alone_seconds_median": round(statistics.median(alone[c]), 3)} for c in chains},
        "at_once_seconds_median": round(statistics.median(together), 3),
        "one_after_another_seconds_median": round(statistics.median(one_after_another), 3),
        "runs": args.runs,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
