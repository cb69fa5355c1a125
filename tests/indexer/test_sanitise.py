"""Hostile values from the chain and from IPFS: stored sanitised, counted, and never a failed batch.

The rules are `indexer.sanitise`'s; these tests state independently what PostgreSQL
and a reader cannot take (NUL, invalid UTF-8, controls, over-long text, numbers out
of a column's range, jsonb's limits) and check, through a real PostgreSQL, that
every string, bytes and number field of every event variant the decoder knows,
every ``eth_call`` answer the indexer reads, every transaction and block field it
stores and every metadata document commits, with the change counted in
``qf_indexer_values_sanitised_total{field}``.

The node is scripted (``httpx.MockTransport`` under the real ``ResilientRpc``):
it is what a real node cannot do on demand, answer any bytes at all for a
block's timestamp, a nonce or an ``eth_call``. Contract-made hostility on a real
devnet is in ``test_hostile_tokens.py``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import unicodedata
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import eth_abi
import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from psycopg import sql

from qf_sentinel.indexer import sanitise
from qf_sentinel.indexer.decode import EVENTS_BY_SIGNATURE, TABLES, decode_log
from qf_sentinel.indexer.loop import EVENT_TABLES, Indexer, IndexerConfig, PreparedIndexer
from qf_sentinel.indexer.metadata.gateway import Gateways
from qf_sentinel.indexer.metadata.metrics import MetadataMetrics
from qf_sentinel.indexer.metadata.store import MetadataStore
from qf_sentinel.indexer.metadata.worker import FetcherConfig, MetadataFetcher
from qf_sentinel.indexer.metrics import IndexerMetrics, SanitisedValues
from qf_sentinel.indexer.ranges import RangePolicy
from qf_sentinel.indexer.rpc import ResilientRpc
from qf_sentinel.indexer.store import Store
from qf_sentinel.qf.chain.abi import NATIVE_TOKEN, topic0
from qf_sentinel.qf.db import connect
from tests.fixtures.ipfs import gateway, raw_file
from tests.indexer.reference import ABI_BY_SIGNATURE, abi_type

SANITISED = "qf_indexer_values_sanitised_total"
CHAIN_ID = 31337
CORE, REGISTRY, FEED = "0x" + "c0" * 20, "0x" + "e0" * 20, "0x" + "f0" * 20
#: Events only their own contract may emit; from any other they are forged, never stored.
OWN_EVENTS = {
    "PoolCreated": CORE, "PoolFunded": CORE, "PoolMetadataUpdated": CORE, "ProfileCreated": REGISTRY,
    "ProfileNameUpdated": REGISTRY, "ProfileMetadataUpdated": REGISTRY, "ProfileOwnerUpdated": REGISTRY,
    "ProfilePendingOwnerUpdated": REGISTRY, "AnswerUpdated": FEED,
}  # fmt: skip
#: Events only Gitcoin's migration and attestation contracts emit; the indexer names neither, so always forged.
NO_EMITTER = {"ProfileMigrated", "OnAttested"}
#: Parameters the genuine core and Registry never repeat (pool ids, their strategies, profile ids).
UNIQUE = {("PoolCreated", "poolId"), ("PoolCreated", "strategy"), ("ProfileCreated", "profileId")}
BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
DECIMALS, SYMBOL, STRATEGY_ID = "0x313ce567", "0x95d89b41", "0x42fda9c7"
TIME_MAX = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())


# -- what is storable, said independently of indexer.sanitise ---------------------------------


def unsafe_text(raw: bytes, cap: int) -> bool:
    """Whether these bytes cannot be stored as they are as a one-line label of at most ``cap`` characters."""
    try:
        value = raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return len(value) > cap or any(unicodedata.category(c) == "Cc" or c in BIDI for c in value)


def storable_label(value: str | None, cap: int) -> bool:
    return value is None or (
        len(value) <= cap
        and not any(unicodedata.category(c) in ("Cc", "Cs") or c in BIDI for c in value)
        and value.encode("utf-8") is not None
    )


def samples(registry: CollectorRegistry) -> Counter[str]:
    """The counter's value per field."""
    out: Counter[str] = Counter()
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == SANITISED:
                out[sample.labels["field"]] = int(sample.value)
    return out


# -- the pure rules on examples -----------------------------------------------------------------


