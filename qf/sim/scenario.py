"""Synthetic QF rounds with labelled sybil patterns, planned from a seed (``qf simulate``).

:func:`plan_simulated_round` turns a seed and a few sizes into a complete
:class:`~qf.sim.plan.RoundPlan`: honest donors, a few whales and three known
attack patterns, each donor labelled with the pattern that produced it so the
scorer can be measured against ground truth. All randomness comes from one
``numpy.random.default_rng(seed)``, so the same arguments give an equal plan and
nothing else in the process can disturb it.

What the round looks like:

* ``pools`` pools alternate between the ERC-20 test token (even index) and native
  ETH (odd index) as matching asset. Every pool must accept donations in both
  assets: donors mix ETH and ERC-20 (amounts are drawn in USD and converted at
  :data:`ETH_PRICE_USD`; one token is one USD).
* Projects have a Zipf-like popularity within their pool. A few per pool are
  ``REJECTED`` or ``PENDING``; the strategy reverts donations to them, so the
  plan holds none.
* Honest donors (pattern ``honest``) check out one or two carts of projects at
  times crowded near the start and the end of the window, with heavy-tailed
  amounts, and mostly old wallets (heavy-tailed ``prior_nonce``). Whales
  (``whale``) are honest donors with large amounts.
* ``sybil_fan_out``: a funder seeds many fresh wallets that each give a
  near-equal round amount (1.00-1.05 tokens, or its ETH equivalent) to one
  target project, seconds apart; some add a decoy donation to a popular one.
* ``collusion_ring``: the owners of a ring of projects, and helper wallets one
  of them funds, donate to every project of the ring but their own.
* ``self_donation``: a project owner funds fresh wallets that donate back to
  the owner's project.

Funding (``qf.sim.funding``, drawn from a random stream of its own, so a seed's
donations are what they were before funding was planned): three exchange-like
accounts (``RoundPlan.sources``) are funded by the faucet at setup; honest donors,
whales and project owners get their first money from one of them, or from their
own older wallet, hours to weeks before they first act; fan-out clusters are
funded in turn by direct fan-out, a peel chain, an exchange and staggered, and
self-donating owners and ring owners fund their wallets staggered. Each donor's
label names its funding pattern (``Label.funding``).

Conventions the executor relies on (see ``wallets``): every wallet in the plan
receives exactly one ``Funding`` with gas plus the ETH it moves (exactly, for
attackers; rounded up, for people) and the tokens it donates or passes on;
fundings are listed in execution order (a funder is funded before it funds, and
no later); the executor mints what a wallet's tokens fall short by
(``wallets.token_mints``: the exchange-like accounts); project owners register
their projects themselves, so they are funded even when they never donate.
Wallet keys are derived from namespace ``sim-{seed}``. A round across several chains
(``qf.sim.multichain``) plans each further chain's part with ``chain`` > 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.sim import funding as fm
from qf_sentinel.qf.sim.plan import (
    Donation,
    Funding,
    Label,
    Pool,
    Project,
    RecipientStatus,
    RoundPlan,
    Source,
    Token,
    Wallet,
)
from qf_sentinel.qf.sim.wallets import derive_wallet, gas_allowance_wei

#: Fixed exchange rate for the simulation; one ERC-20 test token is one USD.
ETH_PRICE_USD = 2_000
#: Base units per whole token or ETH (both have 18 decimals).
UNIT = 10**18
#: Native amounts are rounded to micro-ETH, as wallets display them.
_WEI_PER_MICRO_ETH = 10**12
#: Preset amounts in USD a donation form offers, and how often people pick each.
_PRESET_USD = (1, 2, 3, 5, 10, 25, 50, 100)
_PRESET_WEIGHTS = (0.22, 0.12, 0.08, 0.22, 0.18, 0.09, 0.05, 0.04)
_MAX_CART = 12
_MIN_DURATION_SECONDS = 3_600
#: Sessions start this long before the close so a cart's donations fit in the window.
_SESSION_ROOM_SECONDS = 900.0

Rng = np.random.Generator


@dataclass(frozen=True, slots=True)
class _Campaign:
    """Attacker wallets funded together (``qf.sim.funding.attack_edges``), by ``root`` when they have one."""

    name: str
    style: fm.Style
    members: list[int]
    root: int | None = None


@dataclass
class _Draft:
    """Mutable scratch space of one planning run; frozen into a RoundPlan at the end."""

    namespace: str
    #: Idents whose wallet comes from ``shared_namespace`` instead (the first chain's donors who also give here).
    shared: frozenset[str] = frozenset()
    shared_namespace: str = ""
    wallets: list[Wallet] = field(default_factory=list)
    #: Parallel to ``wallets``: the name each was derived from (funding edges name wallets by it).
    idents: list[str] = field(default_factory=list)
    projects: list[Project] = field(default_factory=list)
    donations: list[Donation] = field(default_factory=list)
    labels: dict[int, Label] = field(default_factory=dict)
    campaigns: list[_Campaign] = field(default_factory=list)

    def wallet(self, ident: str, prior_nonce: int = 0) -> int:
        namespace = self.shared_namespace if ident in self.shared else self.namespace
        self.wallets.append(derive_wallet(namespace, ident, prior_nonce))
        self.idents.append(ident)
        return len(self.wallets) - 1

    def label(self, index: int, pattern: str, *, is_sybil: bool) -> None:
        self.labels[index] = Label(self.wallets[index].address, is_sybil, pattern)

    def donate(self, at_seconds: float, donor: int, project: int, token: Token, cents: int) -> None:
        amount = _units(cents, token)
        self.donations.append(Donation(at_seconds, donor, project, token, amount))


def plan_simulated_round(
    seed: int,
    *,
    honest_donors: int = 300,
    projects_per_pool: int = 20,
    pools: int = 2,
    whales: int = 4,
    fan_out_clusters: int = 3,
    fan_out_size: int = 25,
    collusion_rings: int = 1,
    ring_size: int = 4,
    ring_helpers: int = 3,
    self_donation_projects: int = 2,
    self_donation_wallets: int = 6,
    rejected_per_pool: int = 1,
    pending_per_pool: int = 1,
    matching_usd: int = 50_000,
    duration_seconds: int = 7 * 86_400,
    chain: int = 0,
    both_chains_share: float = 0.0,
) -> RoundPlan:
    """Plan a synthetic round; equal arguments give an equal plan.

    ``chain`` > 0 plans the round's part on a further chain (``qf.sim.multichain``): its own random
    streams, wallets (namespace ``sim-{seed}-chain{chain}``) and pool and project names, except that
    each honest donor is, with probability ``both_chains_share``, the first chain's honest donor of the
    same number (the same key: a person who gives on both chains). ``chain`` 0 is the plan as it
    always was.

    Raises ``ConfigError`` when the sizes cannot be satisfied (for example too
    few accepted projects to host the collusion rings).
    """
    _check_sizes(
        seed=seed,
        pools=pools,
        projects_per_pool=projects_per_pool,
        accepted_per_pool=projects_per_pool - rejected_per_pool - pending_per_pool,
        counts={
            "honest_donors": honest_donors,
            "whales": whales,
            "fan_out_clusters": fan_out_clusters,
            "fan_out_size": fan_out_size,
            "collusion_rings": collusion_rings,
            "ring_helpers": ring_helpers,
            "self_donation_projects": self_donation_projects,
            "self_donation_wallets": self_donation_wallets,
            "rejected_per_pool": rejected_per_pool,
            "pending_per_pool": pending_per_pool,
            "matching_usd": matching_usd,
        },
        ring_size=ring_size if collusion_rings else 2,
        duration_seconds=duration_seconds,
    )
    if chain < 0 or not 0.0 <= both_chains_share <= 1.0:
        raise ConfigError(f"chain must be >= 0 and both_chains_share in [0, 1], got {chain}, {both_chains_share}")
    rng = np.random.default_rng(seed if chain == 0 else [seed, chain])
    name = f"sim-{seed}" if chain == 0 else f"sim-{seed}-chain{chain}"
    shared: frozenset[str] = frozenset()
    if chain > 0 and both_chains_share > 0:
        draws = np.random.default_rng([seed, 0x5A, chain]).random(honest_donors)
        shared = frozenset(f"honest/{i}" for i in np.flatnonzero(draws < both_chains_share))
    draft = _Draft(namespace=name, shared=shared, shared_namespace=f"sim-{seed}")
    prefix = "" if chain == 0 else f"chain{chain}/"
    plan_pools = tuple(_pool(i, matching_usd, duration_seconds, prefix) for i in range(pools))
    accepted = _add_projects(
        draft,
        rng,
        pools=pools,
        per_pool=projects_per_pool,
        rejected=rejected_per_pool,
        pending=pending_per_pool,
        prefix=prefix,
    )
    popularity = [_popularity(rng, len(ids)) for ids in accepted]
    rings, selfish = _reserve_projects(rng, accepted, collusion_rings, ring_size, self_donation_projects)

    _add_honest(
        draft,
        rng,
        accepted=accepted,
        popularity=popularity,
        count=honest_donors,
        duration=duration_seconds,
    )
    _add_whales(
        draft,
        rng,
        accepted=accepted,
        popularity=popularity,
        count=whales,
        duration=duration_seconds,
    )
    for cluster in range(fan_out_clusters):
        _add_fan_out(
            draft,
            rng,
            cluster=cluster,
            accepted=accepted,
            popularity=popularity,
            size=fan_out_size,
            duration=duration_seconds,
        )
    for ring, members in enumerate(rings):
        _add_ring(draft, rng, ring=ring, members=members, helpers=ring_helpers, duration=duration_seconds)
    for project in selfish:
        _add_self_donation(draft, rng, project, self_donation_wallets, duration_seconds)

    # Funding draws from a stream of its own: the donations of a seed are what they were before funding was planned.
    fundings, sources, styles = _plan_funding(draft, np.random.default_rng([seed, 0xF0] + ([chain] if chain else [])))
    labels = [replace(draft.labels[i], funding=styles.get(i, "")) for i in sorted(draft.labels)]
    return RoundPlan(
        name=name,
        seed=seed,
        pools=plan_pools,
        wallets=tuple(draft.wallets),
        projects=tuple(draft.projects),
        fundings=tuple(fundings),
        donations=tuple(sorted(draft.donations, key=lambda d: d.at_seconds)),
        labels=tuple(labels),
        skipped={},
        sources=tuple(sources),
    )


def _check_sizes(
    *,
    seed: int,
    pools: int,
    projects_per_pool: int,
    accepted_per_pool: int,
    counts: dict[str, int],
    ring_size: int,
    duration_seconds: int,
) -> None:
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}")
    if pools < 1 or projects_per_pool < 1:
        raise ConfigError(
            f"need at least one pool and one project per pool, got "
            f"pools={pools}, projects_per_pool={projects_per_pool}"
        )
    for name, value in counts.items():
        if value < 0:
            raise ConfigError(f"{name} must be >= 0, got {value}")
    if accepted_per_pool < 1:
        raise ConfigError(
            f"every pool needs an accepted project: projects_per_pool="
            f"{projects_per_pool} leaves {accepted_per_pool} after rejected "
            "and pending ones"
        )
    if ring_size < 2:
        raise ConfigError(f"ring_size must be >= 2, got {ring_size}")
    if duration_seconds < _MIN_DURATION_SECONDS:
        raise ConfigError(f"duration_seconds must be >= {_MIN_DURATION_SECONDS}, got {duration_seconds}")


def _pool(index: int, matching_usd: int, duration_seconds: int, prefix: str = "") -> Pool:
    if index % 2 == 0:
        return Pool(f"{prefix}pool-{index}", Token.ERC20, matching_usd * UNIT, duration_seconds)
    return Pool(f"{prefix}pool-{index}", Token.NATIVE, matching_usd * UNIT // ETH_PRICE_USD, duration_seconds)


def _add_projects(
    draft: _Draft, rng: Rng, *, pools: int, per_pool: int, rejected: int, pending: int, prefix: str = ""
) -> list[list[int]]:
    """Register every project with its own owner wallet; return accepted ids per pool."""
    accepted: list[list[int]] = []
    for pool in range(pools):
        statuses = [RecipientStatus.ACCEPTED] * per_pool
        order = rng.permutation(per_pool)
        for k in order[:rejected]:
            statuses[k] = RecipientStatus.REJECTED
        for k in order[rejected : rejected + pending]:
            statuses[k] = RecipientStatus.PENDING
        ids = []
        for j, status in enumerate(statuses):
            owner = draft.wallet(f"owner/{pool}/{j}", _old_nonce(rng))
            draft.projects.append(Project(pool, f"{prefix}pool-{pool}/project-{j:03d}", owner, status))
            if status is RecipientStatus.ACCEPTED:
                ids.append(len(draft.projects) - 1)
        accepted.append(ids)
    return accepted


def _popularity(rng: Rng, n: int) -> np.ndarray:
    """Zipf-like weights over ``n`` projects in a random order: a few draw most donors."""
    weights = 1.0 / np.arange(1, n + 1) ** 1.1
    shuffled: np.ndarray = weights[rng.permutation(n)] / weights.sum()
    return shuffled


def _reserve_projects(
    rng: Rng, accepted: list[list[int]], rings: int, ring_size: int, selfish: int
) -> tuple[list[list[int]], list[int]]:
    """Pick disjoint accepted projects for collusion rings and self-donating owners."""
    free = [list(rng.permutation(ids)) for ids in accepted]
    ring_members: list[list[int]] = []
    for ring in range(rings):
        roomy = [p for p, ids in enumerate(free) if len(ids) >= ring_size]
        if not roomy:
            raise ConfigError(
                f"collusion ring {ring} needs {ring_size} accepted projects in one "
                "pool; raise projects_per_pool or lower ring_size/collusion_rings"
            )
        pool = roomy[int(rng.integers(len(roomy)))]
        ring_members.append([int(p) for p in free[pool][:ring_size]])
        free[pool] = free[pool][ring_size:]
    left = [int(p) for ids in free for p in ids]
    if len(left) < selfish:
        raise ConfigError(
            f"self_donation_projects={selfish} needs that many accepted projects "
            f"outside the collusion rings, only {len(left)} left"
        )
    chosen = rng.choice(len(left), size=selfish, replace=False)
    return ring_members, sorted(left[int(k)] for k in chosen)


def _add_honest(
    draft: _Draft,
    rng: Rng,
    *,
    accepted: list[list[int]],
    popularity: list[np.ndarray],
    count: int,
    duration: int,
) -> None:
    for i in range(count):
        nonce = _old_nonce(rng) if rng.random() < 0.85 else int(rng.integers(0, 5))
        donor = draft.wallet(f"honest/{i}", nonce)
        draft.label(donor, "honest", is_sybil=False)
        native_share = float(rng.choice((0.0, 1.0, 0.5), p=(0.6, 0.25, 0.15)))
        sessions = 2 if rng.random() < 0.2 else 1
        for _ in range(sessions):
            pool = int(rng.integers(len(accepted)))
            size = min(int(rng.geometric(0.35)), len(accepted[pool]), _MAX_CART)
            cart = rng.choice(accepted[pool], size=size, replace=False, p=popularity[pool])
            at = _activity_time(rng, duration)
            for project in cart:
                token = Token.NATIVE if rng.random() < native_share else Token.ERC20
                draft.donate(_at(at, duration), donor, int(project), token, _honest_cents(rng))
                at += 5.0 + rng.exponential(20.0)


def _add_whales(
    draft: _Draft,
    rng: Rng,
    *,
    accepted: list[list[int]],
    popularity: list[np.ndarray],
    count: int,
    duration: int,
) -> None:
    for i in range(count):
        donor = draft.wallet(f"whale/{i}", 50 + _old_nonce(rng))
        draft.label(donor, "whale", is_sybil=False)
        pool = int(rng.integers(len(accepted)))
        size = min(int(rng.integers(1, 6)), len(accepted[pool]))
        cart = rng.choice(accepted[pool], size=size, replace=False, p=popularity[pool])
        token = Token.NATIVE if rng.random() < 0.5 else Token.ERC20
        at = _activity_time(rng, duration)
        for project in cart:
            dollars = max(500, round(rng.lognormal(math.log(2_000), 0.8)))
            draft.donate(_at(at, duration), donor, int(project), token, dollars * 100)
            at += 10.0 + rng.exponential(30.0)


#: How fan-out clusters are funded, cluster by cluster (qf.sim.funding).
FAN_OUT_STYLES = (fm.Style.DIRECT_FAN_OUT, fm.Style.PEEL_CHAIN, fm.Style.VIA_EXCHANGE, fm.Style.STAGGERED)


def _add_fan_out(
    draft: _Draft,
    rng: Rng,
    *,
    cluster: int,
    accepted: list[list[int]],
    popularity: list[np.ndarray],
    size: int,
    duration: int,
) -> None:
    """One attacker, ``size`` fresh wallets, near-equal gifts to one target in a burst; funded in the cluster's
    style (``FAN_OUT_STYLES``: from the attacker's wallet directly, along a peel chain, through an exchange, or
    staggered over days)."""
    style = FAN_OUT_STYLES[cluster % len(FAN_OUT_STYLES)]
    campaign = f"fanout/{cluster}"
    nonce = _old_nonce(rng)  # drawn whatever the style, so the rest of the round stays the same
    if style is not fm.Style.VIA_EXCHANGE:
        draft.wallet(f"root/{campaign}", nonce)  # the attacker's own wallet (qf.sim.funding names it so)
    members = []
    pool = int(rng.integers(len(accepted)))
    target = int(rng.choice(accepted[pool]))
    token = Token.ERC20 if rng.random() < 0.75 else Token.NATIVE
    gaps = 1.0 + rng.poisson(3.0, size)
    start = rng.uniform(0.0, max(0.0, duration - 1.0 - float(gaps.sum()) - 10.0))
    times = start + np.cumsum(gaps)
    for k in range(size):
        sybil = draft.wallet(f"fanout/{cluster}/{k}", 0)
        members.append(sybil)
        draft.label(sybil, "sybil_fan_out", is_sybil=True)
        cents = 100 + int(rng.integers(0, 6))
        draft.donate(_at(times[k], duration), sybil, target, token, cents)
        if rng.random() < 0.3:
            decoy = int(rng.choice(accepted[pool], p=popularity[pool]))
            if decoy != target:
                draft.donate(_at(times[k] + 2.0, duration), sybil, decoy, token, cents)
    draft.campaigns.append(_Campaign(campaign, style, members))


def _add_ring(draft: _Draft, rng: Rng, *, ring: int, members: list[int], helpers: int, duration: int) -> None:
    """Owners of ``members`` and a few helpers donate to every ring project but their own."""
    owners = [draft.projects[p].owner for p in members]
    token = Token.ERC20 if rng.random() < 0.6 else Token.NATIVE
    donors = list(owners)
    funded_by: dict[int, list[int]] = {}
    for h in range(helpers):
        helper = draft.wallet(f"ring/{ring}/helper/{h}", int(rng.integers(1, 8)))
        funded_by.setdefault(owners[h % len(owners)], []).append(helper)
        donors.append(helper)
    for owner, funded in funded_by.items():  # an owner funds its helpers, hours to days before they give
        draft.campaigns.append(_Campaign(f"ring/{ring}/{owner}", fm.Style.STAGGERED, funded, root=owner))
    for donor in donors:
        draft.label(donor, "collusion_ring", is_sybil=True)
        at = _activity_time(rng, duration)
        for project in members:
            if draft.projects[project].owner == donor:
                continue
            dollars = int(rng.integers(10, 61))
            draft.donate(_at(at, duration), donor, project, token, dollars * 100)
            at += 5.0 + rng.exponential(60.0)


def _add_self_donation(draft: _Draft, rng: Rng, project: int, count: int, duration: int) -> None:
    """The owner of ``project`` funds ``count`` fresh wallets that donate back to it."""
    owner = draft.projects[project].owner
    token = Token.ERC20 if rng.random() < 0.7 else Token.NATIVE
    spread = min(6 * 3_600.0, duration / 4)
    start = min(_activity_time(rng, duration), duration - _SESSION_ROOM_SECONDS - spread)
    members = []
    for k in range(count):
        sybil = draft.wallet(f"self/{project}/{k}", 0)
        members.append(sybil)
        draft.label(sybil, "self_donation", is_sybil=True)
        at = start + rng.uniform(0.0, spread)
        draft.donate(_at(at, duration), sybil, project, token, _honest_cents(rng))
    draft.campaigns.append(_Campaign(f"self/{project}", fm.Style.STAGGERED, members, root=owner))


#: When project owners first act: registration, before the window opens (their funding precedes it).
_OWNER_ACTS_AT = -2 * 3_600.0
#: Transactions an owner sends for its project: a Registry profile, the registration, and an appeal.
_OWNER_TXS = 3
#: ERC-20 approvals a donor sends (one per pool strategy on DVMDT rounds).
_APPROVALS = 2


def _plan_funding(draft: _Draft, rng: Rng) -> tuple[list[Funding], list[Source], dict[int, str]]:
    """Every wallet's first money (``qf.sim.funding``): exchange-like sources funded by the faucet at setup;
    honest donors, whales and project owners from an exchange or a personal wallet; each attack campaign in
    its style. Amounts settle from the last wallet back: gas for what a wallet sends, its native donations and
    what it passes on, exactly for attackers and rounded up for people; tokens likewise.

    Returns the fundings in execution order, the exchange-like sources and each donor's funding style.
    """
    first_at: dict[int, float] = {}
    for d in draft.donations:
        first_at[d.donor] = min(first_at.get(d.donor, math.inf), d.at_seconds)
    owners = {p.owner for p in draft.projects}
    for owner in owners:
        first_at[owner] = min(first_at.get(owner, math.inf), _OWNER_ACTS_AT)
    exchanges = fm.exchange_names()
    sources = [Source(draft.wallet(name, _old_nonce(rng) + 1_000), f"sim exchange {i}")
               for i, name in enumerate(exchanges)]  # fmt: skip
    attackers = {m for c in draft.campaigns for m in c.members}
    styles: dict[int, str] = {}
    edges: list[fm.Edge] = []
    for index in sorted(first_at):
        if index in attackers:
            continue
        style, honest = fm.honest_edges(rng, draft.idents[index], first_at[index], exchanges)
        edges += honest
        styles[index] = style.value
    for c in draft.campaigns:
        names = [draft.idents[m] for m in c.members]
        root = draft.idents[c.root] if c.root is not None else None
        edges += fm.attack_edges(rng, c.name, names, [first_at[m] for m in c.members], style=c.style,
                                 exchanges=exchanges, root=root)  # fmt: skip
        styles.update(dict.fromkeys(c.members, c.style.value))
    edges = fm.settled(edges)
    index_of = {ident: i for i, ident in enumerate(draft.idents)}
    for edge in edges:  # personal wallets: a person's older wallet, with a history
        for name in (edge.source, edge.target):
            if name not in index_of:
                index_of[name] = draft.wallet(name, _old_nonce(rng))
    return _settle_amounts(draft, edges, index_of, sources), sources, styles


def _settle_amounts(
    draft: _Draft, edges: list[fm.Edge], index_of: dict[str, int], sources: list[Source]
) -> list[Funding]:
    n = len(draft.wallets)
    txs, native, tokens = [0] * n, [0] * n, [0] * n
    erc20_donors = set()
    for project in draft.projects:
        txs[project.owner] += _OWNER_TXS
    for d in draft.donations:
        txs[d.donor] += 1
        if d.token is Token.NATIVE:
            native[d.donor] += d.amount
        else:
            tokens[d.donor] += d.amount
            erc20_donors.add(d.donor)
    for donor in erc20_donors:
        txs[donor] += _APPROVALS
    amount, token_amount = [0] * n, [0] * n
    for edge in reversed(edges):  # children before parents: what a wallet passes on is known when it is funded
        source, target = index_of[edge.source], index_of[edge.target]
        token_amount[target] = tokens[target] if edge.exact or not tokens[target] else fm.nice_amount(tokens[target])
        need = gas_allowance_wei(txs[target]) + native[target]
        amount[target] = need if edge.exact else fm.nice_amount(need)
        txs[source] += 1 + (token_amount[target] > 0)
        native[source] += amount[target]
        tokens[source] += token_amount[target]
    setup = [Funding(None, s.wallet, gas_allowance_wei(txs[s.wallet]) + native[s.wallet]) for s in sources]
    timed = [Funding(index_of[e.source], index_of[e.target], amount[index_of[e.target]], e.at,
                     token_amount[index_of[e.target]]) for e in edges]  # fmt: skip
    return setup + timed


def _units(cents: int, token: Token) -> int:
    """Base units of ``token`` worth ``cents`` US cents (ETH rounded to micro-ETH)."""
    if token is Token.ERC20:
        return cents * UNIT // 100
    micro_eth = max(1, round(cents * 10**6 / (ETH_PRICE_USD * 100)))
    return micro_eth * _WEI_PER_MICRO_ETH


def _honest_cents(rng: Rng) -> int:
    """A heavy-tailed donation in cents: often a preset button, else a lognormal amount."""
    if rng.random() < 0.45:
        return int(rng.choice(_PRESET_USD, p=_PRESET_WEIGHTS)) * 100
    return max(10, round(rng.lognormal(math.log(2.5), 1.4) * 100))


def _old_nonce(rng: Rng) -> int:
    """Transactions of an established wallet: 5 to 2000, heavy-tailed."""
    return min(2_000, 5 + int(rng.pareto(1.1) * 20))


def _activity_time(rng: Rng, duration: int) -> float:
    """When a donor shows up: crowded after the opening and before the close."""
    phase = rng.random()
    if phase < 0.3:
        t = rng.exponential(0.04 * duration)
    elif phase < 0.55:
        t = duration - rng.exponential(0.03 * duration)
    else:
        t = rng.uniform(0.0, duration)
    return float(min(max(t, 0.0), duration - _SESSION_ROOM_SECONDS))


def _at(t: float, duration: int) -> float:
    """``t`` rounded to milliseconds and kept inside ``[0, duration)``."""
    return min(round(float(t), 3), duration - 0.001)
