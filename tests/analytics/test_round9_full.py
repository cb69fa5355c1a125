"""All of Gitcoin Round 9 through the analytics tables: every total and match equals Python over the CSV.

The on-chain replay of the whole round takes ~9 minutes (`bench/replay_round9.py`)
and its prefix is checked end to end in ``test_round9.py``; here the 69,015 kept
donations are written straight into the event tables (as the indexer would store
them, in 10 batches with an incremental refresh after each) so the SQL is checked
at the round's full scale: 8,131 donors, 641 projects.
"""

from __future__ import annotations

import csv
import hashlib
import lzma
import math
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from qf_sentinel.qf.db import connect
from tests.analytics.events import CHAIN_ID, TOKEN, EventWriter, units
from tests.sim.test_gitcoin import ROUND9

BATCHES = 10
POOL_FUNDS = 500_000


def kept_rows() -> list[tuple[str, str, Decimal, datetime]]:
    """(contributor, grant, USD, time) of the successful, positive rows, read with csv/lzma."""
    rows = []
    with lzma.open(ROUND9, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row["success"] != "True" or Decimal(row["amount"]) <= 0:
                continue
            rows.append((row["contributor"], row["grant"], Decimal(row["amount"]),
                         datetime.fromisoformat(row["created_on"]).astimezone(UTC)))  # fmt: skip
    rows.sort(key=lambda r: r[3])
    return rows


def addr(kind: str, name: str) -> bytes:
    return hashlib.sha256(f"{kind}:{name}".encode()).digest()[:20]


@pytest.mark.slow
def test_full_round9_tables_equal_the_csv(migrated_db_url: str) -> None:
    rows = kept_rows()
    assert len(rows) == 69_015
    grants = sorted({g for _, g, _, _ in rows})
    start = int(rows[0][3].timestamp()) - 60
    end = int(rows[-1][3].timestamp()) + 60
    with connect(migrated_db_url) as conn:
        events = EventWriter(conn)
        strategy = events.pool(1, funded=units(POOL_FUNDS), window=(start, end))
        for grant in grants:
            events.register(strategy, addr("grant", grant))
        for first in range(0, len(grants), 64):
            events.review(strategy, {addr("grant", g): 2 for g in grants[first : first + 64]})
        conn.execute("SELECT qf.refresh_analytics()")
        conn.commit()
        columns = ("chain_id", "block_number", "block_hash", "tx_hash", "tx_index", "log_index", "contract",
                   "recipient_id", "amount", "token", "sender", "origin", "tx_from", "tx_nonce", "gas_price",
                   "block_time")  # fmt: skip
        size = math.ceil(len(rows) / BATCHES)
        for b in range(BATCHES):
            with conn.cursor() as cur, cur.copy(f"COPY qf.allocated ({', '.join(columns)}) FROM STDIN") as copy:
                for i, (contributor, grant, usd, at) in enumerate(rows[b * size : (b + 1) * size], start=b * size):
                    donor = addr("contributor", contributor)
                    copy.write_row((CHAIN_ID, 10_000 + i // 20, hashlib.sha256(b"%d" % (i // 20)).digest(),
                                    hashlib.sha256(b"tx%d" % i).digest(), i % 20, i % 20, strategy,
                                    addr("grant", grant), int(usd * 10**18), TOKEN, donor, donor, donor, 5, 10**9,
                                    at))  # fmt: skip
            conn.execute("SELECT qf.refresh_analytics()")
            conn.commit()

        per_project: dict[bytes, dict[bytes, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        per_donor: dict[bytes, list[Decimal]] = defaultdict(list)
        for contributor, grant, usd, _ in rows:
            per_project[addr("grant", grant)][addr("contributor", contributor)] += usd
            per_donor[addr("contributor", contributor)].append(usd)

        totals = {bytes(r): (n, float(a)) for r, n, a in conn.execute(
            "SELECT recipient_id, unique_donors, amount FROM qf.project_totals").fetchall()}  # fmt: skip
        assert len(totals) == 641
        for project, donors in per_project.items():
            n, amount = totals[project]
            assert n == len(donors)
            assert amount == pytest.approx(float(sum(donors.values())), rel=1e-12)

        raw = {p: sum(math.sqrt(c) for c in d.values()) ** 2 - sum(float(c) for c in d.values())
               for p, d in per_project.items()}  # fmt: skip
        total_raw = sum(raw.values())
        matches = {bytes(r): float(m) for r, m in conn.execute(
            "SELECT recipient_id, match FROM qf.round_matching").fetchall()}  # fmt: skip
        assert len(matches) == 641
        for project, value in raw.items():
            assert matches[project] == pytest.approx(POOL_FUNDS * value / total_raw, rel=1e-9, abs=1e-6)

        features = {bytes(d): (n, float(t)) for d, n, t in conn.execute(
            "SELECT donor, donation_count, total_amount FROM qf.donor_features").fetchall()}  # fmt: skip
        assert len(features) == len(per_donor) == 8_131
        for donor, gifts in per_donor.items():
            assert features[donor][0] == len(gifts)
            assert features[donor][1] == pytest.approx(float(sum(gifts)), rel=1e-12)

        stats = conn.execute("SELECT donors, donations, amount, accepted_projects FROM qf.round_stats").fetchone()
        assert stats is not None
        assert (stats[0], stats[1], stats[3]) == (8_131, 69_015, 641)
        assert float(stats[2]) == pytest.approx(697_483.73, abs=0.01)

        # The incremental path agrees with recomputing everything from scratch.
        before = conn.execute("SELECT * FROM qf.round_matching ORDER BY recipient_id").fetchall()
        conn.execute("SELECT qf.rebuild_analytics()")
        assert conn.execute("SELECT * FROM qf.round_matching ORDER BY recipient_id").fetchall() == before
        conn.rollback()
