"""Where a wallet's money came from: funding rows, known sources, and point-in-time questions over them.

The simulator draws funding, the indexer finds it on the node (``indexer.funding``) or imports it,
and features read it; this package is what they share, below all three::

    graph    FundingRow, KnownSource and FundingGraph: "what was known of wallet W's funding at time T"
             (first funder, amount, trail depth, known-source flag, the funder's fan-out); pure
    sources  known sources: the shipped list, the CSV format of `qf sources import`, their table
    imports  the CSV format of `qf funding import` (a data provider's first-funder export), its table
    db       reading qf.wallet_funding and qf.known_sources back into a FundingGraph
    csvfile  reading a whole CSV before anything is written (both imports)
"""
