"""Decoding Allo v2 logs: real logs from a simulated round, generated logs, and malformed ones."""

from __future__ import annotations

import contextlib
import hashlib
from collections import Counter
from typing import Any

import eth_abi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qf_sentinel.indexer.decode import (
    COMMON_COLUMNS,
    EVENTS,
    EVENTS_BY_NAME,
    EVENTS_BY_SIGNATURE,
    TABLES,
    TOPIC0S,
    decode_log,
    pool_id_of,
    strategy_of,
)
from qf_sentinel.indexer.errors import DecodeError
from qf_sentinel.qf.chain.abi import ALLO_V2_EVENTS, NATIVE_TOKEN, topic0
from qf_sentinel.qf.chain.deploy import DEVNET_PERCENT_FEE
from qf_sentinel.qf.sim.plan import RecipientStatus, Token
from tests.fixtures.chain import Chain
from tests.indexer.abi_values import ABI_VALUES
from tests.indexer.reference import (
    ABI_BY_SIGNATURE,
    BIGINT_MAX,
    abi_type,
    encode_log,
    encode_variant,
    reference_values,
    registration_data,
)
from tests.indexer.rounds import addr, metadata, run_round

# -- real logs ----------------------------------------------------------------------------


def test_every_real_log_decodes_as_eth_abi_reads_it(chain: Chain) -> None:
    """All ten events occur in a simulated round, and each log decodes to eth_abi's values."""
    rnd = run_round(chain)
    assert {d.name for d in rnd.decoded} == set(ALLO_V2_EVENTS)
    for log, decoded in zip(rnd.logs, rnd.decoded, strict=True):
        assert (decoded.signature, decoded.values) == reference_values(log)
        assert decoded.table == EVENTS_BY_SIGNATURE[decoded.signature].table
        assert decoded.block_number == int(log["blockNumber"], 16)
        assert decoded.block_hash.hex() == log["blockHash"][2:]
        assert decoded.tx_hash.hex() == log["transactionHash"][2:]
        assert decoded.tx_index == int(log["transactionIndex"], 16)
        assert decoded.log_index == int(log["logIndex"], 16)
        assert decoded.contract == addr(log["address"])
        assert len(decoded.values) == len(EVENTS_BY_SIGNATURE[decoded.signature].columns)


