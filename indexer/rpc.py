"""The indexer's RPC edge: JSON-RPC over several endpoints with retries, failover and rate limits.

``qf.chain.rpc.RpcClient`` talks to one node and gives up at the first failure,
which suits the devnet. Public providers drop connections, rate-limit, time out,
answer half a batch and now and then return logs outside the range asked for;
``ResilientRpc`` turns all of that into either a checked answer or one clear
error. The decisions are pure functions in their own modules: the retry policy and
pacing (:mod:`indexer.retry`), the checks of an answer (:mod:`indexer.answers`)
and URL redaction (:func:`qf.chain.rpc.redact_rpc_url`). Only ``ResilientRpc``
waits on sockets, the clock or ``sleep``, and all three are injectable: the
HTTP transport too (``transport``, an ``httpx.BaseTransport``; the unit tests
use ``httpx.MockTransport``).

Errors are the transport errors of ``qf.errors``: ``RpcError`` for a JSON-RPC
error the caller must handle (bad params, a revert, a block range the node
refuses, which ``indexer.ranges`` turns into ``RangeRefused``), raised at once;
``RpcExhausted`` (an ``RpcUnavailable`` carrying ``attempts``) once every
attempt failed. URLs are only ever shown redacted: provider URLs carry API keys.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx
import orjson
import structlog

from qf_sentinel.indexer.answers import TopicFilter, check_block, check_blocks, check_transactions, validate_logs
from qf_sentinel.indexer.errors import RpcExhausted
from qf_sentinel.indexer.retry import backoff_delay, classify, retry_after_seconds
from qf_sentinel.qf.chain.rpc import redact_rpc_url, rpc_error
from qf_sentinel.qf.errors import ConfigError, RpcError, RpcUnavailable
from qf_sentinel.qf.ratelimit import TokenBucket

log = structlog.get_logger()

T = TypeVar("T")
Call = tuple[str, Sequence[Any]]


class RpcObserver(Protocol):
    """Hooks for metrics, called once per HTTP attempt.

    ``url`` is redacted; ``error_kind`` is None on success, else one of
    ``connect``, ``timeout``, ``dropped``, ``transport``, ``http_429``,
    ``http_5xx``, ``http_status``, ``malformed``, ``batch_incomplete``,
    ``bad_logs``, ``bad_response`` (a block or transaction other than the
    one asked for), ``rpc_retriable`` (a JSON-RPC error worth retrying) or
    ``rpc_error`` (one raised to the caller).
    """

    def request(self, method: str, url: str, seconds: float, ok: bool, error_kind: str | None) -> None: ...


class _Failure(Exception):
    """One attempt's failure: the error a caller would see, and what the retry loop needs."""

    def __init__(self, error: RpcError | RpcUnavailable, kind: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.kind = kind
        self.retry_after_seconds = retry_after_seconds


@dataclass(slots=True)
class _Endpoint:
    url: str  # with its secrets: only ever passed to httpx
    label: str  # redacted, for messages, logs and metrics
    bucket: TokenBucket | None
    failed_until: float = -math.inf
    failing: bool = False


class ResilientRpc:
    """Synchronous JSON-RPC over an ordered list of endpoints (not thread-safe).

    Requests go to the first endpoint not marked failed. A retriable failure
    marks the endpoint failed for ``recover_after_seconds``, waits (exponential
    backoff with full jitter, or the server's Retry-After, capped) and tries the
    next one; when the first endpoint's time is up it is preferred again. A
    permanent error is raised at once; after ``max_attempts`` failures in one
    call, ``RpcExhausted``. ``requests_per_second`` paces each endpoint
    separately; a batch counts as one request. ``transport`` replaces httpx's
    network transport (``httpx.MockTransport`` in unit tests).
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout_seconds: float = 10.0,
        max_attempts: int = 6,
        backoff_base_seconds: float = 0.1,
        backoff_max_seconds: float = 5.0,
        requests_per_second: float | None = None,
        recover_after_seconds: float = 30.0,
        max_batch_size: int = 100,
        metrics: RpcObserver | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if isinstance(urls, str) or not urls:
            raise ConfigError("ResilientRpc needs a non-empty list of RPC URLs")
        for url in urls:
            if urlsplit(url).scheme not in ("http", "https") or redact_rpc_url(url) == "<invalid url>":
                raise ConfigError(f"not an http(s) RPC URL: {redact_rpc_url(url)}")
        if max_attempts < 1 or max_batch_size < 1 or timeout_seconds <= 0:
            raise ConfigError("max_attempts, max_batch_size and timeout_seconds must be positive")
        if requests_per_second is not None and requests_per_second <= 0:
            raise ConfigError("requests_per_second must be positive (or None for no limit)")
        self._endpoints = [
            _Endpoint(
                url,
                redact_rpc_url(url),
                TokenBucket(requests_per_second) if requests_per_second is not None else None,
            )
            for url in urls
        ]
        self._timeout_seconds = timeout_seconds
        self._max_attempts = max_attempts
        self._backoff_base_seconds = backoff_base_seconds
        self._backoff_max_seconds = backoff_max_seconds
        self._recover_after_seconds = recover_after_seconds
        self._max_batch_size = max_batch_size
        self._observer = metrics
        self._sleep = sleep
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._current = 0
        self._ids = itertools.count(1)
        self._http = httpx.Client(
            timeout=timeout_seconds,
            headers={"content-type": "application/json"},
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=8),
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"ResilientRpc({[e.label for e in self._endpoints]})"

    def __enter__(self) -> ResilientRpc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def current_url(self) -> str:
        """The endpoint in use (redacted)."""
        return self._endpoints[self._current].label

    # -- JSON-RPC -----------------------------------------------------------

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One request; its ``result``, or ``RpcError`` / ``RpcExhausted``."""
        return self._call(method, params)

    def batch(self, calls: Sequence[Call]) -> list[Any]:
        """Several requests in one HTTP round trip; results in call order.

        An item's permanent JSON-RPC error raises ``RpcError`` for that item's
        method (the first such item); a retriable one, or an item missing from
        the answer, retries the whole batch.
        """
        return self._batch(calls)

    def _call(
        self,
        method: str,
        params: Sequence[Any],
        check: Callable[[Any], Any] | None = None,
        kind: str = "bad_response",
    ) -> Any:
        """``call``, with ``check`` turning the result into the answer or rejecting it (ValueError)."""
        request_id = next(self._ids)
        payload = orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)})

        def decode(body: Any, endpoint: _Endpoint) -> Any:
            result = _single_result(body, request_id, method, endpoint)
            return _checked(result, check, method, endpoint, kind)

        return self._execute(method, payload, decode)

    def _batch(self, calls: Sequence[Call], check: Callable[[list[Any]], list[Any]] | None = None) -> list[Any]:
        if not calls:
            return []
        first_id = next(self._ids)
        for _ in range(len(calls) - 1):
            next(self._ids)
        payload = orjson.dumps(
            [
                {"jsonrpc": "2.0", "id": first_id + i, "method": method, "params": list(params)}
                for i, (method, params) in enumerate(calls)
            ]
        )
        methods = {method for method, _ in calls}
        label = methods.pop() if len(methods) == 1 else "batch"

        def decode(body: Any, endpoint: _Endpoint) -> list[Any]:
            results = _batch_results(body, first_id, calls, endpoint)
            checked: list[Any] = _checked(results, check, label, endpoint, "bad_response")
            return checked

        return self._execute(label, payload, decode)

    # -- Ethereum -----------------------------------------------------------

    def chain_id(self) -> int:
        return int(self.call("eth_chainId"), 16)

    def block_number(self) -> int:
        return int(self.call("eth_blockNumber"), 16)

    def get_block(self, number_or_tag: int | str, full: bool = False) -> dict[str, Any] | None:
        """A block by number or tag ("latest", "finalized", ...); None if the node does not have it.

        A block other than the one asked for is a faulty answer (``bad_response``), retried.
        """
        number = number_or_tag if isinstance(number_or_tag, int) else None
        block: dict[str, Any] | None = self._call(
            "eth_getBlockByNumber", [_block_id(number_or_tag), full], partial(check_block, number=number)
        )
        return block

    def get_blocks(self, numbers: Sequence[int], full: bool = False) -> list[dict[str, Any] | None]:
        """Blocks by number in batches of ``max_batch_size``; None for any the node does not have."""
        blocks: list[dict[str, Any] | None] = []
        for start in range(0, len(numbers), self._max_batch_size):
            chunk = numbers[start : start + self._max_batch_size]
            calls = [("eth_getBlockByNumber", [_block_id(n), full]) for n in chunk]
            blocks.extend(self._batch(calls, partial(check_blocks, numbers=chunk)))
        return blocks

    def get_transactions(self, hashes: Sequence[str]) -> list[dict[str, Any] | None]:
        """Transactions by hash in batches; None for any the node does not know."""
        transactions: list[dict[str, Any] | None] = []
        for start in range(0, len(hashes), self._max_batch_size):
            chunk = hashes[start : start + self._max_batch_size]
            calls = [("eth_getTransactionByHash", [h]) for h in chunk]
            transactions.extend(self._batch(calls, partial(check_transactions, hashes=chunk)))
        return transactions

    def get_logs(
        self,
        from_block: int,
        to_block: int,
        addresses: Sequence[str] | None = None,
        topics: TopicFilter | None = None,
    ) -> list[dict[str, Any]]:
        """eth_getLogs over [from_block, to_block], checked by ``validate_logs``.

        An answer with a bad log counts as a faulty response (``bad_logs``) and
        is retried, elsewhere if possible. ``addresses=None`` means any address.
        """
        if from_block > to_block:
            raise ValueError(f"from_block {from_block} is after to_block {to_block}")
        if addresses is not None and not addresses:
            raise ValueError("addresses is empty: pass None to match any address")
        query: dict[str, Any] = {"fromBlock": hex(from_block), "toBlock": hex(to_block)}
        if addresses is not None:
            query["address"] = list(addresses)
        if topics is not None:
            query["topics"] = [t if t is None or isinstance(t, str) else list(t) for t in topics]
        check = partial(validate_logs, from_block=from_block, to_block=to_block, addresses=addresses, topics=topics)
        logs: list[dict[str, Any]] = self._call("eth_getLogs", [query], check, "bad_logs")
        return logs

    # -- retries and failover -----------------------------------------------

    def _execute(self, method: str, payload: bytes, decode: Callable[[Any, _Endpoint], T]) -> T:
        last: _Failure | None = None
        for attempt in range(1, self._max_attempts + 1):
            endpoint = self._switch_to(self._choose())
            if endpoint.bucket is not None:
                wait = endpoint.bucket.reserve(self._clock())
                if wait > 0:
                    self._sleep(wait)
            started = self._clock()
            try:
                result = decode(self._post(endpoint, payload), endpoint)
            except _Failure as failure:
                self._observe(method, endpoint, started, failure.kind)
                if classify(failure.error) == "permanent":
                    raise failure.error from None
                self._mark_failed(endpoint, failure)
                last = failure
                if attempt < self._max_attempts:
                    self._back_off(method, endpoint, attempt, failure)
                continue
            self._observe(method, endpoint, started, None)
            if endpoint.failing:
                endpoint.failing = False
                log.info("rpc_recovered", url=endpoint.label)
            return result
        assert last is not None
        raise RpcExhausted(
            f"{method} failed after {self._max_attempts} attempts; last at {self.current_url}: {last.error}",
            url=self.current_url,
            attempts=self._max_attempts,
        ) from last.error

    def _choose(self) -> int:
        now = self._clock()
        for index, endpoint in enumerate(self._endpoints):
            if endpoint.failed_until <= now:
                return index
        # Every endpoint failed within recover_after_seconds: keep going round them in order.
        return (self._current + 1) % len(self._endpoints)

    def _switch_to(self, index: int) -> _Endpoint:
        if index != self._current:
            log.warning(
                "rpc_failover",
                **{"from": self._endpoints[self._current].label, "to": self._endpoints[index].label},
            )
            self._current = index
        return self._endpoints[index]

    def _mark_failed(self, endpoint: _Endpoint, failure: _Failure) -> None:
        hold = max(self._recover_after_seconds, failure.retry_after_seconds or 0.0)
        endpoint.failed_until = self._clock() + hold
        endpoint.failing = True

    def _back_off(self, method: str, endpoint: _Endpoint, attempt: int, failure: _Failure) -> None:
        delay = backoff_delay(
            attempt,
            base_seconds=self._backoff_base_seconds,
            max_seconds=self._backoff_max_seconds,
            rng=self._rng,
            retry_after_seconds=failure.retry_after_seconds,
        )
        log.warning(
            "rpc_retry",
            method=method,
            url=endpoint.label,
            attempt=attempt,
            delay=round(delay, 3),
            reason=failure.kind,
        )
        self._sleep(delay)

    def _observe(self, method: str, endpoint: _Endpoint, started: float, kind: str | None) -> None:
        if self._observer is not None:
            seconds = max(self._clock() - started, 0.0)
            self._observer.request(method, endpoint.label, seconds, kind is None, kind)

    # -- one HTTP exchange --------------------------------------------------

    def _post(self, endpoint: _Endpoint, payload: bytes) -> Any:
        """The decoded JSON body of one POST, or ``_Failure`` saying what went wrong."""
        label = endpoint.label
        try:
            response = self._http.post(endpoint.url, content=payload)
        except httpx.TimeoutException:
            raise _unavailable(f"RPC at {label} timed out after {self._timeout_seconds} s", label, "timeout") from None
        except httpx.ConnectError as exc:
            raise _unavailable(f"cannot connect to RPC at {label}: {_scrub(exc, endpoint)}", label, "connect") from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise _unavailable(
                f"RPC at {label} dropped the connection: {_scrub(exc, endpoint)}", label, "dropped"
            ) from None
        except httpx.HTTPError as exc:
            raise _unavailable(f"RPC at {label} failed: {_scrub(exc, endpoint)}", label, "transport") from None
        status = response.status_code
        if status == 429:
            wait = retry_after_seconds(response.headers.get("retry-after"), now=datetime.now(UTC))
            raise _unavailable(f"RPC at {label} answered HTTP 429", label, "http_429", wait)
        if status >= 500:
            raise _unavailable(f"RPC at {label} answered HTTP {status}", label, "http_5xx")
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = None
            if status == 200:
                raise _unavailable(f"RPC at {label} answered non-JSON", label, "malformed") from None
        if status != 200 and not _is_error_answer(body):
            # Not a JSON-RPC answer (a bad key, a wrong path, a proxy page): the
            # request may still be fine elsewhere, so this endpoint is skipped.
            raise _unavailable(f"RPC at {label} answered HTTP {status}", label, "http_status")
        return body


