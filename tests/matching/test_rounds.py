"""A round across chains (``qf rounds add``, ``qf matching --round``) equals qf-calculator's pipeline on its votes.

Two chains' pools, written as event rows (:mod:`tests.analytics.events`), with
donations in several tokens priced by imported USD prices. The same scenario
is also written down as qf-calculator's votes (voter, project, payout
address, amountUSD) and run through a transcription of its steps:
``apply_voting_eligibility`` (minimum in USD, self-votes), ``pivot_votes``
(sum per voter and project), ``get_qf_matching`` (normalise, cap with
``check_matching_cap``, times the matching amount), with standard QF and
COCM (:func:`tests.matching.test_cocm.qf_calculator_cocm`). A voter is an
address on any chain; a project is its recipient id on any chain.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import psycopg
import pytest

from qf_sentinel.qf.db import connect
from qf_sentinel.qf.errors import ConfigError, DataError
from qf_sentinel.qf.matching import Eligibility
from qf_sentinel.qf.matching.rounds import add_round, parse_pool, round_pools
from qf_sentinel.qf.matching.service import MethodOptions, match_round, store
from tests.analytics.events import NATIVE, TOKEN, WINDOW, EventWriter, address, refresh, units
from tests.matching.test_cocm import qf_calculator_cocm

START, END = WINDOW
CHAIN_A, CHAIN_B = 31337, 10
POOL_A, POOL_B = 1, 7
UNPRICED = bytes.fromhex("99" * 20)
P, Q, R, S = (address(f"project-{n}") for n in "PQRS")  # P is on both chains, under the same recipient id
ALICE, BOB, CAROL, DAVE, ERIN, FRANK = (address(n) for n in ("alice", "bob", "carol", "dave", "erin", "frank"))
GINA, HANK, IVAN = (address(n) for n in ("gina", "hank", "ivan"))
#: (chain, token) -> [(from unix time, USD per token)]
PRICES = {
    (CHAIN_A, TOKEN): [(START - 1000, Decimal("1.00"))],
    (CHAIN_A, NATIVE): [(START - 1000, Decimal(2000)), (START + 50, Decimal(2500))],
    (CHAIN_B, TOKEN): [(START - 1000, Decimal("1.50"))],
    (CHAIN_B, NATIVE): [(START - 1000, Decimal(2100))],
}
FUNDED = {CHAIN_A: 1000, CHAIN_B: 200}  # matching token units: 1000 USD + 300 USD
#: The calculator always drops self-votes.
SELF = Eligibility(exclude_self=True)


@dataclass(frozen=True)
class Gift:
    chain: int
    donor: bytes
    project: bytes
    token: bytes
    amount: str
    at: int
    #: to an accepted recipient, inside the window: the calculator's query returns it
    counts: bool = True


GIFTS = [
    Gift(CHAIN_A, ALICE, P, TOKEN, "10", START + 1),
    Gift(CHAIN_A, ALICE, Q, NATIVE, "0.002", START + 2),  # 4 USD
    Gift(CHAIN_A, BOB, P, NATIVE, "0.002", START + 60),  # 5 USD: the later price
    Gift(CHAIN_A, CAROL, Q, TOKEN, "0.5", START + 3),  # under a 1 USD minimum
    Gift(CHAIN_A, Q, Q, TOKEN, "2", START + 4),  # the project to itself
    Gift(CHAIN_A, CAROL, P, TOKEN, "3", START + 5),
    Gift(CHAIN_A, DAVE, S, TOKEN, "5", START + 6, counts=False),  # S is rejected
    Gift(CHAIN_A, ERIN, P, TOKEN, "7", END + 10, counts=False),  # after the window
    Gift(CHAIN_B, ALICE, P, TOKEN, "4", START + 1),  # 6 USD, with alice's 10 on chain A: 16 USD to P
    Gift(CHAIN_B, BOB, R, TOKEN, "2", START + 2),
    Gift(CHAIN_B, CAROL, P, NATIVE, "0.001", START + 3),  # 2.1 USD
    Gift(CHAIN_B, DAVE, R, TOKEN, "1", START + 4),
    Gift(CHAIN_B, ALICE, R, TOKEN, "1", START + 5),
    Gift(CHAIN_B, ERIN, R, TOKEN, "3", START + 6),
    Gift(CHAIN_B, FRANK, R, UNPRICED, "100", START + 7, counts=False),  # no price: left out, counted
    Gift(CHAIN_B, GINA, R, TOKEN, "2", START + 8),
    Gift(CHAIN_A, GINA, Q, TOKEN, "1.5", START + 9),
    Gift(CHAIN_A, HANK, Q, NATIVE, "0.0004", START + 100),  # 1 USD, exactly the minimum: counts
    Gift(CHAIN_B, HANK, P, TOKEN, "5", START + 10),
    Gift(CHAIN_A, IVAN, P, TOKEN, "0.8", START + 11),
    Gift(CHAIN_A, IVAN, Q, TOKEN, "9", START + 12),
]


def price(chain: int, token: bytes, at: int) -> Decimal:
    return [p for since, p in PRICES[chain, token] if since <= at][-1]


def write_round(conn: psycopg.Connection) -> None:
    writers = {CHAIN_A: EventWriter(conn, CHAIN_A), CHAIN_B: EventWriter(conn, CHAIN_B)}
    pools = {CHAIN_A: POOL_A, CHAIN_B: POOL_B}
    accepted = {CHAIN_A: (P, Q), CHAIN_B: (P, R)}
    strategies = {}
    for chain, w in writers.items():
        strategies[chain] = w.pool(pools[chain], funded=units(FUNDED[chain]))
        for r in (*accepted[chain], *((S,) if chain == CHAIN_A else ())):
            w.register(strategies[chain], r)
        w.review(strategies[chain], dict.fromkeys(accepted[chain], 2) | ({S: 3} if chain == CHAIN_A else {}))
    for g in GIFTS:
        writers[g.chain].donate(strategies[g.chain], g.donor, g.project, units(g.amount), at=g.at, token=g.token)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO qf.imported_prices (chain_id, token, at, price_usd, source) VALUES (%s, %s, %s, %s, 'test')",
            [(c, t, datetime.fromtimestamp(since, UTC), p) for (c, t), rows in PRICES.items() for since, p in rows],
        )
    refresh(conn)


# -- qf-calculator, transcribed ----------------------------------------------------------------


def calculator_votes() -> list[dict[str, object]]:
    """The rows of the calculator's votes query for the round's pools: approved projects, priced donations."""
    return [
        {"voter": "0x" + g.donor.hex(), "project": "0x" + g.project.hex(), "recipient_address": "0x" + g.project.hex(),
         "amountUSD": float(Decimal(g.amount) * price(g.chain, g.token, g.at))}
        for g in GIFTS if g.counts
    ]  # fmt: skip


def apply_voting_eligibility(votes: list[dict[str, object]], min_donation: float) -> list[dict[str, object]]:
    """fundingutils.apply_voting_eligibility without Passport (every score passes): minimum and self-votes."""
    out = []
    for v in votes:
        self_vote = v["voter"] == v["recipient_address"]
        low_amount = float(v["amountUSD"]) < min_donation  # type: ignore[arg-type]
        out.append(v | {"amountUSD": 0.0 if self_vote or low_amount else v["amountUSD"]})
    return out


def pivot_votes(votes: list[dict[str, object]]) -> tuple[list[str], np.ndarray]:
    """pivot_table(index='voter', columns=project, values='amountUSD', fill_value=0, aggfunc='sum')."""
    voters = sorted({str(v["voter"]) for v in votes})
    projects = sorted({str(v["project"]) for v in votes})
    matrix = np.zeros((len(voters), len(projects)))
    for v in votes:
        matrix[voters.index(str(v["voter"])), projects.index(str(v["project"]))] += float(v["amountUSD"])  # type: ignore[arg-type]
    return projects, matrix


def check_matching_cap(shares: list[float], cap: float) -> list[float]:
    col = list(shares)
    while True:
        over_cap = [max(0.0, x - cap) for x in col]
        col = [min(x, cap) for x in col]
        total_not_capped = sum(x for x in col if x < cap)
        if total_not_capped > 0:
            remainder = sum(over_cap) / total_not_capped
            col = [x * (1 + remainder) if x < cap else x for x in col]
        else:
            break
        if not sum(max(0.0, x - cap) for x in col) > 0:
            break
    return col


def get_qf_matching(algo: str, matrix: np.ndarray, cap_percent: float, matching_amount: float) -> list[float]:
    if algo == "COCM":
        funding = qf_calculator_cocm(matrix, harsh=True)
    else:
        funding = [sum(math.sqrt(x) for x in matrix[:, p]) ** 2 - float(matrix[:, p].sum())
                   for p in range(matrix.shape[1])]  # fmt: skip
    total = sum(funding)
    shares = funding if total == 0 else [f / total for f in funding]  # fundingutils.normalize
    if cap_percent < 100:
        shares = check_matching_cap(shares, cap_percent / 100)
    matched = [s * matching_amount for s in shares]
    while sum(matched) * 1e18 > matching_amount * 1e18:
        matched = [m * (matching_amount / sum(matched)) for m in matched]
    return matched


def calculator(algo: str, *, min_donation: float = 0.0, cap_percent: float = 100.0, matching_amount: float = 1300.0,
               drop: frozenset[str] = frozenset()) -> dict[str, float]:  # fmt: skip
    votes = [v for v in calculator_votes() if v["voter"] not in drop]
    projects, matrix = pivot_votes(apply_voting_eligibility(votes, min_donation))
    return dict(zip(projects, get_qf_matching(algo, matrix, cap_percent, matching_amount), strict=True))


# -- the tests ---------------------------------------------------------------------------------------


@pytest.fixture
def conn(migrated_db_url: str) -> Iterator[psycopg.Connection]:
    with connect(migrated_db_url) as c:
        write_round(c)
        add_round(c, "gg-test", [(CHAIN_A, POOL_A), (CHAIN_B, POOL_B)])
        yield c


def matched(result: object, method: str) -> dict[str, float]:
    from qf_sentinel.qf.matching.service import MatchingResult  # noqa: PLC0415

    assert isinstance(result, MatchingResult)
    return {"0x" + p.hex(): float(m) for p, m in zip(result.round.projects, result.matches[method], strict=True)}


@pytest.mark.parametrize(("min_donation", "cap"), [(None, None), (1.0, None), (1.0, 40.0)])
def test_a_round_across_chains_equals_qf_calculator(conn: psycopg.Connection, min_donation: float | None,
                                                    cap: float | None) -> None:  # fmt: skip
    """Standard QF and COCM of the two chains' pools in USD, with the minimum, self-votes and the cap."""
    rules = Eligibility(min_donation=min_donation, exclude_self=True)
    result = match_round(conn, "gg-test", methods=("standard", "cocm"), eligibility=rules,
                         options=MethodOptions(cap_pct=cap))  # fmt: skip
    assert result.pool_amount == pytest.approx(1300.0)
    assert result.pools == ((CHAIN_B, POOL_B), (CHAIN_A, POOL_A))
    assert result.usd
    assert result.unpriced == 1
    assert result.title == "round gg-test (2 pools on chains 10, 31337)"
    for method, algo in (("standard", "QF"), ("cocm", "COCM")):
        expected = calculator(algo, min_donation=min_donation or 0.0, cap_percent=cap or 100.0)
        assert matched(result, method) == pytest.approx(expected, abs=1e-9), method
    # alice's 10 USD on chain A and 6 USD on chain B are one donor's 16 USD to one project
    alice = result.round.donors.index(ALICE)
    assert result.round.contributions[alice, result.round.projects.index(P)] == pytest.approx(16.0)


