"""Sybil and collusion attacks injected into a real round, labelled, deterministic by seed.

The gate must be judged on real donors it has never seen against attacks it was
not trained on, so :func:`inject` takes a background round (the Gitcoin Round 9
replay: real donors, unlabelled, not assumed honest) and adds attack
*campaigns* of several families into the same pool. Every campaign draws its
size and parameters at random, and amounts are drawn from the background's own
donations where a family imitates real donors, so no family has one fixed shape.

Families (``pattern`` of the labels), each unlike the others in what it hides:

* ``fan_out_burst``: a funder's fresh wallets each give a near-equal amount to
  one or two targets within minutes;
* ``imitators``: aged wallets that look like real donors: a checkout session at
  a random time of the round, several projects picked by popularity besides the
  target, amounts drawn from real donations;
* ``closed_ring``: a group of attacker projects whose wallets fund each other's
  projects and nothing else;
* ``one_recipient_varied``: many wallets behind one recipient, each giving only
  to it, amounts drawn from real donations (not uniform), at random times;
* ``slow_drip``: wallets giving similar amounts to the targets one by one at a
  steady pace over the whole round (no burst);
* ``aged_wallets``: wallets with long histories and varied gas prices, each
  giving a similar amount to the target and to one or two popular projects,
  spread over some hours;
* ``mixture``: one campaign's wallets split between several of the behaviours
  above around the same targets.

Targets are new projects the attacker registers (accepted, as a reviewer would
miss them) or, in a third of the campaigns, small existing projects that buy the
attack. Attacker wallets are labelled sybil with their family; background
donors get no label. Wallet keys come from namespace ``attack-{seed}``, so
attacker addresses never collide with the background's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.sim.plan import Donation, Funding, Label, Project, RecipientStatus, RoundPlan, Token
from qf_sentinel.qf.sim.wallets import derive_wallet, gas_allowance_wei

FAMILIES: tuple[str, ...] = (
    "fan_out_burst",
    "imitators",
    "closed_ring",
    "one_recipient_varied",
    "slow_drip",
    "aged_wallets",
    "mixture",
)
UNIT = 10**18
Rng = np.random.Generator


@dataclass(frozen=True, slots=True)
class Background:
    """What the attacker can observe of the round: its projects' popularity, amounts and length."""

    pool: int
    token: Token
    duration_seconds: float
    #: indices (into the plan's projects) of the pool's projects, by descending number of donations
    projects_by_popularity: np.ndarray
    #: number of donations of each of those projects
    popularity: np.ndarray
    #: every donation amount of the pool, base units (Python ints)
    amounts: np.ndarray

    @classmethod
    def of(cls, plan: RoundPlan, pool: int) -> Background:
        in_pool = [p for p in plan.donations if plan.projects[p.project].pool == pool]
        if not in_pool:
            raise ConfigError(f"pool {pool} of plan {plan.name!r} has no donations to hide attacks among")
        counts = np.zeros(len(plan.projects), dtype=np.int64)
        for d in in_pool:
            counts[d.project] += 1
        projects = np.array([i for i, p in enumerate(plan.projects) if p.pool == pool and counts[i] > 0])
        order = projects[np.argsort(-counts[projects], kind="stable")]
        return cls(
            pool=pool,
            token=in_pool[0].token,
            duration_seconds=float(plan.pools[pool].duration_seconds),
            projects_by_popularity=order,
            popularity=counts[order],
            amounts=np.array([d.amount for d in in_pool], dtype=object),
        )


@dataclass(frozen=True, slots=True)
class AttackWallet:
    """A wallet an attack creates: its name in the attack's namespace, history and label."""

    ident: str
    prior_nonce: int
    family: str


