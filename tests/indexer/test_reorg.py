"""Fork-point search and parent-link checks: the last shared block is found for any pair of chains."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qf_sentinel.indexer.errors import ReorgTooDeep
from qf_sentinel.indexer.reorg import (
    BlockHeader,
    BlockId,
    LinkBreak,
    Reorg,
    check_parent_links,
    find_fork_point,
    fork_point_search,
)


def h(branch: str, number: int) -> bytes:
    """The hash of block ``number`` on ``branch``: distinct per branch and number."""
    return hashlib.sha256(f"{branch}:{number}".encode()).digest()


def chains(base: int, shared: int, stored_fork: int, canonical_fork: int) -> tuple[dict[int, bytes], dict[int, bytes]]:
    """Stored and canonical hashes from ``base``: ``shared`` common blocks, then each its own fork."""
    common = {n: h("common", n) for n in range(base, base + shared)}
    top = base + shared
    stored = common | {n: h("stored", n) for n in range(top, top + stored_fork)}
    canonical = common | {n: h("canonical", n) for n in range(top, top + canonical_fork)}
    return stored, canonical


class Node:
    """Canonical hashes by number, recording what was asked."""

    def __init__(self, hashes: dict[int, bytes]) -> None:
        self.hashes = hashes
        self.asked: list[list[int]] = []

    def __call__(self, numbers: Sequence[int]) -> list[bytes | None]:
        self.asked.append(list(numbers))
        return [self.hashes.get(n) for n in numbers]


# -- fork point ---------------------------------------------------------------------------


def test_no_reorg_is_depth_zero() -> None:
    """If the stored tip is canonical, nothing is to be undone."""
    stored, canonical = chains(100, 10, 0, 3)
    node = Node(canonical)
    assert find_fork_point(stored, node, max_depth=64) == Reorg(common_ancestor=109, depth=0)
    assert node.asked == [[109, 108, 107, 106]]


def test_shallow_reorg_needs_one_request() -> None:
    """A one-block reorg is found from the first batch of hashes."""
    stored, canonical = chains(100, 10, 1, 2)
    node = Node(canonical)
    assert find_fork_point(stored, node, max_depth=64) == Reorg(109, 1)
    assert len(node.asked) == 1


def test_batches_walk_back_doubling_and_stay_within_limits() -> None:
    """Numbers are asked tip-first, in batches of 4, 8, 16..., never below tip - max_depth."""
    stored, canonical = chains(0, 50, 40, 45)
    node = Node(canonical)
    assert find_fork_point(stored, node, max_depth=40, max_batch=16) == Reorg(49, 40)
    assert [len(b) for b in node.asked] == [4, 8, 16, 13]
    flat = [n for batch in node.asked for n in batch]
    assert flat == list(range(89, 48, -1))


def test_reorg_deeper_than_the_limit_raises() -> None:
    """No canonical block within max_depth: ReorgTooDeep, with how far the search went."""
    stored, canonical = chains(0, 50, 41, 41)
    node = Node(canonical)
    with pytest.raises(ReorgTooDeep) as caught:
        find_fork_point(stored, node, max_depth=40)
    assert (caught.value.depth, caught.value.max_depth, caught.value.tip) == (41, 40, 90)
    assert min(n for batch in node.asked for n in batch) == 50
    assert "nothing was deleted" in str(caught.value)


def test_stored_history_running_out_raises() -> None:
    """If every stored block was replaced, the ancestor is unknown: ReorgTooDeep, not a guess."""
    stored = {n: h("stored", n) for n in range(10, 15)}
    with pytest.raises(ReorgTooDeep) as caught:
        find_fork_point(stored, Node({n: h("canonical", n) for n in range(0, 20)}), max_depth=64)
    assert caught.value.depth == 5


def test_shorter_canonical_chain_counts_as_replaced() -> None:
    """After a reorg to a shorter chain, the node has no block at the old tip: a mismatch, not an error."""
    stored, canonical = chains(0, 20, 5, 2)
    assert find_fork_point(stored, Node(canonical), max_depth=64) == Reorg(19, 5)


def test_search_as_a_generator() -> None:
    """The sans-IO form: the search yields numbers and is sent their canonical hashes."""
    stored, canonical = chains(0, 10, 2, 2)
    search = fork_point_search(stored, max_depth=10, first_batch=1)
    assert next(search) == [11]
    assert search.send([canonical[11]]) == [10, 9]
    with pytest.raises(StopIteration) as done:
        search.send([canonical[10], canonical[9]])
    assert done.value.value == Reorg(9, 2)


def test_wrong_answers_and_bad_arguments_are_refused() -> None:
    """A callback answering the wrong number of hashes, or an empty store, is a bug."""
    stored, _ = chains(0, 10, 0, 0)
    with pytest.raises(ValueError, match="canonical hashes"):
        find_fork_point(stored, lambda numbers: [None], max_depth=10)
    with pytest.raises(ValueError, match="no stored blocks"):
        find_fork_point({}, lambda numbers: [], max_depth=10)


@given(
    base=st.integers(0, 10**6),
    shared=st.integers(0, 60),
    stored_fork=st.integers(0, 60),
    canonical_fork=st.integers(0, 60),
    max_depth=st.integers(0, 80),
    first_batch=st.integers(1, 8),
    extra_batch=st.integers(0, 64),
)
def test_fork_point_is_the_last_shared_block(
    base: int,
    shared: int,
    stored_fork: int,
    canonical_fork: int,
    max_depth: int,
    first_batch: int,
    extra_batch: int,
) -> None:
    """For any two chains sharing a prefix, the ancestor is its last block and the depth is tip - ancestor;
    deeper than max_depth (or no shared block stored) raises ReorgTooDeep."""
    stored, canonical = chains(base, shared, stored_fork, canonical_fork)
    if not stored:
        return
    tip = max(stored)
    node = Node(canonical)

    def search() -> Reorg:
        return find_fork_point(
            stored, node, max_depth=max_depth, first_batch=first_batch, max_batch=first_batch + extra_batch
        )

    if shared == 0 or stored_fork > max_depth:
        with pytest.raises(ReorgTooDeep) as caught:
            search()
        assert caught.value.depth > min(max_depth, tip - base)
    else:
        assert search() == Reorg(common_ancestor=base + shared - 1, depth=stored_fork)
        assert tip - (base + shared - 1) == stored_fork
    asked = [n for batch in node.asked for n in batch]
    assert asked == list(range(tip, tip - len(asked), -1))  # each number once, walking back
    assert all(n in stored and n >= tip - max_depth for n in asked)


# -- parent links -------------------------------------------------------------------------


def linked(branch: str, first: int, count: int, parent: bytes) -> list[BlockHeader]:
    blocks = []
    for n in range(first, first + count):
        blocks.append(BlockHeader(n, h(branch, n), parent))
        parent = blocks[-1].hash
    return blocks


def test_a_linked_batch_passes() -> None:
    """Blocks that each name the one before, starting from the stored tip: no break."""
    tip = BlockId(9, h("a", 9))
    assert check_parent_links(linked("a", 10, 5, tip.hash), tip) is None
    assert check_parent_links(linked("a", 10, 5, b"anything"), None) is None
    assert check_parent_links([], tip) is None


def test_break_at_the_stored_tip() -> None:
    """A first block whose parent is not the stored tip: the stored chain was reorganised."""
    tip = BlockId(9, h("a", 9))
    batch = linked("b", 10, 3, h("b", 9))
    assert check_parent_links(batch, tip) == LinkBreak(10, tip.hash, h("b", 9), at_stored_tip=True)


def test_break_inside_the_batch() -> None:
    """The node switched forks during the reads: the break names the first unlinked block."""
    tip = BlockId(9, h("a", 9))
    batch = linked("a", 10, 3, tip.hash) + linked("b", 13, 2, h("b", 12))
    assert check_parent_links(batch, tip) == LinkBreak(13, h("a", 12), h("b", 12), at_stored_tip=False)


@given(count=st.integers(2, 30), data=st.data())
def test_any_single_broken_link_is_found(count: int, data: st.DataObject) -> None:
    """Break one link anywhere in a batch: that block is reported, at the stored tip or inside."""
    tip = BlockId(99, h("a", 99))
    batch = linked("a", 100, count, tip.hash)
    k = data.draw(st.integers(0, count - 1))
    batch[k] = batch[k]._replace(parent_hash=h("x", k))
    found = check_parent_links(batch, tip)
    assert found is not None
    assert (found.number, found.at_stored_tip) == (100 + k, k == 0)


def test_batches_with_gaps_are_a_caller_bug() -> None:
    """Links can only be checked between consecutive blocks; anything else raises ValueError."""
    tip = BlockId(9, h("a", 9))
    with pytest.raises(ValueError, match="not after stored tip"):
        check_parent_links(linked("a", 11, 2, tip.hash), tip)
    gap = linked("a", 10, 2, tip.hash) + linked("a", 13, 1, h("a", 11))
    with pytest.raises(ValueError, match="not consecutive"):
        check_parent_links(gap, tip)