def test_a_sybil_label_on_one_chain_counts_across_the_round(conn: psycopg.Connection) -> None:
    """Risk-adjusted with auto weights: bob labelled on chain 10 weighs 0 on chain 31337 too."""
    conn.execute("INSERT INTO qf.labels (chain_id, address, is_sybil, pattern, source) VALUES (%s, %s, true, 'x', 't')",
                 (CHAIN_B, BOB))  # fmt: skip
    conn.commit()
    result = match_round(conn, "gg-test", methods=("risk-adjusted",), eligibility=SELF)
    assert result.weights_source == "labels"
    expected = calculator("QF", drop=frozenset({"0x" + BOB.hex()}))
    assert matched(result, "risk-adjusted") == pytest.approx(expected, abs=1e-9)


def test_the_matching_pool_can_be_stated_and_must_be_priced(conn: psycopg.Connection) -> None:
    """--matching-usd replaces the pools' funding; a matching token without a price is an error, not 0."""
    stated = match_round(conn, "gg-test", matching_usd=650.0, eligibility=SELF)
    assert matched(stated, "standard") == pytest.approx(calculator("QF", matching_amount=650.0), abs=1e-9)
    conn.execute("DELETE FROM qf.imported_prices WHERE chain_id = %s AND token = %s", (CHAIN_B, TOKEN))
    conn.commit()
    with pytest.raises(DataError, match="pool 7 on chain 10: no USD price of its matching token"):
        match_round(conn, "gg-test")


