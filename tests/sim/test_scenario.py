"""The synthetic round planner: deterministic, realistic, and honest about its labels."""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.sim.plan import Donation, RecipientStatus, RoundPlan, Token
from qf_sentinel.qf.sim.scenario import ETH_PRICE_USD, plan_simulated_round
from qf_sentinel.qf.sim.wallets import derive_wallet, erc20_mints, token_mints
from tests.sim.checks import assert_well_formed

PATTERNS = {
    "honest": False,
    "whale": False,
    "sybil_fan_out": True,
    "collusion_ring": True,
    "self_donation": True,
}


@pytest.fixture(scope="module")
def plan() -> RoundPlan:
    """The default round for seed 7."""
    return plan_simulated_round(7)


def _pattern_of(plan: RoundPlan) -> dict[int, str]:
    by_address = {label.address: label.pattern for label in plan.labels}
    return {i: by_address[w.address] for i, w in enumerate(plan.wallets) if w.address in by_address}


def _funder_of(plan: RoundPlan) -> dict[int, int | None]:
    return {f.target: f.source for f in plan.fundings}


def _by_pattern(plan: RoundPlan, pattern: str) -> list[Donation]:
    patterns = _pattern_of(plan)
    return [d for d in plan.donations if patterns[d.donor] == pattern]


def _usd(donation: Donation) -> Decimal:
    tokens = Decimal(donation.amount) / 10**18
    return tokens if donation.token is Token.ERC20 else tokens * ETH_PRICE_USD


def test_same_seed_gives_an_equal_plan(plan: RoundPlan) -> None:
    """Planning seed 7 again gives an equal RoundPlan."""
    assert plan_simulated_round(7) == plan


def test_different_seeds_give_different_plans(plan: RoundPlan) -> None:
    """Another seed changes the wallets and the donations."""
    other = plan_simulated_round(8)
    assert other != plan
    assert not {w.address for w in other.wallets} & {w.address for w in plan.wallets}
    assert [d.amount for d in other.donations] != [d.amount for d in plan.donations]


def test_default_plan_is_well_formed(plan: RoundPlan) -> None:
    """Sorted donations inside the windows, to accepted projects only, every wallet funded."""
    assert_well_formed(plan)
    assert plan.skipped == {}
    assert plan.seed == 7


def test_every_wallet_is_funded_exactly_once(plan: RoundPlan) -> None:
    """Each wallet sends transactions, so each receives exactly one funding."""
    assert sorted(f.target for f in plan.fundings) == list(range(len(plan.wallets)))


def test_every_pattern_is_present_with_its_sybil_flag(plan: RoundPlan) -> None:
    """All five patterns label donors, with is_sybil set by the pattern."""
    assert {label.pattern for label in plan.labels} == set(PATTERNS)
    for label in plan.labels:
        assert label.is_sybil is PATTERNS[label.pattern]
    for pattern in PATTERNS:
        assert _by_pattern(plan, pattern), f"no donation from {pattern}"


def test_labels_are_exactly_the_donors(plan: RoundPlan) -> None:
    """One label per donor address, and none for wallets that never donate."""
    donors = {plan.wallets[d.donor].address for d in plan.donations}
    labelled = [label.address for label in plan.labels]
    assert len(labelled) == len(set(labelled))
    assert set(labelled) == donors


def test_some_projects_are_rejected_or_pending_and_get_nothing(plan: RoundPlan) -> None:
    """Rejected and pending projects exist, and no donation is planned to them."""
    statuses = {p.status for p in plan.projects}
    assert {RecipientStatus.REJECTED, RecipientStatus.PENDING} <= statuses
    closed = {i for i, p in enumerate(plan.projects) if p.status is not RecipientStatus.ACCEPTED}
    assert not {d.project for d in plan.donations} & closed


def test_pools_and_donations_mix_both_assets(plan: RoundPlan) -> None:
    """One pool matches in ERC-20 and one in ETH, and donors use both assets."""
    assert {p.token for p in plan.pools} == {Token.ERC20, Token.NATIVE}
    assert all(p.matching_amount > 0 for p in plan.pools)
    assert {d.token for d in plan.donations} == {Token.ERC20, Token.NATIVE}


def _cluster_of(plan: RoundPlan) -> dict[int, int]:
    """Fan-out sybil -> its cluster, from the wallet's name (fanout/<cluster>/<k>: addresses are derived from it)."""
    by_address = {derive_wallet(plan.name, f"fanout/{c}/{k}").address: c for c in range(8) for k in range(40)}
    return {i: by_address[w.address] for i, w in enumerate(plan.wallets) if w.address in by_address}


def _first_at(plan: RoundPlan) -> dict[int, float]:
    first: dict[int, float] = {}
    for d in plan.donations:
        first.setdefault(d.donor, d.at_seconds)
    return first