def _word(n: int) -> str:
    return n.to_bytes(32, "big").hex()


@pytest.mark.parametrize(
    ("raw", "value", "reasons"),
    [
        (b"AB\x00CD", "ABCD", ("nul",)),
        (b"\xff\xfeX", "\ufffd\ufffdX", ("invalid_utf8",)),
        (b"a\x1b[31m\n\xe2\x80\xaeb", "a[31mb", ("control",)),
        (b"x" * 600, "x" * 512, ("truncated",)),
        ("lone \ud800".encode("utf-8", "surrogatepass"), "lone \ufffd\ufffd\ufffd", ("invalid_utf8",)),
        (b"Round 9 \xf0\x9f\x8c\xb1", "Round 9 \U0001f331", ()),
    ],
)
def test_text_keeps_what_it_can(raw: bytes, value: str, reasons: tuple[str, ...]) -> None:
    """NUL and controls go, invalid UTF-8 becomes U+FFFD, the rest is cut at the cap; clean text is untouched."""
    assert sanitise.text(raw) == sanitise.Clean(value, reasons)


@pytest.mark.parametrize(
    ("answer", "value", "reasons"),
    [
        ("0x" + _word(18), 18, ()),
        ("0x" + _word(18) + "48" * 100, 18, ()),  # trailing bytes: Solidity decoders ignore them too
        ("0x" + _word(2**256 - 1), None, ("out_of_range",)),
        ("0x" + _word(300), None, ("out_of_range",)),
        (None, None, ("no_answer",)),
        ("0x", None, ("no_answer",)),
        ("0xffff", None, ("malformed",)),
        ("0xzz", None, ("malformed",)),
        (17, None, ("malformed",)),
    ],
)
def test_decimals_answers(answer: object, value: int | None, reasons: tuple[str, ...]) -> None:
    """decimals() is a uint8: a revert, garbage, or a number above 255 is NULL, with the reason."""
    assert sanitise.abi_uint(answer, max_value=sanitise.DECIMALS_MAX) == sanitise.Clean(value, reasons)


@pytest.mark.parametrize(
    ("answer", "value", "reasons"),
    [
        ("0x" + eth_abi.encode(["string"], ["tUSD"]).hex(), "tUSD", ()),
        ("0x" + eth_abi.encode(["string"], ["AB\x00CD"]).hex(), "ABCD", ("nul",)),
        ("0x" + eth_abi.encode(["bytes"], [b"H" * 100_000]).hex(), "H" * 32, ("truncated",)),
        ("0x" + b"MKR".ljust(32, b"\x00").hex(), "MKR", ()),  # bytes32 symbols (MKR, SAI)
        ("0x" + _word(2**255) + _word(3), None, ("malformed",)),  # offset outside the answer
        ("0x" + _word(32) + _word(2**200) + "41" * 32, None, ("malformed",)),  # length outside the answer
        ("0x" + eth_abi.encode(["string"], [""]).hex(), None, ()),
        ("0xdeadbeef00", None, ("malformed",)),
        (None, None, ("no_answer",)),
    ],
)
def test_symbol_answers(answer: object, value: str | None, reasons: tuple[str, ...]) -> None:
    """symbol() as an ABI string or bytes32; malformed answers are NULL; text as `text` makes it."""
    assert sanitise.abi_string(answer) == sanitise.Clean(value, reasons)


_ID = bytes(range(32))


@pytest.mark.parametrize(
    ("answer", "value", "reasons"),
    [
        ("0x" + _ID.hex(), _ID, ()),
        ("0x" + _ID.hex() + "48" * 100_000, _ID, ()),  # 100 kB: its first word, as a Solidity decoder reads it
        ("0x" + _ID.hex()[:62], None, ("malformed",)),
        ("0xzz", None, ("malformed",)),
        (17, None, ("malformed",)),
        ("0x", None, ("no_answer",)),
        (None, None, ("no_answer",)),
    ],
)
def test_strategy_id_answers(answer: object, value: bytes | None, reasons: tuple[str, ...]) -> None:
    """getStrategyId() is a bytes32: its first word, or no id with the reason (the pool's kind is then unknown)."""
    assert sanitise.abi_bytes32(answer) == sanitise.Clean(value, reasons)


