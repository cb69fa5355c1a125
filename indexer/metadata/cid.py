"""Content identifiers: which pointers can be fetched, and whether a block is the one a CID names.

Pure functions over bytes. A CID names a block by the hash of its bytes, so a
block from any gateway can be checked without trusting the gateway: hash it
with the CID's own multihash function and compare digests. Only then is it
decoded (``indexer.metadata.unixfs``). Parsing, multibase and multihash come
from the ``multiformats`` library; this module decides what is supported.
"""

from __future__ import annotations

from multiformats import CID

from qf_sentinel.indexer.metadata.errors import BlockMismatch, InvalidPointer

#: IPLD codecs of UnixFS files: a raw leaf (the block is the content) or a dag-pb node (all CIDv0).
RAW = "raw"
DAG_PB = "dag-pb"
SUPPORTED_CODECS = frozenset({RAW, DAG_PB})


def parse_cid(pointer: str) -> CID:
    """The CID a pointer spells, or `InvalidPointer` saying why it cannot be fetched."""
    shown = pointer if len(pointer) <= 80 else pointer[:77] + "..."
    try:
        cid = CID.decode(pointer)
    except (ValueError, KeyError) as exc:  # the library's multibase/multihash/multicodec errors subclass these
        raise InvalidPointer(f"not a CID: {shown!r} ({_message(exc)})") from None
    if cid.codec.name not in SUPPORTED_CODECS:
        raise InvalidPointer(f"CID {shown} has codec {cid.codec.name}; only raw and dag-pb files are read")
    try:
        cid.hashfun.implementation  # noqa: B018  # raises when the hash function has no implementation here
    except (ImportError, KeyError, ValueError) as exc:
        name = cid.hashfun.name
        raise InvalidPointer(f"CID {shown} uses hash function {name}, unsupported: {_message(exc)}") from None
    return cid


def cid_text(cid: CID) -> str:
    """The CID's usual spelling: base58btc for CIDv0 (its only form), base32 for CIDv1 (what gateways expect)."""
    return str(cid) if cid.version == 0 else cid.encode("base32")


def verify_block(cid: CID, block: bytes, *, gateway: str) -> None:
    """Raise `BlockMismatch` unless ``block`` hashes to ``cid``'s digest (with ``cid``'s hash function and size)."""
    actual = cid.hashfun.digest(block, size=len(cid.raw_digest))
    if actual != cid.digest:
        raise BlockMismatch(
            f"gateway {gateway} served {len(block)} bytes that do not hash to {cid_text(cid)}", gateway=gateway
        )


def _message(exc: BaseException) -> str:
    # KeyError's str() quotes its argument.
    return str(exc.args[0]) if exc.args else type(exc).__name__