def _checked(result: Any, check: Callable[[Any], Any] | None, method: str, endpoint: _Endpoint, kind: str) -> Any:
    if check is None:
        return result
    try:
        return check(result)
    except ValueError as exc:
        raise _unavailable(f"{method} answer from {endpoint.label} rejected: {exc}", endpoint.label, kind) from None


def _unavailable(message: str, label: str, kind: str, retry_after_seconds: float | None = None) -> _Failure:
    return _Failure(RpcUnavailable(message, url=label), kind, retry_after_seconds)


def _scrub(exc: Exception, endpoint: _Endpoint) -> str:
    """An httpx error's text without the endpoint's secrets, should it quote the URL."""
    return str(exc).replace(endpoint.url, endpoint.label) or type(exc).__name__


def _is_error_answer(body: object) -> bool:
    if isinstance(body, list):
        return bool(body) and all(isinstance(i, dict) and i.get("error") is not None for i in body)
    return isinstance(body, dict) and body.get("error") is not None


def _block_id(number_or_tag: int | str) -> str:
    return hex(number_or_tag) if isinstance(number_or_tag, int) else number_or_tag


def _rpc_failure(error: RpcError) -> _Failure:
    return _Failure(error, "rpc_error" if classify(error) == "permanent" else "rpc_retriable")


