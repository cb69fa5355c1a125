"""Exceptions of the shared core.

Every error a user can cause or fix carries a one-line message; the CLI prints
that line and exits non-zero instead of showing a traceback::

    QFError
    ├── ConfigError          bad or missing setting, file or flag value
    │   └── AmbiguousChain   several chains are indexed and none was named
    ├── DataError            malformed input data (a CSV, a labels file)
    ├── DatabaseError        the database cannot be reached or migrated
    └── ChainError           the node cannot be used
        ├── RpcUnavailable   connection refused, timeout, HTTP error
        ├── RpcError         the node answered with a JSON-RPC error
        ├── ChainIdMismatch  the node serves another chain than expected
        └── TxFailed         a transaction reverted or was never mined
"""

from __future__ import annotations


class QFError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(QFError):
    """A setting, flag or file given by the user cannot be used."""


class AmbiguousChain(ConfigError):
    """Several chains are indexed and the question did not say which; ``chains`` lists them."""

    def __init__(self, chains: list[int]) -> None:
        names = ", ".join(str(c) for c in chains)
        super().__init__(
            f"{len(chains)} chains are indexed ({names}): name one with --chain-id or QF_CHAIN_ID"
        )
        self.chains = chains


class DataError(QFError):
    """Input data is malformed; the message names the file and the row."""


class DatabaseError(QFError):
    """The database cannot be reached, started or migrated."""


class ChainError(QFError):
    """The Ethereum node cannot be used for what was asked."""


class RpcUnavailable(ChainError):
    """The node did not answer: connection refused, timeout, HTTP error."""

    def __init__(self, message: str, *, url: str, retriable: bool = True) -> None:
        super().__init__(message)
        self.url = url
        self.retriable = retriable


class RpcError(ChainError):
    """The node answered a request with a JSON-RPC error object."""

    def __init__(self, message: str, *, code: int, method: str, data: object = None) -> None:
        super().__init__(f"{method}: {message} (code {code})")
        self.code = code
        self.method = method
        self.rpc_message = message
        self.data = data


class ChainIdMismatch(ChainError):
    """The node serves a different chain than the configuration expects."""


class TxFailed(ChainError):
    """A transaction reverted, or was not mined when it should have been."""

    def __init__(self, message: str, *, tx_hash: str | None = None) -> None:
        super().__init__(message)
        self.tx_hash = tx_hash
