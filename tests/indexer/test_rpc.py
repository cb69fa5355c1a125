"""ResilientRpc against a real anvil, behind a proxy that injects the faults public providers produce.

Time is a fake clock that only ``sleep`` moves, so backoff, pacing and
recovery are checked exactly and the tests never wait for them.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from structlog.testing import capture_logs

from qf_sentinel.indexer.errors import RpcExhausted
from qf_sentinel.indexer.rpc import ResilientRpc
from qf_sentinel.qf.chain.abi import load_artifact
from qf_sentinel.qf.chain.rpc import redact_rpc_url
from qf_sentinel.qf.chain.tx import TxRequest, TxSender, wait_for_receipts
from qf_sentinel.qf.errors import RpcError
from tests.fixtures.chain import Chain
from tests.fixtures.rpc_proxy import TRANSIENT_FAULTS, Fault, FaultPolicy, FaultProxy

MakeProxy = Callable[..., FaultProxy]
TOKEN = load_artifact("TestToken")


class FakeTime:
    """A monotonic clock that only moves when someone sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Recorder:
    """An RpcObserver that keeps what it is told, with the fake time of each report."""

    time: FakeTime
    requests: list[tuple[str, str, bool, str | None, float]] = field(default_factory=list)

    def request(self, method: str, url: str, seconds: float, ok: bool, error_kind: str | None) -> None:
        self.requests.append((method, url, ok, error_kind, self.time.now))

    @property
    def kinds(self) -> list[str | None]:
        return [kind for _, _, _, kind, _ in self.requests]


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make_rpc(fake_time: FakeTime) -> Iterator[Callable[..., ResilientRpc]]:
    """ResilientRpc with test-sized timeouts and the fake clock; closed after the test."""
    made: list[ResilientRpc] = []

    def make(urls: list[str], **options: Any) -> ResilientRpc:
        settings: dict[str, Any] = {
            "timeout_seconds": 0.5,
            "max_attempts": 4,
            "sleep": fake_time.sleep,
            "clock": fake_time.clock,
        }
        made.append(ResilientRpc(urls, **(settings | options)))
        return made[-1]

    yield make
    for rpc in made:
        rpc.close()


@pytest.fixture
def minted(chain: Chain) -> tuple[int, int]:
    """Four token mints in four blocks; the block range holding their Transfer logs."""
    sender = TxSender(chain.rpc, chain.rpc.chain_id())
    blocks = []
    for i in range(4):
        data = TOKEN.encode_call("mint", [chain.deployment.deployer, 10**18 + i])
        (tx_hash,) = sender.send(
            [TxRequest(chain.funder_key, chain.deployment.deployer, chain.deployment.token, data)]
        )
        (receipt,) = wait_for_receipts(chain.rpc, [tx_hash])
        blocks.append(int(receipt["blockNumber"], 16))
    assert len(set(blocks)) == 4
    return blocks[0], blocks[-1]


def direct_logs(chain: Chain, first: int, last: int) -> list[dict[str, Any]]:
    query = {"fromBlock": hex(first), "toBlock": hex(last), "address": [chain.deployment.token]}
    logs: list[dict[str, Any]] = chain.rpc.call("eth_getLogs", [query])
    return logs


def test_answers_equal_the_nodes_own(chain: Chain, minted: tuple[int, int], make_rpc: Any) -> None:
    """Every method returns what anvil returns when asked directly."""
    first, last = minted
    rpc = make_rpc([chain.url])
    assert rpc.chain_id() == chain.rpc.chain_id()
    assert rpc.block_number() == chain.rpc.block_number()
    assert rpc.get_block(first) == chain.rpc.call("eth_getBlockByNumber", [hex(first), False])
    assert rpc.get_block("latest", full=True) == chain.rpc.call("eth_getBlockByNumber", ["latest", True])
    blocks = rpc.get_blocks(list(range(first, last + 2)), full=True)
    assert blocks[:-1] == [
        chain.rpc.call("eth_getBlockByNumber", [hex(n), True]) for n in range(first, last + 1)
    ]
    assert blocks[-1] is None
    hashes = [block["transactions"][0]["hash"] for block in blocks if block]
    assert rpc.get_transactions(hashes) == [chain.rpc.call("eth_getTransactionByHash", [h]) for h in hashes]
    logs = rpc.get_logs(first, last, [chain.deployment.token])
    assert len(logs) == 4
    assert logs == direct_logs(chain, first, last)


