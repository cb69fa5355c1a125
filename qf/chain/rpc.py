"""A small synchronous JSON-RPC client with batching.

It turns transport failures into ``RpcUnavailable`` and JSON-RPC error objects
into ``RpcError`` (both one-line, with the URL or method), which is all the
simulators and devnet need. The indexer layers retries, failover and rate
limits on top of the same error types.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from qf_sentinel.qf.errors import RpcError, RpcUnavailable

Call = tuple[str, Sequence[Any]]


def redact_rpc_url(url: str) -> str:
    """``scheme://host[:port]``, plus ``/...`` if a path or query (where API keys hide) was cut.

    (:func:`qf.db.redact_url` is the database's: it hides a password and keeps the rest.)
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    host = parts.netloc.rpartition("@")[2]
    if not parts.scheme or not host:
        return "<invalid url>"
    hidden = parts.path not in ("", "/") or parts.query or parts.fragment
    return f"{parts.scheme}://{host}" + ("/..." if hidden else "")


class RpcClient:
    """JSON-RPC over HTTP to one endpoint."""

    def __init__(self, url: str, *, timeout_seconds: float = 30.0) -> None:
        self.url = url
        self._ids = itertools.count(1)
        self._http = httpx.Client(
            timeout=timeout_seconds,
            headers={"content-type": "application/json"},
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
        )

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One request; returns its ``result`` or raises."""
        request = {
            "jsonrpc": "2.0",
            "id": next(self._ids),
            "method": method,
            "params": list(params),
        }
        return _result(self._post(request), method)

    def batch(self, calls: Sequence[Call]) -> list[Any]:
        """Several requests in one HTTP round trip; results in call order.

        The first error object in the batch raises ``RpcError`` (callers that must
        tolerate partial failure send smaller batches).
        """
        if not calls:
            return []
        first = next(self._ids)
        for _ in range(len(calls) - 1):
            next(self._ids)
        requests = [
            {"jsonrpc": "2.0", "id": first + i, "method": m, "params": list(p)}
            for i, (m, p) in enumerate(calls)
        ]
        response = self._post(requests)
        if not isinstance(response, list):
            # Some nodes answer a whole batch with one error object.
            _result(response, calls[0][0])
            raise RpcError("batch answered with a single object", code=-1, method="batch")
        by_id = {item.get("id"): item for item in response}
        results = []
        for i, (method, _) in enumerate(calls):
            item = by_id.get(first + i)
            if item is None:
                raise RpcError("missing from batch response", code=-1, method=method)
            results.append(_result(item, method))
        return results

    def chain_id(self) -> int:
        return int(self.call("eth_chainId"), 16)

    def block_number(self) -> int:
        return int(self.call("eth_blockNumber"), 16)

    def client_version(self) -> str:
        return str(self.call("web3_clientVersion"))

    def _post(self, payload: object) -> Any:
        try:
            response = self._http.post(self.url, content=orjson.dumps(payload))
        except httpx.TimeoutException:
            raise RpcUnavailable(f"RPC at {redact_rpc_url(self.url)} timed out", url=self.url) from None
        except httpx.HTTPError as exc:
            raise RpcUnavailable(f"cannot reach RPC at {redact_rpc_url(self.url)}: {exc}", url=self.url) from None
        if response.status_code != 200:
            raise RpcUnavailable(
                f"RPC at {redact_rpc_url(self.url)} answered HTTP {response.status_code}",
                url=self.url,
                retriable=response.status_code == 429 or response.status_code >= 500,
            )
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise RpcUnavailable(f"RPC at {redact_rpc_url(self.url)} answered non-JSON", url=self.url) from None


def rpc_error(error: object, method: str) -> RpcError:
    """The ``RpcError`` of a JSON-RPC error object (a node's odd shapes included: a string, a code not an int)."""
    if isinstance(error, dict):
        code = error.get("code")
        return RpcError(
            str(error.get("message", error)),
            code=code if isinstance(code, int) else -1,
            method=method,
            data=error.get("data"),
        )
    return RpcError(str(error), code=-1, method=method)


def _result(item: Any, method: str) -> Any:
    if not isinstance(item, dict):
        raise RpcError(f"malformed response {item!r:.80}", code=-1, method=method)
    error = item.get("error")
    if error is not None:
        raise rpc_error(error, method)
    return item.get("result")
