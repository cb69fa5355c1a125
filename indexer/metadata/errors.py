"""Exceptions of the metadata fetcher.

Each says whether a later attempt can help (``retriable``): the fetcher
retries those with backoff and marks the others ``invalid`` for good::

    QFError                    (qf.errors)
    └── IndexerError           (indexer.errors)
        └── MetadataError      a pointer's document could not be had
            ├── InvalidPointer not a CID this fetcher can read (malformed, unknown
            │                  codec or hash function); never retried
            ├── BlockMismatch  a gateway served bytes that do not hash to the CID
            │                  asked for (a lying or broken gateway; retriable)
            ├── MalformedBlock the block is authentic but not a UnixFS file that
            │                  can be read (a directory, bad protobuf); never retried
            ├── TooLarge       the file passes the size or block-count bound; never retried
            └── GatewayFailed  no gateway answered with the block (connection, timeout,
                               HTTP status; retriable)
"""

from __future__ import annotations

from qf_sentinel.indexer.errors import IndexerError


class MetadataError(IndexerError):
    """Base of the fetcher's errors; ``reason`` is a short label for metrics."""

    reason = "error"


class InvalidPointer(MetadataError):
    """The pointer is not a CID of a codec and hash function this fetcher supports."""

    reason = "invalid_pointer"


class BlockMismatch(MetadataError):
    """A gateway's block does not hash to the CID: it is rejected, another gateway may serve the true one."""

    retriable = True
    reason = "mismatch"

    def __init__(self, message: str, *, gateway: str) -> None:
        super().__init__(message)
        self.gateway = gateway


class MalformedBlock(MetadataError):
    """A verified block that is not a readable UnixFS file: the content itself is wrong, so retrying cannot help."""

    reason = "malformed"


class TooLarge(MetadataError):
    """The file is larger than the configured bound, or is made of too many blocks."""

    reason = "too_large"


class GatewayFailed(MetadataError):
    """No gateway served the block; ``kind`` is the last failure's label (``timeout``, ``http_404``, ...)."""

    retriable = True
    reason = "unavailable"

    def __init__(self, message: str, *, gateway: str, kind: str) -> None:
        super().__init__(message)
        self.gateway = gateway
        self.kind = kind
