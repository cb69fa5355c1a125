"""A pool's strategy kind, on a real devnet: getStrategyId() read once and fail-soft, grants kept apart from donations.

The indexer asks each strategy it discovers for ``getStrategyId()`` (Allo's
BaseStrategy answers keccak256(abi.encode(name and version))) and
``qf.strategy_kinds`` says what that id is. `contracts/HostileToken.sol` answers
it with exactly the bytes a test sets; the real DirectGrantsLite bytecode of
``@allo-team/allo-v2-sdk`` pays a grant through the project's core.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import eth_abi
import pytest
from eth_utils import keccak

from qf_sentinel.indexer.fetch import STRATEGY_ID_SELECTOR, fetch_strategy_ids
from qf_sentinel.indexer.rpc import ResilientRpc
from qf_sentinel.qf.chain.abi import NATIVE_TOKEN, load_artifact
from qf_sentinel.qf.chain.allo_sdk import sdk_strategy
from qf_sentinel.qf.chain.tx import wait_for_receipts
from qf_sentinel.qf.db import connect
from qf_sentinel.qf.errors import DataError
from qf_sentinel.qf.matching.db import load_donations
from qf_sentinel.qf.sim.dvmdt import profile_id
from tests.fixtures.chain import Chain
from tests.indexer.harness import backfill, close, make_indexer, sync
from tests.indexer.live import LivePool

HOSTILE = load_artifact("HostileToken")
CORE = load_artifact("QFAllo")
REGISTRY = load_artifact("Registry")
DGL = sdk_strategy("DirectGrantsLiteStrategy")
CHAIN_ID = 31337


def strategy_id(name: str) -> bytes:
    """What Allo's BaseStrategy answers for a strategy deployed under ``name``."""
    return keccak(eth_abi.encode(["string"], [name]))


#: The project's own DonationStrategy (contracts/DonationStrategy.sol).
PROJECT_ID = strategy_id("QFSentinelDonationStrategyv1.0")
WORD = strategy_id("DirectGrantsLiteStrategyv1.0")

#: name -> (getStrategyId() answer: bytes and padding bytes of "H" after them, or None for a revert;
#: the id stored; how it answered)
ANSWERS: dict[str, tuple[tuple[bytes, int] | None, bytes | None, str]] = {
    "exact": ((WORD, 0), WORD, "answered"),
    "huge": ((WORD, 100_000), WORD, "answered"),  # 100 kB: its first word, as a Solidity decoder reads it
    "short": ((WORD[:31], 0), None, "malformed"),
    "empty": ((b"", 0), None, "no_answer"),
    "reverts": (None, None, "no_answer"),
}


def _send(chain: Chain, sender: str, to: str | None, data: bytes, value: int = 0) -> dict[str, Any]:
    tx: dict[str, Any] = {"from": sender, "data": "0x" + data.hex(), "gas": hex(8_000_000), "value": hex(value)}
    if to is not None:
        tx["to"] = to
    (receipt,) = wait_for_receipts(chain.rpc, [chain.rpc.call("eth_sendTransaction", [tx])])
    assert receipt["status"] == "0x1", receipt
    return receipt


def _hostile_strategy(chain: Chain, owner: str, answer: tuple[bytes, int] | None) -> str:
    contract = str(_send(chain, owner, None, HOSTILE.deploy_data())["contractAddress"]).lower()
    data, padding = answer or (b"", 0)
    selector = bytes.fromhex(STRATEGY_ID_SELECTOR[2:])
    _send(chain, owner, contract, HOSTILE.encode_call("setAnswer", [selector, data, padding, answer is None]))
    return contract


