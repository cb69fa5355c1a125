"""The simulator's funding models drawn as rows for in-memory rounds: deterministic, honest and attacker shapes."""

from __future__ import annotations

import hashlib
from collections import Counter

from qf_sentinel.qf.funding.graph import NATIVE, FundingGraph
from qf_sentinel.qf.sim.funding import (
    ATTACK_EXCHANGE_SHARE,
    HONEST_EXCHANGE_SHARE,
    PRE_ROUND_SECONDS,
    Style,
    draw_funding,
)

START = 1_600_000_000.0
TOKEN = b"\x70" * 20


def addr(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()[:20]


def round_of(honest: int, campaigns: dict[str, int]) -> tuple[list[bytes], list[float], dict[bytes, str]]:
    donors = [addr(f"h{i}") for i in range(honest)]
    times = [START + 3_600.0 * (i % 300) for i in range(honest)]
    members: dict[bytes, str] = {}
    for name, size in campaigns.items():
        for k in range(size):
            wallet = addr(f"{name}/{k}")
            donors.append(wallet)
            times.append(START + 86_400.0 + 60.0 * k)
            members[wallet] = name
    return donors, times, members


def test_draws_are_deterministic_and_one_wallets_draw_ignores_the_others() -> None:
    donors, times, members = round_of(50, {"fan_out_burst-0": 10})
    first = draw_funding(donors, times, seed=3, round_start=START, campaigns=members)
    assert first == draw_funding(donors, times, seed=3, round_start=START, campaigns=members)
    assert first != draw_funding(donors, times, seed=4, round_start=START, campaigns=members)
    fewer = draw_funding(donors[:20], times[:20], seed=3, round_start=START)
    kept = {(r.wallet, r.asset): r for r in first.rows}
    assert all(kept[(r.wallet, r.asset)] == r for r in fewer.rows)


def test_honest_donors_are_funded_by_shared_exchanges_or_their_own_older_wallet_before_they_give() -> None:
    donors, times, _ = round_of(2_000, {})
    needs = dict.fromkeys(donors, 5 * 10 ** 18)
    drawn = draw_funding(donors, times, seed=1, round_start=START, token=TOKEN, token_needs=needs)
    graph = FundingGraph(drawn.rows, drawn.sources)
    styles = Counter(drawn.styles.values())
    assert abs(styles[Style.EXCHANGE] / len(donors) - HONEST_EXCHANGE_SHARE) < 0.04
    exchanges = {s.address for s in drawn.sources}
    for donor, t in zip(donors, times, strict=True):
        facts = graph.facts(donor, as_of=t, token=TOKEN)
        assert facts.first is not None
        assert facts.first.time < t
        assert facts.first.time >= START - PRE_ROUND_SECONDS
        assert facts.trail_source is not None
        assert facts.trail_depth == (1 if drawn.styles[donor] is Style.EXCHANGE else 2)
        assert facts.token is not None
        assert facts.token.amount >= 5 * 10**18
    fan_out = Counter(graph.first_funding(d, as_of=1e12).funder for d in donors)  # type: ignore[union-attr]
    assert max(v for k, v in fan_out.items() if k in exchanges) > len(donors) / 3


def test_attack_campaigns_fan_out_peel_or_go_through_an_exchange() -> None:
    """Each family's style; a share of campaigns through an exchange (a known source: no evidence), the rest
    from one wallet that funded the whole campaign, and attackers' tokens exactly their need."""
    campaigns = {f"{family}-{c}": 12 for family in ("fan_out_burst", "closed_ring", "slow_drip") for c in range(40)}
    donors, times, members = round_of(0, campaigns)
    needs = dict.fromkeys(donors, 1010000000000000000)
    drawn = draw_funding(donors, times, seed=9, round_start=START, campaigns=members, token=TOKEN, token_needs=needs)
    graph = FundingGraph(drawn.rows, drawn.sources)
    by_campaign: dict[str, set[Style]] = {}
    for donor, campaign in members.items():
        by_campaign.setdefault(campaign, set()).add(drawn.styles[donor])
    assert all(len(s) == 1 for s in by_campaign.values())
    via = [c for c, s in by_campaign.items() if s == {Style.VIA_EXCHANGE}]
    assert abs(len(via) / len(by_campaign) - ATTACK_EXCHANGE_SHARE) < 0.1
    for donor, campaign in members.items():
        style = drawn.styles[donor]
        at = times[donors.index(donor)]
        facts = graph.facts(donor, as_of=at, token=TOKEN)
        assert facts.first is not None
        if style is Style.VIA_EXCHANGE:
            assert facts.funder_source is not None
        elif style is Style.DIRECT_FAN_OUT:
            assert campaign.startswith("fan_out_burst")
            assert graph.fan_out(facts.first.funder, as_of=1e12) == 12
            assert 120 <= at - facts.first.time <= 1_800
            assert facts.token is not None
            assert facts.token.amount == needs[donor]
        elif style is Style.PEEL_CHAIN:
            assert campaign.startswith("closed_ring")
            assert graph.fan_out(facts.first.funder, as_of=1e12) == 1
        else:
            assert style is Style.STAGGERED
            assert 2 * 3_600 <= at - facts.first.time <= 5 * 86_400
    depths = Counter(graph.facts(d, as_of=1e12).trail_depth for d, c in members.items()
                     if by_campaign[c] == {Style.PEEL_CHAIN})  # fmt: skip
    assert depths[3] > depths[2] > 0  # the first hop: the attacker's wallet, then its exchange
    assert all(r.asset in (NATIVE, TOKEN) for r in drawn.rows)
