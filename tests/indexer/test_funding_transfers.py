"""Reading incoming transfers out of trace, Otterscan and log answers: what counts, and hostile entries left out."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from qf_sentinel.indexer.funding.capabilities import is_method_missing
from qf_sentinel.indexer.funding.transfers import (
    TRANSFER_TOPIC,
    address_topic,
    first,
    from_ots_operations,
    from_traces,
    from_transfer_logs,
    ots_page,
)
from qf_sentinel.qf.errors import RpcError
from qf_sentinel.qf.funding.graph import NATIVE, Method

WALLET = b"\x11" * 20
OTHER = b"\x22" * 20
TOKEN = b"\x33" * 20
H = "0x" + "ab" * 32


def hexa(a: bytes) -> str:
    return "0x" + a.hex()


def trace(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "action": {"from": hexa(OTHER), "callType": "call", "to": hexa(WALLET), "value": "0x10", "input": "0x"},
        "blockHash": H, "blockNumber": 7, "transactionHash": H, "transactionPosition": 2, "traceAddress": [0],
        "type": "call", "result": {"gasUsed": "0x0", "output": "0x"}, "subtraces": 0,
    }  # fmt: skip
    return base | changes


def test_value_calls_and_refunds_to_the_wallet_count_and_the_earliest_is_first() -> None:
    """A call with value, a self-destruct refund and a created contract's endowment count; delegatecalls, zero
    values, reverted traces, rewards and other recipients do not."""
    refund = trace(type="suicide", action={"address": hexa(OTHER), "refundAddress": hexa(WALLET), "balance": "0x5"},
                   blockNumber="0x3")  # fmt: skip
    ignored = [
        trace(action={**trace()["action"], "callType": "delegatecall"}),
        trace(action={**trace()["action"], "value": "0x0"}),
        trace(error="Reverted"),
        trace(type="reward", action={"author": hexa(WALLET), "value": "0x9", "rewardType": "block"}),
        trace(action={**trace()["action"], "to": hexa(OTHER)}),
    ]
    read = from_traces([trace(), refund, *ignored], {WALLET}, Method.TRACE_FILTER)
    assert read.skipped == 0
    assert [(t.block, t.amount, t.funder) for t in read.transfers] == [(7, 16, OTHER), (3, 5, OTHER)]
    earliest = first(read.transfers)
    assert earliest is not None
    assert (earliest.block, earliest.asset, earliest.method) == (3, NATIVE, Method.TRACE_FILTER)


def test_ots_pages_are_read_oldest_first_skipping_reverted_and_own_transactions() -> None:
    """Direct transfers are found in the page itself; other transactions are handed back to look inside."""
    txs = [
        {"hash": "0x" + "02" * 32, "blockNumber": "0x9", "transactionIndex": "0x0", "from": hexa(OTHER),
         "to": hexa(WALLET), "value": "0x7", "blockHash": H},
        {"hash": "0x" + "03" * 32, "blockNumber": "0x5", "transactionIndex": "0x1", "from": hexa(OTHER),
         "to": hexa(TOKEN), "value": "0x0", "blockHash": H},
        {"hash": "0x" + "04" * 32, "blockNumber": "0x4", "transactionIndex": "0x0", "from": hexa(OTHER),
         "to": hexa(WALLET), "value": "0x9", "blockHash": H},
        {"hash": "0x" + "05" * 32, "blockNumber": "0x3", "transactionIndex": "0x0", "from": hexa(WALLET),
         "to": hexa(OTHER), "value": "0x1", "blockHash": H},
        {"hash": "0x" + "06" * 32, "blockNumber": "bad"},
    ]  # fmt: skip
    receipts = [{"transactionHash": "0x" + "04" * 32, "status": "0x0"}]
    page = ots_page({"txs": txs, "receipts": receipts, "firstPage": True, "lastPage": True}, WALLET)
    assert page.skipped == 1
    assert page.newest
    assert [(block, direct is not None) for block, _, direct in page.steps] == [(5, False), (9, True)]
    tx = page.steps[0][1]
    ops = [{"type": 0, "from": hexa(TOKEN), "to": hexa(WALLET), "value": "0x3"},
           {"type": 2, "from": hexa(TOKEN), "to": hexa(WALLET), "value": "0x3"}, {"type": 0}]  # fmt: skip
    read = from_ots_operations(ops, tx, WALLET)
    assert [(t.block, t.funder, t.amount) for t in read.transfers] == [(5, TOKEN, 3)]
    assert read.skipped == 1


def log(to: bytes, *, token: bytes = TOKEN, value: int = 5, block: str = "0x8", **changes: Any) -> dict[str, Any]:
    base = {"address": hexa(token), "topics": [TRANSFER_TOPIC, address_topic(OTHER), address_topic(to)],
            "data": "0x" + value.to_bytes(32, "big").hex(), "blockNumber": block, "blockHash": H,
            "transactionHash": H, "transactionIndex": "0x1", "logIndex": "0x4"}  # fmt: skip
    return base | changes


def test_transfer_logs_of_the_token_to_the_wallet_count() -> None:
    logs = [log(WALLET), log(WALLET, token=OTHER), log(OTHER), log(WALLET, value=0), log(WALLET, data="0x12"),
            log(WALLET, block="0x2")]  # fmt: skip
    read = from_transfer_logs(logs, {WALLET}, TOKEN)
    assert [(t.block, t.funder, t.amount) for t in read.transfers] == [(8, OTHER, 5), (2, OTHER, 5)]
    assert {t.asset for t in read.transfers} == {TOKEN}
    assert read.skipped == 1


_junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=80)
    | st.binary(max_size=40).map(lambda b: "0x" + b.hex()),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
        ["action", "type", "to", "from", "value", "blockNumber", "blockHash", "transactionHash", "transactionPosition",
         "traceAddress", "error", "refundAddress", "balance", "address", "callType", "txs", "receipts", "hash",
         "transactionIndex", "topics", "data", "logIndex", "firstPage"]), inner, max_size=8),
    max_leaves=30,
)  # fmt: skip


@given(answer=_junk)
def test_garbage_answers_never_raise(answer: Any) -> None:
    """Whatever a hostile node answers, reading it gives transfers or skipped entries, never an exception."""
    from_traces(answer, {WALLET}, Method.TRACE_BLOCK)
    ots_page(answer, WALLET)
    from_ots_operations(answer, {"blockNumber": 1, "transactionIndex": 0, "blockHash": H, "hash": H}, WALLET)
    if isinstance(answer, list):
        from_transfer_logs([a for a in answer if isinstance(a, dict)], {WALLET}, TOKEN)


def test_method_not_found_is_read_in_several_wordings() -> None:
    assert is_method_missing(RpcError("Method not found", code=-32601, method="trace_filter"))
    assert is_method_missing(RpcError("the method ots_getApiLevel does not exist/is not available", code=-32000,
                                      method="ots_getApiLevel"))  # fmt: skip
    assert not is_method_missing(RpcError("block range too large", code=-32602, method="trace_filter"))