def test_strategy_ids_are_read_fail_soft(chain: Chain) -> None:
    """An id is the answer's first word; a revert, an empty or short answer, a contract without the function and
    an address without code give no id and a reason, never an error; batches with and without a revert agree."""
    chain.rpc.call("evm_setAutomine", [True])
    owner = chain.rpc.call("eth_accounts")[0].lower()
    hostile = {name: _hostile_strategy(chain, owner, answer) for name, (answer, _, _) in ANSWERS.items()}
    pool = LivePool(chain, recipients=1)
    others = {
        "project strategy": (pool.strategy, PROJECT_ID, "answered"),
        "token without getStrategyId": (chain.deployment.token, None, "no_answer"),
        "no code": ("0x" + "12" * 20, None, "no_answer"),
    }
    expected = {name: (hostile[name], stored, read) for name, (_, stored, read) in ANSWERS.items()} | others
    rpc = ResilientRpc([chain.url], max_attempts=2)
    try:
        addresses = [bytes.fromhex(a[2:]) for a, _, _ in expected.values()]
        answers = fetch_strategy_ids(rpc, addresses)
        answered_only = fetch_strategy_ids(rpc, [bytes.fromhex(hostile["exact"][2:]), bytes.fromhex(pool.strategy[2:])])
    finally:
        rpc.close()
    for name, (address, stored, read) in expected.items():
        answer = answers[bytes.fromhex(address[2:])]
        assert answer.value == stored, name
        assert (answer.reasons[0] if answer.reasons else "answered") == read, name
    assert [a.value for a in answered_only.values()] == [WORD, PROJECT_ID]


# -- a grant is not a donation ------------------------------------------------------------------


