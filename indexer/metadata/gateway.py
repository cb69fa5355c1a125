"""The network edge: blocks from trustless IPFS gateways, each verified before it is returned.

``GET {gateway}/ipfs/{cid}?format=raw`` with ``Accept: application/vnd.ipld.raw``
asks a gateway for the block itself rather than a file it decoded, so the
answer can be checked against the CID (``indexer.metadata.cid``) and no
gateway has to be trusted. Gateways are tried in the configured order; one
that fails or lies is counted and the next is asked. All HTTP goes through
one ``httpx.Client`` (thread-safe, pooled), whose transport a caller may swap.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

import httpx
import structlog
from multiformats import CID

from qf_sentinel.indexer.metadata.cid import cid_text, verify_block
from qf_sentinel.indexer.metadata.errors import BlockMismatch, GatewayFailed, MetadataError
from qf_sentinel.indexer.metadata.metrics import MetadataMetrics

log = structlog.get_logger()

RAW_BLOCK = "application/vnd.ipld.raw"
#: The largest block IPFS peers exchange (bitswap's limit); anything longer is not a block.
MAX_BLOCK_BYTES = 2 * 1024 * 1024


def gateway_label(url: str) -> str:
    """``scheme://host[:port]`` of a gateway URL: for metrics and logs, without any path, query or credentials."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}"


class Gateways:
    """Verified blocks from the first gateway, in the configured order, that serves the true one."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout_seconds: float,
        metrics: MetadataMetrics,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.urls = [u.rstrip("/") for u in urls]
        self.labels = [gateway_label(u) for u in self.urls]
        self.metrics = metrics
        # Redirects are safe to follow (some gateways move path requests to subdomains): the block is verified.
        self.client = httpx.Client(
            timeout=timeout_seconds, follow_redirects=True, transport=transport, headers={"Accept": RAW_BLOCK}
        )

    def close(self) -> None:
        self.client.close()

    def get_block(self, cid: CID) -> tuple[bytes, str]:
        """The block ``cid`` names and the label of the gateway that served it.

        Raises `GatewayFailed` when no gateway served it, `BlockMismatch` when
        the only answers were bytes of another block (both retriable later).
        """
        failures: list[MetadataError] = []
        text = cid_text(cid)
        for url, label in zip(self.urls, self.labels, strict=True):
            try:
                block = self._request(url, label, text)
            except GatewayFailed as exc:
                self.metrics.gateway_errors.labels(label, exc.kind).inc()
                log.debug("gateway_failed", gateway=label, cid=text, kind=exc.kind)
                failures.append(exc)
                continue
            self.metrics.blocks_fetched.labels(label).inc()
            try:
                verify_block(cid, block, gateway=label)
            except BlockMismatch as exc:
                self.metrics.blocks_rejected.labels(label).inc()
                log.warning("gateway_block_rejected", gateway=label, cid=text, size_bytes=len(block))
                failures.append(exc)
                continue
            self.metrics.blocks_verified.labels(label).inc()
            return block, label
        summary = "; ".join(str(f) for f in failures) or "no gateway configured"
        if failures and all(isinstance(f, BlockMismatch) for f in failures):
            raise BlockMismatch(f"no gateway served the true block of {text}: {summary}", gateway=self.labels[-1])
        last = failures[-1] if failures and isinstance(failures[-1], GatewayFailed) else None
        raise GatewayFailed(
            f"no gateway served {text}: {summary}",
            gateway=last.gateway if last else "",
            kind=last.kind if last else "none",
        )

    def _request(self, url: str, label: str, cid: str) -> bytes:
        try:
            with self.client.stream("GET", f"{url}/ipfs/{cid}", params={"format": "raw"}) as response:
                if response.status_code != 200:
                    raise GatewayFailed(
                        f"{label}: HTTP {response.status_code}", gateway=label, kind=f"http_{response.status_code}"
                    )
                media_type = response.headers.get("content-type", RAW_BLOCK).split(";")[0].strip().lower()
                if media_type != RAW_BLOCK:
                    # A gateway that ignores ?format=raw sends the decoded file: not a block, and not a lie.
                    raise GatewayFailed(f"{label}: answered {media_type}, not a raw block", gateway=label,
                                        kind="not_raw")  # fmt: skip
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_BLOCK_BYTES:
                        raise GatewayFailed(f"{label}: block larger than {MAX_BLOCK_BYTES} bytes", gateway=label,
                                            kind="too_large")  # fmt: skip
                return bytes(body)
        except httpx.TimeoutException:
            raise GatewayFailed(f"{label}: timed out", gateway=label, kind="timeout") from None
        except httpx.ConnectError as exc:
            raise GatewayFailed(f"{label}: cannot connect ({exc})", gateway=label, kind="connect") from None
        except httpx.HTTPError as exc:
            raise GatewayFailed(f"{label}: {type(exc).__name__}: {exc}", gateway=label, kind="transport") from None
