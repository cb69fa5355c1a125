"""Cost of keeping the analytics tables current as the number of donations grows.

    .venv/bin/python bench/views_refresh.py [--database-url URL] [--sizes 1101,10000,100000,1000000]

For each size a scratch database gets every migration, then synthetic event rows
written directly with INSERT ... SELECT generate_series: 10 pools (strategy,
PoolCreated, PoolFunded, TimestampsUpdated), 100 registered recipients per pool
reviewed in one RecipientStatusUpdated per 64-row (1 in 10 rejected), donors =
donations / 5, two 18-decimal tokens, 20 donations per block, recipients and
donors drawn with a skew (seeded, so runs are comparable). Then, ``--repeats``
times each (medians printed):

* full: ``qf.rebuild_analytics()``, every analytics table recomputed from the
  event tables -- what a REFRESH of the former materialized views cost, the
  baseline;
* block: one more block of 20 donations appended (mostly by existing donors,
  with their whole history), then ``qf.refresh_analytics()``, which recomputes
  only the dirty donors, projects and pools -- what the live indexer pays
  after each block;
* batch: 1,000 more donations (50 blocks) appended, then ``qf.refresh_analytics()``.

and the ratio full / block. The scratch database is dropped at the end.
1,101 donations is the size of the `make demo` round.

Without --database-url a throwaway embedded PostgreSQL is started (and deleted).
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from psycopg import Connection, sql

from qf_sentinel.qf.db import connect, with_database
from qf_sentinel.qf.db.embedded import start_server
from qf_sentinel.qf.db.migrate import apply_migrations

POOLS = 10
RECIPIENTS_PER_POOL = 100
DONATIONS_PER_BLOCK = 20
START_TIME = 1_700_000_000

CHAIN_ID = 31337

# Sizes come in as session settings (bench.*), read with current_setting; bench.chain is the chain
# written (bench/multichain_scale.py seeds several into one database) and bench.donor_offset shifts
# its donors' numbers, so chains share the donors their ranges have in common.
# Addresses: 20 bytes from a kind byte and a number; hashes: sha256 of the same.
FUNCTIONS_SQL = """
CREATE OR REPLACE FUNCTION pg_temp.cfg(name text) RETURNS bigint LANGUAGE sql STABLE
RETURN current_setting('bench.' || name)::bigint;
CREATE OR REPLACE FUNCTION pg_temp.addr(kind int, n bigint) RETURNS bytea LANGUAGE sql IMMUTABLE
RETURN decode(lpad(to_hex(kind), 2, '0') || lpad(to_hex(n), 38, '0'), 'hex');
CREATE OR REPLACE FUNCTION pg_temp.h32(kind int, n bigint) RETURNS bytea LANGUAGE sql IMMUTABLE
RETURN sha256(pg_temp.addr(kind, n));
"""

SEED_SQL = """
INSERT INTO qf.tokens VALUES (pg_temp.cfg('chain'), pg_temp.addr(1, 1), 'TST', 18),
                             (pg_temp.cfg('chain'), pg_temp.addr(1, 2), 'ETH', 18);

-- DonationVotingMerkleDistributionDirectTransferStrategy v2.0's id: a donation strategy (qf.strategy_kinds).
INSERT INTO qf.strategies
SELECT pg_temp.cfg('chain'), pg_temp.addr(2, p), p, 1,
       decode('2f0250d534b2d59b8b5cfa5eb0d0848a59ccbf5de2eaf72d2ba4bfe73dce7c6b', 'hex'), 'answered'
FROM generate_series(1, pg_temp.cfg('pools')) p;

INSERT INTO qf.pool_created
SELECT pg_temp.cfg('chain'), 1, pg_temp.h32(9, 1), pg_temp.h32(3, p), 0, p, pg_temp.addr(9, 0), p, pg_temp.h32(4, p),
       pg_temp.addr(2, p), pg_temp.addr(1, 1 + p % 2), 0, 1, 'x'
FROM generate_series(1, pg_temp.cfg('pools')) p;

INSERT INTO qf.pool_funded
SELECT pg_temp.cfg('chain'), 2, pg_temp.h32(9, 2), pg_temp.h32(5, p), 0, p, pg_temp.addr(9, 0), p,
       (1000 * p)::numeric * 1e18, 0