def test_rounds_are_named_sets_of_indexed_pools(conn: psycopg.Connection) -> None:
    """A round grows by adding pools; an unknown pool, a bad name and an unknown round are clear errors."""
    assert parse_pool(" 10:7 ") == (CHAIN_B, POOL_B)
    with pytest.raises(ConfigError, match="CHAIN:POOL"):
        parse_pool("10/7")
    assert add_round(conn, "solo", [(CHAIN_A, POOL_A)]) == [(CHAIN_A, POOL_A)]
    assert add_round(conn, "solo", [(CHAIN_B, POOL_B), (CHAIN_A, POOL_A)]) == [(CHAIN_B, POOL_B), (CHAIN_A, POOL_A)]
    with pytest.raises(ConfigError, match="pool 99 is not indexed on chain 10"):
        add_round(conn, "solo", [(CHAIN_B, 99)])
    with pytest.raises(ConfigError, match="round name"):
        add_round(conn, "-bad name", [(CHAIN_A, POOL_A)])
    with pytest.raises(ConfigError, match="known: gg-test, solo"):
        round_pools(conn, "nope")


def qf_cli(db_url: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QF_")}
    env |= {"QF_DATABASE_URL": db_url, "QF_HOME": str(home), "QF_LOG_FORMAT": "json"}
    return subprocess.run([sys.executable, "-m", "qf_sentinel", *args], env=env, capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip


def test_qf_matching_round_matches_the_round_and_stores_the_run(
    conn: psycopg.Connection, migrated_db_url: str, tmp_path: Path
) -> None:
    """`qf rounds add` then `qf matching --round NAME --method cocm`: the calculator's COCM, run stored as the
    round's."""
    added = qf_cli(migrated_db_url, tmp_path, "rounds", "add", "cli-round", "--pool", "31337:1", "--pool", "10:7")
    assert added.returncode == 0, added.stderr
    listed = qf_cli(migrated_db_url, tmp_path, "rounds", "list")
    assert "cli-round 10:7 31337:1" in listed.stdout.splitlines()
    run = qf_cli(migrated_db_url, tmp_path, "matching", "--round", "cli-round", "--method", "cocm",
                 "--min-donation", "1", "--exclude-self", "--format", "json")  # fmt: skip
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert (out["round"], out["chain_id"], out["pool_id"], out["pools"]) == ("cli-round", None, None,
                                                                             [[10, 7], [31337, 1]])  # fmt: skip
    got = {r["recipient_id"]: r["match"] for r in out["results"]}
    assert got == pytest.approx(calculator("COCM", min_donation=1.0), abs=1e-6)
    stored = conn.execute("SELECT round, chain_id, pool_id, pool_amount, params->'pools' FROM qf.matching_runs "
                          "WHERE run_id = %s", (out["run_id"],)).fetchone()  # fmt: skip
    assert stored == ("cli-round", None, None, Decimal(1300), [[10, 7], [31337, 1]])
    both = qf_cli(migrated_db_url, tmp_path, "matching", "--round", "cli-round", "--pool", "1")
    assert both.returncode != 0
    assert "--pool ID or --round NAME" in both.stderr


def test_a_run_of_a_round_is_stored_with_the_round(conn: psycopg.Connection) -> None:
    """qf.matching_runs holds a round's run with the round's name and no single chain or pool."""
    result = match_round(conn, "gg-test", methods=("standard",))
    run_id = store(conn, result, "standard")
    conn.commit()
    row = conn.execute("SELECT round, chain_id, pool_id, projects FROM qf.matching_runs WHERE run_id = %s",
                       (run_id,)).fetchone()  # fmt: skip
    assert row == ("gg-test", None, None, 3)
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO qf.matching_runs (chain_id, pool_id, round, method, params, pool_amount, donors, "
                     "projects) VALUES (1, 1, 'gg-test', 'standard', '{}', 0, 0, 0)")  # fmt: skip
    conn.rollback()
    totals: dict[str, float] = defaultdict(float)
    for v in calculator_votes():
        totals[str(v["project"])] += float(v["amountUSD"])  # type: ignore[arg-type]
    amounts = {"0x" + bytes(r).hex(): float(a) for r, a in conn.execute(
        "SELECT recipient_id, amount FROM qf.matching_results WHERE run_id = %s", (run_id,))}  # fmt: skip
    assert amounts == pytest.approx(dict(totals))


# -- the round in psql ---------------------------------------------------------------------------


def test_the_round_views_count_one_donor_and_one_project_across_chains(conn: psycopg.Connection) -> None:
    """qf.round_summary/_projects/_donors and qf.donor_chains: an address is one donor on every chain, a
    recipient id one project, and "eligible" is exactly what the round's matching counts."""
    summary = conn.execute(
        "SELECT pools, chains, donors, donors_on_several_chains, donations, eligible_donations, amount_usd, unpriced, "
        "projects FROM qf.round_summary WHERE round = 'gg-test'"
    ).fetchone()
    several = {g.donor for g in GIFTS if {h.chain for h in GIFTS if h.donor == g.donor} == {CHAIN_A, CHAIN_B}}
    eligible = [g for g in GIFTS if g.counts or g.token == UNPRICED]
    priced_usd = sum(float(v["amountUSD"]) for v in calculator_votes())  # type: ignore[arg-type]
    assert summary is not None
    assert summary[:6] == (2, 2, len({g.donor for g in GIFTS}), len(several), len(GIFTS), len(eligible))
    assert float(summary[6]) == pytest.approx(priced_usd)
    assert summary[7:] == (1, 3)

    projects = {
        bytes.fromhex(r[0][2:]): r[1:]
        for r in conn.execute(
            "SELECT recipient_id, chains, donors, donations, unpriced FROM qf.round_projects WHERE round = 'gg-test'"
        ).fetchall()
    }
    assert set(projects) == {P, Q, R}
    donors_of_p = {g.donor for g in GIFTS if g.project == P and g.counts}
    assert projects[P] == ([CHAIN_B, CHAIN_A], len(donors_of_p), sum(g.project == P and g.counts for g in GIFTS), 0)
    assert projects[R][3] == 1  # frank's unpriced gift: eligible, left out of the USD

    alice = conn.execute(
        "SELECT chains, n_chains, donations, projects, amount_usd FROM qf.round_donors WHERE round = 'gg-test' "
        "AND donor = %s", ("0x" + ALICE.hex(),)
    ).fetchone()
    assert alice is not None
    assert alice[:4] == ([CHAIN_B, CHAIN_A], 2, 4, 3)
    assert float(alice[4]) == pytest.approx(10 + 4 + 6 + 1.5)
    everywhere = conn.execute("SELECT chains, n_chains, donations FROM qf.donor_chains WHERE donor = %s",
                              ("0x" + IVAN.hex(),)).fetchone()  # fmt: skip
    assert everywhere == ([CHAIN_A], 1, 2)

    # The views and the matching service agree on what the round holds.
    result = match_round(conn, "gg-test", eligibility=Eligibility())
    assert float(result.round.contributions.sum()) == pytest.approx(priced_usd)
    assert len(result.round.donors) == conn.execute(
        "SELECT count(*) FROM qf.round_donors WHERE round = 'gg-test' AND amount_usd > 0").fetchone()[0]  # type: ignore[index]


def test_the_demo_names_every_chains_pools_one_round_and_shows_it(
    conn: psycopg.Connection, migrated_db_url: str
) -> None:
    """`make demo` step 5 with two chains indexed: one round of every pool with donations, matched as
    `qf matching --round` matches it, sized from qf.round_summary."""
    from rich.console import Console  # noqa: PLC0415

    from qf_sentinel.demo import DEMO_ROUND, show_round  # noqa: PLC0415

    screen = Console(record=True, width=160)
    shown = show_round(migrated_db_url, screen)
    assert shown is not None
    assert round_pools(conn, DEMO_ROUND) == [(CHAIN_B, POOL_B), (CHAIN_A, POOL_A)]
    reference = match_round(conn, "gg-test", methods=("standard", "cocm"))
    assert matched(shown, "standard") == pytest.approx(matched(reference, "standard"), abs=1e-9)
    text = screen.export_text()
    assert f"round {DEMO_ROUND!r}: 2 pools on 2 chains, {len({g.donor for g in GIFTS})} donors" in text
    assert show_round(migrated_db_url, Console(record=True)) is not None  # a second demo run reuses the round
