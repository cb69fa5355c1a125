"""Exceptions of the indexer.

They extend the shared hierarchy in ``qf.errors``, so the CLI prints any of
them as one line. Each carries the context a caller needs to decide what to do
next (``retriable``, the block numbers involved) instead of parsing messages::

    QFError                    (qf.errors)
    ├── IndexerError           retriable = False unless said otherwise
    │   ├── DecodeError        a log with a known topic0 does not fit its signature
    │   ├── RangeRefused       the node refused an eth_getLogs block range;
    │   │                      retriable while the range can still be split
    │   ├── ChainMoved         the chain changed while a range was fetched (retriable:
    │   │                      fetched again after a growing wait)
    │   ├── ReorgTooDeep       no common ancestor within the allowed depth;
    │   │                      nothing was deleted
    │   ├── StaleCheckpoint    the checkpoint moved under this writer (also a DatabaseError:
    │                          the loop re-takes the writer lock, as after an outage)
    │   └── ChainsFailed       some of several chains indexed at once stopped on errors
    │                          (``failures``: chain name -> error); the others finished
    └── ChainError > RpcUnavailable (qf.errors)
        └── RpcExhausted       every attempt at every endpoint failed (``attempts``)

``RpcError`` and ``RpcUnavailable`` (``qf.errors``) stay the errors of the
transport; the indexer's fetch layer turns a range refusal among them into
``RangeRefused`` with the provider's hint (see ``indexer.ranges``). What the
``qf index`` command does with each: ``ReorgTooDeep`` and configuration errors
stop the chain they happened on (with several chains, the others go on; the command
then ends with one line naming each failed chain); the rest are waited out.
"""

from __future__ import annotations

from qf_sentinel.qf.errors import DatabaseError, QFError, RpcUnavailable


class IndexerError(QFError):
    """Base of the indexer's errors; ``retriable`` says whether trying again can help."""

    retriable: bool = False


class DecodeError(IndexerError):
    """A log whose topic0 is an Allo v2 event does not match that event's layout.

    Contracts other than Allo's may emit an event with the same signature but
    other indexed parameters (so other topics), or a log may be truncated: the
    caller skips and counts such logs rather than stopping the indexer.
    """

    def __init__(
        self,
        message: str,
        *,
        event: str | None = None,
        block_number: int | None = None,
        tx_hash: str | None = None,
        log_index: int | None = None,
    ) -> None:
        where = ", ".join(
            f"{key} {value}"
            for key, value in (("block", block_number), ("tx", tx_hash), ("log", log_index))
            if value is not None
        )
        super().__init__(f"{event or 'log'}: {message}" + (f" ({where})" if where else ""))
        self.reason = message
        self.event = event
        self.block_number = block_number
        self.tx_hash = tx_hash
        self.log_index = log_index


class RangeRefused(IndexerError):
    """The node refused ``eth_getLogs`` over [from_block, to_block].

    ``suggested_to`` is the last block of a range the provider said would work,
    ``max_blocks`` the provider's stated range limit; either may be unknown.
    Retriable while the range has more than one block: a smaller one may pass.
    """

    def __init__(
        self,
        message: str,
        *,
        from_block: int,
        to_block: int,
        suggested_to: int | None = None,
        max_blocks: int | None = None,
    ) -> None:
        super().__init__(f"eth_getLogs refused blocks {from_block}..{to_block}: {message}")
        self.from_block = from_block
        self.to_block = to_block
        self.suggested_to = suggested_to
        self.max_blocks = max_blocks
        self.retriable = to_block > from_block


class ReorgTooDeep(IndexerError):
    """No stored block within ``max_depth`` of the stored tip is still canonical.

    ``depth`` is a lower bound on how many stored blocks the reorganisation
    replaced. Nothing was deleted: an operator decides (re-index from an
    earlier block, or raise the limit).
    """

    def __init__(self, depth: int, max_depth: int, *, tip: int | None = None) -> None:
        at = f" below stored tip {tip}" if tip is not None else ""
        super().__init__(
            f"chain reorganisation of at least {depth} blocks{at}: no stored block within"
            f" {max_depth} of the tip is canonical; nothing was deleted"
        )
        self.depth = depth
        self.max_depth = max_depth
        self.tip = tip


class ChainMoved(IndexerError):
    """A log's block hash differs from the header fetched for its block: retry the range.

    ``missing_block`` is set when the node reported a head at or above a block it
    then did not have (a reorg in progress, or a lagging replica behind a load
    balancer): the retry stops short of it.
    """

    retriable = True

    def __init__(self, message: str, *, missing_block: int | None = None) -> None:
        super().__init__(message)
        self.missing_block = missing_block


class StaleCheckpoint(IndexerError, DatabaseError):
    """The checkpoint moved under this writer: another writer holds the chain."""


class ChainsFailed(IndexerError):
    """Chains of a multi-chain ``qf index`` that stopped on errors; the other chains were not held up."""

    def __init__(self, failures: dict[str, BaseException], *, chains: int) -> None:
        detail = "; ".join(f"{name}: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
                           for name, exc in failures.items())  # fmt: skip
        super().__init__(f"{len(failures)} of {chains} chains failed: {detail}")
        self.failures = failures


class RpcExhausted(RpcUnavailable):
    """Every attempt failed; the last failure is the ``__cause__``."""

    def __init__(self, message: str, *, url: str, attempts: int) -> None:
        super().__init__(message, url=url, retriable=True)
        self.attempts = attempts
