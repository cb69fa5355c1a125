"""Off-chain metadata: IPFS documents that events point to, fetched beside the indexer and verified.

The pieces, from the pure core out: ``cid`` (which pointers are CIDs we read,
and whether a block matches its CID), ``unixfs`` (dag-pb nodes and file
reassembly), ``schedule`` (retry backoff); the edges ``gateway`` (HTTP) and
``store`` (Postgres); ``worker`` (the loop joining them) and ``app`` (wiring
from settings). Pointers are queued by triggers of migration 015, so the
indexer's only part in this is the rows it already writes.
"""