def test_real_pool_events_match_the_plan(chain: Chain) -> None:
    """PoolCreated names the strategy that then emits the pool's events; funding and metadata are as sent."""
    rnd = run_round(chain)
    core = addr(chain.deployment.core)
    created = rnd.of("PoolCreated")
    assert len(created) == len(rnd.plan.pools)
    for row, pool, on_chain in zip(created, rnd.plan.pools, rnd.result.pools, strict=True):
        first_part = pool.matching_amount - pool.matching_amount // 5
        token = addr(NATIVE_TOKEN) if pool.token is Token.NATIVE else rnd.token
        assert row.contract == core
        assert row.values == (
            on_chain.pool_id,
            hashlib.sha256(pool.name.encode()).digest(),
            addr(on_chain.strategy),
            token,
            first_part,
            *metadata(pool.name),
        )
        assert strategy_of(row) == addr(on_chain.strategy)
        assert pool_id_of(row) == on_chain.pool_id

        funded = [f.values[1:] for f in rnd.of("PoolFunded") if pool_id_of(f) == on_chain.pool_id]
        rest = pool.matching_amount // 5
        fee1, fee2 = (x * DEVNET_PERCENT_FEE // 10**18 for x in (first_part, rest))
        assert funded == [(first_part - fee1, fee1), (rest - fee2, fee2)]
        updated = [u.values[1:] for u in rnd.of("PoolMetadataUpdated") if pool_id_of(u) == on_chain.pool_id]
        assert updated == [metadata(pool.name + "/v2")]

        windows = [t for t in rnd.of("TimestampsUpdated") if t.contract == addr(on_chain.strategy)]
        assert len(windows) == 1
        reg_start, reg_end, alloc_start, alloc_end, sender = windows[0].values
        assert (alloc_start, alloc_end) == (on_chain.allocation_start, on_chain.allocation_end)
        assert isinstance(reg_start, int)
        assert reg_start <= alloc_start
        assert reg_end == alloc_end
        assert sender == rnd.funder
    assert strategy_of(rnd.of("Allocated")[0]) is None
    assert pool_id_of(rnd.of("Allocated")[0]) is None


def test_real_registrations_match_the_plan(chain: Chain) -> None:
    """Registered gives each project its owner and metadata, and indices in order of registration."""
    rnd = run_round(chain)
    strategies = [addr(p.strategy) for p in rnd.result.pools]
    owners = {addr(rnd.plan.wallets[p.owner].address): p for p in rnd.plan.projects}
    index: dict[bytes, int] = {}
    for pool_index, strategy in enumerate(strategies):
        # Chain order is the order of registration (the node orders a block's
        # transactions by fee, so it need not be the plan's order).
        rows = [r for r in rnd.of("Registered") if r.contract == strategy]
        assert {r.values[0] for r in rows} == {o for o, p in owners.items() if p.pool == pool_index}
        for position, row in enumerate(rows):
            owner = row.values[0]
            assert isinstance(owner, bytes)
            assert row.values[1:] == (
                owner,
                position,
                *metadata(owners[owner].name),
                row.values[5],
                owner,
            )
            assert isinstance(row.values[5], bytes)
            index[owner] = position
    appealed = rnd.of("UpdatedRegistration")
    assert len(appealed) == len(rnd.result.pools)
    for row in appealed:
        recipient = row.values[0]
        assert isinstance(recipient, bytes)
        assert owners[recipient].status is RecipientStatus.REJECTED
        # As in Allo v2, an update carries the plain application, without the counter.
        assert row.values[1:5] == (recipient, None, *metadata(owners[recipient].name))
        assert (row.values[6], row.values[7]) == (recipient, RecipientStatus.APPEALED)
    # The last status row of each strategy holds every project's final status, 4 bits each.
    for strategy in strategies:
        rows = [r for r in rnd.of("RecipientStatusUpdated") if r.contract == strategy]
        row_index, full_row, sender = rows[-1].values
        assert (row_index, sender) == (0, rnd.funder)
        assert isinstance(full_row, int)
        for owner, position in index.items():
            if rnd.result.pools[owners[owner].pool].strategy == "0x" + strategy.hex():
                assert (full_row >> (4 * position)) & 15 == owners[owner].status


def test_real_donations_and_payouts_match_the_plan(chain: Chain) -> None:
    """Allocated carries donor, recipient, token and amount as planned; payouts pair up."""
    rnd = run_round(chain)
    plan = rnd.plan
    strategies = [addr(p.strategy) for p in rnd.result.pools]
    planned = Counter(
        (
            addr(plan.wallets[d.donor].address),
            addr(plan.wallets[plan.projects[d.project].owner].address),
            addr(NATIVE_TOKEN) if d.token is Token.NATIVE else rnd.token,
            d.amount,
            strategies[plan.projects[d.project].pool],
        )
        for d in plan.donations
    )
    seen: Counter[tuple[object, ...]] = Counter()
    for row in rnd.of("Allocated"):
        recipient, amount, token, sender, origin = row.values
        assert origin == sender  # donors send their own transactions
        seen[(sender, recipient, token, amount, row.contract)] += 1
    assert seen == planned

    funds = rnd.of("FundsDistributed")
    generic = rnd.of("Distributed")
    assert len(funds) == len(generic) > 0
    for f, g in zip(funds, generic, strict=True):
        amount, grantee, token, recipient = f.values
        assert g.values == (recipient, grantee, amount, rnd.funder)
        assert recipient == grantee
        pool = rnd.result.pools[strategies.index(f.contract)]
        assert token == addr(pool.token)


# -- generated logs -----------------------------------------------------------------------

@st.composite
def generated_logs(draw: st.DrawFn) -> dict[str, Any]:
    """A log of any variant the decoder reads, built from its published ABI."""
    signature = draw(st.sampled_from(sorted(EVENTS_BY_SIGNATURE)))
    params = {p["name"]: draw(ABI_VALUES[abi_type(p)]) for p in ABI_BY_SIGNATURE[signature]["inputs"]}
    log = encode_variant(signature, params)
    if draw(st.booleans()):  # node output is lowercase; accept any letter case anyway
        log = {k: v.upper().replace("0X", "0x") if isinstance(v, str) else v for k, v in log.items()}
        log["topics"] = [t.upper().replace("0X", "0x") for t in log["topics"]]
    return log


@settings(max_examples=600)
@given(generated_logs())
def test_generated_logs_decode_as_eth_abi_reads_them(log: dict[str, Any]) -> None:
    """Any ABI-encoded value of any variant decodes to what eth_abi reads (uint64 saturated at 2**63-1)."""
    decoded = decode_log(log)
    assert decoded is not None
    lowered = {**log, "topics": [t.lower() for t in log["topics"]], "data": log["data"].lower()}
    assert (decoded.signature, decoded.values) == reference_values(lowered)


def test_registration_data_of_another_layout_keeps_raw_bytes() -> None:
    """A strategy whose Registered.data is not the donation-voting layout gives NULLs, not an error."""
    recipient = "0x" + "12" * 20
    raw = eth_abi.encode(["address", "uint256"], [recipient, 5])
    row = decode_log(encode_log("Registered", {"recipientId": recipient, "data": raw, "sender": recipient}))
    assert row is not None
    assert row.values == (addr(recipient), None, None, None, None, raw, addr(recipient))


def test_registration_index_is_the_counter_less_one() -> None:
    """Registered carries recipientsCounter (from 1); the status nibble is one less; a counter of 0 is not ours."""
    recipient = "0x" + "12" * 20
    row = decode_log(encode_log("Registered", {"recipientId": recipient, "data": registration_data(
        recipient, recipient, (1, "x"), 0), "sender": recipient}))  # fmt: skip
    assert row is not None
    assert row.values[2] == 0
    inner = eth_abi.encode(["address", "address", "(uint256,string)"], [recipient, recipient, (1, "x")])
    raw = eth_abi.encode(["bytes", "uint256"], [inner, 0])
    row = decode_log(encode_log("Registered", {"recipientId": recipient, "data": raw, "sender": recipient}))
    assert row is not None
    assert row.values[1:5] == (None, None, None, None)


def test_registration_index_beyond_bigint_is_not_decoded() -> None:
    """A recipient index that cannot be a bigint means the layout is someone else's."""
    recipient = "0x" + "12" * 20
    raw = registration_data(recipient, recipient, (1, "x"), BIGINT_MAX + 1)
    row = decode_log(encode_log("Registered", {"recipientId": recipient, "data": raw, "sender": recipient}))
    assert row is not None
    assert row.values[1:5] == (None, None, None, None)


def test_pointer_with_nul_or_invalid_utf8_is_kept_as_safe_text() -> None:
    """PostgreSQL text holds neither NUL nor invalid UTF-8: NUL is removed, invalid UTF-8 becomes U+FFFD,
    the pool is kept, and the row says which column was changed and why."""
    log = encode_log("PoolMetadataUpdated", {"poolId": 1, "metadata": (1, "ab")})
    data = bytearray(bytes.fromhex(log["data"][2:]))
    data[-32:-30] = b"\x00\xff"  # the pointer's two bytes
    row = decode_log({**log, "data": "0x" + data.hex()})
    assert row is not None
    assert row.values == (1, 1, "\ufffd")
    assert row.sanitised == (("metadata_pointer", ("invalid_utf8", "nul")),)


def test_timestamps_beyond_bigint_saturate() -> None:
    """uint64 max ("no end") is stored as the largest bigint, keeping comparisons right."""
    params = {
        "registrationStartTime": 1,
        "registrationEndTime": 2**64 - 1,
        "allocationStartTime": 2**63 - 1,
        "allocationEndTime": 2**63,
        "sender": "0x" + "12" * 20,
    }
    row = decode_log(encode_log("TimestampsUpdated", params))
    assert row is not None
    assert row.values[:4] == (1, BIGINT_MAX, BIGINT_MAX, BIGINT_MAX)


def test_row_puts_common_columns_first() -> None:
    """DecodedLog.row is COMMON_COLUMNS then the event's values."""
    log = encode_log("PoolFunded", {"poolId": 3, "amount": 10, "fee": 1}, block_number=9, log_index=4)
    row = decode_log(log)
    assert row is not None
    assert row.row(31337) == (
        31337,
        9,
        bytes([9]) * 32,
        bytes([0x11]) * 31 + bytes([4]),
        0,
        4,
        bytes([0xAB]) * 20,
        3,
        10,
        1,
    )
    assert len(row.row(1)) == len(COMMON_COLUMNS) + len(EVENTS_BY_NAME["PoolFunded"].columns)


#: Events of the published ABIs that are deliberately not indexed (counted as unknown topics).
NOT_INDEXED = {
    "RoleAdminChanged(bytes32,bytes32,bytes32)",  # AccessControl's admin wiring, set once at deployment
    "StrategyApproved(address)",  # the core's cloneable-strategy list
    # MicroGrants' own configuration (not a QF strategy)
    "AllocatorSet(address,bool,address)",
    "ApprovalThresholdUpdated(uint256)",
    "maxRequestedAmountAllowedIncreased(uint256)",
    "NewRound(uint256,address,uint256)",  # a price feed's round start; AnswerUpdated carries the price
}


def test_specs_agree_with_the_published_abis() -> None:
    """Every variant has a published ABI whose indexed flags give its topic count; every published event
    of the real strategies, the Registry and the core is decoded, or deliberately left out."""
    assert set(TOPIC0S) >= {topic0(sig) for sig in ALLO_V2_EVENTS.values()}
    for topic, spec in EVENTS.items():
        assert topic == topic0(spec.signature)
        inputs = ABI_BY_SIGNATURE[spec.signature]["inputs"]
        assert spec.topic_count == 1 + sum(p["indexed"] for p in inputs), spec.signature
    assert set(ABI_BY_SIGNATURE) - set(EVENTS_BY_SIGNATURE) == NOT_INDEXED
    for spec in EVENTS.values():  # variants that share a table fill the same columns
        assert TABLES[spec.table] == spec.table_columns
    assert EVENTS_BY_NAME["Allocated"].context_columns == ("tx_from", "tx_nonce", "gas_price", "block_time")


# -- what is not ours, and what is broken -------------------------------------------------


def _allocated_log() -> dict[str, Any]:
    who = "0x" + "12" * 20
    return encode_log(
        "Allocated",
        {"recipientId": who, "amount": 5, "token": NATIVE_TOKEN, "sender": who, "origin": who},
    )


def test_unknown_or_missing_topic0_is_none() -> None:
    """Logs of other events, and anonymous logs, are not ours: None (the caller counts them)."""
    transfer = topic0("Transfer(address,address,uint256)")
    assert decode_log({**_allocated_log(), "topics": [transfer, "0x" + "00" * 32]}) is None
    assert decode_log({**_allocated_log(), "topics": []}) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        # FundsDistributed-like re-indexing: same signature, one topic fewer.
        (lambda lg: {**lg, "topics": lg["topics"][:1]}, "1 topics, expected 2"),
        (lambda lg: {**lg, "topics": [*lg["topics"], "0x" + "00" * 32]}, "3 topics, expected 2"),
        (lambda lg: {**lg, "data": lg["data"][:-2]}, "expected 128"),
        (lambda lg: {**lg, "data": lg["data"] + "00" * 32}, "expected 128"),
        (lambda lg: {**lg, "data": lg["data"][:66] + "01" + lg["data"][68:]}, "not an address"),
        (lambda lg: {**lg, "topics": [lg["topics"][0], "0x" + "ff" * 32]}, "not an address"),
        (lambda lg: {**lg, "topics": [lg["topics"][0], "0x1234"]}, "not 32 bytes"),
        (lambda lg: {**lg, "data": "zz"}, "not 0x-hex"),
        (lambda lg: {**lg, "blockHash": "0x12"}, "blockHash"),
        (lambda lg: {**lg, "blockNumber": None}, "malformed log object"),
        (lambda lg: {k: v for k, v in lg.items() if k != "transactionHash"}, "malformed log object"),
    ],
)
def test_malformed_known_logs_raise_decode_error(change: Any, reason: str) -> None:
    """A known topic0 on a log that does not fit the event is a DecodeError with context."""
    with pytest.raises(DecodeError, match=reason) as caught:
        decode_log(change(_allocated_log()))
    assert caught.value.event == "Allocated"
    assert caught.value.retriable is False