def test_batches_are_chunked(chain: Chain, fault_proxy: MakeProxy, make_rpc: Any) -> None:
    """get_blocks sends max_batch_size calls per HTTP request."""
    proxy = fault_proxy(chain.url)
    rpc = make_rpc([proxy.url], max_batch_size=2)
    numbers = [0, 1, 2, 0, 1]
    assert rpc.get_blocks(numbers) == [
        chain.rpc.call("eth_getBlockByNumber", [hex(n), False]) for n in numbers
    ]
    assert proxy.stats.forwarded == 3


#: The observer's error_kind for each fault the proxy injects.
KIND = {
    Fault.HTTP_429: "http_429",
    Fault.HTTP_429_RETRY_AFTER: "http_429",
    Fault.HTTP_500: "http_5xx",
    Fault.HTTP_502: "http_5xx",
    Fault.HTTP_503: "http_5xx",
    Fault.TIMEOUT: "timeout",
    Fault.DROP: "dropped",
    Fault.MALFORMED: "malformed",
    Fault.RPC_RATE_LIMITED: "rpc_retriable",
    Fault.RPC_HEADER_NOT_FOUND: "rpc_retriable",
    Fault.BATCH_MISSING: "batch_incomplete",
    Fault.LOG_OUT_OF_RANGE: "bad_logs",
}


@pytest.mark.parametrize("fault", TRANSIENT_FAULTS)
def test_each_fault_is_retried_to_the_right_answer(
    fault: Fault,
    chain: Chain,
    minted: tuple[int, int],
    fault_proxy: MakeProxy,
    make_rpc: Any,
    fake_time: FakeTime,
) -> None:
    """One injected fault costs one retry, and the answer is still anvil's own."""
    first, last = minted
    proxy = fault_proxy(chain.url, FaultPolicy.scripted(fault, stall_seconds=1.5))
    recorder = Recorder(fake_time)
    rpc = make_rpc([proxy.url], metrics=recorder)
    if fault == Fault.BATCH_MISSING:
        numbers = [first, last]
        assert rpc.get_blocks(numbers) == [
            chain.rpc.call("eth_getBlockByNumber", [hex(n), False]) for n in numbers
        ]
    elif fault == Fault.LOG_OUT_OF_RANGE:
        assert rpc.get_logs(first, last, [chain.deployment.token]) == direct_logs(chain, first, last)
    else:
        assert rpc.get_block(first) == chain.rpc.call("eth_getBlockByNumber", [hex(first), False])
    assert proxy.stats.injected == {fault: 1}
    assert recorder.kinds == [KIND[fault], None]
    assert len(fake_time.sleeps) == 1


def test_seeded_random_faults_never_change_answers(
    chain: Chain, minted: tuple[int, int], fault_proxy: MakeProxy, make_rpc: Any
) -> None:
    """Under a 40% mix of every fault kind, every answer still equals anvil's."""
    first, last = minted
    proxy = fault_proxy(chain.url, FaultPolicy.seeded(0.4, seed=7, stall_seconds=1.5))
    rpc = make_rpc([proxy.url], max_attempts=12)
    expected_blocks = [
        chain.rpc.call("eth_getBlockByNumber", [hex(n), False]) for n in range(first, last + 1)
    ]
    expected_logs = direct_logs(chain, first, last)
    for _ in range(8):
        assert rpc.get_blocks(list(range(first, last + 1))) == expected_blocks
        assert rpc.get_logs(first, last, [chain.deployment.token]) == expected_logs
        assert rpc.get_block(last) == expected_blocks[-1]
    injected = proxy.stats.injected
    assert sum(injected.values()) >= 8
    assert len(injected) >= 5