def test_json_documents_are_repaired_or_left_as_bytes() -> None:
    """NUL and lone surrogates in strings and keys, numbers numeric cannot hold: repaired; deep nesting,
    NaN and non-JSON: bytes."""
    clean = b'{"name": "Round 9", "n": 1e4299, "m": 0.5e-16382}'
    assert sanitise.json_document(clean) == sanitise.Clean(clean.decode())
    repaired = sanitise.json_document(b'{"a\\u0000": ["x\\ud800", 1e4300, 1e-16384, 1e-16383, 0e200000]}')
    assert repaired.reasons == ("nul", "surrogate", "out_of_range")
    assert json.loads(repaired.value or "", parse_float=Decimal) == {
        "a": ["x\ufffd", None, None, Decimal("1e-16383"), Decimal("0e200000")]
    }
    assert sanitise.json_document(b"[" * 65 + b"]" * 65) == sanitise.Clean(None, ("too_deep",))
    assert sanitise.json_document(b"[" * 5000 + b"]" * 5000) == sanitise.Clean(None, ("too_deep",))
    assert sanitise.json_document(b'{"a": NaN}') == sanitise.Clean(None)
    assert sanitise.json_document(b"\x89PNG\r\n") == sanitise.Clean(None)


def test_block_times_and_integers_saturate() -> None:
    """A block time past year 9999 is stored as the latest representable; bounded() says which way it went."""
    assert sanitise.timestamp(2**64 - 1) == sanitise.Clean(sanitise.TIME_MAX, ("out_of_range",))
    assert sanitise.timestamp(0).value == datetime(1970, 1, 1, tzinfo=UTC)
    assert sanitise.bounded(2**64 - 1, 0, sanitise.BIGINT_MAX, saturate=True).value == sanitise.BIGINT_MAX
    assert sanitise.bounded(-1, 0, 10, saturate=False) == sanitise.Clean(None, ("out_of_range",))


