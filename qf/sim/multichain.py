"""A simulated round across several chains (``qf simulate`` on a devnet of two chains): a plan per chain.

Gitcoin rounds run on several chains at once, and people give on more than one. The first chain
holds the round exactly as :func:`~qf.sim.scenario.plan_simulated_round` plans it on one chain (so a
seed's first chain is what it always was: training, matching and evaluation read it unchanged).
Each further chain holds a smaller round of its own (half the honest donors, half the projects per
pool, smaller attack campaigns; every pattern is there), with its own wallets, pools, projects and
funding, except that a share of its honest donors are the first chain's (the same keys): they give
on both chains. Sybils stay on their chain: a campaign is planned, funded and labelled per chain.
"""

from __future__ import annotations

from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.sim.plan import RoundPlan
from qf_sentinel.qf.sim.scenario import plan_simulated_round

#: Share of a further chain's honest donors who also give on the first chain.
DEFAULT_BOTH_CHAINS_SHARE = 0.25
#: Fewest projects per pool that host a further chain's collusion ring (4 accepted after 2 held back).
_MIN_PROJECTS_PER_POOL = 8


def plan_multichain_round(
    seed: int,
    chains: int,
    *,
    honest_donors: int = 300,
    projects_per_pool: int = 20,
    pools: int = 2,
    both_chains_share: float = DEFAULT_BOTH_CHAINS_SHARE,
) -> tuple[RoundPlan, ...]:
    """One plan per chain, first chain first; equal arguments give equal plans."""
    if chains < 1:
        raise ConfigError(f"a round needs at least one chain, got {chains}")
    first = plan_simulated_round(seed, honest_donors=honest_donors, projects_per_pool=projects_per_pool, pools=pools)
    per_pool = min(projects_per_pool, max(projects_per_pool // 2, _MIN_PROJECTS_PER_POOL))
    further = tuple(_further(seed, k, share=both_chains_share, honest_donors=max(1, honest_donors // 2),
                             projects_per_pool=per_pool, pools=pools) for k in range(1, chains))  # fmt: skip
    return (first, *further)


def _further(seed: int, chain: int, *, share: float, honest_donors: int, projects_per_pool: int,
             pools: int) -> RoundPlan:  # fmt: skip
    """A further chain's smaller round: every attack pattern, in smaller campaigns."""
    return plan_simulated_round(
        seed, chain=chain, both_chains_share=share, honest_donors=honest_donors, projects_per_pool=projects_per_pool,
        pools=pools, fan_out_clusters=2, fan_out_size=12, self_donation_wallets=4,
    )  # fmt: skip


def donors_on_several_chains(plans: tuple[RoundPlan, ...]) -> set[str]:
    """Addresses that donate on more than one of the plans' chains."""
    seen: dict[str, int] = {}
    for plan in plans:
        for address in {plan.wallets[d.donor].address for d in plan.donations}:
            seen[address] = seen.get(address, 0) + 1
    return {address for address, n in seen.items() if n > 1}
