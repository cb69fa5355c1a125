"""The indexing loop on fakes handed in through its Protocols (`indexer.ports`): no node, no database, no patching.

A :class:`FakeNode` serves a chain of empty blocks that a test can fork; a
:class:`FakeStore` keeps the checkpoint and the block hashes in memory with the
real store's rules (the checkpoint moves only from where the writer expects
it; a rollback deletes the hashes above the ancestor). That they satisfy the
Protocols is checked statically (``mypy tests/indexer/test_loop_fakes.py``:
``Indexer``'s node and store types are bound to them).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from qf_sentinel.indexer.answers import TopicFilter
from qf_sentinel.indexer.errors import StaleCheckpoint
from qf_sentinel.indexer.loop import Indexer, IndexerConfig, PreparedIndexer
from qf_sentinel.indexer.metrics import IndexerMetrics
from qf_sentinel.indexer.ports import Call
from qf_sentinel.indexer.ranges import RangePolicy
from qf_sentinel.indexer.sanitise import Clean
from qf_sentinel.indexer.store import Batch, ChainState

CHAIN_ID = 31337
CORE = b"\xc0" * 20
START = 1
GENESIS_TIME = 1_700_000_000


def block_hash(fork: str, number: int) -> bytes:
    return hashlib.sha256(f"{fork}:{number}".encode()).digest()


class FakeNode:
    """A node whose chain is blocks 0..head, each with the hash of the fork it was mined on; no logs."""

    def __init__(self, head: int) -> None:
        self.hashes = [block_hash("a", n) for n in range(head + 1)]

    def fork(self, at: int, head: int, name: str) -> None:
        """Replace blocks ``at``.. with another fork's, up to ``head``: a reorg of depth ``len - at``."""
        self.hashes = self.hashes[:at] + [block_hash(name, n) for n in range(at, head + 1)]

    def _block(self, number: int) -> dict[str, Any] | None:
        if not 0 <= number < len(self.hashes):
            return None
        parent = self.hashes[number - 1] if number else b"\x00" * 32
        return {"number": hex(number), "hash": "0x" + self.hashes[number].hex(), "parentHash": "0x" + parent.hex(),
                "timestamp": hex(GENESIS_TIME + 12 * number), "transactions": []}  # fmt: skip

    @property
    def current_url(self) -> str:
        return "fake://node"

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        if method == "eth_getCode":
            return "0x6080"
        raise AssertionError(f"unexpected call {method}")

    def batch(self, calls: Sequence[Call]) -> list[Any]:
        return [self.call(method, params) for method, params in calls]

    def chain_id(self) -> int:
        return CHAIN_ID

    def block_number(self) -> int:
        return len(self.hashes) - 1

    def get_block(self, number_or_tag: int | str, full: bool = False) -> dict[str, Any] | None:
        return self._block(number_or_tag) if isinstance(number_or_tag, int) else None  # no "finalized" tag

    def get_blocks(self, numbers: Sequence[int], full: bool = False) -> list[dict[str, Any] | None]:
        return [self._block(n) for n in numbers]

    def get_transactions(self, hashes: Sequence[str]) -> list[dict[str, Any] | None]:
        return [None for _ in hashes]

    def get_logs(
        self, from_block: int, to_block: int, addresses: Sequence[str] | None = None, topics: TopicFilter | None = None
    ) -> list[dict[str, Any]]:
        return []


