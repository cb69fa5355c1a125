"""The funding graph: who first funded whom, and what of it was known at a given time.

Pure, no I/O. A :class:`FundingRow` is one wallet's *first* incoming transfer of one asset (the
native coin, or an ERC-20): its funder, amount, block and time. Rows come from the node
(``indexer.funding``), from an import (``qf funding import``), or from the simulator's models
(``qf.sim.funding``); :func:`qf.funding.db.load_graph` reads the stored ones. A
:class:`KnownSource` is a labelled address (an exchange's hot wallet, a bridge, a faucet) that funds
many honest wallets, so sharing it as a funder is no evidence of anything.

:class:`FundingGraph` answers the questions features ask, **as of a time**: a row counts from its
block's time on (``row.time <= as_of``), so a funding mined in the same block as a donation precedes
it, and nothing after ``as_of`` can change an answer (tested by rewriting the future):

* :meth:`~FundingGraph.first_funding`: the wallet's first funding known by then, or None (unknown);
* :meth:`~FundingGraph.trail`: that funding, then the funder's own first funding before it, and so
  on (a peel chain A -> B -> C -> wallet), stopping at a known source, a cycle or ``max_depth``;
* :meth:`~FundingGraph.fan_out`: how many wallets (optionally: among a given set, e.g. the round's
  donors so far) the same funder had first-funded by then;
* :meth:`~FundingGraph.clusters`: connected components of the funding edges known by then, known
  sources left out (an exchange does not join its customers into one cluster);
* :meth:`~FundingGraph.facts`: all of the above for one wallet, as one :class:`FundingFacts`.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

#: Allo's marker for the chain's native coin (qf.donations.token), used as the native asset here too.
NATIVE = bytes.fromhex("ee" * 20)
#: The sender of a mint: an ERC-20 Transfer from the zero address.
ZERO_ADDRESS = bytes(20)
#: Hops a trail follows by default: the wallet's funder, its funder's funder, and one more.
DEFAULT_MAX_DEPTH = 3


class Method(enum.StrEnum):
    """How a row was found. The first five are stored (qf.wallet_funding.method); ``simulated`` rows are
    drawn in memory by ``qf.sim.funding`` for evaluation rounds and never stored."""

    TRACE_FILTER = "trace_filter"
    TRACE_BLOCK = "trace_block"
    OTS = "ots"
    TRANSFER_LOGS = "transfer_logs"
    IMPORT = "import"
    SIMULATED = "simulated"


class SourceKind(enum.StrEnum):
    """What a known source is (qf.known_sources.kind)."""

    EXCHANGE = "exchange"
    BRIDGE = "bridge"
    FAUCET = "faucet"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class FundingRow:
    """The first incoming transfer of ``asset`` to ``wallet``; addresses are 20 raw bytes, times unix seconds."""

    wallet: bytes
    asset: bytes
    funder: bytes
    amount: int
    block: int
    time: float
    #: 1: a donor (or a wallet asked about); 2: a donor's funder; ...
    depth: int = 1
    method: str = Method.TRACE_FILTER
    tx_hash: bytes | None = None
    funder_is_contract: bool | None = None

    @property
    def is_native(self) -> bool:
        return self.asset == NATIVE


@dataclass(frozen=True, slots=True)
class KnownSource:
    """A labelled address that funds many honest wallets, with where the label comes from."""

    address: bytes
    label: str
    kind: SourceKind
    source: str


@dataclass(frozen=True, slots=True)
class FundingFacts:
    """What was known of one wallet's funding at ``as_of`` (see :meth:`FundingGraph.facts`)."""

    wallet: bytes
    as_of: float
    #: The first native funding at or before ``as_of``; None: unknown (not found, not yet funded, or not looked up).
    first: FundingRow | None
    #: ``first``, then the funder's first funding before it, ...: nearest first, at most the depth asked.
    trail: tuple[FundingRow, ...]
    #: The first funder's label when it is a known source (then the funding is no evidence either way).
    funder_source: KnownSource | None
    #: The known source the trail stopped at (at any hop), if it stopped at one.
    trail_source: KnownSource | None
    #: Wallets the first funder had first-funded by ``as_of`` (this one included; among the set given, if any).
    funder_fan_out: int
    #: ``as_of`` minus the first funding's time; None when unknown.
    seconds_since_funding: float | None
    #: The first funding in the token asked about, at or before ``as_of`` (None if not asked or unknown).
    token: FundingRow | None = None

    @property
    def known(self) -> bool:
        """Whether anything is known of the wallet's native funding as of then."""
        return self.first is not None

    @property
    def trail_depth(self) -> int:
        """Hops of the trail: 0 unknown, 1 the funder only, 2 the funder's funder too, ..."""
        return len(self.trail)


