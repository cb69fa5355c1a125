"""The analytics views on a simulated round indexed from a real anvil equal Python over the chain's logs."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import eth_abi
import pytest

from qf_sentinel.qf.chain.abi import ALLO_V2_EVENTS, topic0
from qf_sentinel.qf.db import connect
from qf_sentinel.qf.sim.execute import ExecutionResult, execute_plan
from qf_sentinel.qf.sim.plan import RecipientStatus, RoundPlan
from qf_sentinel.qf.sim.scenario import plan_simulated_round
from tests.analytics.events import refresh
from tests.analytics.reference import Gift, capped, contributions_of, donor_features, gini, pro_rata, standard_matches
from tests.fixtures.chain import Chain
from tests.indexer.harness import backfill
from tests.sim.onchain import all_logs

ROUND = {
    "honest_donors": 14,
    "projects_per_pool": 7,
    "pools": 2,
    "whales": 1,
    "fan_out_clusters": 1,
    "fan_out_size": 4,
    "ring_size": 3,
    "ring_helpers": 1,
    "self_donation_projects": 1,
    "self_donation_wallets": 2,
}
UNIT = 10**18
#: Cap of the first pool in percent, low enough to bind on this round's top projects.
CAP_PCT = 20


@dataclass
class Indexed:
    plan: RoundPlan
    result: ExecutionResult
    db_url: str
    gifts: list[Gift]
    funded: dict[int, Fraction]


def _b(text: str) -> bytes:
    return bytes.fromhex(text[-40:])


def _gifts_from_chain(chain: Chain, pool_of: dict[bytes, int]) -> list[Gift]:
    """Every Allocated log with its transaction nonce, gas price and block time, read from the node."""
    allocated = topic0(ALLO_V2_EVENTS["Allocated"])
    logs = [lg for lg in all_logs(chain.rpc, chain.deployment.start_block) if lg["topics"][0] == allocated]
    txs = chain.rpc.batch([("eth_getTransactionByHash", [lg["transactionHash"]]) for lg in logs])
    numbers = sorted({lg["blockNumber"] for lg in logs})
    blocks = chain.rpc.batch([("eth_getBlockByNumber", [n, False]) for n in numbers])
    times = {n: int(b["timestamp"], 16) for n, b in zip(numbers, blocks, strict=True)}
    gifts = []
    for lg, tx in zip(logs, txs, strict=True):
        amount, token, sender, _origin = eth_abi.decode(
            ["uint256", "address", "address", "address"], bytes.fromhex(lg["data"][2:])
        )
        strategy = _b(lg["address"])
        gifts.append(
            Gift(
                donor=_b(sender),
                project=(pool_of[strategy], _b(lg["topics"][1])),
                pool=pool_of[strategy],
                token=_b(token),
                amount=Fraction(amount, UNIT),
                block_number=int(lg["blockNumber"], 16),
                log_index=int(lg["logIndex"], 16),
                time=datetime.fromtimestamp(times[lg["blockNumber"]], UTC),
                nonce=int(tx["nonce"], 16),
                gas_price=int(tx["gasPrice"], 16),
            )
        )
    return gifts


def _funded_from_chain(chain: Chain) -> dict[int, Fraction]:
    funded_topic = topic0(ALLO_V2_EVENTS["PoolFunded"])
    funded: dict[int, Fraction] = defaultdict(Fraction)
    for lg in all_logs(chain.rpc, chain.deployment.start_block):
        if lg["topics"][0] == funded_topic:
            amount, _fee = eth_abi.decode(["uint256", "uint256"], bytes.fromhex(lg["data"][2:]))
            funded[int(lg["topics"][1], 16)] += Fraction(amount, UNIT)
    return funded


@pytest.fixture
def indexed(chain: Chain, db_url: str, tmp_path: Path) -> Indexed:
    """A simulated round executed on anvil, indexed into a fresh database, with a cap on the first pool."""
    plan = plan_simulated_round(5, **ROUND)
    result = execute_plan(chain.rpc, chain.deployment, plan, chain.funder_key)
    backfill(chain, db_url, tmp_path)
    with connect(db_url) as conn:
        conn.execute("INSERT INTO qf.matching_caps VALUES (%s, %s, %s)", (31337, result.pools[0].pool_id, CAP_PCT))
        refresh(conn)
    pool_of = {_b(p.strategy): p.pool_id for p in result.pools}
    return Indexed(plan, result, db_url, _gifts_from_chain(chain, pool_of), _funded_from_chain(chain))


def _query(db_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with connect(db_url) as conn:
        return [tuple(r) for r in conn.execute(query, params).fetchall()]


def _statuses(ix: Indexed) -> dict[tuple[int, bytes], RecipientStatus]:
    return {(ix.result.pools[p.pool].pool_id, _b(ix.plan.wallets[p.owner].address)): p.status for p in ix.plan.projects}


def _reference_matching(ix: Indexed) -> dict[int, dict[bytes, tuple[float, float, float]]]:
    """pool -> recipient -> (standard, pro rata, capped), from the plan's statuses and the chain's logs."""
    accepted = {k for k, s in _statuses(ix).items() if s is RecipientStatus.ACCEPTED}
    out = {}
    for pool in ix.result.pools:
        start = datetime.fromtimestamp(pool.allocation_start, UTC)
        end = datetime.fromtimestamp(pool.allocation_end, UTC)
        eligible = [
            g for g in ix.gifts if g.pool == pool.pool_id and g.token == _b(pool.token) and start <= g.time <= end
        ]
        contributions = contributions_of(eligible)
        projects = sorted(r for p, r in accepted if p == pool.pool_id)
        std = standard_matches({r: contributions.get((pool.pool_id, r), {}) for r in projects})
        scaled = pro_rata(std, float(ix.funded[pool.pool_id]))
        cap = float(ix.funded[pool.pool_id]) * CAP_PCT / 100 if pool is ix.result.pools[0] else float("inf")
        caps = dict(zip(projects, capped([scaled[r] for r in projects], cap), strict=True))
        out[pool.pool_id] = {r: (std[r], scaled[r], caps[r]) for r in projects}
    return out


def test_recipient_status_and_donation_flags_follow_the_reviews(indexed: Indexed) -> None:
    """Statuses are the plan's (rejected ones appealed and re-rejected); donations are accepted, in window."""
    got = _query(indexed.db_url, "SELECT pool_id, recipient_id, status FROM qf.recipient_status")
    assert {(int(p), bytes(r)): s for p, r, s in got} == {k: int(v) for k, v in _statuses(indexed).items()}
    assert set(_statuses(indexed).values()) >= {RecipientStatus.REJECTED, RecipientStatus.ACCEPTED}
    flags = _query(indexed.db_url, "SELECT recipient_status, in_window, count(*) FROM qf.donations GROUP BY 1, 2")
    assert flags == [(2, True, len(indexed.gifts))]


