"""Where a contributing wallet's money came from, as the gate's features: evidence that may only raise risk.

An attacker running many wallets has to fund them, and the funding leaves a
trail (:mod:`qf.funding.graph`): one funder fanning out to many of the round's
donors, minutes before they give, exact amounts of "gas plus the donation",
peel chains. Exchanges, bridges and faucets fund thousands of honest wallets,
so a funder that is a known source is no evidence at all. For a contribution
of wallet W at time t (only funding known by t, point in time like every gate
feature):

* ``funder_fan_out_log`` -- log1p(other donors of the round so far whose first
  funder is W's first funder);
* ``funder_donors_here_log`` -- log1p(those of them that gave to this project);
* ``funding_recency`` -- 1 / (1 + hours from W's funding to now): funded just
  before giving;
* ``funding_amount_fit`` -- 1 when the funding is sized to the act: the first
  funding in the donated token within 2% of this contribution, or a native
  funding under 0.05 coin that is not a round amount (the exact gas a script
  sends), else 0;
* ``funding_trail_depth`` -- hops of W's trail before a known source or its end
  (a peel chain A -> B -> C -> W is 3).

Every feature is 0 for a wallet whose funding is unknown or whose first funder
is a known source, and no feature can go below 0. The gate adds the funding
stage's push, ``g(features) - g(0)`` of a model monotone increasing in every
one of them (:class:`qf.model.gate.GateModel`), so unknown funding or a known
source scores *exactly* as without these features, and funding evidence can
only raise risk: "funded by an exchange" can never be learned as proof of honesty.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Container, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from qf_sentinel.qf.funding.graph import NATIVE, FundingFacts, FundingGraph
from qf_sentinel.qf.model import live

FloatArray = npt.NDArray[np.float64]
WEI = 10**18
FUNDING_FEATURES: tuple[str, ...] = (
    "funder_fan_out_log",
    "funder_donors_here_log",
    "funding_recency",
    "funding_amount_fit",
    "funding_trail_depth",
)
N_FUNDING = len(FUNDING_FEATURES)
#: A native funding below this many coins, and not a multiple of ROUND_WEI, is sized to a script's gas.
GAS_SIZED_WEI = WEI // 20
ROUND_WEI = WEI // 1000
#: The first funding in the donated token is "the donation" when within this relative difference.
TOKEN_FIT = 0.02
NO_EVIDENCE = np.zeros(N_FUNDING)


class HexKeys(Collection[bytes]):
    """A read-only view of a container keyed by ``0x`` hex strings as raw 20-byte addresses (membership only)."""

    def __init__(self, keys: Container[object]) -> None:
        self._keys = keys

    def __contains__(self, address: object) -> bool:
        return isinstance(address, bytes) and "0x" + address.hex() in self._keys

    def __iter__(self) -> Iterator[bytes]:
        raise TypeError("HexKeys answers membership only")

    def __len__(self) -> int:
        raise TypeError("HexKeys answers membership only")


@dataclass(frozen=True, slots=True)
class FundingEvidence:
    """One contribution's funding features and the facts behind them (for reasons in words)."""

    row: FloatArray
    facts: FundingFacts | None
    others: int
    here: int

    @property
    def any(self) -> bool:
        return bool(self.row.any())


def evidence(
    graph: FundingGraph | None, wallet: bytes, *, at: float, amount: float, token: bytes | None,
    round_donors: Collection[bytes], project_donors: Collection[bytes], token_decimals: int = 18,
) -> FundingEvidence:  # fmt: skip
    """The funding features of ``wallet`` giving ``amount`` (token units) of ``token`` at ``at`` (unix seconds).

    ``round_donors`` and ``project_donors`` are who had arrived in the round and at this project by then.
    """
    if graph is None:
        return FundingEvidence(NO_EVIDENCE.copy(), None, 0, 0)
    row = np.zeros(N_FUNDING)
    first = graph.first_funding(wallet, as_of=at)
    if first is None or graph.known_source(first.funder) is not None:
        return FundingEvidence(row, None, 0, 0)  # no evidence (an exchange funds thousands: not even counted)
    asset = None if token is None or token == NATIVE else token
    facts = graph.facts(wallet, as_of=at, among=round_donors, token=asset)
    others = facts.funder_fan_out - (1 if wallet in round_donors else 0)
    here = graph.fan_out(first.funder, as_of=at, among=project_donors) - (1 if wallet in project_donors else 0)
    row[0] = math.log1p(max(others, 0))
    row[1] = math.log1p(max(here, 0))
    hours = max(at - first.time, 0.0) / 3600.0
    row[2] = 1.0 / (1.0 + hours)
    fit = 0.0
    if facts.token is not None and amount > 0:
        funded = facts.token.amount / 10**token_decimals
        fit = float(abs(funded - amount) <= TOKEN_FIT * amount)
    if not fit and first.asset == NATIVE and first.amount < GAS_SIZED_WEI and first.amount % ROUND_WEI:
        fit = 1.0
    row[3] = fit
    source_at_end = facts.trail_source is not None
    row[4] = float(facts.trail_depth - (1 if source_at_end else 0))
    return FundingEvidence(row, facts, max(others, 0), max(here, 0))


def describe(ev: FundingEvidence) -> str:
    """The funding evidence in words, for a reviewer ("" when there is none)."""
    facts = ev.facts
    if facts is None or facts.first is None or not ev.any:
        return ""
    first = facts.first
    funder = "0x" + first.funder.hex()
    minutes = max(facts.as_of - first.time, 0.0) / 60.0
    when = f"{minutes:.0f} minutes" if minutes < 120 else f"{minutes / 60:.1f} hours"
    parts = [f"funded {when} before giving by {funder[:6]}…{funder[-4:]}"]
    if ev.others:
        parts.append(f"which funded {ev.others:,} other donor{'s' if ev.others != 1 else ''} of this round"
                     + (f", {ev.here:,} of them at this project" if ev.here else ""))  # fmt: skip
    depth = int(ev.row[4])
    if depth > 1:
        parts.append(f"through a chain of {depth} wallets")
    if ev.row[3]:
        parts.append("with an amount sized to the act")
    return ", ".join(parts)


def funding_row(
    graph: FundingGraph | None, c: live.Contribution, state: live.LiveState, *, token_decimals: int = 18
) -> FloatArray:
    """The funding features of ``c`` as of its time, from what ``state`` has seen arrive: the one code path of
    training, ``qf eval --live``, ``qf score`` and the sidecar (which passes the token's decimals)."""
    return evidence_of(graph, c, state, token_decimals=token_decimals).row


def evidence_of(
    graph: FundingGraph | None, c: live.Contribution, state: live.LiveState, *, token_decimals: int = 18
) -> FundingEvidence:
    """:func:`evidence` for a contribution of a live state (its donor and project keys are ``0x`` hex strings)."""
    return evidence(
        graph, bytes.fromhex(str(c.donor)[2:]), at=c.time, amount=c.amount, token=c.token,
        round_donors=HexKeys(state.arrived()), project_donors=HexKeys(state.project_donors(c.project)),
        token_decimals=token_decimals,
    )  # fmt: skip