class FakeStore:
    """One chain's checkpoint and block hashes in memory, with the real store's checkpoint and rollback rules."""

    def __init__(self) -> None:
        self.chain_id = CHAIN_ID
        self.state: ChainState | None = None
        self.blocks: dict[int, bytes] = {}
        self.genesis: bytes | None = None
        self.commits: list[tuple[int, int]] = []
        self.rollbacks: list[int] = []

    def reset(self) -> None:
        pass

    def wait_for_lock(self, *, poll_seconds: float, should_stop: Callable[[], bool]) -> bool:
        return True

    def load_state(self) -> ChainState | None:
        return self.state

    def init_state(self, core: bytes, start_block: int) -> ChainState:
        if self.state is None:
            self.state = ChainState(self.chain_id, core, start_block, None, None, None)
        return self.state

    def genesis_hash(self) -> bytes | None:
        return self.genesis

    def set_genesis_hash(self, genesis: bytes) -> None:
        self.genesis = genesis

    def forget_chain(self) -> dict[str, int]:
        deleted = {"blocks": len(self.blocks)}
        self.state, self.blocks = None, {}
        return deleted

    def strategies(self) -> dict[bytes, tuple[int, int]]:
        return {}

    def unread_strategies(self) -> list[bytes]:
        return []

    def record_strategy_ids(self, answers: Mapping[bytes, Clean[bytes | None]]) -> int:
        return 0

    def known_tokens(self) -> set[bytes]:
        return set()

    def block_hashes(self, numbers: Iterable[int]) -> dict[int, bytes]:
        return {n: self.blocks[n] for n in numbers if n in self.blocks}

    def stored_block_numbers(self, *, above: int) -> list[int]:
        return sorted((n for n in self.blocks if n > above), reverse=True)

    def commit_batch(self, batch: Batch, expected_checkpoint: int | None) -> None:
        assert self.state is not None
        if self.state.checkpoint_block != expected_checkpoint:
            raise StaleCheckpoint(f"checkpoint is no longer {expected_checkpoint}")
        self.blocks.update((b.number, b.hash) for b in batch.blocks)
        self.state = ChainState(self.chain_id, self.state.core, self.state.start_block, batch.to_block, batch.to_hash,
                                batch.finalized_block or self.state.finalized_block)  # fmt: skip
        self.commits.append((batch.from_block, batch.to_block))

    def rollback_to(self, ancestor: int, ancestor_hash: bytes | None) -> dict[str, int]:
        assert self.state is not None
        above = [n for n in self.blocks if n > ancestor]
        for n in above:
            del self.blocks[n]
        self.state = ChainState(self.chain_id, self.state.core, self.state.start_block, ancestor, ancestor_hash,
                                self.state.finalized_block)  # fmt: skip
        self.rollbacks.append(ancestor)
        return {"blocks": len(above)}

    def prune_blocks(self, below: int) -> int:
        return 0

    def refresh_views(self, *, wait: bool = True) -> float | None:
        return 0.0


def prepared(node: FakeNode, store: FakeStore) -> PreparedIndexer[FakeNode, FakeStore]:
    config = IndexerConfig(
        chain_id=CHAIN_ID, core=CORE, start_block=START, registry=None, price_feeds={}, poll_interval_seconds=0.0,
        confirmations=2, max_reorg_depth=8, range_policy=RangePolicy(initial_blocks=4, max_blocks=4),
        refresh_debounce_seconds=0.0,
    )  # fmt: skip
    # Indexer's node and store types are bound to the Protocols: mypy checks the fakes satisfy them.
    return Indexer(config, node, store, metrics=IndexerMetrics().chain(CHAIN_ID)).prepare()


def test_there_is_no_step_before_prepare() -> None:
    assert not hasattr(Indexer, "step")
    assert not hasattr(Indexer, "run")
    assert hasattr(PreparedIndexer, "step")


def test_a_range_is_committed_and_a_reorg_repaired_on_fakes_through_the_protocols() -> None:
    """Blocks 1..10 committed four at a time; the node forks at 8; the next step finds the fork point (7), rolls
    back to it, and the loop re-indexes the new fork to its head."""
    node, store = FakeNode(head=10), FakeStore()
    indexer = prepared(node, store)
    assert store.genesis == node.hashes[0]
    assert indexer.state.checkpoint_block is None

    indexer.run(threading.Event(), until_caught_up=True)
    assert store.commits == [(1, 4), (5, 8), (9, 10)]
    assert indexer.state == store.state
    assert store.state is not None
    assert store.state.checkpoint_block == 10
    assert store.blocks == {n: node.hashes[n] for n in range(1, 11)}

    node.fork(at=8, head=12, name="b")
    result = indexer.step()
    assert result.reorg_depth == 3
    assert not result.caught_up
    assert store.rollbacks == [7]
    assert indexer.state.checkpoint_block == 7
    assert indexer.state.checkpoint_hash == node.hashes[7]
    assert sorted(store.blocks) == list(range(1, 8))

    indexer.run(threading.Event(), until_caught_up=True)
    assert indexer.state.checkpoint_block == 12
    assert indexer.state.checkpoint_hash == node.hashes[12]
    assert store.blocks == {n: node.hashes[n] for n in range(1, 13)}
    assert indexer.metrics.registry.get_sample_value("qf_indexer_reorgs_total", {"chain_id": str(CHAIN_ID)}) == 1