@given(st.binary(max_size=200) | st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_any_bytes_become_a_storable_label(raw: bytes) -> None:
    """Whatever the bytes, the label holds no NUL, control, override or surrogate, fits its cap, and is
    changed exactly when it had to be."""
    clean = sanitise.text(raw, max_chars=40)
    assert storable_label(clean.value, 40)
    assert clean.changed == unsafe_text(raw, 40)
    assert sanitise.text(clean.value.encode(), max_chars=40) == sanitise.Clean(clean.value)


# -- every event field, eth_call answer, transaction and block, through a real PostgreSQL -----------


def _hash(*parts: object) -> str:
    return "0x" + hashlib.sha256(repr(parts).encode()).hexdigest()


def block_hash(number: int) -> str:
    return _hash("block", number)


class HostileNode:
    """A JSON-RPC node whose chain is what the test appends, one block at a time, with whatever values it likes."""

    def __init__(self) -> None:
        self.blocks: list[dict[str, Any]] = [self._block(0, 0)]
        self.logs: list[dict[str, Any]] = []
        self.transactions: dict[str, dict[str, Any]] = {}
        #: (contract, selector) -> answer hex, or None: reverts
        self.answers: dict[tuple[str, str], str | None] = {}

    @staticmethod
    def _block(number: int, timestamp: int) -> dict[str, Any]:
        parent = block_hash(number - 1) if number else "0x" + "00" * 32
        return {"number": hex(number), "hash": block_hash(number), "parentHash": parent, "timestamp": hex(timestamp)}

    def append(self, timestamp: int, logs: list[dict[str, Any]], transactions: list[dict[str, Any]]) -> int:
        number = len(self.blocks)
        self.blocks.append(self._block(number, timestamp))
        for i, entry in enumerate(logs):
            entry |= {"blockNumber": hex(number), "blockHash": block_hash(number), "logIndex": hex(i),
                      "transactionIndex": hex(i), "removed": False}  # fmt: skip
        self.logs += logs
        for tx in transactions:
            self.transactions[tx["hash"]] = tx | {"blockNumber": hex(number)}
        return number

    def transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            body = json.loads(request.content)
            if isinstance(body, list):
                return httpx.Response(200, json=[self._answer(item) for item in body])
            return httpx.Response(200, json=self._answer(body))

        return httpx.MockTransport(handle)

    def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        method, params = request["method"], request["params"]
        out: dict[str, Any] = {"jsonrpc": "2.0", "id": request["id"]}
        if method == "eth_call":
            key = (params[0]["to"].lower(), params[0]["data"])
            answer = self.answers.get(key, "0x")
            if answer is None:
                return out | {"error": {"code": 3, "message": "execution reverted", "data": "0x"}}
            return out | {"result": answer}
        return out | {"result": self._result(method, params)}

    def _result(self, method: str, params: list[Any]) -> Any:
        if method == "eth_chainId":
            return hex(CHAIN_ID)
        if method == "eth_getCode":
            return "0x6080"
        if method == "eth_blockNumber":
            return hex(len(self.blocks) - 1)
        if method == "eth_getBlockByNumber":
            tag, full = params
            if tag.startswith("0x") and int(tag, 16) < len(self.blocks):
                block = self.blocks[int(tag, 16)]
                txs = [tx for tx in self.transactions.values() if tx["blockNumber"] == block["number"]]
                return block | {"transactions": txs if full else [tx["hash"] for tx in txs]}
            return None  # "finalized" and blocks not mined: a node without them
        if method == "eth_getTransactionByHash":
            return self.transactions.get(params[0])
        if method == "eth_getLogs":
            query = params[0]
            low, high = int(query["fromBlock"], 16), int(query["toBlock"], 16)
            wanted = {a.lower() for a in query.get("address") or []}
            return [
                entry for entry in self.logs
                if low <= int(entry["blockNumber"], 16) <= high and (not wanted or entry["address"] in wanted)
            ]  # fmt: skip
        raise AssertionError(f"unexpected {method}")


# Hostile values by ABI type.
_UINT256 = st.sampled_from([0, 1, 2**63 - 1, 2**63, 2**64 - 1, 2**255, 2**256 - 1]) | st.integers(0, 2**256 - 1)
_INT256 = st.sampled_from([-(2**255), -1, 0, 2**255 - 1]) | st.integers(-(2**255), 2**255 - 1)
_UINT64 = st.sampled_from([0, 2**63 - 1, 2**63, 2**64 - 1]) | st.integers(0, 2**64 - 1)
_ADDRESS = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
_INCOMPRESSIBLE = "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(70)).encode()
#: Text as a contract may emit it: any bytes, text with NUL/controls/overrides/surrogates, and long.
_TEXT = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"AB\x00CD", b"\x00", b"\xed\xa0\x80", "a\u202eb".encode(), b"\x1b[2J", b"ok",
                     b"x" * 513, _INCOMPRESSIBLE, b"\xff" * 3000, "\U0001f331".encode() * 600]),
)  # fmt: skip
_INT96 = st.sampled_from([-(2**95), -1, 0, 2**95 - 1]) | st.integers(-(2**95), 2**95 - 1)
_BY_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "uint256": _UINT256, "int256": _INT256, "int96": _INT96, "uint64": _UINT64, "uint8": st.integers(0, 255),
    "bool": st.booleans(), "address": _ADDRESS, "bytes32": st.binary(min_size=32, max_size=32),
    "string": _TEXT, "(uint256,string)": st.tuples(_UINT256, _TEXT),
}  # fmt: skip
#: Any bytes that neither registration layout can read (the first word is no offset and no address).
_FOREIGN = st.binary(max_size=300).map(lambda b: b"\xff" * 32 + b) | st.sampled_from([b"", b"\xff" * 100_000])


def _application(recipient: str, address: str, metadata: tuple[int, bytes]) -> bytes:
    return eth_abi.encode(["address", "address", "(uint256,bytes)"], [recipient, address, metadata])


@st.composite
def _data(draw: st.DrawFn, signature: str) -> tuple[bytes, bytes | None]:
    """A ``bytes`` parameter: (the bytes, the metadata pointer the decoder reads from them, if any)."""
    if signature == "Registered(address,bytes,address)" and draw(st.booleans()):
        pointer = draw(_TEXT)
        counter = draw(st.sampled_from([0, 1, 2**63 - 1, 2**63]) | st.integers(1, 2**64))
        inner = _application(draw(_ADDRESS), draw(_ADDRESS), (draw(_UINT256), pointer))
        return eth_abi.encode(["bytes", "uint256"], [inner, counter]), pointer if 1 <= counter <= 2**63 - 1 else None
    if signature == "UpdatedRegistration(address,bytes,address,uint8)" and draw(st.booleans()):
        pointer = draw(_TEXT)
        return _application(draw(_ADDRESS), draw(_ADDRESS), (draw(_UINT256), pointer)), pointer
    return draw(_FOREIGN), None


