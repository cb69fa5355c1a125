"""Merkle trees that OpenZeppelin's ``MerkleProof.verify`` accepts: the payout plans of donation-voting rounds.

A round's manager publishes the root with ``updateDistribution``; each payout
then proves its leaf. OpenZeppelin hashes each pair in sorted order, so a proof
is just the siblings from leaf to root. Hand-written (twenty lines) because no
maintained Python package reproduces OpenZeppelin's pairing; the devnet test of
a real distribution is what checks it.
"""

from __future__ import annotations

from collections.abc import Sequence

import eth_abi
from eth_utils import keccak


def payout_leaf(index: int, recipient_id: str, recipient_address: str, amount: int) -> bytes:
    """The leaf of one payout as DonationVotingMerkleDistribution checks it (hashed twice, against preimages)."""
    encoded = eth_abi.encode(
        ["uint256", "address", "address", "uint256"], [index, recipient_id, recipient_address, amount]
    )
    return keccak(keccak(encoded))


def _pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


def merkle_root_and_proofs(leaves: Sequence[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """The root over ``leaves`` (in the given order) and, for each leaf, its proof."""
    if not leaves:
        raise ValueError("a Merkle tree needs at least one leaf")
    layers = [list(leaves)]
    while len(layers[-1]) > 1:
        below = layers[-1]
        layers.append([_pair(below[i], below[i + 1]) if i + 1 < len(below) else below[i]
                       for i in range(0, len(below), 2)])  # fmt: skip
    proofs = []
    for position in range(len(leaves)):
        proof, i = [], position
        for layer in layers[:-1]:
            sibling = i ^ 1
            if sibling < len(layer):
                proof.append(layer[sibling])
            i //= 2
        proofs.append(proof)
    return layers[-1][0], proofs


def verify(proof: Sequence[bytes], root: bytes, leaf: bytes) -> bool:
    """OpenZeppelin's ``MerkleProof.verify``."""
    node = leaf
    for sibling in proof:
        node = _pair(node, sibling)
    return node == root
