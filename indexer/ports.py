"""The indexing loop's two edges, as Protocols: the node it reads and the store it writes.

:class:`indexer.loop.Indexer` is typed with these, not with the classes that
implement them in production -- :class:`indexer.rpc.ResilientRpc` (retries,
failover, rate limits) and :class:`indexer.store.Store` (PostgreSQL, the writer
lock), wired by :func:`indexer.app.build_indexer` -- so a test can hand it a
node or a store of its own, in memory, without monkeypatching
(``tests/indexer/test_loop_fakes.py``). Each Protocol lists exactly what the
loop (and ``indexer.fetch``, which it hands the node) calls; anything else
the owner needs (closing, the lock at start, the URL) it keeps on the concrete
object, which is why :class:`~indexer.loop.Indexer` is generic in both.

Blocks, transactions and logs are JSON-RPC answers as the node sends them
(hex strings), already checked by ``indexer.answers`` in the real client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from qf_sentinel.indexer.answers import TopicFilter
from qf_sentinel.indexer.sanitise import Clean
from qf_sentinel.indexer.store import Batch, ChainState

#: One JSON-RPC request: (method, params).
Call = tuple[str, Sequence[Any]]


class Node(Protocol):
    """An Ethereum JSON-RPC node, as the loop and ``indexer.fetch`` read it."""

    @property
    def current_url(self) -> str:
        """The endpoint in use, safe to log (credentials redacted)."""
        ...

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One request's ``result``; ``RpcError`` for a JSON-RPC error, ``RpcUnavailable`` for no answer."""
        ...

    def batch(self, calls: Sequence[Call]) -> list[Any]:
        """Several requests at once; their results in call order."""
        ...

    def chain_id(self) -> int: ...

    def block_number(self) -> int: ...

    def get_block(self, number_or_tag: int | str, full: bool = False) -> dict[str, Any] | None:
        """A block by number or tag (``"finalized"``); None if the node does not have it."""
        ...

    def get_blocks(self, numbers: Sequence[int], full: bool = False) -> list[dict[str, Any] | None]:
        """Blocks by number, in order; None for any the node does not have."""
        ...

    def get_transactions(self, hashes: Sequence[str]) -> list[dict[str, Any] | None]:
        """Transactions by hash, in order; None for any the node does not know."""
        ...

    def get_logs(
        self, from_block: int, to_block: int, addresses: Sequence[str] | None = None, topics: TopicFilter | None = None
    ) -> list[dict[str, Any]]:
        """eth_getLogs over [from_block, to_block] (``addresses=None``: any address)."""
        ...


class IndexStore(Protocol):
    """Where one chain's rows, checkpoint and block hashes are kept, as the loop writes them.

    ``commit_batch`` and ``rollback_to`` are each one transaction: the
    checkpoint moves with exactly the rows it covers.
    """

    @property
    def chain_id(self) -> int: ...

    # -- connection and lock
    def reset(self) -> None:
        """Drop a broken connection (and the writer lock with it); the next call reconnects."""
        ...

    def wait_for_lock(self, *, poll_seconds: float, should_stop: Callable[[], bool]) -> bool:
        """Block until this process is the chain's writer (True) or ``should_stop()`` (False)."""
        ...

    # -- state
    def load_state(self) -> ChainState | None: ...

    def init_state(self, core: bytes, start_block: int) -> ChainState:
        """Record the chain's core contract and start block (``ConfigError`` if another core is recorded)."""
        ...

    def genesis_hash(self) -> bytes | None: ...

    def set_genesis_hash(self, genesis: bytes) -> None: ...

    def forget_chain(self) -> dict[str, int]:
        """Delete every row of the chain (another chain under the same id); rows deleted by table."""
        ...

    # -- discovered contracts
    def strategies(self) -> dict[bytes, tuple[int, int]]:
        """Known strategies: address -> (pool id, discovery block)."""
        ...

    def unread_strategies(self) -> list[bytes]: ...

    def record_strategy_ids(self, answers: Mapping[bytes, Clean[bytes | None]]) -> int: ...

    def known_tokens(self) -> set[bytes]: ...

    # -- blocks, batches and reorgs
    def block_hashes(self, numbers: Iterable[int]) -> dict[int, bytes]: ...

    def stored_block_numbers(self, *, above: int) -> list[int]: ...

    def commit_batch(self, batch: Batch, expected_checkpoint: int | None) -> None:
        """Write the batch and move the checkpoint (``StaleCheckpoint`` if it is not at ``expected_checkpoint``)."""
        ...

    def rollback_to(self, ancestor: int, ancestor_hash: bytes | None) -> dict[str, int]:
        """Delete everything above block ``ancestor`` and put the checkpoint there; rows deleted by table."""
        ...

    def prune_blocks(self, below: int) -> int: ...

    def refresh_views(self, *, wait: bool = True) -> float | None:
        """Refresh the analytics views; the seconds it took, or None if ``wait`` is False and another
        chain's refresh holds the lock (the rows stay dirty for a later call)."""
        ...


__all__ = ["Call", "IndexStore", "Node"]