def _abi(kind: str) -> str:
    return kind.replace("string", "bytes")  # same encoding: bytes lets a "string" hold any bytes


#: eth_call answers: (answer hex or None to revert, must it be counted?, the value it may be stored as).
_Answer = tuple[str | None, bool]


@st.composite
def _decimals_answer(draw: st.DrawFn) -> _Answer:
    kind = draw(st.sampled_from(["revert", "empty", "word", "short", "not_hex"]))
    if kind == "word":
        value = draw(st.integers(0, 300) | st.sampled_from([2**256 - 1, 2**8, 2**16]) | st.integers(0, 2**256 - 1))
        tail = draw(st.binary(max_size=40))
        return "0x" + _word(value) + tail.hex(), value > 255
    if kind == "short":
        return "0x" + draw(st.binary(min_size=1, max_size=31)).hex(), True
    return {"revert": None, "empty": "0x", "not_hex": "0xzz"}[kind], True


@st.composite
def _symbol_answer(draw: st.DrawFn) -> _Answer:
    kind = draw(st.sampled_from(["revert", "empty", "string", "bytes32", "garbage", "huge"]))
    if kind == "string":
        content = draw(_TEXT)
        return "0x" + eth_abi.encode(["bytes"], [content]).hex() + draw(st.binary(max_size=40)).hex(), unsafe_text(
            content, 32
        )
    if kind == "bytes32":
        raw = draw(st.binary(min_size=32, max_size=32))
        return "0x" + raw.hex(), unsafe_text(raw.rstrip(b"\x00"), 32)
    if kind == "garbage":
        return "0x" + draw(st.binary(max_size=31) | st.binary(min_size=33, max_size=63)).hex(), True
    if kind == "huge":
        return "0x" + eth_abi.encode(["bytes"], [b"H" * 100_000]).hex(), True
    return {"revert": None, "empty": "0x"}[kind], True


@st.composite
def _strategy_id_answer(draw: st.DrawFn) -> tuple[str | None, bytes | None]:
    """A getStrategyId() answer, and the id it is stored as (its first word; None: no id, counted)."""
    kind = draw(st.sampled_from(["revert", "empty", "word", "short", "not_hex"]))
    if kind == "word":
        word = draw(st.binary(min_size=32, max_size=32))
        return "0x" + word.hex() + draw(st.binary(max_size=40)).hex(), word
    if kind == "short":
        return "0x" + draw(st.binary(min_size=1, max_size=31)).hex(), None
    return {"revert": None, "empty": "0x", "not_hex": "0xzz"}[kind], None


#: Any variant; half the time one of those that read tokens, transactions or text, the likeliest to need work.
_VARIANT = st.sampled_from(sorted(EVENTS_BY_SIGNATURE)) | st.sampled_from([
    "PoolCreated(uint256,bytes32,address,address,uint256,(uint256,string))",
    "Allocated(address,uint256,address,address,address)", "Allocated(address,uint256,address,address)",
    "ProfileCreated(bytes32,uint256,string,(uint256,string),address,address)", "Registered(address,bytes,address)",
])  # fmt: skip


def _token_column(signature: str) -> int | None:
    """Position of the token a variant names (read with eth_call) among its ABI inputs."""
    names = [p["name"] for p in ABI_BY_SIGNATURE[signature]["inputs"]]
    if signature.startswith("PoolCreated(") or signature in (
        "Allocated(address,uint256,address,address,address)", "Allocated(address,uint256,address,address)"
    ):
        return names.index("token")
    return None


#: Pool ids, strategies and profile ids the genuine contracts already used, across examples.
used: set[Any] = set()
_fresh_values = itertools.count(1)


def _fresh(kind: str) -> Any:
    n = next(_fresh_values)
    fresh = {"uint256": 2**200 + n, "address": "0x" + n.to_bytes(20, "big").hex(), "bytes32": n.to_bytes(32, "big")}
    return fresh[kind]