def test_project_totals_equal_the_logs(indexed: Indexed) -> None:
    """Donors, donations, amount and sum of sqrt(donor total) per (pool, recipient, token) match the Allocated logs."""
    per: dict[tuple[int, bytes, bytes], dict[bytes, list[Fraction]]] = defaultdict(lambda: defaultdict(list))
    for g in indexed.gifts:
        assert isinstance(g.project, tuple)
        per[g.pool, g.project[1], g.token][g.donor].append(g.amount)
    want = {
        key: (len(donors), sum(len(v) for v in donors.values()), float(sum(sum(v) for v in donors.values())),
              sum(float(sum(v)) ** 0.5 for v in donors.values()))
        for key, donors in per.items()
    }  # fmt: skip
    rows = _query(
        indexed.db_url,
        "SELECT pool_id, recipient_id, token, unique_donors, donations, amount, sum_sqrt_amount, amount_raw "
        "FROM qf.project_totals",
    )
    got = {(int(p), bytes(r), bytes(t)): (u, d, float(a), float(s)) for p, r, t, u, d, a, s, _ in rows}
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-12)
    assert sum(int(raw) for *_, raw in rows) == sum(g.amount for g in indexed.gifts) * UNIT


def test_round_matching_equals_standard_qf_scaled_and_capped(indexed: Indexed) -> None:
    """Standard QF over accepted recipients and in-window pool-token donations, pro rata, capped on pool 0."""
    want = _reference_matching(indexed)
    rows = _query(
        indexed.db_url, "SELECT pool_id, recipient_id, match_standard, match, match_capped FROM qf.round_matching"
    )
    got: dict[int, dict[bytes, tuple[float, float, float]]] = defaultdict(dict)
    for p, r, s, m, c in rows:
        got[int(p)][bytes(r)] = (float(s), float(m), float(c))
    assert got.keys() == want.keys()
    for pool, projects in want.items():
        assert got[pool].keys() == projects.keys()
        for r, value in projects.items():
            assert got[pool][r] == pytest.approx(value, rel=1e-9, abs=1e-9)
        assert sum(m for _, m, _ in got[pool].values()) == pytest.approx(float(indexed.funded[pool]))
    first = want[indexed.result.pools[0].pool_id]
    cap = float(indexed.funded[indexed.result.pools[0].pool_id]) * CAP_PCT / 100
    assert sum(1 for _, m, c in first.values() if m > cap) >= 1, "the cap should bind in this round"
    assert max(c for *_, c in first.values()) == pytest.approx(cap)


