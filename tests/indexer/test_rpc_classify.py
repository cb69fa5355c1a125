"""The RPC edge's pure decisions: what to retry, how long to wait, what to show, which logs to trust."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qf_sentinel.indexer.answers import check_block, check_blocks, check_transactions, validate_logs
from qf_sentinel.indexer.retry import backoff_delay, classify, retry_after_seconds
from qf_sentinel.qf.chain.rpc import redact_rpc_url
from qf_sentinel.qf.errors import ChainIdMismatch, RpcError, RpcUnavailable
from qf_sentinel.qf.ratelimit import TokenBucket


class Highest(random.Random):
    """Jitter that always picks the top of its interval, to see the envelope."""

    def uniform(self, a: float, b: float) -> float:
        return b


def rpc_error(code: int, message: str) -> RpcError:
    return RpcError(message, code=code, method="eth_getLogs")


@pytest.mark.parametrize(
    ("error", "decision"),
    [
        (RpcUnavailable("refused", url="http://x"), "retry"),
        (RpcUnavailable("HTTP 401", url="http://x", retriable=False), "permanent"),
        (rpc_error(-32602, "invalid params"), "permanent"),
        (rpc_error(-32601, "Method not found"), "permanent"),
        (rpc_error(-32600, "Invalid request"), "permanent"),
        (rpc_error(-32700, "Parse error"), "permanent"),
        (rpc_error(-32602, "request timeout while parsing params"), "permanent"),
        (rpc_error(3, "execution reverted: not owner"), "permanent"),
        (rpc_error(-32000, "execution reverted"), "permanent"),
        (rpc_error(-32000, "nonce too low"), "permanent"),
        (rpc_error(-32603, "internal error"), "permanent"),
        (rpc_error(-32005, "daily request count exceeded, request rate limited"), "retry"),
        (rpc_error(-32005, "limit exceeded"), "retry"),
        (rpc_error(429, "Too Many Requests"), "retry"),
        (rpc_error(-32000, "Your app has exceeded its compute units per second capacity"), "retry"),
        (rpc_error(-32000, "please try again later"), "retry"),
        (rpc_error(-32000, "request timed out"), "retry"),
        (rpc_error(-32002, "eth_call timeout"), "retry"),
        (rpc_error(-32000, "header not found"), "retry"),
        (rpc_error(-32000, "Rate-limit reached"), "retry"),
        # Range refusals: only a smaller range helps, which is the caller's call.
        (
            rpc_error(
                -32005,
                "query returned more than 10000 results. Try with this block range [0xA, 0xB].",
            ),
            "permanent",
        ),
        (rpc_error(-32600, "block range is too wide"), "permanent"),
        (rpc_error(-32000, "query timeout exceeded, try a smaller block range"), "permanent"),
        (rpc_error(-32602, "Log response size exceeded."), "permanent"),
        (ChainIdMismatch("chain 2, expected 1"), "permanent"),
    ],
)
def test_classify(error: Exception, decision: str) -> None:
    """Transport trouble and overload messages are retried; bad requests, reverts and refusals are not."""
    assert classify(error) == decision


def test_backoff_doubles_up_to_the_cap() -> None:
    """The jitter envelope is base·2^(n-1), capped at the maximum."""
    delays = [backoff_delay(n, base_seconds=0.1, max_seconds=1.0, rng=Highest()) for n in range(1, 8)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])


@given(attempt=st.integers(1, 200), seed=st.integers(0, 2**32))
def test_backoff_is_full_jitter_within_the_envelope(attempt: int, seed: int) -> None:
    """Any delay lies in [0, min(cap, base·2^(n-1))]."""
    delay = backoff_delay(attempt, base_seconds=0.05, max_seconds=3.0, rng=random.Random(seed))
    assert 0.0 <= delay <= min(3.0, 0.05 * 2 ** (attempt - 1))


def test_backoff_jitter_spreads_delays() -> None:
    """Ten clients on their third retry do not all wait the same time."""
    delays = {
        backoff_delay(3, base_seconds=0.1, max_seconds=5.0, rng=random.Random(seed)) for seed in range(10)
    }
    assert len(delays) == 10


def test_retry_after_wins_but_is_capped() -> None:
    """A server's Retry-After replaces the jittered delay, up to the cap."""
    rng = Highest()
    assert backoff_delay(1, base_seconds=0.1, max_seconds=5.0, rng=rng, retry_after_seconds=2.0) == 2.0
    assert backoff_delay(1, base_seconds=0.1, max_seconds=5.0, rng=rng, retry_after_seconds=60.0) == 5.0