@pytest.fixture
def hostile_indexer(migrated_db_url: str) -> Iterator[tuple[PreparedIndexer[ResilientRpc, Store], HostileNode]]:
    node = HostileNode()
    used.clear()
    rpc = ResilientRpc(["http://hostile.invalid"], transport=node.transport(), max_attempts=1)
    config = IndexerConfig(
        chain_id=CHAIN_ID, core=bytes.fromhex(CORE[2:]), start_block=1, registry=bytes.fromhex(REGISTRY[2:]),
        price_feeds={bytes.fromhex(NATIVE_TOKEN[2:]): bytes.fromhex(FEED[2:])},
        poll_interval_seconds=0.0, confirmations=64, max_reorg_depth=128,
        range_policy=RangePolicy(initial_blocks=1, max_blocks=1), refresh_debounce_seconds=0.0,
    )  # fmt: skip
    store = Store(migrated_db_url, CHAIN_ID, EVENT_TABLES)
    indexer = Indexer(config, rpc, store, metrics=IndexerMetrics().chain(CHAIN_ID))
    assert store.try_lock()
    prepared = indexer.prepare()
    try:
        yield prepared, node
    finally:
        store.close()
        rpc.close()


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_hostile_values_in_every_field_commit_and_are_counted(
    hostile_indexer: tuple[PreparedIndexer[ResilientRpc, Store], HostileNode], data: st.DataObject
) -> None:
    """A block of logs of any variants with hostile strings, bytes and numbers, donation transactions with
    nonces and gas prices beyond their columns, a block time past year 9999, and tokens whose decimals() and
    symbol() revert, are empty, garbage, huge or out of range: the batch commits, the analytics refresh, what
    is stored is storable, and each value that had to change is counted under its field."""
    indexer, node = hostile_indexer
    registry = indexer.metrics.registry
    before = samples(registry)
    expected: Counter[str] = Counter()
    number = len(node.blocks)
    timestamp = data.draw(st.integers(0, 2**64 - 1) | st.sampled_from([0, 1_700_000_000, TIME_MAX, TIME_MAX + 1]))
    expected["blocks.block_time"] += timestamp > TIME_MAX
    emitters = [CORE, REGISTRY, FEED, *("0x" + s.hex() for s in sorted(indexer.strategies))]
    known_tokens = {"0x" + t.hex() for t in indexer.tokens} | {NATIVE_TOKEN}
    logs, transactions, tokens_read = [], [], set()
    strategy_ids: dict[str, bytes | None] = {}
    stored_events = 0
    for i in range(data.draw(st.integers(1, 5), label="logs")):
        signature = data.draw(_VARIANT, label="variant")
        spec = EVENTS_BY_SIGNATURE[signature]
        inputs = ABI_BY_SIGNATURE[signature]["inputs"]
        address = emitters[data.draw(st.integers(0, 2**16), label="emitter") % len(emitters)]
        owner = OWN_EVENTS.get(spec.name)
        forged = spec.name in NO_EMITTER or (
            owner is not None and data.draw(st.integers(0, 3), label="forged") == 0 and address != owner
        )
        if owner is not None and not forged:
            address = owner
        counted = Counter[str]()
        values: dict[str, Any] = {}
        for param in inputs:
            kind = abi_type(param)
            if kind == "bytes":
                values[param["name"]], pointer = data.draw(_data(signature), label=param["name"])
                counted[f"{spec.table}.metadata_pointer"] += pointer is not None and unsafe_text(pointer, 512)
                continue
            values[param["name"]] = data.draw(_BY_TYPE[kind], label=param["name"])
            if (spec.name, param["name"]) in UNIQUE and not forged:
                while values[param["name"]] in used:  # the genuine contract never repeats these
                    values[param["name"]] = _fresh(kind)
                used.add(values[param["name"]])
            if kind == "string":
                counted[f"{spec.table}.name"] += unsafe_text(values[param["name"]], 512)
            elif kind == "(uint256,string)":
                counted[f"{spec.table}.metadata_pointer"] += unsafe_text(values[param["name"]][1], 512)
        if spec.name == "PoolCreated":  # a new strategy is asked for its getStrategyId()
            answer, stored_id = data.draw(_strategy_id_answer(), label="getStrategyId()")
            if not forged:
                strategy_ids[values["strategy"]] = stored_id
                node.answers[(values["strategy"], STRATEGY_ID)] = answer
                expected["strategies.strategy_id"] += stored_id is None
        if forged:
            expected[f"{spec.table}.contract"] += 1  # left out, so its own values are never stored
        else:
            expected.update(counted)
            stored_events += 1
        token_at = _token_column(signature)
        if token_at is not None:
            token = data.draw(st.just(NATIVE_TOKEN) | _ADDRESS, label="token")
            values[inputs[token_at]["name"]] = token
            # Drawn whether or not they are read: what is drawn must not depend on the database's state.
            decimals, decimals_counted = data.draw(_decimals_answer(), label="decimals()")
            symbol, symbol_counted = data.draw(_symbol_answer(), label="symbol()")
            if token not in known_tokens and token not in tokens_read and not forged:
                tokens_read.add(token)
                node.answers[(token, DECIMALS)], node.answers[(token, SYMBOL)] = decimals, symbol
                expected["tokens.decimals"] += decimals_counted
                expected["tokens.symbol"] += symbol_counted
        tx_hash = _hash("tx", number, i)
        if spec.table == "allocated":
            nonce = data.draw(st.sampled_from([0, 2**63 - 1, 2**63, 2**64 - 1]) | st.integers(0, 2**64 - 1),
                              label="nonce")  # fmt: skip
            gas_price = data.draw(st.sampled_from([0, 2**256 - 1, 2**256]) | st.integers(0, 2**260), label="gasPrice")
            transactions.append({"hash": tx_hash, "from": data.draw(_ADDRESS), "nonce": hex(nonce),
                                 "gasPrice": hex(gas_price)})  # fmt: skip
            expected["allocated.tx_nonce"] += nonce > 2**63 - 1
            expected["allocated.gas_price"] += gas_price > 2**256 - 1
        plain = [p for p in inputs if not p["indexed"]]
        topics = [topic0(signature)] + [
            "0x" + eth_abi.encode([_abi(abi_type(p))], [values[p["name"]]]).hex() for p in inputs if p["indexed"]
        ]
        encoded = eth_abi.encode([_abi(abi_type(p)) for p in plain], [values[p["name"]] for p in plain])
        logs.append({"address": address, "topics": topics, "data": "0x" + encoded.hex(), "transactionHash": tx_hash})
    node.append(timestamp, logs, transactions)

    result = indexer.step()
    indexer.flush()  # the analytics over what was stored

    assert indexer.state is not None
    assert indexer.state.checkpoint_block == number, result
    assert result.events == stored_events
    after = samples(registry)
    for field in sorted(+expected):
        event(f"sanitised {field}")
    assert {f: after[f] - before[f] for f in after if after[f] != before[f]} == +expected
    with connect(indexer.store.url) as conn:
        for table, columns in TABLES.items():
            for column in {"metadata_pointer", "name"} & set(columns):
                query = sql.SQL("SELECT {} FROM {} WHERE block_number = %s").format(
                    sql.Identifier(column), sql.Identifier("qf", table)
                )
                stored = conn.execute(query, [number]).fetchall()
                assert all(storable_label(value, 512) for (value,) in stored), (table, column)
        for token in tokens_read:
            symbol, decimals = conn.execute(
                "SELECT symbol, decimals FROM qf.tokens WHERE address = %s", [bytes.fromhex(token[2:])]
            ).fetchone() or ("missing", "missing")
            assert storable_label(symbol, 32)
            assert decimals is None or 0 <= decimals <= 255
        for strategy, stored_id in strategy_ids.items():
            row = conn.execute(
                "SELECT strategy_id, strategy_id_read FROM qf.strategies WHERE address = %s",
                [bytes.fromhex(strategy[2:])],
            ).fetchone()
            assert row is not None
            assert (None if row[0] is None else bytes(row[0])) == stored_id
            assert (row[1] == "answered") is (stored_id is not None)
        nonces = conn.execute(
            "SELECT tx_nonce, gas_price, block_time FROM qf.allocated WHERE block_number = %s", [number]
        ).fetchall()
        assert all(n <= 2**63 - 1 and g <= 2**256 - 1 for n, g, _ in nonces)
    # Decoded again, the logs give exactly the stored rows: nothing dropped as undecodable.
    assert all(decode_log(entry) is not None for entry in logs)


