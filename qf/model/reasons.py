"""Reasons a reviewer can read: a gate feature and its value, said in words.

The gate names the features that pushed its decision hardest
(:meth:`qf.model.gate.GateModel.pushes`); a reviewer needs "9 new wallets gave
to this project in the last 10 minutes", not ``project_new_coarrivals_10m =
9``. :func:`describe` turns one pushed feature into such a sentence, with the
contribution's amount and token symbol where they help. Pure: the sidecar puts
the text in ``Reason.text`` and the audit log, the console shows it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from qf_sentinel.qf.model import live

Phrase = Callable[[float, str], str]


def _count(value: float) -> int:
    return round(value) if math.isfinite(value) else 0


def _pct(value: float) -> str:
    return f"{value:.0%}" if math.isfinite(value) else "?"


def _from_log(value: float) -> int:
    return round(math.expm1(value)) if math.isfinite(value) else 0


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _nonce(value: float, _: str) -> str:
    if value >= live.NONCE_CAP:
        return "the wallet's history is long or unknown (its nonce is not read)"
    n = _count(value)
    if n < 3:
        return f"a fresh wallet: {_plural(n, 'transaction')} sent before this one"
    return f"the wallet has sent {_plural(n, 'transaction')} before"


def _burst(value: float, where: str) -> str:
    if not math.isfinite(value):
        return f"arrivals at {where} in the last hour: unknown"
    times = math.exp(value)
    return f"arrivals at {where} in the last hour are {times:.1f}x its usual hourly rate"


PHRASES: dict[str, Phrase] = {
    "amount_log": lambda v, amount: f"gives {amount}",
    "amount_round": lambda v, amount: f"a round amount ({amount})" if v else f"an uneven amount ({amount})",
    "wallet_nonce": _nonce,
    "donor_prior_donations": lambda v, _: (
        "the wallet's first donation in this round" if _count(v) == 0
        else f"{_plural(_count(v), 'earlier donation')} from this wallet"
    ),
    "donor_prior_projects": lambda v, _: f"the wallet funded {_plural(_count(v), 'project')} before",
    "donor_hours_active": lambda v, _: f"the wallet first donated {v:.1f} hours ago",
    "donor_gave_here_before": lambda v, _: (
        "the wallet gave to this project before" if v else "the wallet never gave to this project before"
    ),
    "donor_reach": lambda v, _: f"the most popular project the wallet funded has {_plural(_from_log(v), 'donor')}",
    "project_donors_log": lambda v, _: f"this project has {_plural(_from_log(v), 'donor')} so far",
    "project_age_hours": lambda v, _: f"this project's first contribution was {v:.1f} hours ago",
    "project_arrivals_10m": lambda v, _: f"{_plural(_count(v), 'contribution')} to this project in the last 10 minutes",
    "project_arrivals_1h": lambda v, _: f"{_plural(_count(v), 'contribution')} to this project in the last hour",
    "project_burst": lambda v, _: _burst(v, "this project"),
    "project_recent_new_share": lambda v, _: (
        f"{_pct(v)} of this project's last {live.RECENT} contributions came from wallets new to the round"
    ),
    "project_recent_exclusive_share": lambda v, _: (
        f"{_pct(v)} of this project's latest donors gave to no other project"
    ),
    "project_recent_amount_cv": lambda v, _: (
        f"this project's latest amounts vary by {_pct(v)} around their mean"
    ),
    "project_same_amount_share": lambda v, amount: (
        f"{_pct(v)} of this project's last {live.RECENT} contributions were the same {amount}"
    ),
    "project_same_amount_streak": lambda v, amount: (
        f"{_plural(_count(v), 'contribution')} in a row to this project of the same {amount}"
    ),
    "project_new_coarrivals_10m": lambda v, _: (
        f"{_plural(_count(v), 'new wallet')} gave to this project in the last 10 minutes"
    ),
    "project_recent_overlap": lambda v, _: f"this project's latest donors fund the same projects ({_pct(v)} overlap)",
    "project_recent_reach": lambda v, _: (
        f"the other projects this project's latest donors fund have about {_plural(_from_log(v), 'donor')}"
    ),
    "pool_burst": lambda v, _: _burst(v, "this pool"),
    "pool_recent_new_share": lambda v, _: (
        f"{_pct(v)} of this pool's contributions in the last hour came from new wallets"
    ),
}  # fmt: skip


def _amount(amount: float) -> str:
    """Two decimals for ordinary amounts, significant digits for small ones (0.0010 is not "0.00")."""
    return f"{amount:,.2f}" if abs(amount) >= 0.01 or amount == 0 else f"{amount:.2g}"


def describe(feature: str, value: float, *, amount: float, symbol: str = "") -> str:
    """One sentence for a pushed feature: ``value`` said in words (the amount shown with its token symbol)."""
    unit = f"{_amount(amount)} {symbol}".strip() if math.isfinite(amount) else "an unknown amount"
    phrase = PHRASES.get(feature)
    if phrase is None:
        return f"{feature} = {value:g}"
    return phrase(value, unit)
