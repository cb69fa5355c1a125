"""The devnet contracts: Allo v2 event signatures, reverts that leave no trace, fresh artifacts."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import eth_abi
import pytest
from eth_utils import keccak

from qf_sentinel.indexer.decode import EVENTS_BY_SIGNATURE
from qf_sentinel.qf.chain.abi import ALLO_V2_EVENTS, NATIVE_TOKEN, load_artifact, topic0
from qf_sentinel.qf.chain.tx import TxRequest, TxSender, wait_for_receipts
from qf_sentinel.qf.sim.wallets import derive_wallet
from tests.fixtures.chain import Chain

ROOT = Path(__file__).resolve().parents[2]
CORE = load_artifact("QFAllo")
STRATEGY = load_artifact("DonationStrategy")
TOKEN = load_artifact("TestToken")


def test_topic0_is_keccak_of_the_allo_v2_signature() -> None:
    """Each event's topic0 in the compiled ABI equals keccak256 of Allo v2's signature text."""
    compiled = CORE.event_topics() | STRATEGY.event_topics()
    # StrategyApproved: Allo's cloneable-strategy list, an admin event no round reads.
    assert set(compiled) == set(ALLO_V2_EVENTS) | {"StrategyApproved"}
    for name, signature in ALLO_V2_EVENTS.items():
        assert compiled[name] == "0x" + keccak(text=signature).hex(), name
        assert (CORE.event_signatures() | STRATEGY.event_signatures())[name] == signature


def test_the_registry_emits_allo_v2s_registry_events() -> None:
    """The project's Registry emits IRegistry's events (and AccessControl's) with the signatures the indexer reads."""
    signatures = set(load_artifact("Registry").event_signatures().values())
    assert signatures == {
        "ProfileCreated(bytes32,uint256,string,(uint256,string),address,address)",
        "ProfileNameUpdated(bytes32,string,address)",
        "ProfileMetadataUpdated(bytes32,(uint256,string))",
        "ProfileOwnerUpdated(bytes32,address)",
        "ProfilePendingOwnerUpdated(bytes32,address)",
        "RoleGranted(bytes32,address,address)",
        "RoleRevoked(bytes32,address,address)",
        "RoleAdminChanged(bytes32,bytes32,bytes32)",
    }
    assert signatures - {"RoleAdminChanged(bytes32,bytes32,bytes32)"} <= set(EVENTS_BY_SIGNATURE)


def test_pool_created_topic_matches_allo_v2_mainnet() -> None:
    """PoolCreated's topic0 equals the constant seen in real Allo v2 logs (independent of our code)."""
    assert topic0(ALLO_V2_EVENTS["PoolCreated"]) == (
        "0x69bcb5a6cf6a3c95185cbb451e77787240c866dd2e8332597e3013ff18a1aba1"
    )


def _load_compiler() -> Any:
    spec = importlib.util.spec_from_file_location(
        "compile_contracts", ROOT / "scripts" / "compile_contracts.py"
    )
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration
def test_artifacts_are_current() -> None:
    """contracts_abi/ holds exactly what the pinned solc makes of contracts/ today."""
    proc = subprocess.run(
        [sys.executable, "scripts/compile_contracts.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        check=False,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.integration
def test_stale_artifact_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check fails when an artifact differs from a fresh compile."""
    compiler = _load_compiler()
    for path in (ROOT / "contracts_abi").glob("*.json"):
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "TestToken.json").write_text((tmp_path / "TestToken.json").read_text().replace("tUSD", "x"))
    stale = tmp_path / "QFAllo.json"
    stale.write_text(stale.read_text().replace('"bytecode": "0x6', '"bytecode": "0x7', 1))
    monkeypatch.setattr(compiler, "ARTIFACTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["compile_contracts.py", "--check"])
    assert compiler.main() == 1


# -- a small pool on the real devnet --------------------------------------------------------


class Pool:
    """A pool with one accepted and one pending recipient, windows set relative to now."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.rpc = chain.rpc
        self.sender = TxSender(chain.rpc, chain.rpc.chain_id())
        self.funder = chain.deployment.deployer
        self.now = int(self.rpc.call("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
        self.accepted = derive_wallet("test-contracts", "accepted")
        self.pending = derive_wallet("test-contracts", "pending")
        self.donor = derive_wallet("test-contracts", "donor")
        for w in (self.accepted, self.pending, self.donor):
            self.send_funder(w.address, value=10**19, gas=21_000)
        self.send_funder(chain.deployment.token, TOKEN.encode_call("mint", [self.donor.address, 10**21]))
        windows = [self.now, self.now + 1000, self.now + 100, self.now + 200]
        receipt = self.send_funder(
            chain.deployment.core,
            CORE.encode_call(
                "createDonationPool",
                [
                    b"\x01" * 32,
                    NATIVE_TOKEN,
                    0,
                    (1, "bafytest"),
                    windows,
                    [NATIVE_TOKEN, chain.deployment.token],
                ],
            ),
            gas=6_000_000,
        )
        created = next(
            lg for lg in receipt["logs"] if lg["topics"][0] == topic0(ALLO_V2_EVENTS["PoolCreated"])
        )
        self.pool_id = int(created["topics"][1], 16)
        self.strategy = "0x" + created["data"][26:66]
        for w in (self.accepted, self.pending):
            data = eth_abi.encode(
                ["address", "address", "(uint256,string)"], [w.address, w.address, (1, "x")]
            )
            self.send(
                w,
                chain.deployment.core,
                CORE.encode_call("registerRecipient", [self.pool_id, data]),
            )
        self.send_funder(
            self.strategy, STRATEGY.encode_call("reviewRecipients", [[self.accepted.address], [2]])
        )
        self.send(
            self.donor,
            chain.deployment.token,
            TOKEN.encode_call("approve", [chain.deployment.core, 2**256 - 1]),
        )

    def send_funder(self, to: str, data: bytes = b"", value: int = 0, gas: int = 1_000_000) -> dict[str, Any]:
        request = TxRequest(self.chain.funder_key, self.funder, to, data, value, gas)
        return wait_for_receipts(self.rpc, self.sender.send([request]))[0]

    def send(self, wallet: Any, to: str, data: bytes, value: int = 0) -> dict[str, Any]:
        request = TxRequest(wallet.private_key, wallet.address, to, data, value, 600_000)
        (tx_hash,) = self.sender.send([request])
        # Reverted transactions are mined too; poll for the receipt (automine can lag a moment under load).
        for _ in range(500):
            receipt = self.rpc.call("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None:
                return receipt  # type: ignore[no-any-return]
            time.sleep(0.01)
        raise AssertionError(f"transaction {tx_hash} was not mined")

    def at(self, offset: int) -> None:
        """Make the next block's timestamp now + offset."""
        self.rpc.call("evm_setNextBlockTimestamp", [hex(self.now + offset)])

    def donate(self, recipient: str, token: str, amount: int, value: int | None = None) -> dict[str, Any]:
        data = eth_abi.encode(["address", "address", "uint256"], [recipient, token, amount])
        call = CORE.encode_call("allocate", [self.pool_id, data])
        value = amount if value is None and token == NATIVE_TOKEN else (value or 0)
        return self.send(self.donor, self.chain.deployment.core, call, value)


def _strategy_logs(pool: Pool, block: str) -> list[dict[str, Any]]:
    return pool.rpc.call("eth_getLogs", [{"fromBlock": block, "toBlock": block, "address": pool.strategy}])  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("case", "offset"),
    [
        ("before_window", 50),
        ("after_window", 250),
        ("pending_recipient", 150),
        ("zero_amount", 150),
        ("value_mismatch", 150),
        ("token_not_allowed", 150),
    ],
)
def test_bad_donation_reverts_and_leaves_no_event(chain: Chain, case: str, offset: int) -> None:
    """A donation outside the window, to a non-accepted recipient, or of zero amount reverts; no log."""
    pool = Pool(chain)
    pool.at(offset)
    recipient = pool.pending.address if case == "pending_recipient" else pool.accepted.address
    amount = 0 if case == "zero_amount" else 10**18
    token = "0x" + "42" * 20 if case == "token_not_allowed" else NATIVE_TOKEN
    value = 10**17 if case == "value_mismatch" else None
    receipt = pool.donate(recipient, token, amount, value)
    assert int(receipt["status"], 16) == 0
    assert receipt["logs"] == []
    assert _strategy_logs(pool, receipt["blockNumber"]) == []


def test_good_donations_emit_allocated_with_origin(chain: Chain) -> None:
    """Inside the window, native and ERC-20 donations to an accepted recipient emit Allocated."""
    pool = Pool(chain)
    pool.at(150)
    native = pool.donate(pool.accepted.address, NATIVE_TOKEN, 10**18)
    erc20 = pool.donate(pool.accepted.address, chain.deployment.token, 5 * 10**18)
    for receipt, token, amount in (
        (native, NATIVE_TOKEN, 10**18),
        (erc20, chain.deployment.token, 5 * 10**18),
    ):
        assert int(receipt["status"], 16) == 1
        (log,) = _strategy_logs(pool, receipt["blockNumber"])
        assert log["topics"][0] == topic0(ALLO_V2_EVENTS["Allocated"])
        assert log["topics"][1] == "0x" + "00" * 12 + pool.accepted.address[2:]
        decoded = eth_abi.decode(["uint256", "address", "address", "address"], bytes.fromhex(log["data"][2:]))
        assert decoded == (amount, token, pool.donor.address, pool.donor.address)