@dataclass
class FundingGraph:
    """First-funding rows by wallet and by funder, and labelled sources; answers questions as of a time.

    Several rows for one (wallet, asset) keep the earliest (by block, then time): the first funding is,
    by definition, the earliest one (a discovered and an imported row may disagree).
    """

    rows: Iterable[FundingRow] = ()
    sources: Iterable[KnownSource] = ()
    _first: dict[tuple[bytes, bytes], FundingRow] = field(init=False, default_factory=dict)
    _by_funder: dict[tuple[bytes, bytes], list[tuple[float, bytes]]] = field(init=False, default_factory=dict)
    _sources: dict[bytes, KnownSource] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        for row in self.rows:
            key = (row.wallet, row.asset)
            held = self._first.get(key)
            if held is None or (row.block, row.time) < (held.block, held.time):
                self._first[key] = row
        for row in self._first.values():
            self._by_funder.setdefault((row.funder, row.asset), []).append((row.time, row.wallet))
        for funded in self._by_funder.values():
            funded.sort()
        self._sources = {s.address: s for s in self.sources}
        self.rows = tuple(self._first.values())
        self.sources = tuple(self._sources.values())

    def __len__(self) -> int:
        return len(self._first)

    # -- single questions -----------------------------------------------------------------
    def known_source(self, address: bytes) -> KnownSource | None:
        return self._sources.get(address)

    def first_funding(self, wallet: bytes, *, as_of: float, asset: bytes = NATIVE) -> FundingRow | None:
        """The wallet's first funding in ``asset`` if it happened at or before ``as_of``, else None."""
        row = self._first.get((wallet, asset))
        return row if row is not None and row.time <= as_of else None

    def trail(
        self, wallet: bytes, *, as_of: float, max_depth: int = DEFAULT_MAX_DEPTH, asset: bytes = NATIVE
    ) -> tuple[FundingRow, ...]:
        """The wallet's first funding, then its funder's first funding at or before that one, and so on.

        Stops after ``max_depth`` hops, at a funder that is a known source (its own funding says nothing
        about the wallet), at a funder seen before on the trail, or where no earlier funding is known.
        """
        hops: list[FundingRow] = []
        seen = {wallet}
        row = self.first_funding(wallet, as_of=as_of, asset=asset)
        while row is not None and len(hops) < max_depth:
            hops.append(row)
            if row.funder in seen or row.funder in self._sources:
                break
            seen.add(row.funder)
            row = self.first_funding(row.funder, as_of=row.time, asset=asset)
        return tuple(hops)

    def funded(self, funder: bytes, *, as_of: float, asset: bytes = NATIVE) -> list[FundingRow]:
        """The rows of every wallet ``funder`` had first-funded at or before ``as_of``, oldest first."""
        funded = self._by_funder.get((funder, asset), [])
        end = bisect.bisect_right(funded, (as_of, b"\xff" * 21))
        return [self._first[(w, asset)] for _, w in funded[:end]]

    def fan_out(
        self, funder: bytes, *, as_of: float, asset: bytes = NATIVE, among: Collection[bytes] | None = None
    ) -> int:
        """How many wallets ``funder`` had first-funded at or before ``as_of`` (only those in ``among``, if given)."""
        funded = self._by_funder.get((funder, asset), [])
        end = bisect.bisect_right(funded, (as_of, b"\xff" * 21))
        if among is None:
            return end
        return sum(1 for _, w in funded[:end] if w in among)

    def clusters(self, *, as_of: float, asset: bytes = NATIVE) -> dict[bytes, bytes]:
        """Each wallet of a funding edge known by ``as_of`` -> its component's representative (smallest address).

        Edges whose funder is a known source are left out: an exchange funds strangers.
        """
        parent: dict[bytes, bytes] = {}

        def root(a: bytes) -> bytes:
            parent.setdefault(a, a)
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        for (_, row_asset), row in self._first.items():
            if row_asset != asset or row.time > as_of or row.funder in self._sources:
                continue
            a, b = root(row.wallet), root(row.funder)
            if a != b:
                parent[max(a, b)] = min(a, b)
        return {a: root(a) for a in parent}

    def facts(
        self,
        wallet: bytes,
        *,
        as_of: float,
        among: Collection[bytes] | None = None,
        max_depth: int = DEFAULT_MAX_DEPTH,
        token: bytes | None = None,
    ) -> FundingFacts:
        """Everything above for one wallet, as of ``as_of``; ``among`` restricts the funder's fan-out (e.g. to
        the round's donors so far), ``token`` asks for the first funding in that ERC-20 too."""
        trail = self.trail(wallet, as_of=as_of, max_depth=max_depth)
        first = trail[0] if trail else None
        last_funder = trail[-1].funder if trail else None
        return FundingFacts(
            wallet=wallet,
            as_of=as_of,
            first=first,
            trail=trail,
            funder_source=self.known_source(first.funder) if first else None,
            trail_source=self.known_source(last_funder) if last_funder is not None else None,
            funder_fan_out=self.fan_out(first.funder, as_of=as_of, among=among) if first else 0,
            seconds_since_funding=as_of - first.time if first else None,
            token=self.first_funding(wallet, as_of=as_of, asset=token) if token is not None else None,
        )
