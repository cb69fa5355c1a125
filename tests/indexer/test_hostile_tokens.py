"""Pools whose token answers symbol()/decimals() with hostile bytes, on a real devnet, through the real core.

`contracts/HostileToken.sol` returns exactly the bytes it is given (or reverts);
each pool below names one such token, and one pool's metadata pointer is a
string no PostgreSQL index can hold. ``qf index --until-caught-up`` must still
exit 0 with every later block indexed, the values stored sanitised, each
sanitised value logged once and counted.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import eth_abi
from eth_utils.abi import function_abi_to_4byte_selector

from qf_sentinel.qf.chain.abi import NATIVE_TOKEN, load_artifact
from qf_sentinel.qf.chain.tx import wait_for_receipts
from qf_sentinel.qf.db import connect
from tests.fixtures.chain import Chain
from tests.indexer.harness import chain_events, close, make_indexer, snapshot, stored_keys, sync
from tests.indexer.live import LivePool
from tests.indexer.test_resilience import index_env, index_until_caught_up

HOSTILE = load_artifact("HostileToken")
CORE = load_artifact("QFAllo")
SANITISED = "qf_indexer_values_sanitised_total"


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _string(raw: bytes) -> bytes:
    """An ABI-encoded ``string`` return value holding these exact bytes (any bytes: the encoding is bytes')."""
    return eth_abi.encode(["bytes"], [raw])


#: An answer: (bytes, padding bytes of "H" after them) or None for a revert.
Answer = tuple[bytes, int] | None
#: 100 kB symbol: the string's head (offset, length), its 100,000 bytes padded on by the contract.
HUGE_STRING = _word(32) + _word(100_000)

#: name -> (symbol() answer, decimals() answer, the symbol and decimals to be stored).
TOKENS: dict[str, tuple[Answer, Answer, str | None, int | None]] = {
    "nul": ((_string(b"AB\x00CD"), 0), (_word(18), 0), "ABCD", 18),
    "huge": ((HUGE_STRING, 100_000), (_word(2**256 - 1), 100_000), "H" * 32, None),
    "reverts": (None, (_word(300), 0), None, None),
    "garbage": ((bytes.fromhex("deadbeef00"), 0), (bytes.fromhex("ff" * 3), 0), None, None),
    "controls": ((_string(b"\xff\xfeX\x1b[31m\xe2\x80\xaeY\n"), 0), None, "\ufffd\ufffdX[31mY", None),
    "bytes32": ((b"MKR".ljust(32, b"\x00"), 0), (_word(18), 2_000), "MKR", 18),
}
#: Sanitised fields each token must count (the others are stored as read).
COUNTED = {
    "nul": {"tokens.symbol"},
    "huge": {"tokens.symbol", "tokens.decimals"},
    "reverts": {"tokens.symbol", "tokens.decimals"},
    "garbage": {"tokens.symbol", "tokens.decimals"},
    "controls": {"tokens.symbol", "tokens.decimals"},
    "bytes32": set(),
}
#: A pointer longer than a btree entry may be (2,704 bytes), incompressible, with a NUL byte.
LONG_POINTER = "Qm\x00" + "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(70))


def _send(chain: Chain, sender: str, to: str | None, data: bytes) -> dict[str, Any]:
    tx: dict[str, Any] = {"from": sender, "data": "0x" + data.hex(), "gas": hex(8_000_000)}
    if to is not None:
        tx["to"] = to
    (receipt,) = wait_for_receipts(chain.rpc, [chain.rpc.call("eth_sendTransaction", [tx])])
    assert receipt["status"] == "0x1", receipt
    return receipt


def _hostile_token(chain: Chain, owner: str, symbol: Answer, decimals: Answer) -> str:
    receipt = _send(chain, owner, None, HOSTILE.deploy_data())
    token = str(receipt["contractAddress"]).lower()
    for selector, answer in ((bytes.fromhex("95d89b41"), symbol), (bytes.fromhex("313ce567"), decimals)):
        data, padding = answer or (b"", 0)
        _send(chain, owner, token, HOSTILE.encode_call("setAnswer", [selector, data, padding, answer is None]))
    return token


def _create_pool(chain: Chain, manager: str, token: str, pointer: str) -> None:
    now = int(chain.rpc.call("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
    windows = [now, now + 10**7, now, now + 10**7]
    entry = CORE.function("createDonationPool")
    # The pointer is a Solidity string; encoded as bytes so it may be any bytes at all.
    types = ["bytes32", "address", "uint256", "(uint256,bytes)", "uint64[4]", "address[]"]
    args = [b"\x07" * 32, token, 0, (1, pointer.encode("utf-8", "surrogatepass")), windows, [token, NATIVE_TOKEN]]
    _send(chain, manager, chain.deployment.core, function_abi_to_4byte_selector(entry) + eth_abi.encode(types, args))  # type: ignore[arg-type]


def test_hostile_token_answers_and_pointers_never_stop_the_indexer(
    chain: Chain, db_url: str, second_db: str, tmp_path: Path
) -> None:
    """NUL in symbol(), 100 kB answers, reverts, garbage, decimals() of 2^256-1 and 300, an unindexable pointer:
    `qf index --until-caught-up` exits 0, a donation after them is indexed, values are stored sanitised,
    each sanitised value is logged once, and counted in qf_indexer_values_sanitised_total{field}."""
    chain.rpc.call("evm_setAutomine", [True])
    manager = chain.rpc.call("eth_accounts")[0].lower()
    tokens = {name: _hostile_token(chain, manager, s, d) for name, (s, d, _, _) in TOKENS.items()}
    for name, token in tokens.items():
        # Two pools with the same unindexable pointer: counted twice, logged once.
        _create_pool(chain, manager, token, LONG_POINTER if name in ("nul", "huge") else f"bafy-{name}")
    pool = LivePool(chain)  # later blocks: an ordinary pool and a donation to it
    pool.donate(pool.donors[0], pool.recipients[0], 10**15)

    proc = index_until_caught_up(index_env(chain, db_url, tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert stored_keys(db_url) == chain_events(chain)
    head = int(chain.rpc.call("eth_blockNumber"), 16)
    with connect(db_url) as conn:
        assert conn.execute("SELECT checkpoint_block FROM qf.chains").fetchone() == (head,)
        stored = {
            "0x" + bytes(a).hex(): (s, d)
            for a, s, d in conn.execute("SELECT address, symbol, decimals FROM qf.tokens").fetchall()
        }
        pointers = [r[0] for r in conn.execute("SELECT metadata_pointer FROM qf.pool_created ORDER BY pool_id")]
        donations = conn.execute("SELECT count(*) FROM qf.donations WHERE pool_id = %s", [pool.pool_id]).fetchone()
    for name, (_, _, symbol, decimals) in TOKENS.items():
        assert stored[tokens[name]] == (symbol, decimals), name
    assert donations == (1,)
    long_pointer = pointers[list(tokens).index("nul")]
    assert "\x00" not in long_pointer
    assert long_pointer == LONG_POINTER.replace("\x00", "")[:512]

    # Logged once per (field, contract), however often the value is met.
    events = [json.loads(line) for line in proc.stdout.splitlines() + proc.stderr.splitlines() if line.startswith("{")]
    logged = [(e["field"], e["subject"]) for e in events if e.get("event") == "value_sanitised"]
    assert len(logged) == len(set(logged))
    expected = {(field, tokens[name]) for name, fields in COUNTED.items() for field in fields}
    assert expected <= set(logged)
    assert ("pool_created.metadata_pointer", chain.deployment.core.lower()) in set(logged)

    # The same chain backfilled in-process: the same rows, and the counter per field.
    indexer = make_indexer(chain, second_db, tmp_path)
    try:
        sync(indexer)
        registry = indexer.metrics.registry
        for field in ("tokens.symbol", "tokens.decimals", "pool_created.metadata_pointer"):
            count = registry.get_sample_value(SANITISED, {"field": field})
            wanted = sum(field in fields for fields in COUNTED.values()) if field.startswith("tokens") else 2
            assert count == wanted, field
    finally:
        close(indexer)
    assert snapshot(db_url) == snapshot(second_db)


def test_price_feeds_with_hostile_decimals_are_left_out_not_fatal(chain: Chain, db_url: str, tmp_path: Path) -> None:
    """A configured price feed whose decimals() reverts or answers 300 (qf.price_feeds holds 0..36) does not stop
    the indexer from starting: the feed is left out of qf.price_feeds, logged and counted; a sound feed is kept."""
    chain.rpc.call("evm_setAutomine", [True])
    owner = chain.rpc.call("eth_accounts")[0].lower()
    reverting = _hostile_token(chain, owner, None, None)
    too_many = _hostile_token(chain, owner, None, (_word(300), 0))
    sound = _hostile_token(chain, owner, None, (_word(8), 0))
    feeds = {NATIVE_TOKEN: reverting, chain.deployment.token: too_many, "0x" + "12" * 20: sound}
    indexer = make_indexer(chain, db_url, tmp_path, price_feeds=feeds)
    try:
        sync(indexer)
        counted = indexer.metrics.registry.get_sample_value(SANITISED, {"field": "price_feeds.decimals"})
    finally:
        close(indexer)
    with connect(db_url) as conn:
        recorded = conn.execute("SELECT '0x' || encode(feed, 'hex'), decimals FROM qf.price_feeds").fetchall()
    assert recorded == [(sound, 8)]
    assert counted == 2
