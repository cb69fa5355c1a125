"""Talking to an Ethereum node: JSON-RPC, contract artifacts, the anvil devnet,
signed transactions and deployments. The indexer builds its resilient reader on
``rpc``; the simulators use the rest.
"""