FROM generate_series(1, pg_temp.cfg('pools')) p;

INSERT INTO qf.timestamps_updated
SELECT pg_temp.cfg('chain'), 3, pg_temp.h32(9, 3), pg_temp.h32(6, p), 0, p, pg_temp.addr(2, p),
       pg_temp.cfg('start') - 86400, pg_temp.cfg('start'), pg_temp.cfg('start'), pg_temp.cfg('end'), pg_temp.addr(9, 1)
FROM generate_series(1, pg_temp.cfg('pools')) p;

INSERT INTO qf.registered
SELECT pg_temp.cfg('chain'), 4, pg_temp.h32(9, 4), pg_temp.h32(7, p * 1000 + r), 0, r, pg_temp.addr(2, p),
       pg_temp.addr(3, r), pg_temp.addr(3, r), r, 1, 'x', '\\x', pg_temp.addr(3, r)
FROM generate_series(1, pg_temp.cfg('pools')) p, generate_series(0, pg_temp.cfg('recipients') - 1) r;

-- One review per 64-row: every recipient accepted (2) but every tenth rejected (3).
INSERT INTO qf.recipient_status_updated
SELECT pg_temp.cfg('chain'), 5, pg_temp.h32(9, 5), pg_temp.h32(8, p * 1000 + row_index), 0, row_index,
       pg_temp.addr(2, p), row_index, full_row, pg_temp.addr(9, 1)
FROM generate_series(1, pg_temp.cfg('pools')) p,
LATERAL (
    SELECT r / 64 AS row_index,
           sum(CASE WHEN r % 10 = 9 THEN 3 ELSE 2 END * power(2::numeric, 4 * (r % 64))) AS full_row
    FROM generate_series(0, pg_temp.cfg('recipients') - 1) r GROUP BY r / 64
) rows;

ANALYZE;
"""

# Donations offset .. offset + count - 1 (bench.offset, bench.count); run after SEED_SQL in the same session.
DONATIONS_SQL = """
-- Each chain its own random sequence; chain 31337 the one it always had.
SELECT setseed(x - floor(x)) FROM (
    SELECT pg_temp.cfg('offset')::float8 / (pg_temp.cfg('offset') + pg_temp.cfg('n') + 1)
           + (pg_temp.cfg('chain') - 31337) * 0.0137 AS x
) s;
INSERT INTO qf.allocated
SELECT pg_temp.cfg('chain'), 10 + i / pg_temp.cfg('per_block'), pg_temp.h32(10, 10 + i / pg_temp.cfg('per_block')),
       pg_temp.h32(11, i),
       i % pg_temp.cfg('per_block'), i % pg_temp.cfg('per_block'), pg_temp.addr(2, pool), pg_temp.addr(3, recipient),
       amount, pg_temp.addr(1, 1 + (i % 7 = 0)::int), pg_temp.addr(4, donor), pg_temp.addr(4, donor),
       pg_temp.addr(4, donor), (i / pg_temp.cfg('donors'))::bigint, (1 + donor % 30)::numeric * 1e9,
       to_timestamp(pg_temp.cfg('start')
                    + 12 * (i / pg_temp.cfg('per_block')) % (pg_temp.cfg('end') - pg_temp.cfg('start')))
