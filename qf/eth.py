"""Ethereum values at the edges: ``0x`` hex text to bytes and back, converted once.

Inside, addresses, hashes and calldata are ``bytes`` (what PostgreSQL's
``bytea`` and eth-abi take); text appears only where a node, a file or a user
speaks it. :data:`Address` and :data:`Hash32` name the two fixed sizes for
readers and type checkers; :func:`address` and :func:`hash32` check the size
when they parse.
"""

from __future__ import annotations

from typing import NewType

#: 20 bytes: an account or contract address.
Address = NewType("Address", bytes)
#: 32 bytes: a block or transaction hash, a topic, a profile id.
Hash32 = NewType("Hash32", bytes)


def to_hex(data: bytes) -> str:
    """``0x`` and two lower-case hex digits per byte (``0x`` for no bytes)."""
    return "0x" + data.hex()


def from_hex(text: str) -> bytes:
    """The bytes of ``0x``-prefixed (or bare) hex text; ``ValueError`` if it is not hex."""
    return bytes.fromhex(text.removeprefix("0x").removeprefix("0X"))


def address(text: str) -> Address:
    """A 20-byte address from hex text; ``ValueError`` naming the text otherwise."""
    return Address(_sized(text, 20, "an address"))


def hash32(text: str) -> Hash32:
    """A 32-byte hash from hex text; ``ValueError`` naming the text otherwise."""
    return Hash32(_sized(text, 32, "a 32-byte hash"))


def _sized(text: str, size: int, what: str) -> bytes:
    try:
        raw = from_hex(text)
    except (ValueError, AttributeError):
        raise ValueError(f"{text!r:.80} is not {what} (0x and {2 * size} hex digits)") from None
    if len(raw) != size:
        raise ValueError(f"{text!r:.80} is not {what} (0x and {2 * size} hex digits)")
    return raw
