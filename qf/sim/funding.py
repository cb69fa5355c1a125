"""Where simulated wallets' money comes from: the funding models of honest donors and of attackers. Pure.

One model, two uses: ``qf simulate`` plans it as real transfers on the devnet (``qf.sim.scenario``
turns :class:`Edge` lists into :class:`~qf.sim.plan.Funding` rows the executor sends), and evaluation
rounds draw it as rows in memory (:func:`draw_funding`, for ``qf eval``'s real Round 9 donors and its
injected attack families), so both see the same funding behaviour.

Honest donors (:func:`honest_edges`) are funded like people: by a withdrawal from one of a few
exchange-like sources that fund many wallets each (:data:`HONEST_EXCHANGE_SHARE` of them), or from their
own older wallet, itself funded by an exchange months before; hours to weeks before their first
donation; in round amounts (0.05, 0.1, 0.25 ... ETH; 10, 20, 50 ... tokens), never exactly what they spend.

Attackers (:func:`attack_edges`) fund a campaign's wallets in one :class:`Style`:

* ``direct_fan_out``: one wallet (itself funded by an exchange weeks before) funds them all, minutes
  before each donates;
* ``peel_chain``: that wallet funds the first, which keeps its share and passes the rest to the next, and
  so on (A funds B funds C ...), one hop a minute or two apart;
* ``staggered``: the one wallet funds each hours to days before it donates, spread out;
* ``via_exchange``: each wallet withdraws from an exchange-like source: the funder is a known source, the
  case no funding evidence can catch (it is measured, not hidden).

Attackers send exactly what a wallet needs (gas plus the donation). Wallets are named by strings:
``exchange/N``, ``personal/<donor>``, ``root/<campaign>`` and the donors' own names, so a caller maps
them to plan wallets (with keys) or to addresses. Times are seconds from the round's start (negative:
before it), never earlier than :data:`PRE_ROUND_SECONDS` before it.
"""

from __future__ import annotations

import enum
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from qf_sentinel.qf.funding.graph import NATIVE, FundingRow, KnownSource, Method, SourceKind

#: Exchange-like sources in a round (shared by many honest wallets, and by via_exchange attackers).
EXCHANGES = 3
#: Share of honest donors funded straight from an exchange; the others from a personal wallet.
HONEST_EXCHANGE_SHARE = 0.7
#: Share of attack campaigns (in evaluation rounds) funded through exchange-like sources.
ATTACK_EXCHANGE_SHARE = 0.25
#: The earliest funding, before the round opens (the devnet's history before a round is this long).
PRE_ROUND_SECONDS = 14 * 86_400.0
HOUR, DAY = 3_600.0, 86_400.0
#: Round amounts people withdraw, in thousandths of the unit (ETH or token).
_NICE_MILLI = (10, 20, 50, 100, 200, 250, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000)

Rng = np.random.Generator


class Style(enum.StrEnum):
    """How a wallet was funded: ground truth of a simulated wallet's funding pattern."""

    EXCHANGE = "exchange"
    PERSONAL_WALLET = "personal_wallet"
    DIRECT_FAN_OUT = "direct_fan_out"
    PEEL_CHAIN = "peel_chain"
    STAGGERED = "staggered"
    VIA_EXCHANGE = "via_exchange"
    #: The devnet faucet funds the wallet (the Round 9 replay): a known source, no evidence either way.
    FAUCET = "faucet"


ATTACK_STYLES = (Style.DIRECT_FAN_OUT, Style.PEEL_CHAIN, Style.STAGGERED, Style.VIA_EXCHANGE)
#: The style each injected attack family funds its wallets with (before the exchange share is drawn).
FAMILY_STYLES: Mapping[str, Style] = {
    "fan_out_burst": Style.DIRECT_FAN_OUT,
    "imitators": Style.STAGGERED,
    "closed_ring": Style.PEEL_CHAIN,
    "one_recipient_varied": Style.STAGGERED,
    "slow_drip": Style.STAGGERED,
    "aged_wallets": Style.PEEL_CHAIN,
    "mixture": Style.DIRECT_FAN_OUT,
}


