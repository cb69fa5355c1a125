"""Funding discovery: each donor's first funder (and the funder's, up to a depth), found on the node.

From the pure core out: ``transfers`` (incoming transfers read from trace, Otterscan and log
answers), ``capabilities`` (which methods the node answers, asked once), ``finder`` (one wallet's
search within a call budget), ``store`` (the queue and the results in Postgres, reorg-safe),
``worker`` (the loop joining them), ``metrics``, and ``app`` (wiring from settings). The tables are
those of migration 023; the pure questions asked of the results live in ``qf.funding``.
"""
