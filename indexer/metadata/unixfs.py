"""UnixFS files: decode dag-pb nodes and reassemble a file from its verified blocks.

Pure code: the blocks come from a function the caller passes in
(:data:`GetBlock`), which must return only blocks already verified against
their CID. A file is either one raw block, or a dag-pb ``PBNode`` whose
``Data`` is a UnixFS ``Data`` message of type File (or Raw): its content is
that message's inline ``Data`` followed by the content of each link, in
order, links being raw leaves or further dag-pb nodes. Total size, block
count and depth are bounded, so a hostile DAG cannot exhaust memory.

The protobuf decoding is hand-written: the two messages have seven fields we
read, and generating stubs for them would join this module to the gRPC
generation pipeline (``scripts/gen_proto.py``) for ~60 lines of wire-format
reading; no maintained Python dag-pb library is packaged on PyPI
(``ipld-dag-pb`` is a 0.0.1 release). The schemas followed are the IPLD
dag-pb spec and the UnixFS v1 spec (``unixfs.proto``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from multiformats import CID

from qf_sentinel.indexer.metadata.cid import DAG_PB, RAW, SUPPORTED_CODECS
from qf_sentinel.indexer.metadata.errors import MalformedBlock, TooLarge

#: Returns the block a CID names, already verified against it.
GetBlock = Callable[[CID], bytes]

#: UnixFS Data.DataType values that hold file content.
_RAW_TYPE, _FILE = 0, 2
_TYPE_NAMES = {1: "a directory", 3: "metadata", 4: "a symlink", 5: "a HAMT directory shard"}
#: Deeper than any importer builds (a balanced 174-ary tree of 256 KiB chunks is 3 levels for 1 TiB).
MAX_DEPTH = 32
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


@dataclass(frozen=True, slots=True)
class FileNode:
    """One dag-pb node of a file: inline content, child links in order, and the sizes the node declares."""

    data: bytes
    links: tuple[CID, ...]
    filesize: int | None
    blocksizes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class File:
    """A reassembled file and how many blocks it took."""

    content: bytes
    blocks: int


def decode_node(block: bytes) -> FileNode:
    """The file node a dag-pb block holds; `MalformedBlock` if it is not one."""
    links: list[CID] = []
    unixfs: bytes | None = None
    for number, value in _fields(block):
        if number == 2 and isinstance(value, bytes):
            links.append(_link_cid(value))
        elif number == 1 and isinstance(value, bytes):
            unixfs = value
        else:
            raise MalformedBlock(f"dag-pb node has an unexpected field {number}")
    if unixfs is None:
        raise MalformedBlock("dag-pb node has no UnixFS Data: not a UnixFS file")
    kind, data, filesize, blocksizes = _unixfs_data(unixfs)
    if kind not in (_RAW_TYPE, _FILE):
        raise MalformedBlock(f"the CID names {_TYPE_NAMES.get(kind, f'UnixFS type {kind}')}, not a file")
    if blocksizes and len(blocksizes) != len(links):
        raise MalformedBlock(f"UnixFS node has {len(links)} links but {len(blocksizes)} blocksizes")
    return FileNode(data, tuple(links), filesize, tuple(blocksizes))


def _unixfs_data(message: bytes) -> tuple[int, bytes, int | None, list[int]]:
    """(Type, Data, filesize, blocksizes) of a UnixFS Data message."""
    kind: int | None = None
    data = b""
    filesize: int | None = None
    blocksizes: list[int] = []
    for number, value in _fields(message):
        if number == 1 and isinstance(value, int):
            kind = value
        elif number == 2 and isinstance(value, bytes):
            data = value
        elif number == 3 and isinstance(value, int):
            filesize = value
        elif number == 4:
            blocksizes.extend([value] if isinstance(value, int) else list(_packed_varints(value)))
        # hashType, fanout, mode, mtime: not needed to read a file's bytes.
    if kind is None:
        raise MalformedBlock("UnixFS Data has no Type")
    return kind, data, filesize, blocksizes


def read_file(root: CID, get_block: GetBlock, *, max_bytes: int, max_blocks: int) -> File:
    """The content of the file ``root`` names, fetching each block through ``get_block`` in order."""
    out = bytearray()
    blocks = 0

    def visit(cid: CID, depth: int) -> None:
        nonlocal blocks
        if depth > MAX_DEPTH:
            raise MalformedBlock(f"UnixFS DAG deeper than {MAX_DEPTH} levels")
        if blocks >= max_blocks:
            raise TooLarge(f"file has more than {max_blocks} blocks")
        blocks += 1
        block = get_block(cid)
        if cid.codec.name == RAW:
            _append(out, block, max_bytes)
            return
        node = decode_node(block)
        if node.filesize is not None and node.filesize > max_bytes:
            raise TooLarge(f"file declares {node.filesize} bytes, more than the {max_bytes} allowed")
        start = len(out)
        _append(out, node.data, max_bytes)
        for i, child in enumerate(node.links):
            before = len(out)
            visit(child, depth + 1)
            if node.blocksizes and len(out) - before != node.blocksizes[i]:
                raise MalformedBlock(f"link {i} holds {len(out) - before} bytes, its parent says {node.blocksizes[i]}")
        if node.filesize is not None and len(out) - start != node.filesize:
            raise MalformedBlock(f"UnixFS node declares {node.filesize} bytes but holds {len(out) - start}")

    visit(root, 0)
    return File(bytes(out), blocks)


def _append(out: bytearray, data: bytes, max_bytes: int) -> None:
    if len(out) + len(data) > max_bytes:
        raise TooLarge(f"file is larger than the {max_bytes} bytes allowed")
    out += data


def _link_cid(link: bytes) -> CID:
    hash_bytes: bytes | None = None
    for number, value in _fields(link):
        if number == 1 and isinstance(value, bytes):
            hash_bytes = value
    if hash_bytes is None:
        raise MalformedBlock("dag-pb link without a Hash")
    try:
        cid = CID.decode(hash_bytes)
    except (ValueError, KeyError) as exc:
        raise MalformedBlock(f"dag-pb link with an invalid CID ({exc})") from None
    if cid.codec.name not in SUPPORTED_CODECS:
        raise MalformedBlock(f"dag-pb link to a {cid.codec.name} block; a file links {RAW} or {DAG_PB} blocks")
    return cid


def _fields(message: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message: varints as int, length-delimited fields as bytes."""
    pos, end = 0, len(message)
    while pos < end:
        key, pos = _varint(message, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise MalformedBlock("protobuf field number 0")
        if wire == _VARINT:
            value, pos = _varint(message, pos)
            yield number, value
        elif wire == _BYTES:
            length, pos = _varint(message, pos)
            if pos + length > end:
                raise MalformedBlock("protobuf field runs past the end of the block")
            yield number, message[pos : pos + length]
            pos += length
        elif wire in (_FIXED64, _FIXED32):
            pos += 8 if wire == _FIXED64 else 4  # no field we read is fixed-width; skip it
            if pos > end:
                raise MalformedBlock("protobuf field runs past the end of the block")
        else:
            raise MalformedBlock(f"protobuf wire type {wire} is not used by dag-pb or UnixFS")


def _packed_varints(data: bytes) -> Iterator[int]:
    pos = 0
    while pos < len(data):
        value, pos = _varint(data, pos)
        yield value


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    for i in range(pos, min(pos + 10, len(data))):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i + 1
        shift += 7
    raise MalformedBlock("truncated or overlong protobuf varint")