@dataclass
class Attacks:
    """What :func:`plan_attacks` adds to a round: new wallets and projects, and donations.

    Indices continue the background's: wallet ``wallet_offset + i`` is
    ``wallets[i]``, project ``project_offset + j`` is owned by wallet
    ``project_owners[j]``. Donations are ``(at_seconds, wallet, project,
    amount in base units)``; every new wallet is an attacker.
    """

    background: Background
    namespace: str
    wallet_offset: int
    project_offset: int
    wallets: list[AttackWallet] = field(default_factory=list)
    project_owners: list[int] = field(default_factory=list)
    project_names: list[str] = field(default_factory=list)
    donations: list[tuple[float, int, int, int]] = field(default_factory=list)
    #: family -> the projects its campaigns target (new attacker projects and bought ones)
    targets: dict[str, set[int]] = field(default_factory=dict)

    def wallet(self, ident: str, family: str, prior_nonce: int = 0) -> int:
        self.wallets.append(AttackWallet(ident, int(prior_nonce), family))
        return self.wallet_offset + len(self.wallets) - 1

    def project(self, name: str, owner: int) -> int:
        self.project_owners.append(owner)
        self.project_names.append(name)
        return self.project_offset + len(self.project_owners) - 1

    def donate(self, at: float, donor: int, project: int, amount: int) -> None:
        at = float(min(max(at, 0.0), self.background.duration_seconds - 1.0))
        self.donations.append((round(at, 3), donor, project, max(int(amount), 1)))


@dataclass(frozen=True, slots=True)
class _Campaign:
    """One attack: its family, name, targets and how many wallets it runs."""

    family: str
    name: str
    targets: tuple[int, ...]
    size: int


def plan_attacks(
    background: Background,
    families: Sequence[str] = FAMILIES,
    *,
    seed: int = 0,
    wallet_offset: int,
    project_offset: int,
    campaigns: tuple[int, int] = (2, 3),
    wallets: tuple[int, int] = (20, 150),
) -> Attacks:
    """Attack campaigns of each family against ``background``, deterministic by ``seed``.

    Each family gets ``campaigns`` (inclusive range) campaigns of ``wallets``
    (inclusive range) wallets; the same arguments give equal attacks.
    """
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise ConfigError(f"unknown attack families {', '.join(unknown)}; choose from {', '.join(FAMILIES)}")
    rng = np.random.default_rng(seed)
    draft = Attacks(background, f"attack-{seed}", wallet_offset, project_offset)
    for family in families:
        for c in range(int(rng.integers(campaigns[0], campaigns[1] + 1))):
            campaign = _plan_campaign(draft, rng, family, c, int(rng.integers(wallets[0], wallets[1] + 1)))
            draft.targets.setdefault(family, set()).update(campaign.targets)
            _BEHAVIOURS[family](draft, rng, campaign)
    return draft


def inject(
    plan: RoundPlan, families: Sequence[str] = FAMILIES, *, seed: int = 0, pool: int = 0, **sizes: tuple[int, int]
) -> RoundPlan:
    """``plan`` with attack campaigns of each family added to ``pool``, labelled (background donors are not).

    Attacker wallets get keys from namespace ``attack-{seed}`` and gas from the
    faucet, so the plan can also be executed on a chain.
    """
    return inject_with_targets(plan, families, seed=seed, pool=pool, **sizes)[0]


def attack_campaigns(
    plan: RoundPlan, families: Sequence[str] = FAMILIES, *, seed: int = 0, pool: int = 0, **sizes: tuple[int, int]
) -> dict[str, str]:
    """Each wallet :func:`inject_with_targets` adds to ``plan`` (the same arguments) -> its campaign's name.

    The funding of an attack is per campaign (one funder, one peel chain...): ``qf.sim.funding.draw_funding``
    takes these. Planned again from the seed, so it agrees with the injection exactly.
    """
    attacks = plan_attacks(
        Background.of(plan, pool), families, seed=seed, wallet_offset=len(plan.wallets),
        project_offset=len(plan.projects), **sizes,
    )  # fmt: skip
    return {
        derive_wallet(attacks.namespace, w.ident).address.lower(): w.ident.rsplit("/", 1)[0] for w in attacks.wallets
    }