def _grants_lite_pool(chain: Chain, manager: str, recipient: str, name: str, nonce: int) -> int:
    """A pool on the real DirectGrantsLite deployed under ``name``, its one recipient accepted and paid 10^15 wei
    by the manager (DirectGrantsLite's allocate is the transfer); returns the pool id."""
    strategy = str(_send(chain, manager, None, DGL.deploy_data([chain.deployment.core, name]))["contractAddress"])
    profile = profile_id(nonce, manager)
    create = REGISTRY.encode_call("createProfile", [nonce, f"grants {nonce}", (1, "p"), manager, []])
    _send(chain, manager, chain.deployment.registry, create)
    now = int(chain.rpc.call("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
    init = eth_abi.encode(["(bool,bool,uint64,uint64)"], [(False, False, now, now + 10**6)])
    call = CORE.encode_call("createPoolWithCustomStrategy", [profile, strategy, init, NATIVE_TOKEN, 0, (1, name), []])
    created = _send(chain, manager, chain.deployment.core, call)["logs"]
    pool_id = next(int(lg["topics"][1], 16) for lg in created if lg["address"].lower() == chain.deployment.core.lower()
                   and len(lg["topics"]) == 3)  # fmt: skip
    application = eth_abi.encode(["address", "address", "(uint256,string)"], ["0x" + "00" * 20, recipient, (1, "a")])
    _send(chain, recipient, chain.deployment.core, CORE.encode_call("registerRecipient", [pool_id, application]))
    counter = int(chain.rpc.call("eth_call", [{"to": strategy, "data": "0x" + DGL.encode_call(
        "recipientsCounter", []).hex()}, "latest"]), 16)  # fmt: skip
    _send(chain, manager, strategy, DGL.encode_call("reviewRecipients", [[(0, 2)], counter]))  # index 0: accepted
    payout = eth_abi.encode(["(address,address,uint256)[]"], [[(NATIVE_TOKEN, recipient, 10**15)]])
    _send(chain, manager, chain.deployment.core, CORE.encode_call("allocate", [pool_id, payout]), value=10**15)
    return pool_id


def test_a_direct_grants_payout_is_a_grant_not_a_donation(chain: Chain, db_url: str, tmp_path: Path) -> None:
    """The real DirectGrantsLite's Allocated is in qf.grants and nowhere in the donations or the analytics; a
    strategy of an id nobody maps is 'unknown' and counts as neither; the project's strategy's donations count."""
    chain.rpc.call("evm_setAutomine", [True])
    accounts = [a.lower() for a in chain.rpc.call("eth_accounts")]
    manager, recipient = accounts[0], accounts[8]
    granted = _grants_lite_pool(chain, manager, recipient, "DirectGrantsLiteStrategyv1.0", nonce=11)
    unknown = _grants_lite_pool(chain, manager, recipient, "SomeoneElsesStrategyv9.9", nonce=12)
    live = LivePool(chain, recipients=1)
    live.donate(live.donors[0], live.recipients[0], 10**14)

    backfill(chain, db_url, tmp_path)
    with connect(db_url) as conn:
        kinds = {
            int(p): (k, n, v, s)
            for p, k, n, v, s in conn.execute(
                "SELECT pool_id, kind, name, version, strategy_id FROM qf.pool_strategies"
            ).fetchall()
        }
        assert kinds[granted] == ("direct_grant", "DirectGrantsLiteStrategy", "v1.0", "0x" + WORD.hex())
        assert kinds[unknown] == ("unknown", None, None, "0x" + strategy_id("SomeoneElsesStrategyv9.9").hex())
        assert kinds[live.pool_id] == ("donation", "QFSentinelDonationStrategy", "v1.0", "0x" + PROJECT_ID.hex())

        allocated = conn.execute("SELECT count(*) FROM qf.allocated").fetchone()
        donations = conn.execute("SELECT pool_id, donor, amount_raw FROM qf.donations").fetchall()
        grants = conn.execute(
            "SELECT pool_id, recipient_id, sender, token, amount_raw, kind, strategy_name FROM qf.grants"
        ).fetchall()
        assert allocated == (3,)  # every Allocated log is stored, whoever emitted it
        assert donations == [(live.pool_id, live.donors[0], 10**14)]
        paid = (granted, recipient, manager, NATIVE_TOKEN, 10**15, "direct_grant", "DirectGrantsLiteStrategy")
        assert grants == [paid]

        # The analytics count donations only: the manager paying grants is no donor.
        donors = conn.execute("SELECT '0x' || encode(donor, 'hex') FROM qf.donor_features").fetchall()
        assert donors == [(live.donors[0],)]
        stats = dict(conn.execute("SELECT pool_id, donations FROM qf.round_stats").fetchall())
        assert (stats[granted], stats[unknown], stats[live.pool_id]) == (0, 0, 1)
        totals = conn.execute("SELECT DISTINCT pool_id FROM qf.project_totals").fetchall()
        assert totals == [(live.pool_id,)]
        with pytest.raises(DataError, match="DirectGrantsLiteStrategy \\(direct_grant\\)"):
            load_donations(conn, CHAIN_ID, granted)
        with pytest.raises(DataError, match="kind unknown"):
            load_donations(conn, CHAIN_ID, unknown)


def test_strategies_stored_before_their_id_was_read_are_read_at_start(
    chain: Chain, db_url: str, tmp_path: Path
) -> None:
    """A database indexed before migration 024 has strategies never asked for their id (kind 'unread', no
    donations): the indexer reads them when it starts, once, and the analytics come back."""
    pool = LivePool(chain, recipients=1)
    pool.donate(pool.donors[0], pool.recipients[0], 10**14)
    backfill(chain, db_url, tmp_path)
    counts = "SELECT (SELECT count(*) FROM qf.donations), (SELECT donations FROM qf.round_stats WHERE pool_id = %s)"
    with connect(db_url) as conn:
        assert conn.execute(counts, [pool.pool_id]).fetchone() == (1, 1)
        conn.execute("UPDATE qf.strategies SET strategy_id = NULL, strategy_id_read = NULL")
        conn.execute("SELECT qf.refresh_analytics()")
        conn.commit()
        assert conn.execute(counts, [pool.pool_id]).fetchone() == (0, 0)
        assert conn.execute("SELECT kind FROM qf.pool_strategies").fetchall() == [("unread",)]

    indexer = make_indexer(chain, db_url, tmp_path)  # prepare() reads the unread ids
    try:
        sync(indexer)
    finally:
        close(indexer)
    with connect(db_url) as conn:
        assert conn.execute("SELECT kind, strategy_id_read FROM qf.pool_strategies").fetchall() == [
            ("donation", "answered")
        ]
        assert conn.execute(counts, [pool.pool_id]).fetchone() == (1, 1)