@pytest.mark.parametrize(("retry_after", "cap", "slept"), [(1, 5.0, 1.0), (3, 2.0, 2.0)])
def test_retry_after_is_honoured_up_to_the_cap(
    retry_after: int,
    cap: float,
    slept: float,
    chain: Chain,
    fault_proxy: MakeProxy,
    make_rpc: Any,
    fake_time: FakeTime,
) -> None:
    """After a 429 with Retry-After the client waits that long, but never more than the cap."""
    policy = FaultPolicy.scripted(Fault.HTTP_429_RETRY_AFTER, retry_after_seconds=retry_after)
    rpc = make_rpc([fault_proxy(chain.url, policy).url], backoff_max_seconds=cap)
    assert rpc.block_number() == chain.rpc.block_number()
    assert fake_time.sleeps == [slept]


@pytest.mark.parametrize(
    ("method", "params", "code"),
    [
        ("eth_getBlockByNumber", ["bad", False], -32602),
        ("eth_getBlockByNumber", ["0x1"], -32602),
        ("eth_noSuchMethod", [], -32601),
    ],
)
def test_permanent_errors_raise_at_once(
    method: str,
    params: list[Any],
    code: int,
    chain: Chain,
    fault_proxy: MakeProxy,
    make_rpc: Any,
    fake_time: FakeTime,
) -> None:
    """Invalid params or an unknown method raise RpcError after exactly one upstream request."""
    proxy = fault_proxy(chain.url)
    rpc = make_rpc([proxy.url])
    with pytest.raises(RpcError) as caught:
        rpc.call(method, params)
    assert (caught.value.code, caught.value.method) == (code, method)
    assert proxy.stats.forwarded == 1
    assert fake_time.sleeps == []


def test_batch_item_error_names_its_method(chain: Chain, fault_proxy: MakeProxy, make_rpc: Any) -> None:
    """A permanent error on one batch item raises RpcError for that item, without retrying."""
    proxy = fault_proxy(chain.url)
    rpc = make_rpc([proxy.url])
    with pytest.raises(RpcError) as caught:
        rpc.batch([("eth_blockNumber", []), ("eth_getBlockByNumber", ["bad", False])])
    assert (caught.value.method, caught.value.code) == ("eth_getBlockByNumber", -32602)
    assert proxy.stats.forwarded == 1


@pytest.mark.parametrize(
    ("hint", "fault", "code", "words"),
    [
        (True, Fault.RANGE_TOO_LARGE_HINT, -32005, "Try with this block range"),
        (False, Fault.RANGE_TOO_LARGE, -32600, "block range is too wide"),
    ],
)
def test_range_refusals_go_to_the_caller(
    hint: bool,
    fault: Fault,
    code: int,
    words: str,
    chain: Chain,
    minted: tuple[int, int],
    fault_proxy: MakeProxy,
    make_rpc: Any,
) -> None:
    """An eth_getLogs range the node refuses raises RpcError at once (splitting is the caller's job)."""
    first, last = minted
    proxy = fault_proxy(chain.url, FaultPolicy(max_log_span=2, range_hint=hint))
    rpc = make_rpc([proxy.url])
    with pytest.raises(RpcError, match=words) as caught:
        rpc.get_logs(first, last, [chain.deployment.token])
    assert caught.value.code == code
    assert proxy.stats.requests == 1
    assert proxy.stats.injected == {fault: 1}
    assert rpc.get_logs(first, first + 1, [chain.deployment.token]) == direct_logs(chain, first, first + 1)


def test_failover_to_the_next_endpoint(
    chain: Chain, dead_url: str, fault_proxy: MakeProxy, make_rpc: Any
) -> None:
    """With the first endpoint dead, calls go to the second, and the switch is logged."""
    proxy = fault_proxy(chain.url)
    rpc = make_rpc([dead_url, proxy.url])
    with capture_logs() as events:
        assert rpc.block_number() == chain.rpc.block_number()
        assert rpc.chain_id() == chain.rpc.chain_id()
    assert rpc.current_url == proxy.url
    assert proxy.stats.forwarded == 2
    retry = next(e for e in events if e["event"] == "rpc_retry")
    assert (retry["url"], retry["reason"], retry["attempt"]) == (dead_url, "connect", 1)
    failover = next(e for e in events if e["event"] == "rpc_failover")
    assert (failover["from"], failover["to"]) == (dead_url, proxy.url)


