"""The indexer: Allo v2 events from any Ethereum JSON-RPC node into PostgreSQL.

``app`` builds and runs it; ``loop`` is the backfill/live-follow loop over
``ranges`` planning, ``fetch`` (logs and donation transactions), ``decode``,
``reorg`` repair and the ``store``; ``rpc`` is the resilient JSON-RPC client
and ``metrics`` the Prometheus endpoint. ``ports`` types the loop's two edges
(the node, the store) as Protocols, which ``rpc`` and ``store`` satisfy.
"""