FROM (
    SELECT i,
           1 + (i % pg_temp.cfg('pools')) AS pool,
           floor(pg_temp.cfg('recipients') * random() ^ 2)::int AS recipient,
           pg_temp.cfg('donor_offset') + floor(pg_temp.cfg('donors') * random() ^ 1.5)::bigint AS donor,
           CASE WHEN random() < 0.3 THEN (1 + floor(random() * 20)) * 1e18
                ELSE floor(random() * 1e6) * 1e13 END AS amount
    FROM generate_series(pg_temp.cfg('offset'), pg_temp.cfg('offset') + pg_temp.cfg('count') - 1) i
) g;
"""


def _set(conn: Connection, **params: int) -> None:
    for key, value in params.items():
        conn.execute("SELECT set_config(%s, %s, false)", (f"bench.{key}", str(value)))


def seed(conn: Connection, donations: int) -> float:
    """Every migration, the pools and recipients, then ``donations`` donations; returns seconds."""
    started = time.monotonic()
    apply_migrations(conn)
    seed_chain(conn, donations)
    conn.execute("ANALYZE")
    conn.commit()
    return time.monotonic() - started


def seed_chain(conn: Connection, donations: int, chain_id: int = CHAIN_ID, donor_offset: int = 0) -> None:
    """One chain's pools, recipients and ``donations`` donations into a migrated database."""
    conn.execute(FUNCTIONS_SQL)
    _set(conn, pools=POOLS, recipients=RECIPIENTS_PER_POOL, per_block=DONATIONS_PER_BLOCK,
         donors=max(1, donations // 5), n=donations, start=START_TIME, end=START_TIME + 14 * 86_400,
         chain=chain_id, donor_offset=donor_offset)  # fmt: skip
    conn.execute(SEED_SQL)
    append(conn, 0, donations, chain_id, donor_offset)


def append(conn: Connection, offset: int, count: int, chain_id: int = CHAIN_ID, donor_offset: int = 0) -> None:
    """Donations ``offset`` .. ``offset + count - 1`` of the chain (after its :func:`seed_chain` in this session)."""
    _set(conn, offset=offset, count=count, chain=chain_id, donor_offset=donor_offset)
    conn.execute(DONATIONS_SQL)
    conn.commit()


def timed(conn: Connection, query: str) -> float:
    started = time.monotonic()
    conn.execute(query)
    conn.commit()
    return time.monotonic() - started


def measure(conn: Connection, donations: int, repeats: int) -> dict[str, float]:
    """Median seconds of a full rebuild, and of the refresh after one block and after 1,000 donations."""
    timed(conn, "SELECT qf.refresh_analytics()")  # the seed's own dirty keys
    full = [timed(conn, "SELECT qf.rebuild_analytics()") for _ in range(repeats)]
    block: list[float] = []
    batch: list[float] = []
    offset = donations
    for _ in range(repeats):
        append(conn, offset, DONATIONS_PER_BLOCK)
        offset += DONATIONS_PER_BLOCK
        block.append(timed(conn, "SELECT qf.refresh_analytics()"))
        append(conn, offset, 1000)
        offset += 1000
        batch.append(timed(conn, "SELECT qf.refresh_analytics()"))
    return {"full": statistics.median(full), "block": statistics.median(block), "batch": statistics.median(batch)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="server where databases may be created (default: embedded)")
    parser.add_argument("--sizes", default="1101,10000,100000,1000000")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    workdir = None
    server_url = args.database_url
    if server_url is None:
        workdir = Path(tempfile.mkdtemp(prefix="qf-bench-views-"))
        server = start_server(workdir / "pgdata", cleanup_mode="delete")
        server_url = server.get_uri()
    results: dict[int, dict[str, float]] = {}
    try:
        for n in sizes:
            name = f"bench_views_{uuid.uuid4().hex[:12]}"
            with connect(server_url, autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            url = with_database(server_url, name)
            try:
                with connect(url) as conn:
                    seeded = seed(conn, n)
                    results[n] = measure(conn, n, args.repeats)
                r = results[n]
                print(f"{n:>9,} donations  seeded in {seeded:6.1f}s  full {r['full']:.3f}s  "
                      f"block {r['block']:.4f}s  1k batch {r['batch']:.4f}s  full/block x{r['full'] / r['block']:.0f}",
                      flush=True)  # fmt: skip
            finally:
                with connect(server_url, autocommit=True) as conn:
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        if workdir is not None:
            server.cleanup()
            shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(f"{'seconds':<10}" + "".join(f"{n:>12,}" for n in sizes) + "   growth per step")
    for kind in ("full", "block", "batch"):
        secs = [results[n][kind] for n in sizes]
        growth = "  ".join(f"x{b / a:.1f}" for a, b in itertools.pairwise(secs) if a > 0)
        print(f"{kind:<10}" + "".join(f"{s:>11.4f}s" for s in secs) + f"   {growth}")


if __name__ == "__main__":
    main()
