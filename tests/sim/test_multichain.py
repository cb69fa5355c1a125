"""A simulated round across two chains: the first chain's round as on one chain, a smaller one beside it,
some honest donors giving on both."""

from __future__ import annotations

from qf_sentinel.qf.sim.multichain import donors_on_several_chains, plan_multichain_round
from qf_sentinel.qf.sim.scenario import plan_simulated_round

SIZES = {"honest_donors": 40, "projects_per_pool": 8, "pools": 2}


def test_the_first_chain_holds_the_seeds_round_unchanged() -> None:
    """Training, matching and evaluation read the first chain: it is exactly the one-chain round of the seed."""
    first, _ = plan_multichain_round(7, 2, **SIZES)
    assert first == plan_simulated_round(7, **SIZES)
    assert plan_multichain_round(7, 1, **SIZES) == (first,)


def test_equal_arguments_give_equal_plans() -> None:
    assert plan_multichain_round(7, 3, **SIZES) == plan_multichain_round(7, 3, **SIZES)


def test_a_share_of_the_further_chains_honest_donors_give_on_both() -> None:
    """Donors on both chains are the same wallet (the same key), honest on both; every other wallet of the
    further chain is its own, and its pools and projects have names of their own."""
    first, second = plan_multichain_round(7, 2, both_chains_share=0.5, **SIZES)
    labels = [{label.address: label for label in plan.labels} for plan in (first, second)]
    both = donors_on_several_chains((first, second))
    honest_second = [a for a, label in labels[1].items() if label.pattern == "honest"]
    assert 0 < len(both) < len(honest_second)
    assert all(labels[0][a].pattern == labels[1][a].pattern == "honest" for a in both)
    keys = [{w.address: w.private_key for w in plan.wallets} for plan in (first, second)]
    assert all(keys[0][a] == keys[1][a] for a in both)
    assert set(keys[0]) & set(keys[1]) == both
    assert all(p.name.startswith("chain1/") for p in (*second.pools, *second.projects))
    assert second.name == "sim-7-chain1"
    # Every attack pattern is on the further chain too, in smaller campaigns.
    patterns = {label.pattern for label in second.labels}
    assert patterns >= {"honest", "whale", "sybil_fan_out", "collusion_ring", "self_donation"}
    assert len(second.donations) < len(first.donations)


def test_without_a_share_no_donor_gives_on_both_chains() -> None:
    first, second = plan_multichain_round(7, 2, both_chains_share=0.0, **SIZES)
    assert donors_on_several_chains((first, second)) == set()
