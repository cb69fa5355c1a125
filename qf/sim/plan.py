"""What a simulated round is, as plain immutable data.

A ``RoundPlan`` is built by a pure planner (``scenario`` or ``gitcoin``) from a
seed or a CSV, and executed by ``execute``. Keeping it as data makes planners
testable without a chain and makes runs reproducible: the same seed gives the
same plan, byte for byte.

Times are seconds from the start of the allocation window; amounts are integer
base units (wei for ETH, 1e-18 of a token for the 18-decimal test token).
Addresses are lowercase 0x-hex strings.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class Token(enum.StrEnum):
    """Which asset moves: the chain's native ETH or the devnet's ERC-20 test token."""

    NATIVE = "native"
    ERC20 = "erc20"


class RecipientStatus(enum.IntEnum):
    """Allo v2 DonationVotingMerkleDistribution statuses (4 bits per recipient)."""

    NONE = 0
    PENDING = 1
    ACCEPTED = 2
    REJECTED = 3
    APPEALED = 4


@dataclass(frozen=True, slots=True)
class Wallet:
    """An externally owned account the simulation controls."""

    private_key: bytes
    address: str
    #: Transactions the wallet "had" before the round; applied with
    #: ``anvil_setNonce`` where the node supports it (wallet age is a sybil signal).
    prior_nonce: int = 0


@dataclass(frozen=True, slots=True)
class Pool:
    """One QF round: an Allo pool with its own strategy contract."""

    name: str
    #: Asset of the matching pool.
    token: Token
    matching_amount: int
    #: Length of the allocation window in seconds (donations happen inside it).
    duration_seconds: int


@dataclass(frozen=True, slots=True)
class Project:
    """A recipient registered in one pool."""

    pool: int
    name: str
    #: Index in ``RoundPlan.wallets`` of the wallet that registers the project
    #: and receives its funds (recipientId = payout address = this wallet).
    owner: int
    status: RecipientStatus = RecipientStatus.ACCEPTED


@dataclass(frozen=True, slots=True)
class Funding:
    """A wallet's first money: an ETH transfer, and with ``token_amount`` an ERC-20 transfer right after it.

    ``source`` is a wallet index, or ``None`` for the faucet (the account that deploys the devnet and
    funds simulations). ``at_seconds`` is when it is sent, in seconds from the allocation window's start
    (negative: before the round; the executor mines it then); ``None`` sends it at setup, before anything
    else (the faucet funding the round's exchange-like sources, the Round 9 replay's wallets).
    """

    source: int | None
    target: int
    amount: int
    at_seconds: float | None = None
    #: Test tokens sent along (base units); 0 for none. Wallets short of tokens are minted the rest at setup.
    token_amount: int = 0


@dataclass(frozen=True, slots=True)
class Source:
    """A plan wallet that is a known source (an exchange-like account), registered in qf.known_sources."""

    wallet: int
    label: str
    kind: str = "exchange"


@dataclass(frozen=True, slots=True)
class Donation:
    """One allocation: donor gives ``amount`` of ``token`` to a project."""

    at_seconds: float
    donor: int
    project: int
    token: Token
    amount: int


@dataclass(frozen=True, slots=True)
class Label:
    """Ground truth for one donor address."""

    address: str
    is_sybil: bool
    #: ``honest``, ``whale`` or the sybil pattern's name.
    pattern: str
    #: How the wallet was funded (``qf.sim.funding.Style``: exchange, personal_wallet, direct_fan_out, peel_chain,
    #: staggered, via_exchange, faucet); empty when the planner does not say.
    funding: str = ""


@dataclass(frozen=True, slots=True)
class RoundPlan:
    """A whole round, ready to execute."""

    name: str
    seed: int
    pools: tuple[Pool, ...]
    wallets: tuple[Wallet, ...]
    projects: tuple[Project, ...]
    fundings: tuple[Funding, ...]
    #: Sorted by ``at_seconds``; the executor keeps this order on chain.
    donations: tuple[Donation, ...]
    labels: tuple[Label, ...]
    #: Input rows left out and why (the replay reports these counts).
    skipped: Mapping[str, int] = field(default_factory=dict)
    #: Plan wallets that are known sources (the round's exchange-like accounts).
    sources: tuple[Source, ...] = ()
