"""Exceptions of the funding worker.

::

    QFError                      (qf.errors)
    └── IndexerError             (indexer.errors)
        └── FundingError         a wallet's funding could not be (fully) found this time
            ├── BudgetExhausted  the wallet's RPC calls ran out (QF_FUNDING_MAX_CALLS); retriable: the next
            │                    attempt resumes where this one stopped
            ├── TooCostly        a method would need more calls than the budget (e.g. trace_filter capped at
            │                    300 blocks over a long chain); the next method is tried
            └── MethodMissing    the node answered "method not found" for a method it answered before (a
                                 failover to another node); capabilities are asked again; retriable
"""

from __future__ import annotations

from qf_sentinel.indexer.errors import IndexerError


class FundingError(IndexerError):
    """Base of the funding worker's errors; ``reason`` is a short label for metrics."""

    reason = "error"


class BudgetExhausted(FundingError):
    retriable = True
    reason = "budget"


class TooCostly(FundingError):
    reason = "too_costly"


class MethodMissing(FundingError):
    retriable = True
    reason = "method_missing"
