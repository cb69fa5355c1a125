"""The templates' filters: how an address, a number, a share, a time or a duration reads on a page.

:class:`console.site.Console` installs :data:`FILTERS` in its Jinja2
environment, so a template writes ``{{ amount | num }}`` and every page formats
alike. Each filter is a pure function of the value and shows a missing or
non-finite value as an em dash rather than failing the page. Chain-supplied
text has its own filters, from :mod:`console.display` (``chain_text``,
``plain``), and a chain id reads as :func:`console.chains.chain_label` (``chain``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from qf_sentinel.console.chains import chain_label
from qf_sentinel.console.display import chain_text, plain

#: What a filter shows for a value that is missing (or not a finite number).
MISSING = "—"


def addr(value: bytes | str | None, short: bool = True) -> str:
    """An address or id as 0x-hex; with ``short``, one over 14 characters as ``0x12ab34…cdef`` (first 8, last 4)."""
    if value is None:
        return MISSING
    text = value if isinstance(value, str) else "0x" + bytes(value).hex()
    return text[:8] + "…" + text[-4:] if short and len(text) > 14 else text


def num(value: Any, decimals: int = 2) -> str:
    """A number with thousands separators and ``decimals`` places."""
    if value is None:
        return MISSING
    number = float(value) if isinstance(value, Decimal | int | float) else value
    if isinstance(number, float) and not math.isfinite(number):
        return MISSING
    return f"{number:,.{decimals}f}"


def pct(value: Any, decimals: int = 1) -> str:
    """A fraction as a percentage (0.25 reads 25.0%)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    return f"{float(value) * 100:.{decimals}f}%"


def when(value: datetime | None) -> str:
    """A time in UTC, to the second (pages are read across time zones)."""
    return MISSING if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def seconds(value: Any) -> str:
    """A duration in the largest unit that keeps it readable: seconds, minutes, hours, then days."""
    if value is None:
        return MISSING
    s = float(value)
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


#: Every filter the templates use, by the name they use it under.
FILTERS: dict[str, Callable[..., Any]] = {
    "addr": addr, "num": num, "pct": pct, "when": when, "seconds": seconds,
    "chain_text": chain_text, "plain": plain, "chain": chain_label,
}  # fmt: skip