def test_donor_features_equal_python_for_chosen_donors(indexed: Indexed) -> None:
    """For the busiest donor, a fan-out sybil, the whale and one-time donors, every feature equals Python."""
    labels = {_b(lb.address): lb.pattern for lb in indexed.plan.labels}
    counts: dict[bytes, int] = defaultdict(int)
    for g in indexed.gifts:
        counts[g.donor] += 1
    chosen = {max(counts, key=lambda d: (counts[d], d))}
    chosen |= {
        next(d for d in sorted(counts) if labels.get(d) == p) for p in ("whale", "fan_out") if p in labels.values()
    }
    chosen |= {d for d in sorted(counts) if counts[d] == 1}  # every one-time donor
    assert len(chosen) >= 3
    for donor in sorted(chosen):
        want = donor_features(donor, indexed.gifts)
        with connect(indexed.db_url) as conn:
            cur = conn.execute("SELECT * FROM qf.donor_features WHERE donor = %s", (donor,))
            row = cur.fetchone()
            assert row is not None
            assert cur.description is not None
            got = dict(zip([c.name for c in cur.description], row, strict=True))
        assert got["chain_id"] == 31337
        for name, value in want.items():
            if isinstance(value, Fraction | float):
                assert float(got[name]) == pytest.approx(float(value), rel=1e-12, abs=1e-12), name
            else:
                assert got[name] == value, name


def test_round_stats_equal_python(indexed: Indexed) -> None:
    """Donors, donations, amount, mean donation, fresh-wallet share, matching pool, Gini and top-10 share per pool."""
    want_matching = _reference_matching(indexed)
    rows = _query(
        indexed.db_url,
        "SELECT pool_id, donors, donations, amount, mean_donation, fresh_wallet_donation_share, matching_pool, "
        "accepted_projects, match_gini, top10_match_share FROM qf.round_stats",
    )
    assert len(rows) == len(indexed.result.pools)
    for pool_id, donors, donations, amount, mean, fresh, funded, accepted, g, top10 in rows:
        mine = [x for x in indexed.gifts if x.pool == int(pool_id)]
        std = sorted((v[0] for v in want_matching[int(pool_id)].values()), reverse=True)
        assert (donors, donations, accepted) == (len({x.donor for x in mine}), len(mine), len(std))
        assert float(amount) == pytest.approx(float(sum(x.amount for x in mine)), rel=1e-12)
        assert float(mean) == pytest.approx(statistics.mean(float(x.amount) for x in mine), rel=1e-12)
        assert float(fresh) == pytest.approx(sum(x.nonce < 3 for x in mine) / len(mine))
        assert float(funded) == pytest.approx(float(indexed.funded[int(pool_id)]))
        assert float(g) == pytest.approx(gini(std), rel=1e-9)
        assert float(top10) == pytest.approx(sum(std[:10]) / sum(std), rel=1e-9)


def test_every_analytics_view_and_column_is_commented(indexed: Indexed) -> None:
    """Analysts read the meaning and unit of each view and column from psql's \\d+."""
    tables = ("project_totals", "round_matching", "donor_features", "round_stats", "recipient_status_history",
              "donor_risk", "profiles", "profile_anchors")  # fmt: skip
    analytics = f"(c.relkind IN ('v', 'm') OR (c.relkind = 'r' AND c.relname IN {tables!r}))"
    missing = _query(
        indexed.db_url,
        "SELECT c.relname, a.attname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        f"WHERE n.nspname = 'qf' AND {analytics} AND col_description(c.oid, a.attnum) IS NULL",
    )
    assert missing == []
    views = _query(
        indexed.db_url,
        "SELECT c.relname, obj_description(c.oid, 'pg_class') IS NOT NULL FROM pg_class c "
        f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'qf' AND {analytics}",
    )
    names = ("recipient_status", "pools", "donations", *tables, "experiment_variant_counts", "donor_risk_latest",
             "matching_discounts", "profile_members", "round_matching_named", "project_totals_named",
             "unpriced_donations", "review_verdicts", "unknown_topics", "donor_funding", "pool_strategies",
             "donation_strategies", "grants", "round_donations", "round_projects", "round_donors", "round_summary",
             "donor_chains")  # fmt: skip
    assert dict(views) == dict.fromkeys(names, True)