def test_recovery_to_the_first_endpoint(
    chain: Chain, fault_proxy: MakeProxy, make_rpc: Any, fake_time: FakeTime
) -> None:
    """A failed first endpoint is skipped for recover_after_seconds, then preferred again."""
    first = fault_proxy(chain.url, FaultPolicy(down=True))
    second = fault_proxy(chain.url)
    rpc = make_rpc([first.url, second.url], recover_after_seconds=5.0)
    assert rpc.block_number() == chain.rpc.block_number()
    assert rpc.current_url == second.url
    first.set_policy(FaultPolicy())
    fake_time.now += 2.0
    rpc.block_number()
    assert (first.stats.requests, second.stats.forwarded) == (0, 2)
    fake_time.now += 5.0
    with capture_logs() as events:
        assert rpc.block_number() == chain.rpc.block_number()
    assert rpc.current_url == first.url
    assert (first.stats.forwarded, second.stats.forwarded) == (1, 2)
    assert [e["event"] for e in events] == ["rpc_failover", "rpc_recovered"]
    assert events[1]["url"] == first.url


def test_a_bad_endpoint_is_left_for_a_good_one(
    chain: Chain, minted: tuple[int, int], fault_proxy: MakeProxy, make_rpc: Any
) -> None:
    """Out-of-range logs from the first endpoint are rejected; the answer comes from the second."""
    first, last = minted
    liar = fault_proxy(chain.url, FaultPolicy(rate=1.0, faults=[Fault.LOG_OUT_OF_RANGE]))
    honest = fault_proxy(chain.url)
    rpc = make_rpc([liar.url, honest.url])
    for _ in range(3):
        assert rpc.get_logs(first, last, [chain.deployment.token]) == direct_logs(chain, first, last)
    assert liar.stats.injected == {Fault.LOG_OUT_OF_RANGE: 1}
    assert honest.stats.forwarded == 3


def test_all_attempts_failing_raises_rpc_unavailable(
    dead_url: str, make_rpc: Any, fake_time: FakeTime
) -> None:
    """After max_attempts failures the client raises RpcExhausted with the URL and the attempt count."""
    rpc = make_rpc([dead_url], max_attempts=3)
    with pytest.raises(RpcExhausted) as caught:
        rpc.block_number()
    assert caught.value.attempts == 3
    assert caught.value.url == dead_url
    assert caught.value.retriable
    assert "after 3 attempts" in str(caught.value)
    assert len(fake_time.sleeps) == 2


class Highest(random.Random):
    """Jitter that always picks the top of its interval."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_backoff_is_exponential_and_capped(dead_url: str, make_rpc: Any, fake_time: FakeTime) -> None:
    """Waits between attempts double from the base up to the cap (jitter pinned to its top)."""
    rpc = make_rpc(
        [dead_url], max_attempts=6, backoff_base_seconds=0.1, backoff_max_seconds=0.5, rng=Highest()
    )
    with pytest.raises(RpcExhausted):
        rpc.block_number()
    assert fake_time.sleeps == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])


def test_backoff_has_jitter(dead_url: str, make_rpc: Any, fake_time: FakeTime) -> None:
    """With a real random source each wait lies under its envelope, and they differ from the envelope."""
    rpc = make_rpc([dead_url], max_attempts=6, backoff_base_seconds=0.1, backoff_max_seconds=0.5)
    with pytest.raises(RpcExhausted):
        rpc.block_number()
    envelope = [0.1, 0.2, 0.4, 0.5, 0.5]
    assert all(0 <= s <= e for s, e in zip(fake_time.sleeps, envelope, strict=True))
    assert fake_time.sleeps != pytest.approx(envelope)


def test_rate_limit_spaces_requests(
    chain: Chain, fault_proxy: MakeProxy, make_rpc: Any, fake_time: FakeTime
) -> None:
    """With requests_per_second=4, consecutive requests to an endpoint start 0.25 s apart."""
    proxy = fault_proxy(chain.url)
    recorder = Recorder(fake_time)
    rpc = make_rpc([proxy.url], requests_per_second=4.0, metrics=recorder)
    for _ in range(5):
        rpc.block_number()
    rpc.get_blocks([0, 1])
    starts = [at for *_, at in recorder.requests]
    assert [b - a for a, b in itertools.pairwise(starts)] == pytest.approx([0.25] * 5)
    assert proxy.stats.requests == 6


def test_rate_limit_is_per_endpoint(
    chain: Chain, dead_url: str, fault_proxy: MakeProxy, make_rpc: Any, fake_time: FakeTime
) -> None:
    """A failover is not held back by the failed endpoint's pacing, only by the backoff."""
    proxy = fault_proxy(chain.url)
    rpc = make_rpc([dead_url, proxy.url], requests_per_second=1.0, rng=Highest())
    rpc.block_number()
    assert fake_time.sleeps == [0.1]