def test_decode_error_names_the_log() -> None:
    """The error says which log, so an operator can find it."""
    log = {**_allocated_log(), "data": "0x"}
    with pytest.raises(DecodeError) as caught:
        decode_log(log)
    assert (caught.value.block_number, caught.value.log_index) == (1, 0)
    assert caught.value.tx_hash == log["transactionHash"]


_HEX32 = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())


@settings(max_examples=500)
@given(
    topic=st.sampled_from(TOPIC0S),
    extra_topics=st.lists(_HEX32, max_size=4),
    data=st.one_of(
        st.binary(max_size=400),
        st.lists(st.integers(0, 2**256 - 1), max_size=12).map(
            lambda words: b"".join(w.to_bytes(32, "big") for w in words)
        ),
    ),
)
def test_random_topics_and_data_never_crash(topic: str, extra_topics: list[str], data: bytes) -> None:
    """Arbitrary topics and data under a known topic0: a DecodedLog or a DecodeError, nothing else."""
    log = {**_allocated_log(), "topics": [topic, *extra_topics], "data": "0x" + data.hex()}
    try:
        decoded = decode_log(log)
    except DecodeError:
        return
    assert decoded is not None
    assert len(decoded.values) == len(EVENTS[topic].columns)


_ODD_STRINGS = st.one_of(
    st.sampled_from(["", "0x", "0X", "0x0", "0xzz", "0x" + "ff" * 32, "0x" + "00" * 20]),
    st.text(max_size=8),
    _HEX32,
)


@settings(max_examples=300)
@given(
    st.dictionaries(
        st.sampled_from([*_allocated_log().keys(), "other"]),
        st.one_of(st.none(), st.integers(), _ODD_STRINGS, st.lists(_ODD_STRINGS, max_size=3)),
    )
)
def test_garbage_log_objects_never_crash(garbage: dict[str, Any]) -> None:
    """A log object with the wrong shape under a known topic0 is a DecodeError, never a crash."""
    log = {**_allocated_log(), **garbage}
    with contextlib.suppress(DecodeError):
        decode_log(log)