# -- metadata documents through the fetcher ----------------------------------------------------

_JSON_TEXT = st.text(max_size=12) | st.sampled_from(["a\x00b", "\x00", "\ud800", "x\udfff", "\ud83c\udf31"])
_JSON_NUMBER = st.integers(-(2**70), 2**70).map(str) | st.sampled_from(
    ["1e4299", "-1e4300", "1e131072", "1e-16383", "1e-16384", "0e200000", "-1.5e-16383", "1234567890e4290",
     "1234567890e4289", "1e999999999", "1.5e300", "-0"]
)  # fmt: skip


def _json(node: Any) -> str:
    """JSON text with any string (NUL and lone surrogates as \\u escapes) and any number literal."""
    if isinstance(node, tuple):  # a number literal
        return node[0]
    if isinstance(node, str):
        return json.dumps(node)  # ensure_ascii: "\\u0000", "\\ud800"
    if isinstance(node, list):
        return "[" + ",".join(_json(v) for v in node) + "]"
    return "{" + ",".join(f"{json.dumps(k)}:{_json(v)}" for k, v in node.items()) + "}"


_DOCUMENT = st.recursive(
    _JSON_TEXT | _JSON_NUMBER.map(lambda n: (n,)) | st.sampled_from([("true",), ("null",)]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_JSON_TEXT, inner, max_size=4),
    max_leaves=20,
)