def test_credentials_in_urls_are_never_shown(
    chain: Chain, dead_url: str, fault_proxy: MakeProxy, make_rpc: Any
) -> None:
    """API keys in a URL's userinfo, path or query appear in no message, log event or property."""
    proxy = fault_proxy(chain.url)
    secret_dead = dead_url.replace("//", "//alice:pa55word@") + "/v3/KEY123?apikey=TOKEN9"
    secret_live = proxy.url + "/v2/KEY456"
    rpc = make_rpc([secret_dead, secret_live], max_attempts=2)
    with capture_logs() as events:
        assert rpc.block_number() == chain.rpc.block_number()
    lonely = make_rpc([secret_dead], max_attempts=2)
    with capture_logs() as more, pytest.raises(RpcExhausted) as caught:
        lonely.block_number()
    shown = " ".join(
        [
            *map(str, (events, more, caught.value, caught.value.__cause__)),
            rpc.current_url,
            repr(rpc),
            caught.value.url,
        ]
    )
    for secret in ("alice", "pa55word", "KEY123", "TOKEN9", "KEY456"):
        assert secret not in shown
    assert rpc.current_url == redact_rpc_url(secret_live) == proxy.url + "/..."


def test_context_manager_closes_the_client(chain: Chain) -> None:
    """Leaving the with block closes the HTTP client; the object no longer sends."""
    with ResilientRpc([chain.url]) as rpc:
        assert rpc.block_number() == chain.rpc.block_number()
    with pytest.raises(RuntimeError, match="closed"):
        rpc.block_number()


def test_logging_is_structured(dead_url: str, make_rpc: Any) -> None:
    """Retry events carry method, redacted URL, attempt, delay and reason as fields."""
    rpc = make_rpc([dead_url], max_attempts=2)
    with capture_logs() as events, pytest.raises(RpcExhausted):
        rpc.call("eth_chainId")
    (retry,) = [e for e in events if e["event"] == "rpc_retry"]
    assert set(retry) >= {"method", "url", "attempt", "delay", "reason"}
    assert retry["method"] == "eth_chainId"


def test_faults_can_target_some_methods(
    chain: Chain, minted: tuple[int, int], fault_proxy: MakeProxy, make_rpc: Any
) -> None:
    """A policy limited to eth_getLogs leaves other methods alone."""
    first, last = minted
    policy = FaultPolicy(rate=1.0, faults=[Fault.HTTP_503], methods={"eth_getLogs"})
    proxy = fault_proxy(chain.url, policy)
    rpc = make_rpc([proxy.url], max_attempts=2)
    assert rpc.block_number() == chain.rpc.block_number()
    assert proxy.stats.injected == {}
    with pytest.raises(RpcExhausted):
        rpc.get_logs(first, last)
    assert proxy.stats.injected == {Fault.HTTP_503: 2}
    assert proxy.stats.calls == {"eth_blockNumber": 1}
