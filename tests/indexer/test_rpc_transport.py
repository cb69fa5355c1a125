"""HTTP faults of the RPC edge as unit tests, on ``httpx.MockTransport`` (no sockets, no waiting).

The integration tests (``test_rpc.py``) put a real fault proxy in front of a
real anvil; these pin the client's reaction to each answer exactly, with a
scripted transport and recorded sleeps.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from qf_sentinel.indexer.errors import RpcExhausted
from qf_sentinel.indexer.rpc import ResilientRpc
from qf_sentinel.qf.errors import RpcError

URL = "https://rpc.example.org/v3/secret-key"
Answer = Callable[[Any], httpx.Response]


def result(value: Any) -> Answer:
    def answer(request: Any) -> httpx.Response:
        if isinstance(request, list):
            return httpx.Response(200, json=[{"jsonrpc": "2.0", "id": r["id"], "result": value} for r in request])
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": request["id"], "result": value})

    return answer


def status(code: int, headers: dict[str, str] | None = None) -> Answer:
    return lambda request: httpx.Response(code, headers=headers, text="no")


class Script:
    """A transport answering each request with the next scripted answer; it records what it was sent."""

    def __init__(self, *answers: Answer) -> None:
        self.answers: Iterator[Answer] = iter(answers)
        self.requests: list[Any] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        return next(self.answers)(body)


def client(script: Script, sleeps: list[float], **options: Any) -> ResilientRpc:
    return ResilientRpc([URL], transport=httpx.MockTransport(script), sleep=sleeps.append, clock=lambda: 0.0,
                        backoff_base_seconds=0.1, backoff_max_seconds=5.0, **options)  # fmt: skip


def test_retry_after_is_waited_then_the_answer_returned() -> None:
    sleeps: list[float] = []
    script = Script(status(429, {"retry-after": "2"}), result("0x7a69"))
    assert client(script, sleeps).chain_id() == 31337
    assert sleeps == [2.0]
    assert len(script.requests) == 2


def test_server_errors_and_a_garbled_body_are_retried_with_growing_waits() -> None:
    sleeps: list[float] = []
    garbled: Answer = lambda request: httpx.Response(200, content=b'{"jsonrpc": "2.0", "res')  # noqa: E731
    script = Script(status(503), status(502), garbled, result("0x10"))
    assert client(script, sleeps).block_number() == 16
    assert len(sleeps) == 3
    assert all(0.0 <= s <= 5.0 for s in sleeps)


def test_a_block_other_than_the_one_asked_for_is_a_bad_answer() -> None:
    sleeps: list[float] = []
    block = {"number": "0x5", "hash": "0x" + "ab" * 32, "parentHash": "0x" + "cd" * 32, "timestamp": "0x1"}
    script = Script(result(block | {"number": "0x6"}), result(block))
    assert client(script, sleeps).get_block(5) == block
    assert len(script.requests) == 2


def test_a_batch_answer_missing_an_item_is_retried() -> None:
    sleeps: list[float] = []

    def short(request: Any) -> httpx.Response:
        return httpx.Response(200, json=[{"jsonrpc": "2.0", "id": r["id"], "result": None} for r in request[:-1]])

    script = Script(short, result(None))
    assert client(script, sleeps).get_transactions(["0x" + "01" * 32, "0x" + "02" * 32]) == [None, None]
    assert len(script.requests) == 2


def test_a_permanent_error_is_raised_at_once() -> None:
    sleeps: list[float] = []

    def invalid(request: Any) -> httpx.Response:
        error = {"code": -32602, "message": "invalid argument 0: hex string without 0x prefix"}
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": request["id"], "error": error})

    script = Script(invalid)
    with pytest.raises(RpcError, match="invalid argument") as raised:
        client(script, sleeps).call("eth_getBlockByNumber", ["5", False])
    assert raised.value.code == -32602
    assert sleeps == []


def test_exhausted_attempts_name_the_endpoint_without_its_key() -> None:
    sleeps: list[float] = []
    script = Script(*[status(500)] * 3)
    with pytest.raises(RpcExhausted) as raised:
        client(script, sleeps, max_attempts=3).block_number()
    assert raised.value.attempts == 3
    assert "secret-key" not in str(raised.value)
    assert "https://rpc.example.org/..." in str(raised.value)