def test_fan_out_clusters_are_fresh_and_funded_in_their_style(plan: RoundPlan) -> None:
    """Cluster 0 from one attacker wallet minutes before each gives, cluster 1 along a peel chain (each sybil
    funded by the one before), cluster 2 straight from an exchange-like source (a known source)."""
    clusters, funder_of, first_at = _cluster_of(plan), _funder_of(plan), _first_at(plan)
    at_of = {f.target: f.at_seconds for f in plan.fundings}
    exchanges = {s.wallet for s in plan.sources}
    patterns = _pattern_of(plan)
    assert all(plan.wallets[i].prior_nonce == 0 for i in clusters)
    by_cluster: dict[int, list[int]] = defaultdict(list)
    for wallet, cluster in clusters.items():
        by_cluster[cluster].append(wallet)
    direct, peel, via = (sorted(by_cluster[c], key=lambda w: first_at[w]) for c in range(3))
    assert len({funder_of[w] for w in direct}) == 1
    assert not {funder_of[w] for w in direct} & (set(patterns) | exchanges)
    assert all(2 * 60 <= first_at[w] - at_of[w] <= 30 * 60 for w in direct if at_of[w] > -13 * 86_400)
    in_chain = [funder_of[w] for w in peel]
    assert sum(f in peel for f in in_chain) == len(peel) - 1, "every peel hop but the first is funded by a sybil"
    assert all(funder_of[w] in exchanges for w in via)
    assert {label.funding for label in plan.labels if label.pattern == "sybil_fan_out"} == {
        "direct_fan_out", "peel_chain", "via_exchange"
    }


def test_funding_precedes_first_action_and_people_withdraw_round_amounts(plan: RoundPlan) -> None:
    """Every timed funding comes before its wallet first gives; honest donors get round amounts from a few shared
    exchanges or their own older wallet; attackers get exactly their need (their tokens: exactly the gifts)."""
    first_at, funder_of = _first_at(plan), _funder_of(plan)
    patterns, exchanges = _pattern_of(plan), {s.wallet for s in plan.sources}
    by_target = {f.target: f for f in plan.fundings}
    for donor, at in first_at.items():
        funding = by_target[donor]
        assert funding.at_seconds is not None
        assert funding.at_seconds < at
    styles = {label.address: label.funding for label in plan.labels}
    honest = [i for i, p in patterns.items() if p == "honest"]
    assert {styles[plan.wallets[i].address] for i in honest} == {"exchange", "personal_wallet"}
    for i in honest:
        funder = funder_of[i]
        assert funder in exchanges or funder_of[funder] in exchanges
        assert (by_target[i].amount * 1000) % 10**18 == 0, "a person withdraws a round amount"
    shares = Counter(funder_of[i] for i in honest if funder_of[i] in exchanges)
    assert len(shares) == len(exchanges)
    assert max(shares.values()) > len(honest) / 3
    due = erc20_mints(plan.donations)
    sybils = [i for i, p in patterns.items() if p == "sybil_fan_out" and i in due
              and styles[plan.wallets[i].address] in ("direct_fan_out", "via_exchange")]  # a peel hop passes on more
    assert sybils
    assert all(by_target[i].token_amount == due[i] for i in sybils), "an attacker sends exactly the gifts"
    assert all(by_target[i].token_amount >= due[i] for i in honest if i in due)


def test_fan_out_gives_near_equal_gifts_in_bursts(plan: RoundPlan) -> None:
    """Each cluster's gifts to its target are 1.00-1.05 USD and seconds apart."""
    cluster_of = _cluster_of(plan)
    clusters: dict[int | None, list[Donation]] = defaultdict(list)
    for donation in _by_pattern(plan, "sybil_fan_out"):
        clusters[cluster_of[donation.donor]].append(donation)
    for donations in clusters.values():
        assert all(Decimal("0.99") <= _usd(d) <= Decimal("1.06") for d in donations)
        target = max({d.project for d in donations}, key=lambda p: sum(d.project == p for d in donations))
        times = [d.at_seconds for d in donations if d.project == target]
        assert len(times) >= len({d.donor for d in donations}) - 1
        assert max(b - a for a, b in pairwise(times)) < 60
        assert times[-1] - times[0] < 60 * len(times)


def test_collusion_ring_owners_donate_to_each_other(plan: RoundPlan) -> None:
    """Ring donors give only to ring projects, whose owners are ring donors, never their own."""
    patterns = _pattern_of(plan)
    ring = _by_pattern(plan, "collusion_ring")
    ring_projects = {d.project for d in ring}
    owners = {plan.projects[p].owner for p in ring_projects}
    assert all(patterns.get(o) == "collusion_ring" for o in owners)
    assert len(ring_projects) >= 2
    for donation in ring:
        assert plan.projects[donation.project].owner != donation.donor
    helpers = {d.donor for d in ring} - owners
    funder_of = _funder_of(plan)
    assert helpers
    assert all(funder_of[h] in owners for h in helpers)


def test_self_donors_are_fresh_wallets_funded_by_the_owner(plan: RoundPlan) -> None:
    """Self-donation wallets are fresh, funded by the owner of the project they give to."""
    funder_of = _funder_of(plan)
    donations = _by_pattern(plan, "self_donation")
    for donation in donations:
        assert plan.wallets[donation.donor].prior_nonce == 0
        assert funder_of[donation.donor] == plan.projects[donation.project].owner