def inject_with_targets(
    plan: RoundPlan, families: Sequence[str] = FAMILIES, *, seed: int = 0, pool: int = 0, **sizes: tuple[int, int]
) -> tuple[RoundPlan, dict[str, set[int]]]:
    """:func:`inject`, and the projects (plan indices) each family targets."""
    if not 0 <= pool < len(plan.pools):
        raise ConfigError(f"plan {plan.name!r} has no pool {pool}")
    attacks = plan_attacks(
        Background.of(plan, pool), families, seed=seed, wallet_offset=len(plan.wallets),
        project_offset=len(plan.projects), **sizes,
    )  # fmt: skip
    new_wallets = [derive_wallet(attacks.namespace, w.ident, w.prior_nonce) for w in attacks.wallets]
    token = attacks.background.token
    injected = replace(
        plan,
        name=f"{plan.name}+attacks-{seed}",
        wallets=(*plan.wallets, *new_wallets),
        projects=(*plan.projects, *(
            Project(pool, name, owner, RecipientStatus.ACCEPTED)
            for name, owner in zip(attacks.project_names, attacks.project_owners, strict=True)
        )),
        fundings=(*plan.fundings, *(
            Funding(None, len(plan.wallets) + i, gas_allowance_wei(20)) for i in range(len(new_wallets))
        )),
        donations=tuple(sorted(
            (*plan.donations, *(Donation(at, w, p, token, a) for at, w, p, a in attacks.donations)),
            key=lambda d: d.at_seconds,
        )),
        labels=(*plan.labels, *(
            Label(wallet.address, True, w.family) for wallet, w in zip(new_wallets, attacks.wallets, strict=True)
        )),
    )  # fmt: skip
    return injected, attacks.targets


def _plan_campaign(draft: Attacks, rng: Rng, family: str, index: int, size: int) -> _Campaign:
    name = f"{family}-{index}"
    n_targets = 1 if family in ("one_recipient_varied", "imitators") else int(rng.integers(1, 3))
    if family == "closed_ring":
        n_targets = int(rng.integers(3, 7))
    bought = family != "closed_ring" and rng.random() < 1 / 3
    bg = draft.background
    if bought:  # small existing projects: below the median popularity
        small = bg.projects_by_popularity[bg.popularity <= np.median(bg.popularity)]
        targets = tuple(int(t) for t in rng.choice(small, size=min(n_targets, small.size), replace=False))
    else:
        owners = [draft.wallet(f"{name}/owner-{t}", family, int(rng.integers(0, 40))) for t in range(n_targets)]
        targets = tuple(draft.project(f"{name}/project-{t}", owner) for t, owner in enumerate(owners))
    return _Campaign(family, name, targets, size)


def _checkout(rng: Rng, start: float, spread: float) -> Callable[[], float]:
    """When each donation of one wallet's visit happens: mostly one cart checkout (one transaction's time, as
    most real multi-project donors do), sometimes one by one within ``spread`` seconds."""
    one_cart = rng.random() < 0.85
    return (lambda: start) if one_cart else (lambda: start + float(rng.uniform(0, spread)))


def _similar(rng: Rng, base_usd: float, spread: float, n: int) -> np.ndarray:
    """``n`` amounts within ``spread`` (relative) of ``base_usd``, in base units of a 1-USD token."""
    return np.asarray(base_usd * (1 + rng.uniform(-spread, spread, n)) * UNIT, dtype=np.float64)


def _real(rng: Rng, bg: Background, n: int) -> list[int]:
    """``n`` amounts drawn from the background's own donations."""
    return [int(a) for a in rng.choice(bg.amounts, size=n)]


def _popular(rng: Rng, bg: Background, k: int, exclude: tuple[int, ...]) -> list[int]:
    """``k`` distinct projects drawn in proportion to their number of donations."""
    weights = bg.popularity.astype(np.float64)
    weights[np.isin(bg.projects_by_popularity, exclude)] = 0.0
    k = min(k, int((weights > 0).sum()))
    return [int(p) for p in rng.choice(bg.projects_by_popularity, size=k, replace=False, p=weights / weights.sum())]


def _fan_out_burst(draft: Attacks, rng: Rng, c: _Campaign) -> None:
    start = rng.uniform(0, draft.background.duration_seconds - 7200)
    window = rng.uniform(300, 3600)
    amounts = _similar(rng, float(rng.choice([1, 2, 5, 10])), 0.02, c.size)
    for w in range(c.size):
        wallet = draft.wallet(f"{c.name}/{w}", c.family, int(rng.integers(0, 3)))
        when = _checkout(rng, start + rng.uniform(0, window), 30)
        for target in rng.choice(c.targets, size=int(rng.integers(1, len(c.targets) + 1)), replace=False):
            draft.donate(when(), wallet, int(target), int(amounts[w]))


