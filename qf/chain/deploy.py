"""Deploying the project's contracts and remembering where they are.

A ``Deployment`` is written to ``QF_HOME/devnet/deployment.json``. It is reused
only while it still describes the chain it was made on (same chain id, same
genesis hash, code still at the addresses), so ``qf devnet`` run twice does not
deploy twice, and a restarted devnet gets a fresh deployment.
"""

from __future__ import annotations

from pathlib import Path

import structlog
from eth_account import Account

from qf_sentinel.qf.chain.abi import NATIVE_TOKEN, load_artifact
from qf_sentinel.qf.chain.deployment import Deployment
from qf_sentinel.qf.chain.rpc import RpcClient
from qf_sentinel.qf.chain.tx import TxRequest, TxSender, wait_for_receipts

log = structlog.get_logger()

#: Allo takes a protocol fee on pool funding (1e18 = 100%); the devnet uses 1%.
DEVNET_PERCENT_FEE = 10**16
#: The devnet's price feeds (Chainlink USD feeds answer with 8 decimals): ETH/USD, then tUSD/USD.
FEED_DECIMALS = 8
DEVNET_PRICES = (("ETH / USD", 2_000), ("tUSD / USD", 1))


def genesis_hash(rpc: RpcClient) -> str:
    return str(rpc.call("eth_getBlockByNumber", ["0x0", False])["hash"])


def still_valid(rpc: RpcClient, deployment: Deployment) -> bool:
    """True if the chain behind ``rpc`` still holds this deployment."""
    if rpc.chain_id() != deployment.chain_id or genesis_hash(rpc) != deployment.genesis_hash:
        return False
    addresses = (deployment.core, deployment.token, deployment.registry, *deployment.price_feeds.values())
    codes = rpc.batch([("eth_getCode", [a, "latest"]) for a in addresses])
    return all(code not in (None, "0x") for code in codes)


def deploy_contracts(
    rpc: RpcClient, deployer_key: bytes, *, percent_fee: int = DEVNET_PERCENT_FEE
) -> Deployment:
    """Deploy the test token and the registry, then the core that points at the registry."""
    chain_id = rpc.chain_id()
    deployer = Account.from_key(deployer_key).address.lower()
    sender = TxSender(rpc, chain_id)
    token_art, registry_art, core_art = (load_artifact(n) for n in ("TestToken", "Registry", "QFAllo"))
    feed_art = load_artifact("PriceFeed")
    feeds = [feed_art.deploy_data([FEED_DECIMALS, name, price * 10**FEED_DECIMALS]) for name, price in DEVNET_PRICES]
    hashes = sender.send(
        [
            TxRequest(deployer_key, deployer, None, token_art.deploy_data(["QF Test USD", "tUSD"]), gas=3_000_000),
            TxRequest(deployer_key, deployer, None, registry_art.deploy_data(), gas=6_000_000),
            *(TxRequest(deployer_key, deployer, None, data, gas=1_500_000) for data in feeds),
        ]
    )
    _mine_if_needed(rpc)
    token_receipt, registry_receipt, eth_feed, token_feed = wait_for_receipts(rpc, hashes)
    registry_address = registry_receipt["contractAddress"].lower()
    core_deploy = core_art.deploy_data([deployer, percent_fee, registry_address])
    hashes = sender.send([TxRequest(deployer_key, deployer, None, core_deploy, gas=8_000_000)])
    _mine_if_needed(rpc)
    (core_receipt,) = wait_for_receipts(rpc, hashes)
    deployment = Deployment(
        chain_id=chain_id,
        genesis_hash=genesis_hash(rpc),
        core=core_receipt["contractAddress"].lower(),
        token=token_receipt["contractAddress"].lower(),
        deployer=deployer,
        registry=registry_address,
        price_feeds={
            NATIVE_TOKEN: eth_feed["contractAddress"].lower(),
            token_receipt["contractAddress"].lower(): token_feed["contractAddress"].lower(),
        },
        start_block=int(token_receipt["blockNumber"], 16),
    )
    log.info(
        "contracts_deployed",
        core=deployment.core,
        registry=deployment.registry,
        token=deployment.token,
        block=deployment.start_block,
    )
    return deployment


def ensure_deployment(rpc: RpcClient, deployer_key: bytes, path: Path) -> tuple[Deployment, bool]:
    """Reuse the deployment recorded at ``path`` if still valid, else deploy; (deployment, fresh)."""
    if path.exists():
        try:
            existing: Deployment | None = Deployment.from_json(path.read_text())
        except ValueError:
            existing = None  # an older version's record: deploy afresh
        if existing is not None and still_valid(rpc, existing):
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