def _malformed(what: str, endpoint: _Endpoint) -> _Failure:
    return _unavailable(f"RPC at {endpoint.label} answered {what}", endpoint.label, "malformed")


def _single_result(body: Any, request_id: int, method: str, endpoint: _Endpoint) -> Any:
    if not isinstance(body, dict):
        raise _malformed(f"{type(body).__name__} instead of an object to {method}", endpoint)
    if body.get("error") is not None:
        # Error answers may carry id null (a parse error): the error is ours all the same.
        raise _rpc_failure(rpc_error(body["error"], method))
    if body.get("id") != request_id or "result" not in body:
        raise _malformed(f"an object without our id or a result to {method}", endpoint)
    return body["result"]


def _batch_results(body: Any, first_id: int, calls: Sequence[Call], endpoint: _Endpoint) -> list[Any]:
    if isinstance(body, dict) and body.get("error") is not None:
        # Some nodes answer a whole batch with one error object (a batch limit, a rate limit).
        raise _rpc_failure(rpc_error(body["error"], "batch"))
    if not isinstance(body, list):
        raise _malformed(f"{type(body).__name__} instead of a list to a batch", endpoint)
    by_id = {item.get("id"): item for item in body if isinstance(item, dict)}
    results: list[Any] = []
    retry: _Failure | None = None
    for offset, (method, _) in enumerate(calls):
        item = by_id.get(first_id + offset)
        if item is None or (item.get("error") is None and "result" not in item):
            retry = retry or _unavailable(
                f"batch answer from {endpoint.label} lacks item {offset} ({method})",
                endpoint.label,
                "batch_incomplete",
            )
            continue
        if item.get("error") is not None:
            failure = _rpc_failure(rpc_error(item["error"], method))
            if failure.kind == "rpc_error":
                # A permanent item error is the answer: retrying would only repeat it.
                raise failure
            retry = retry or failure
            continue
        results.append(item["result"])
    if retry is not None:
        raise retry
    return results
