"""A round's matching under standard QF, COCM and risk-adjusted QF, side by side, per project.

The risk-adjusted column uses the pool's latest batch scores (``qf score``)
when there are some, else the sybil labels, exactly as ``qf matching`` would.
A comparison is cached per pool until the indexer commits a block, a new score
run lands or a label changes (a round's COCM takes seconds on Round 9; a page
view should not).
"""

from __future__ import annotations

import csv
import io
import threading
from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import psycopg

from qf.csvsafe import safe_row
from qf.matching import compute_matching
from qf.matching.db import contribution_matrix, load_donations, project_names, weights_from_labels, weights_from_model

METHODS = ("standard", "cocm", "risk_adjusted")


@dataclass(frozen=True, slots=True)
class ProjectMatch:
    recipient_id: bytes
    name: str | None
    donors: int
    amount: float
    standard: float
    cocm: float
    risk_adjusted: float

    @property
    def cocm_delta(self) -> float:
        return self.cocm - self.standard

    @property
    def risk_delta(self) -> float:
        return self.risk_adjusted - self.standard


@dataclass(frozen=True, slots=True)
class Comparison:
    pool_id: int
    pool_amount: float
    #: "model <version>" or "labels"
    weights_from: str
    projects: tuple[ProjectMatch, ...]
    #: amounts in USD across every token of the pool (else the pool's token only)
    usd: bool = False
    #: donations left out in USD for want of a price
    unpriced: int = 0


def compare(conn: psycopg.Connection[Any], chain_id: int, pool_id: int, usd: bool = False) -> Comparison:
    """The three matchings of a pool, projects by standard match, largest first.

    With ``usd``, donations in every token count at their USD value (as ``qf matching --usd``
    and qf-calculator's amountUSD); otherwise only the pool's token counts.
    """
    donations = load_donations(conn, chain_id, pool_id, usd=usd)
    pool = contribution_matrix(donations)
    has_scores = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM qf.donor_risk_latest WHERE chain_id = %s AND pool_id = %s)", (chain_id, pool_id)
    ).fetchone()
    if has_scores and has_scores[0]:
        weights, version, _missing = weights_from_model(conn, chain_id, pool_id, pool.donors)
        source = f"model {version}"
    else:
        weights, source = weights_from_labels(conn, chain_id, pool.donors), "labels"
    names = project_names(conn, chain_id, pool.projects)
    c, amount = pool.contributions, pool.pool_amount
    if c.size == 0 or not c.any():
        return Comparison(pool_id, amount, source, (), usd, donations.unpriced)
    standard = compute_matching(c, amount)
    cocm = compute_matching(c, amount, method="cocm")
    risk = compute_matching(c, amount, method="risk-adjusted", weights=weights)
    donors = (c > 0).sum(axis=0)
    totals = c.sum(axis=0)
    order = np.argsort(-standard, kind="stable")
    projects = tuple(
        ProjectMatch(pool.projects[j], names[j], int(donors[j]), float(totals[j]),
                     float(standard[j]), float(cocm[j]), float(risk[j]))
        for j in order
    )  # fmt: skip
    return Comparison(pool_id, amount, source, projects, usd, donations.unpriced)


def to_csv(comparison: Comparison) -> str:
    """The comparison as CSV; project names (chain data) made inert for spreadsheets (:mod:`qf.csvsafe`)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["recipient_id", "project", "donors", "amount", "match_standard", "match_cocm",
                     "match_risk_adjusted", "cocm_minus_standard", "risk_adjusted_minus_standard"])  # fmt: skip
    for p in comparison.projects:
        # Decimal keeps the six decimals and stays a number (a negative delta must not be quoted as text).
        amounts = (Decimal(f"{x:.6f}") for x in (p.amount, p.standard, p.cocm, p.risk_adjusted, p.cocm_delta,
                                                 p.risk_delta))  # fmt: skip
        writer.writerow(safe_row(["0x" + p.recipient_id.hex(), p.name or "", p.donors, *amounts]))
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
        result = compare(conn, chain_id, pool_id, usd)
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