@dataclass(frozen=True, slots=True)
class Edge:
    """One planned transfer: ``source`` sends ``target`` its first money at ``at`` seconds from the round's start.

    ``exact``: the amount is exactly the target's need (attackers); else rounded up as people do.
    """

    source: str
    target: str
    at: float
    exact: bool


def exchange_names(count: int = EXCHANGES) -> list[str]:
    return [f"exchange/{i}" for i in range(count)]


def nice_amount(need: int, unit: int = 10**18) -> int:
    """The smallest round amount (see the module) at least ``need`` base units; multiples of 1,000 units above."""
    for milli in _NICE_MILLI:
        if milli * unit // 1000 >= need:
            return milli * unit // 1000
    step = 1000 * unit
    return -(-need // step) * step


def _pick_exchange(rng: Rng, exchanges: Sequence[str]) -> str:
    """A few exchanges fund most people: Zipf-like weights, the first the busiest."""
    weights = 1.0 / np.arange(1, len(exchanges) + 1)
    return exchanges[int(rng.choice(len(exchanges), p=weights / weights.sum()))]


def _clamp(at: float) -> float:
    return max(at, -PRE_ROUND_SECONDS)


def _bound(rng: Rng, at: float) -> float:
    """``at``, or, if it is before the devnet's history begins, a time in the history's first day (spread, so
    people funded long ago do not all share one block)."""
    return at if at >= -PRE_ROUND_SECONDS else -PRE_ROUND_SECONDS + float(rng.uniform(0, DAY))


def honest_edges(rng: Rng, donor: str, first_at: float, exchanges: Sequence[str]) -> tuple[Style, list[Edge]]:
    """A person's funding: an exchange withdrawal, or a transfer from their own older wallet, hours to weeks
    (median about four days) before the first donation."""
    funded_at = _bound(rng, first_at - float(np.clip(rng.lognormal(math.log(4 * DAY), 1.0), HOUR, 45 * DAY)))
    exchange = _pick_exchange(rng, exchanges)
    if rng.random() < HONEST_EXCHANGE_SHARE:
        return Style.EXCHANGE, [Edge(exchange, donor, funded_at, exact=False)]
    personal = f"personal/{donor}"
    personal_at = _bound(rng, funded_at - float(rng.uniform(30 * DAY, 365 * DAY)))
    return Style.PERSONAL_WALLET, [
        Edge(exchange, personal, min(personal_at, funded_at), exact=False),
        Edge(personal, donor, funded_at, exact=False),
    ]


def attack_edges(
    rng: Rng, campaign: str, donors: Sequence[str], first_at: Sequence[float], *, style: Style,
    exchanges: Sequence[str], root: str | None = None,
) -> list[Edge]:  # fmt: skip
    """A campaign's funding in ``style``; ``first_at[i]`` is when ``donors[i]`` first donates.

    Every style but ``via_exchange`` runs through one attacker wallet: ``root`` when the caller has one
    (a project owner funding its own sybils), else ``root/<campaign>``, funded by an exchange one to three
    weeks before the campaign's first donation.
    """
    if not donors:
        return []
    if style is Style.VIA_EXCHANGE:
        exchange = _pick_exchange(rng, exchanges)  # one attacker, one exchange account
        return [Edge(exchange, d, _bound(rng, t - float(rng.uniform(10 * 60, 2 * DAY))), exact=True)
                for d, t in zip(donors, first_at, strict=True)]  # fmt: skip
    own_root = root is not None
    root = root if root is not None else f"root/{campaign}"
    start = min(first_at)
    edges: list[Edge] = []
    if style is Style.DIRECT_FAN_OUT:
        hops = [(d, t - float(rng.uniform(2 * 60, 30 * 60))) for d, t in zip(donors, first_at, strict=True)]
        edges = [Edge(root, d, _bound(rng, at), exact=True) for d, at in hops]
    elif style is Style.STAGGERED:
        hops = [(d, t - float(rng.uniform(2 * HOUR, 5 * DAY))) for d, t in zip(donors, first_at, strict=True)]
        edges = [Edge(root, d, _bound(rng, at), exact=True) for d, at in hops]
    elif style is Style.PEEL_CHAIN:
        order = sorted(range(len(donors)), key=lambda i: (first_at[i], i))
        at = _bound(rng, start - (len(donors) + 1) * 150.0 - float(rng.uniform(0, 1800)))
        source = root
        for i in order:
            edges.append(Edge(source, donors[i], at, exact=True))
            source, at = donors[i], at + float(rng.uniform(30, 150))
    else:
        raise ValueError(f"{style} is not an attack style")
    if own_root:
        return edges
    first_hop = min(e.at for e in edges)
    root_at = _bound(rng, first_hop - float(rng.uniform(7 * DAY, 21 * DAY)))
    return [Edge(_pick_exchange(rng, exchanges), root, min(root_at, first_hop), exact=False), *edges]


def settled(edges: Sequence[Edge]) -> list[Edge]:
    """``edges`` in an order a chain can run them: a wallet is funded before it funds anyone (its incoming edge
    moved to a second before its first outgoing one, if need be), by time, parents first among equal times."""
    incoming = {e.target: e for e in edges}
    first_out: dict[str, float] = {}
    for edge in edges:
        first_out[edge.source] = min(first_out.get(edge.source, math.inf), edge.at)
    fixed: dict[str, Edge] = {}

    def settle(name: str, latest: float) -> None:
        edge = fixed.get(name, incoming.get(name))
        if edge is None or edge.at <= latest:
            return
        fixed[name] = moved = Edge(edge.source, edge.target, _clamp(latest), edge.exact)
        settle(edge.source, moved.at - 1.0)

    for name, at in sorted(first_out.items(), key=lambda kv: kv[1]):
        settle(name, at - 1.0)
    out = [fixed.get(e.target, e) for e in edges]
    generation: dict[str, int] = {}

    def depth(name: str) -> int:
        if name not in generation:
            generation[name] = 0
            parent = incoming.get(name)
            generation[name] = 0 if parent is None else depth(parent.source) + 1
        return generation[name]

    return sorted(out, key=lambda e: (e.at, depth(e.target), e.target))


# -- evaluation rounds: rows in memory ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DrawnFunding:
    """Funding rows drawn for a round's wallets (``qf.funding.graph.FundingGraph`` reads them), the exchange-like
    sources as known sources, and each donor's style (ground truth)."""

    rows: tuple[FundingRow, ...]
    sources: tuple[KnownSource, ...]
    styles: Mapping[bytes, Style]


def campaign_of(ident: str) -> str:
    """The campaign of an attack wallet's name in ``qf.sim.attacks`` (``fan_out_burst-0/12`` -> ``fan_out_burst-0``;
    a mixture's part keeps its family: ``mixture-1/slow_drip/3`` -> ``mixture-1/slow_drip``)."""
    return ident.rsplit("/", 1)[0]


def draw_funding(
    donors: Sequence[bytes],
    first_times: Sequence[float],
    *,
    seed: int,
    round_start: float,
    campaigns: Mapping[bytes, str] | None = None,
    families: Mapping[str, str] | None = None,
    token: bytes | None = None,
    token_needs: Mapping[bytes, int] | None = None,
    exchange_share: float = ATTACK_EXCHANGE_SHARE,
    block_seconds: float = 12.0,
) -> DrawnFunding:
    """Funding of ``donors`` (first donating at ``first_times``, unix seconds) drawn from the models above.

    Donors in ``campaigns`` (wallet -> campaign name) are attackers, funded in their family's style
    (``families``: campaign -> family, see :data:`FAMILY_STYLES`), except that a share ``exchange_share`` of
    campaigns go ``via_exchange``; every other donor is funded by the honest model. Deterministic by ``seed``
    (each wallet's draw depends only on the seed and its own name, so adding donors changes no one else's).
    Native amounts are for gas (honest: round amounts; attackers: exactly 0.0021-0.0042 ETH, about 200k gas
    at 10-20 gwei); with ``token``, ERC-20 funding of ``token_needs`` (honest: rounded up; attackers: exact).
    Blocks are ``round_start`` + time over ``block_seconds`` (rows are for features, which read times).
    """
    campaigns = campaigns or {}
    families = families or {}
    exchanges = exchange_names()
    addresses: dict[str, bytes] = {f"exchange/{i}": _named(seed, f"exchange/{i}") for i in range(EXCHANGES)}
    styles: dict[bytes, Style] = {}
    edges: list[Edge] = []
    members: dict[str, list[int]] = {}
    for i, donor in enumerate(donors):
        name = donor.hex()
        addresses[name] = donor
        campaign = campaigns.get(donor)
        if campaign is None:
            style, honest = honest_edges(_rng(seed, name), name, first_times[i] - round_start, exchanges)
            styles[donor] = style
            edges += honest
        else:
            members.setdefault(campaign, []).append(i)
    for campaign, indices in sorted(members.items()):
        rng = _rng(seed, "campaign/" + campaign)
        family = families.get(campaign, campaign.split("-")[0])
        style = Style.VIA_EXCHANGE if rng.random() < exchange_share else FAMILY_STYLES.get(family, Style.DIRECT_FAN_OUT)
        names = [donors[i].hex() for i in indices]
        times = [first_times[i] - round_start for i in indices]
        edges += attack_edges(rng, campaign, names, times, style=style, exchanges=exchanges)
        styles.update(dict.fromkeys((donors[i] for i in indices), style))
    edges = settled(edges)
    for edge in edges:
        for name in (edge.source, edge.target):
            addresses.setdefault(name, _named(seed, name))
    gas = {name: int(_rng(seed, "gas/" + name).uniform(0.0021, 0.0042) * 10**18) for name in addresses}
    needs = {n: (token_needs or {}).get(a, 0) for n, a in addresses.items()}
    native, tokens = _amounts(edges, gas, seed), _amounts(edges, needs, seed)
    rows = []
    for edge in edges:
        time = round_start + edge.at
        block, target, source = int(time // block_seconds), addresses[edge.target], addresses[edge.source]
        rows.append(FundingRow(target, NATIVE, source, native[edge.target], block, time, 1, Method.SIMULATED))
        if token is not None and tokens[edge.target] > 0:
            rows.append(FundingRow(target, token, source, tokens[edge.target], block, time, 1, Method.SIMULATED))
    sources = tuple(KnownSource(addresses[e], f"sim exchange {i}", SourceKind.EXCHANGE, "simulated (qf.sim.funding)")
                    for i, e in enumerate(exchanges))  # fmt: skip
    return DrawnFunding(tuple(rows), sources, styles)


def _amounts(edges: Sequence[Edge], own: Mapping[str, int], seed: int) -> dict[str, int]:
    """What each edge's target receives: its own need plus everything it passes on (a peel chain's hops carry the
    rest), exactly for attackers, rounded up (to a few times more for gas) for people."""
    sent: dict[str, list[Edge]] = {}
    for edge in edges:
        sent.setdefault(edge.source, []).append(edge)
    received: dict[str, int] = {}

    def need(name: str) -> int:
        if name not in received:
            received[name] = 0  # a cycle (none is planned) would end here
            total = own.get(name, 0) + sum(need(e.target) for e in sent.get(name, []))
            received[name] = total
        return received[name]

    amounts = {}
    for edge in edges:
        total = need(edge.target)
        if edge.exact or total == 0:
            amounts[edge.target] = total
        else:
            boost = int(_rng(seed, "boost/" + edge.target).integers(1, 6))
            amounts[edge.target] = nice_amount(total * boost, unit=10**18)
    return amounts


def _rng(seed: int, name: str) -> Rng:
    digest = hashlib.sha256(f"funding/{seed}/{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def _named(seed: int, name: str) -> bytes:
    """A stable address for a simulated intermediate wallet (not a key anyone holds)."""
    return hashlib.sha256(f"sim-funding/{seed}/{name}".encode()).digest()[:20]