def test_retry_after_header_forms() -> None:
    """Delta-seconds and HTTP dates parse; junk and absence give None."""
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert retry_after_seconds("3", now=now) == 3.0
    assert retry_after_seconds(" 1.5 ", now=now) == 1.5
    assert retry_after_seconds("-4", now=now) == 0.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=10), usegmt=True), now=now) == 10.0
    assert retry_after_seconds("soon", now=now) is None
    assert retry_after_seconds(None, now=now) is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        ("http://127.0.0.1:8545/", "http://127.0.0.1:8545"),
        ("https://mainnet.infura.io/v3/0123abcd", "https://mainnet.infura.io/..."),
        ("https://user:s3cret@rpc.example.org:8443/key", "https://rpc.example.org:8443/..."),
        ("https://token@rpc.example.org", "https://rpc.example.org"),
        ("https://rpc.example.org?apikey=s3cret", "https://rpc.example.org/..."),
        ("http://[::1]:8545/x", "http://[::1]:8545/..."),
        ("not a url", "<invalid url>"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    """Only scheme, host and port survive; a cut path or query shows as /..."""
    assert redact_rpc_url(url) == shown


def test_token_bucket_spaces_requests() -> None:
    """With one token, requests are spaced exactly 1/rate apart, and a quiet spell earns no burst."""
    bucket = TokenBucket(4.0)
    now, starts = 100.0, []
    for _ in range(5):
        now += bucket.reserve(now)
        starts.append(now)
    assert [b - a for a, b in itertools.pairwise(starts)] == pytest.approx([0.25] * 4)
    assert bucket.reserve(now + 10.0) == 0.0
    assert bucket.reserve(now + 10.0) == pytest.approx(0.25)


def test_token_bucket_capacity_allows_a_burst() -> None:
    """A bucket of three lets three through at once, then paces."""
    bucket = TokenBucket(2.0, capacity=3.0)
    assert [bucket.reserve(0.0) for _ in range(4)] == pytest.approx([0.0, 0.0, 0.0, 0.5])


def a_log(block: int, **changes: Any) -> dict[str, Any]:
    entry = {
        "address": "0x" + "ab" * 20,
        "topics": ["0x" + "01" * 32, "0x" + "02" * 32],
        "data": "0x",
        "blockNumber": hex(block),
        "blockHash": "0x" + "03" * 32,
        "transactionHash": "0x" + "04" * 32,
        "transactionIndex": "0x0",
        "logIndex": "0x0",
        "removed": False,
    }
    entry.update(changes)
    return entry


def test_validate_logs_keeps_good_logs_and_drops_removed_ones() -> None:
    """Logs inside the range pass in order; removed ones are dropped."""
    logs = [a_log(10), a_log(11, removed=True), a_log(12)]
    assert validate_logs(logs, from_block=10, to_block=12) == [logs[0], logs[2]]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (a_log(13), "outside 10..12"),
        (a_log(9), "outside 10..12"),
        (a_log(11, blockNumber=None), "lacks blockNumber"),
        (a_log(11, blockNumber="11"), "outside"),
        (a_log(11, transactionHash=None), "lacks transactionHash"),
        (a_log(11, address="0x" + "cd" * 20), "not a requested address"),
        (a_log(11, topics=["0x" + "ff" * 32]), "topic filter"),
        ("0x", "not an object"),
    ],
)
def test_validate_logs_rejects_the_whole_answer(bad: object, reason: str) -> None:
    """One log outside the range, incomplete or not matching the filter makes the answer faulty."""
    with pytest.raises(ValueError, match=reason):
        validate_logs(
            [a_log(10), bad],
            from_block=10,
            to_block=12,
            addresses=["0x" + "AB" * 20],
            topics=["0x" + "01" * 32, None],
        )


def test_validate_logs_topic_alternatives() -> None:
    """A topic position may list alternatives; a missing position never matches a required topic."""
    entry = a_log(10)
    assert validate_logs(
        [entry], from_block=10, to_block=10, topics=[None, ["0x" + "09" * 32, "0x" + "02" * 32]]
    )
    with pytest.raises(ValueError, match="topic filter"):
        validate_logs([entry], from_block=10, to_block=10, topics=[None, None, "0x" + "05" * 32])


def test_validate_logs_needs_a_list() -> None:
    """A null or object result is not a log list."""
    with pytest.raises(ValueError, match="not a list"):
        validate_logs(None, from_block=0, to_block=1)


def test_check_block_wants_the_block_asked_for() -> None:
    """None passes (not there yet); another block number or a non-block is a faulty answer."""
    block = {"number": "0x10", "hash": "0x" + "aa" * 32}
    assert check_block(block, 16) is block
    assert check_block(block, None) is block
    assert check_block(None, 16) is None
    assert check_blocks([block, None], [16, 17]) == [block, None]
    with pytest.raises(ValueError, match="instead of 15"):
        check_block(block, 15)
    with pytest.raises(ValueError, match="not a block"):
        check_block({"number": "0x10"}, 16)
    with pytest.raises(ValueError, match="not a block"):
        check_blocks(["0x10"], [16])


def test_check_transactions_wants_the_hashes_asked_for() -> None:
    """Each answer is None or the transaction with the requested hash, compared case-insensitively."""
    tx = {"hash": "0x" + "AB" * 32}
    assert check_transactions([tx, None], ["0x" + "ab" * 32, "0x" + "cd" * 32]) == [tx, None]
    with pytest.raises(ValueError, match="another transaction"):
        check_transactions([tx], ["0x" + "cd" * 32])
