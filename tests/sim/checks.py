"""Invariants every RoundPlan must hold, whichever planner built it.

Shared by the scenario and replay tests. The gas rule is restated here from the
brief (200k gas at 50 gwei per transaction, at least 1 ETH) rather than
imported, so a wrong ``gas_allowance_wei`` cannot hide itself.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from qf_sentinel.qf.sim.plan import RecipientStatus, RoundPlan, Token

ADDRESS = re.compile(r"0x[0-9a-f]{40}")
MAX_TX_COST_WEI = 200_000 * 50 * 10**9
ETH = 10**18


def assert_well_formed(plan: RoundPlan) -> None:
    """Fail with a precise message on the first broken invariant of ``plan``."""
    n = len(plan.wallets)
    addresses = [w.address for w in plan.wallets]
    assert all(ADDRESS.fullmatch(a) for a in addresses)
    assert len(set(addresses)) == n, "two wallets share an address"
    assert len({w.private_key for w in plan.wallets}) == n
    assert all(w.prior_nonce >= 0 for w in plan.wallets)

    for project in plan.projects:
        assert 0 <= project.pool < len(plan.pools)
        assert 0 <= project.owner < n
    assert len({p.owner for p in plan.projects}) == len(plan.projects), "an owner has two projects"

    times = [d.at_seconds for d in plan.donations]
    assert times == sorted(times), "donations are not sorted by at_seconds"
    for donation in plan.donations:
        project = plan.projects[donation.project]
        assert project.status is RecipientStatus.ACCEPTED, f"donation to {project.status.name}"
        assert 0 <= donation.at_seconds < plan.pools[project.pool].duration_seconds
        assert donation.amount > 0
        assert 0 <= donation.donor < n

    _assert_funded(plan)


def _assert_funded(plan: RoundPlan) -> None:
    """Every transacting wallet is funded before it funds others, with gas plus ETH it moves."""
    n = len(plan.wallets)
    received = [0] * n
    sent = [0] * n
    txs = Counter[int]()
    funded_at: dict[int, int] = {}
    funded_time: dict[int, float] = {}
    for position, funding in enumerate(plan.fundings):
        assert funding.amount > 0
        assert 0 <= funding.target < n
        at = -math.inf if funding.at_seconds is None else funding.at_seconds
        if funding.source is not None:
            assert funding.source in funded_at, "a wallet funds others before it is funded"
            assert funded_time[funding.source] <= at, "a wallet funds others before its own funding's time"
            sent[funding.source] += funding.amount
            txs[funding.source] += 1
        funded_at.setdefault(funding.target, position)
        funded_time.setdefault(funding.target, at)
        received[funding.target] += funding.amount
    for donation in plan.donations:
        txs[donation.donor] += 1
        if donation.token is Token.NATIVE:
            sent[donation.donor] += donation.amount
    for project in plan.projects:
        txs[project.owner] += 1
    for wallet, count in txs.items():
        gas = max(ETH, count * MAX_TX_COST_WEI)
        assert received[wallet] >= gas + sent[wallet], f"wallet {wallet} is underfunded"
