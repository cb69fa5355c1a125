"""An open pool on the test chain that anvil's unlocked dev accounts can donate to now.

Simulated rounds end with their allocation window closed; live-follow tests
need donations as they happen, and replacement donations inside `anvil_reorg`,
which takes unsigned transaction requests from unlocked accounts.
"""

from __future__ import annotations

from typing import Any

import eth_abi

from qf_sentinel.qf.chain.abi import NATIVE_TOKEN, load_artifact
from qf_sentinel.qf.chain.tx import wait_for_receipts
from tests.fixtures.chain import Chain

CORE = load_artifact("QFAllo")
STRATEGY = load_artifact("DonationStrategy")


class LivePool:
    def __init__(self, chain: Chain, recipients: int = 3) -> None:
        self.chain = chain
        rpc = chain.rpc
        accounts = [a.lower() for a in rpc.call("eth_accounts")]
        self.manager = accounts[0]
        self.recipients = accounts[1 : 1 + recipients]
        self.donors = accounts[1 + recipients :]
        rpc.call("evm_setAutomine", [True])
        now = int(rpc.call("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
        windows = [now, now + 10**7, now, now + 10**7]
        receipt = self._send(
            self.manager,
            chain.deployment.core,
            CORE.encode_call(
                "createDonationPool", [b"\x09" * 32, NATIVE_TOKEN, 0, (1, "live"), windows, [NATIVE_TOKEN]]
            ),
        )
        created = receipt["logs"][-1]
        self.pool_id = int(created["topics"][1], 16)
        self.strategy = "0x" + created["data"][26:66]
        for r in self.recipients:
            data = eth_abi.encode(["address", "address", "(uint256,string)"], [r, r, (1, "live")])
            self._send(r, chain.deployment.core, CORE.encode_call("registerRecipient", [self.pool_id, data]))
        self._send(
            self.manager,
            self.strategy,
            STRATEGY.encode_call("reviewRecipients", [self.recipients, [2] * len(self.recipients)]),
        )

    def donation(self, donor: str, recipient: str, amount_wei: int) -> dict[str, str]:
        """An unsigned transaction request for one native donation."""
        data = eth_abi.encode(["address", "address", "uint256"], [recipient, NATIVE_TOKEN, amount_wei])
        return {
            "from": donor,
            "to": self.chain.deployment.core,
            "value": hex(amount_wei),
            "gas": hex(500_000),
            "data": "0x" + CORE.encode_call("allocate", [self.pool_id, data]).hex(),
        }

    def donate(self, donor: str, recipient: str, amount_wei: int) -> str:
        """Send one donation and wait until it is mined; returns its hash.

        anvil answers ``eth_sendTransaction`` before automine has mined the block: a sync, or an
        ``anvil_reorg``, racing that block sees a chain still moving (a reorg racing it once left
        anvil answering ``null`` for a block below its head, for good).
        """
        tx_hash: str = self.chain.rpc.call(
            "eth_sendTransaction", [self.donation(donor, recipient, amount_wei)]
        )
        wait_for_receipts(self.chain.rpc, [tx_hash])
        return tx_hash

    def _send(self, sender: str, to: str, data: bytes) -> dict[str, Any]:
        tx_hash = self.chain.rpc.call(
            "eth_sendTransaction",
            [{"from": sender, "to": to, "data": "0x" + data.hex(), "gas": hex(6_000_000)}],
        )
        (receipt,) = wait_for_receipts(self.chain.rpc, [tx_hash])
        return receipt