def test_honest_wallets_are_mostly_old_and_amounts_heavy_tailed(plan: RoundPlan) -> None:
    """Honest wallets span young to very old, and whales give far more than the median donor."""
    patterns = _pattern_of(plan)
    nonces = sorted(plan.wallets[i].prior_nonce for i, p in patterns.items() if p == "honest")
    assert nonces[len(nonces) // 2] >= 5
    assert nonces[-1] >= 200
    honest = sorted(_usd(d) for d in _by_pattern(plan, "honest"))
    whale = [_usd(d) for d in _by_pattern(plan, "whale")]
    assert honest[-1] > 20 * honest[len(honest) // 2]
    assert min(whale) > 50 * honest[len(honest) // 2]


def test_activity_crowds_the_start_and_the_end(plan: RoundPlan) -> None:
    """The first and last tenth of the window each hold more than a tenth of honest gifts."""
    duration = plan.pools[0].duration_seconds
    times = [d.at_seconds for d in _by_pattern(plan, "honest")]
    assert sum(t < duration / 10 for t in times) > len(times) / 5
    assert sum(t > duration * 9 / 10 for t in times) > len(times) / 5


def test_token_mints_leave_every_wallet_enough_tokens(plan: RoundPlan) -> None:
    """Minted plus received minus passed on covers each wallet's ERC-20 donations; exchanges are minted, donors
    are sent their tokens by whoever funds them."""
    mints = token_mints(plan)
    balance = Counter(mints)
    for f in plan.fundings:
        balance[f.target] += f.token_amount
        if f.source is not None:
            balance[f.source] -= f.token_amount
    for donor, due in erc20_mints(plan.donations).items():
        assert balance[donor] >= due
    assert all(balance[w] >= 0 for w in range(len(plan.wallets)))
    assert set(mints) == {s.wallet for s in plan.sources}


def test_sizes_are_parameters() -> None:
    """Donor and project counts follow the arguments."""
    small = plan_simulated_round(
        3,
        honest_donors=10,
        projects_per_pool=8,
        pools=1,
        whales=1,
        fan_out_clusters=1,
        fan_out_size=4,
        ring_helpers=1,
        self_donation_projects=1,
        self_donation_wallets=2,
    )
    patterns = list(_pattern_of(small).values())
    assert len(small.projects) == 8
    assert len(small.pools) == 1
    assert patterns.count("honest") == 10
    assert patterns.count("sybil_fan_out") == 4
    assert patterns.count("self_donation") == 2
    assert patterns.count("collusion_ring") == 4 + 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": -1}, "seed"),
        ({"seed": 1, "projects_per_pool": 2}, "accepted project"),
        ({"seed": 1, "projects_per_pool": 5, "ring_size": 4}, "collusion ring 0"),
        ({"seed": 1, "ring_size": 1}, "ring_size"),
        ({"seed": 1, "honest_donors": -3}, "honest_donors"),
        ({"seed": 1, "duration_seconds": 60}, "duration_seconds"),
        (
            {"seed": 1, "projects_per_pool": 7, "pools": 1, "self_donation_projects": 2},
            "self_donation_projects",
        ),
    ],
)
def test_impossible_sizes_raise_config_error(kwargs: dict[str, int], message: str) -> None:
    """Sizes that cannot be planned raise ConfigError naming the culprit."""
    with pytest.raises(ConfigError, match=message):
        plan_simulated_round(**kwargs)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    pools=st.integers(1, 3),
    extra_projects=st.integers(0, 4),
    honest=st.integers(0, 15),
    whales=st.integers(0, 2),
    clusters=st.integers(0, 2),
    cluster_size=st.integers(1, 5),
    rings=st.integers(0, 1),
    ring_size=st.integers(2, 3),
    selfish=st.integers(0, 1),
    duration=st.integers(3_600, 30 * 86_400),
)
def test_small_rounds_keep_every_invariant(
    seed: int,
    pools: int,
    extra_projects: int,
    honest: int,
    whales: int,
    clusters: int,
    cluster_size: int,
    rings: int,
    ring_size: int,
    selfish: int,
    duration: int,
) -> None:
    """Any seed and small sizes give a well-formed, reproducible, truthfully labelled plan."""
    kwargs = {
        "honest_donors": honest,
        "pools": pools,
        "whales": whales,
        "projects_per_pool": 2 + ring_size + selfish + 1 + extra_projects,
        "fan_out_clusters": clusters,
        "fan_out_size": cluster_size,
        "collusion_rings": rings,
        "ring_size": ring_size,
        "ring_helpers": 1,
        "self_donation_projects": selfish,
        "self_donation_wallets": 2,
        "duration_seconds": duration,
    }
    plan = plan_simulated_round(seed, **kwargs)
    assert_well_formed(plan)
    assert plan == plan_simulated_round(seed, **kwargs)
    patterns = _pattern_of(plan)
    assert set(patterns.values()) <= set(PATTERNS)
    assert list(patterns.values()).count("sybil_fan_out") == clusters * cluster_size
    for index, pattern in patterns.items():
        if pattern in {"sybil_fan_out", "self_donation"}:
            assert plan.wallets[index].prior_nonce == 0
