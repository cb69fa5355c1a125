"""The indexer: Allo v2 events from any Ethereum JSON-RPC node into PostgreSQL.

Not built yet (issue 3); the shared core it will use lives in ``qf``.
"""
