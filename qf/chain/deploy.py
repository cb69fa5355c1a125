"""Deploying the project's contracts and remembering where they are.

A ``Deployment`` is written to ``QF_HOME/devnet/deployment.json``. It is reused
only while it still describes the chain it was made on (same chain id, same
genesis hash, code still at the addresses), so ``qf devnet`` run twice does not
deploy twice, and a restarted devnet gets a fresh deployment.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import structlog
from eth_account import Account

from qf.chain.abi import load_artifact
from qf.chain.rpc import RpcClient
from qf.chain.tx import TxRequest, TxSender, wait_for_receipts

log = structlog.get_logger()

#: Allo takes a protocol fee on pool funding (1e18 = 100%); the devnet uses 1%.
DEVNET_PERCENT_FEE = 10**16


@dataclass(frozen=True, slots=True)
class Deployment:
    chain_id: int
    genesis_hash: str
    core: str
    token: str
    deployer: str
    #: Block of the core's deployment: where an indexer starts.
    start_block: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Deployment:
        return cls(**json.loads(text))


def genesis_hash(rpc: RpcClient) -> str:
    return str(rpc.call("eth_getBlockByNumber", ["0x0", False])["hash"])


def still_valid(rpc: RpcClient, deployment: Deployment) -> bool:
    """True if the chain behind ``rpc`` still holds this deployment."""
    if rpc.chain_id() != deployment.chain_id or genesis_hash(rpc) != deployment.genesis_hash:
        return False
    codes = rpc.batch([("eth_getCode", [a, "latest"]) for a in (deployment.core, deployment.token)])
    return all(code not in (None, "0x") for code in codes)


def deploy_contracts(
    rpc: RpcClient, deployer_key: bytes, *, percent_fee: int = DEVNET_PERCENT_FEE
) -> Deployment:
    """Deploy the test token and the core; returns where they landed."""
    chain_id = rpc.chain_id()
    deployer = Account.from_key(deployer_key).address.lower()
    sender = TxSender(rpc, chain_id)
    token_art, core_art = load_artifact("TestToken"), load_artifact("QFAllo")
    hashes = sender.send(
        [
            TxRequest(
                deployer_key,
                deployer,
                None,
                token_art.deploy_data(["QF Test USD", "tUSD"]),
                gas=3_000_000,
            ),
            TxRequest(
                deployer_key,
                deployer,
                None,
                core_art.deploy_data([deployer, percent_fee]),
                gas=8_000_000,
            ),
        ]
    )
    _mine_if_needed(rpc)
    token_receipt, core_receipt = wait_for_receipts(rpc, hashes)
    deployment = Deployment(
        chain_id=chain_id,
        genesis_hash=genesis_hash(rpc),
        core=core_receipt["contractAddress"].lower(),
        token=token_receipt["contractAddress"].lower(),
        deployer=deployer,
        start_block=int(core_receipt["blockNumber"], 16),
    )
    log.info(
        "contracts_deployed",
        core=deployment.core,
        token=deployment.token,
        block=deployment.start_block,
    )
    return deployment


def ensure_deployment(rpc: RpcClient, deployer_key: bytes, path: Path) -> tuple[Deployment, bool]:
    """Reuse the deployment recorded at ``path`` if still valid, else deploy; (deployment, fresh)."""
    if path.exists():
        existing = Deployment.from_json(path.read_text())
        if still_valid(rpc, existing):
            return existing, False
    deployment = deploy_contracts(rpc, deployer_key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(deployment.to_json())
    return deployment, True


def _mine_if_needed(rpc: RpcClient) -> None:
    """On a node with automine off (an anvil the simulator paused), mine now."""
    try:
        automine = rpc.call("anvil_getAutomine")
    except Exception:
        return
    if not automine:
        rpc.call("evm_mine")
