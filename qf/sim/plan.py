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
    """A plain ETH transfer between simulated wallets before the round opens.

    ``source`` is a wallet index, or ``None`` for the faucet (an exchange-like
    account that funds honest wallets).
    """

    source: int | None
    target: int
    amount: int


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