def _imitators(draft: Attacks, rng: Rng, c: _Campaign) -> None:
    bg = draft.background
    for w in range(c.size):
        wallet = draft.wallet(f"{c.name}/{w}", c.family, int(rng.lognormal(2.5, 1.2)))
        when = _checkout(rng, rng.uniform(0, bg.duration_seconds - 3600), 600)
        cart = [*c.targets, *_popular(rng, bg, int(rng.integers(2, 8)), c.targets)]
        for project, amount in zip(cart, _real(rng, bg, len(cart)), strict=True):
            draft.donate(when(), wallet, project, amount)


def _closed_ring(draft: Attacks, rng: Rng, c: _Campaign) -> None:
    bg = draft.background
    members = [draft.wallet(f"{c.name}/{w}", c.family, int(rng.integers(0, 60))) for w in range(c.size)]
    for wallet in members:
        when = _checkout(rng, rng.uniform(0, bg.duration_seconds - 3600), 900)
        k = int(rng.integers(max(2, len(c.targets) - 2), len(c.targets) + 1))
        for project in rng.choice(c.targets, size=k, replace=False):
            draft.donate(when(), wallet, int(project), int(rng.choice([1, 2, 3, 5]) * UNIT))


def _one_recipient_varied(draft: Attacks, rng: Rng, c: _Campaign) -> None:
    bg = draft.background
    for w, amount in enumerate(_real(rng, bg, c.size)):
        wallet = draft.wallet(f"{c.name}/{w}", c.family, int(rng.integers(0, 30)))
        draft.donate(rng.uniform(0, bg.duration_seconds), wallet, c.targets[0], amount)


def _slow_drip(draft: Attacks, rng: Rng, c: _Campaign) -> None:
    bg = draft.background
    times = np.linspace(0.02, 0.98, c.size) * bg.duration_seconds + rng.uniform(-600, 600, c.size)
    amounts = _similar(rng, float(rng.choice([1, 2, 3, 5])), 0.2, c.size)
    for w in range(c.size):
        wallet = draft.wallet(f"{c.name}/{w}", c.family, int(rng.integers(0, 10)))
        draft.donate(float(times[w]), wallet, c.targets[w % len(c.targets)], int(amounts[w]))


def _aged_wallets(draft: Attacks, rng: Rng, c: _Campaign) -> None:
    bg = draft.background
    start = rng.uniform(0, bg.duration_seconds - 6 * 3600)
    amounts = _similar(rng, float(rng.choice([2, 5, 10])), 0.1, c.size)
    for w in range(c.size):
        wallet = draft.wallet(f"{c.name}/{w}", c.family, int(rng.integers(20, 500)))
        when = _checkout(rng, start + rng.uniform(0, 6 * 3600), 120)
        for project in [*c.targets, *_popular(rng, bg, int(rng.integers(1, 3)), c.targets)]:
            draft.donate(when(), wallet, project, int(amounts[w] * rng.uniform(0.9, 1.1)))


def _mixture(draft: Attacks, rng: Rng, c: _Campaign) -> None:
    parts = rng.choice([f for f in FAMILIES if f not in ("mixture", "closed_ring")], size=3, replace=False)
    sizes = np.maximum(1, rng.multinomial(c.size, [1 / 3] * 3))
    for part, size in zip(parts, sizes, strict=True):
        _BEHAVIOURS[str(part)](draft, rng, replace(c, name=f"{c.name}/{part}", size=int(size)))


_BEHAVIOURS: dict[str, Callable[[Attacks, Rng, _Campaign], None]] = {
    "fan_out_burst": _fan_out_burst,
    "imitators": _imitators,
    "closed_ring": _closed_ring,
    "one_recipient_varied": _one_recipient_varied,
    "slow_drip": _slow_drip,
    "aged_wallets": _aged_wallets,
    "mixture": _mixture,
}