def _needs_repair(node: Any) -> bool:
    if isinstance(node, tuple):
        number = Decimal(node[0]) if node[0] not in ("true", "null") else Decimal(0)
        exponent = number.as_tuple().exponent
        assert isinstance(exponent, int)
        # numeric's 16,383 decimals; integers Python (psycopg's jsonb loader) reads back: 4,300 digits
        return -exponent > 16383 or (not number.is_zero() and number.adjusted() >= 4300)
    if isinstance(node, str):
        return "\x00" in node or _lone(node)
    if isinstance(node, list):
        return any(_needs_repair(v) for v in node)
    return any(_needs_repair(k) or _needs_repair(v) for k, v in node.items())


def _lone(text: str) -> bool:
    """Whether the string holds a surrogate that does not pair up (JSON's \\ud83c\\udf31 pairs into one character)."""
    try:
        text.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        return True
    return False


_example = itertools.count()


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(document=_DOCUMENT | (st.integers(66, 3000) | st.just(200_000)).map(lambda d: ("deep", d)))
def test_hostile_metadata_documents_are_stored_and_counted(migrated_db_url: str, document: Any) -> None:
    """Any JSON document (NUL and lone surrogates in strings and keys, numbers past numeric's range, nesting
    past the cap) is verified, stored (as jsonb when it can be, repaired, else as bytes), its pointer marked
    fetched, and a repair counted under ipfs_metadata.body."""
    # Each example its own document (a CID already fetched is not fetched again).
    head = b'{"example": %d, "document": ' % next(_example)
    if isinstance(document, tuple) and document and document[0] == "deep":
        content, repaired = head + b"[" * document[1] + b"]" * document[1] + b"}", True
    else:
        content, repaired = head + _json(document).encode() + b"}", _needs_repair(document)
    cid, blocks = raw_file(content)
    registry = CollectorRegistry()
    sanitised = SanitisedValues(registry)
    metrics = MetadataMetrics(registry)
    with gateway(blocks) as honest:
        with connect(migrated_db_url) as conn:
            conn.execute("INSERT INTO qf.metadata_pointers (protocol, pointer) VALUES (1, %s) ON CONFLICT DO NOTHING",
                         [cid])  # fmt: skip
        gateways = Gateways([honest.url], timeout_seconds=30, metrics=metrics)
        fetcher = MetadataFetcher(MetadataStore(migrated_db_url), gateways, metrics, FetcherConfig(),
                                  sanitised=sanitised)  # fmt: skip
        try:
            fetcher.drain()
        finally:
            fetcher.close()
    with connect(migrated_db_url) as conn:
        status = conn.execute("SELECT status FROM qf.metadata_pointers WHERE pointer = %s", [cid]).fetchone()
        stored = conn.execute("SELECT format, body::text, raw FROM qf.ipfs_metadata WHERE cid = %s", [cid]).fetchone()
    assert status == ("fetched",)
    assert stored is not None
    assert (registry.get_sample_value(SANITISED, {"field": "ipfs_metadata.body"}) or 0) == repaired
    if stored[0] == "bytes":
        assert bytes(stored[2]) == content
    else:  # what is stored reads back (numbers too): the console and psql will read it
        json.loads(stored[1])
