"""A round's matching under standard QF, COCM and risk-adjusted QF, side by side, per project: the round pages.

The numbers of a pool are :func:`qf.matching.service.match_pool`'s, as ``qf
matching`` and the demo show them (its policies: risk-adjusted weights from the
pool's latest ``qf score`` run, else the sybil labels, else none); those of a
named round across pools and chains are :func:`~qf.matching.service.match_round`'s
(in USD), each project with the chains it was given on. This module only shapes
that result for the page, the chart and the CSV. A comparison is cached per pool
(or round) until an indexer commits a block, a new score run lands, a label
changes or a price is imported (a round's COCM takes seconds on Round 9; a page
view should not).
"""

from __future__ import annotations

import csv
import io
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg

from qf_sentinel.console.queries import project_chains
from qf_sentinel.qf.csvsafe import safe_row
from qf_sentinel.qf.matching import Method
from qf_sentinel.qf.matching.db import PoolRef
from qf_sentinel.qf.matching.service import MatchingResult, match_pool, match_round

#: The methods the page sets side by side.
METHODS: tuple[Method, ...] = ("standard", "cocm", "risk-adjusted")


@dataclass(frozen=True, slots=True)
class ProjectMatch:
    recipient_id: bytes
    name: str | None
    donors: int
    amount: float
    standard: float
    cocm: float
    risk_adjusted: float
    #: the chains it was given on (a named round's project may be on several)
    chains: tuple[int, ...] = ()

    @property
    def cocm_delta(self) -> float:
        return self.cocm - self.standard

    @property
    def risk_delta(self) -> float:
        return self.risk_adjusted - self.standard


@dataclass(frozen=True, slots=True)
class Comparison:
    #: None for a named round (``round_name``, ``pools``)
    pool_id: int | None
    pool_amount: float
    #: how risk-adjusted matching weighed donors: "model <version>", "labels" or "none"
    weights_from: str
    projects: tuple[ProjectMatch, ...]
    #: amounts in USD across every token of the pool (else the pool's token only)
    usd: bool = False
    #: donations left out in USD for want of a price
    unpriced: int = 0
    #: the service's notes (unscored donors...)
    notes: tuple[str, ...] = ()
    round_name: str | None = None
    #: every (chain, pool) matched
    pools: tuple[PoolRef, ...] = ()


def compare(conn: psycopg.Connection[Any], chain_id: int, pool_id: int, usd: bool = False) -> Comparison:
    """The three matchings of a pool, projects by standard match, largest first.

    With ``usd``, donations in every token count at their USD value (as ``qf matching --usd``
    and qf-calculator's amountUSD); otherwise only the pool's token counts.
    """
    return from_result(match_pool(conn, chain_id, pool_id, methods=METHODS, usd=usd))


def compare_round(conn: psycopg.Connection[Any], name: str) -> Comparison:
    """The three matchings of a named round across its pools and chains, in USD (``qf matching --round``)."""
    return from_result(match_round(conn, name, methods=METHODS), project_chains(conn, name))


def from_result(result: MatchingResult, chains_of: Mapping[bytes, tuple[int, ...]] | None = None) -> Comparison:
    """The page's view of the service's result (no project rows when nothing was donated).

    ``chains_of`` gives a round's projects their chains; a pool's are its chain.
    """
    own = (result.chain_id,) if result.chain_id is not None else ()
    projects = tuple(
        ProjectMatch(p.recipient_id, p.name, p.donors, p.amount, p.matches["standard"], p.matches["cocm"],
                     p.matches["risk-adjusted"], (chains_of or {}).get(p.recipient_id, own))
        for p in result.projects(by="standard")
    ) if result.donors else ()  # fmt: skip
    return Comparison(result.pool_id, result.pool_amount, result.weights_source, projects, result.usd,
                      result.unpriced, result.notes, result.round_name, result.pools)  # fmt: skip


def to_csv(comparison: Comparison) -> str:
    """The comparison as CSV; project names (chain data) made inert for spreadsheets (:mod:`qf.csvsafe`).

    A named round's CSV adds each project's chains (``10 42161``) and its amounts are USD.
    """
    named = comparison.round_name is not None
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["recipient_id", "project", *(["chain_ids"] if named else []), "donors",
                     "amount_usd" if named else "amount", "match_standard", "match_cocm", "match_risk_adjusted",
                     "cocm_minus_standard", "risk_adjusted_minus_standard"])  # fmt: skip
    for p in comparison.projects:
        # Decimal keeps the six decimals and stays a number (a negative delta must not be quoted as text).
        amounts = (Decimal(f"{x:.6f}") for x in (p.amount, p.standard, p.cocm, p.risk_adjusted, p.cocm_delta,
                                                 p.risk_delta))  # fmt: skip
        chains = [" ".join(str(c) for c in p.chains)] if named else []
        writer.writerow(safe_row(["0x" + p.recipient_id.hex(), p.name or "", *chains, p.donors, *amounts]))
    return out.getvalue()


class ComparisonCache:
    """The latest comparisons, keyed by pool and by what they were computed from."""

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[Any, ...], Comparison] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, conn: psycopg.Connection[Any], chain_id: int, pool_id: int, usd: bool = False) -> Comparison:
        key = (chain_id, pool_id, usd, *_inputs_version(conn, chain_id, pool_id))
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                return hit
        return self._put(key, compare(conn, chain_id, pool_id, usd))

    def get_round(self, conn: psycopg.Connection[Any], name: str, pools: list[PoolRef]) -> Comparison:
        """A named round's comparison; ``pools`` (the round's, read by the caller) are part of its key."""
        key: tuple[Any, ...] = ("round", name, tuple(pools), _prices_version(conn))
        for chain_id, pool_id in pools:
            key += tuple(_inputs_version(conn, chain_id, pool_id))
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                return hit
        return self._put(key, compare_round(conn, name))

    def _put(self, key: tuple[Any, ...], result: Comparison) -> Comparison:
        with self._lock:
            self._entries[key] = result
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return result


def _inputs_version(conn: psycopg.Connection[Any], chain_id: int, pool_id: int) -> tuple[Any, ...]:
    row = conn.execute(
        """
        SELECT (SELECT checkpoint_block FROM qf.chains WHERE chain_id = %(c)s),
               (SELECT max(scored_at) FROM qf.donor_risk WHERE chain_id = %(c)s AND pool_id = %(p)s),
               (SELECT max(created_at) FROM qf.labels WHERE chain_id = %(c)s),
               (SELECT count(*) FROM qf.labels WHERE chain_id = %(c)s)
        """,
        {"c": chain_id, "p": pool_id},
    ).fetchone()
    return tuple(row) if row else ()


def _prices_version(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
    """A round is matched in USD: imported prices move its numbers."""
    row = conn.execute("SELECT count(*), max(at), sum(price_usd) FROM qf.imported_prices").fetchone()
    return tuple(row) if row else ()
