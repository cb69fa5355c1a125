"""Finding where the stored chain and the node's chain part ways.

The indexer keeps the hashes of its recent blocks. Two checks use them, both
pure:

* `check_parent_links` runs on every batch: the first new block must name the
  stored tip as its parent, and each block in the batch the one before it.
  A break at the stored tip means the stored blocks were reorganised away; a
  break inside the batch means the node switched forks while we read it.
* `fork_point_search` then walks back from the stored tip, comparing stored
  hashes with the node's, and returns the `Reorg`: the highest block both
  chains share and how many stored blocks are no longer canonical. It is a
  generator in the manner of psycopg's protocol generators: it yields the
  block numbers whose canonical hashes it needs next (few at first, since
  most reorgs are a block or two, then more) and is sent those hashes, so the
  RPC edge fetches them however it likes. `find_fork_point` drives it with a
  plain callback.

If no stored block within ``max_depth`` of the tip is canonical, the search
raises `ReorgTooDeep` and the caller deletes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import NamedTuple

from qf_sentinel.indexer.errors import ReorgTooDeep

__all__ = [
    "BlockHeader",
    "BlockId",
    "CanonicalHashes",
    "LinkBreak",
    "Reorg",
    "check_parent_links",
    "find_fork_point",
    "fork_point_search",
]


class BlockId(NamedTuple):
    """A block as stored: its number and hash (32 raw bytes)."""

    number: int
    hash: bytes


class BlockHeader(NamedTuple):
    """The part of a block header that links it to its parent."""

    number: int
    hash: bytes
    parent_hash: bytes


@dataclass(frozen=True, slots=True)
class LinkBreak:
    """Block ``number`` does not name the block before it as its parent.

    ``at_stored_tip`` is True when that block is the first of the batch and the
    stored tip is the block it fails to name: the stored chain was
    reorganised, so search the fork point. Otherwise the node changed forks
    during the batch's reads: read the batch again.
    """

    number: int
    expected_parent: bytes
    parent_hash: bytes
    at_stored_tip: bool


@dataclass(frozen=True, slots=True)
class Reorg:
    """Outcome of a fork-point search: delete stored blocks above ``common_ancestor``.

    ``depth`` is how many stored blocks that is (0: the stored tip is still canonical).
    """

    common_ancestor: int
    depth: int


def check_parent_links(blocks: Sequence[BlockHeader], stored_tip: BlockId | None) -> LinkBreak | None:
    """The first place the batch ``blocks`` does not link up, or ``None`` if it all does.

    ``blocks`` must be consecutive and ascending, and start right after
    ``stored_tip`` (``None`` when nothing is stored yet); anything else is a
    caller's bug and raises ``ValueError``.
    """
    if not blocks:
        return None
    if stored_tip is not None and blocks[0].number != stored_tip.number + 1:
        raise ValueError(f"batch starts at {blocks[0].number}, not after stored tip {stored_tip.number}")
    if stored_tip is not None and blocks[0].parent_hash != stored_tip.hash:
        return LinkBreak(blocks[0].number, stored_tip.hash, blocks[0].parent_hash, at_stored_tip=True)
    for previous, block in pairwise(blocks):
        if block.number != previous.number + 1:
            raise ValueError(f"batch is not consecutive: block {block.number} follows {previous.number}")
        if block.parent_hash != previous.hash:
            return LinkBreak(block.number, previous.hash, block.parent_hash, at_stored_tip=False)
    return None


#: Canonical hashes of the given block numbers, in the same order; ``None`` where the node
#: has no such block (after a reorg the new chain may be shorter than the stored one).
CanonicalHashes = Callable[[Sequence[int]], Sequence[bytes | None]]

#: A search step: numbers to look up out, their canonical hashes in, the `Reorg` at the end.
ForkSearch = Generator[list[int], Sequence[bytes | None], Reorg]


def fork_point_search(
    stored: Mapping[int, bytes],
    *,
    max_depth: int,
    first_batch: int = 4,
    max_batch: int = 128,
) -> ForkSearch:
    """Walk back from the stored tip to the highest block whose stored hash is canonical.

    ``stored`` maps block numbers to stored hashes, contiguous up to the tip
    (the walk stops at the first gap). The search looks at blocks ``tip`` down
    to ``tip - max_depth``; batches start at ``first_batch`` numbers and
    double up to ``max_batch``. Raises `ReorgTooDeep` if none of them matches.
    """
    if not stored:
        raise ValueError("no stored blocks to search")
    if max_depth < 0 or first_batch < 1 or max_batch < first_batch:
        raise ValueError("need max_depth >= 0 and 1 <= first_batch <= max_batch")
    tip = max(stored)
    floor = tip - max_depth
    number = tip
    batch_size = first_batch
    while number >= floor and number in stored:
        numbers: list[int] = []
        while len(numbers) < batch_size and number >= floor and number in stored:
            numbers.append(number)
            number -= 1
        hashes = yield numbers
        if len(hashes) != len(numbers):
            raise ValueError(f"asked for {len(numbers)} canonical hashes, got {len(hashes)}")
        for candidate, canonical in zip(numbers, hashes, strict=True):
            if canonical is not None and canonical == stored[candidate]:
                return Reorg(common_ancestor=candidate, depth=tip - candidate)
        batch_size = min(batch_size * 2, max_batch)
    # Every block checked was replaced, so at least that many were (the reorg may go deeper).
    raise ReorgTooDeep(tip - number, max_depth, tip=tip)


def find_fork_point(
    stored: Mapping[int, bytes],
    canonical_hashes: CanonicalHashes,
    *,
    max_depth: int,
    first_batch: int = 4,
    max_batch: int = 128,
) -> Reorg:
    """`fork_point_search` driven by a callback that fetches canonical hashes."""
    search = fork_point_search(stored, max_depth=max_depth, first_batch=first_batch, max_batch=max_batch)
    try:
        numbers = next(search)
        while True:
            numbers = search.send(canonical_hashes(numbers))
    except StopIteration as done:
        result: Reorg = done.value
        return result
