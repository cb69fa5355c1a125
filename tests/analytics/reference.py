"""The analytics numbers computed in plain Python, to check the SQL views against.

Written from the definitions in sql/004_analytics.sql, not from its queries:
standard QF per project, pro-rata scaling, Gitcoin's iterative cap, the Gini
coefficient and the donor features. Amounts are ``Fraction``s of token units so
nothing is rounded before the comparison.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction


@dataclass(frozen=True, slots=True)
class Gift:
    """One donation as the views see it (amount in token units)."""

    donor: bytes
    project: Hashable
    pool: int
    token: bytes
    amount: Fraction
    block_number: int
    log_index: int
    time: datetime
    nonce: int
    gas_price: int


def standard_matches(contributions: Mapping[Hashable, Mapping[bytes, Fraction]]) -> dict[Hashable, float]:
    """(sum_i sqrt(c_i))^2 - sum_i c_i per project, from each donor's total c_i."""
    return {
        p: sum(math.sqrt(c) for c in donors.values()) ** 2 - float(sum(donors.values()))
        for p, donors in contributions.items()
    }


def pro_rata(matches: Mapping[Hashable, float], pool: float) -> dict[Hashable, float]:
    """Scale the matches so they add up to the pool (all zero when they add up to zero)."""
    total = sum(matches.values())
    return {p: (pool * m / total if total > 0 else 0.0) for p, m in matches.items()}


def gini(values: Sequence[float]) -> float | None:
    """Mean absolute difference over twice the mean; None when everything is zero."""
    n, total = len(values), sum(values)
    if n == 0 or total <= 0:
        return None
    return sum(abs(a - b) for a in values for b in values) / (2 * n * total)


def contributions_of(gifts: Iterable[Gift]) -> dict[Hashable, dict[bytes, Fraction]]:
    out: dict[Hashable, dict[bytes, Fraction]] = defaultdict(lambda: defaultdict(Fraction))
    for g in gifts:
        out[g.project][g.donor] += g.amount
    return out


def donor_features(donor: bytes, gifts: Sequence[Gift]) -> dict[str, object]:
    """The qf.donor_features row of one donor, from every donation of the round."""
    mine = sorted((g for g in gifts if g.donor == donor), key=lambda g: (g.block_number, g.log_index))
    amounts = [g.amount for g in mine]
    total = sum(amounts, Fraction(0))
    mean = total / len(mine)
    by_project: dict[Hashable, Fraction] = defaultdict(Fraction)
    for g in mine:
        by_project[g.project] += g.amount
    gaps = [(b.time - a.time).total_seconds() for a, b in itertools.pairwise(mine)]
    codonations = sum(
        1
        for g in mine
        if any(o.donor != donor and o.block_number == g.block_number and o.project == g.project for o in gifts)
    )
    return {
        "donation_count": len(mine),
        "total_amount": total,
        "mean_amount": mean,
        "amount_stddev": math.sqrt(sum((a - mean) ** 2 for a in amounts) / len(mine)),
        "distinct_projects": len(by_project),
        "distinct_pools": len({g.pool for g in mine}),
        "distinct_tokens": len({g.token for g in mine}),
        "first_seen": mine[0].time,
        "last_seen": mine[-1].time,
        "first_nonce": mine[0].nonce,
        "fresh_wallet": mine[0].nonce < 3,
        "median_gap_seconds": statistics.median(gaps) if gaps else None,
        "round_amount_share": sum(1 for a in amounts if (a * 2).denominator == 1) / len(mine),
        "same_block_codonations": codonations,
        "top_project_share": max(by_project.values()) / total,
        "gas_price_distinct": len({g.gas_price for g in mine}),
    }


def capped(matches: Sequence[float], cap: float) -> list[float]:
    """Gitcoin's iterative cap: clamp above ``cap``, share the excess pro rata among the rest, repeat."""
    m = list(matches)
    done = [False] * len(m)
    while True:
        excess = 0.0
        for i, x in enumerate(m):
            if not done[i] and x > cap:
                excess += x - cap
                m[i], done[i] = cap, True
        rest = sum(x for i, x in enumerate(m) if not done[i])
        if excess == 0 or rest == 0:
            return m
        m = [x if done[i] else x + excess * x / rest for i, x in enumerate(m)]
