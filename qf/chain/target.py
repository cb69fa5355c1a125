"""The chain a command writes to: the node the user named (checked and funded), or the local devnet."""

from __future__ import annotations

from qf.chain.anvil import DEV_PRIVATE_KEY, DEVNET_CHAIN_ID
from qf.chain.deploy import Deployment, ensure_deployment
from qf.chain.devnet import ensure_devnet
from qf.chain.rpc import RpcClient
from qf.errors import ChainIdMismatch, ConfigError
from qf.settings import Settings


def chain_target(settings: Settings, rpc_url: str | None) -> tuple[RpcClient, Deployment, bytes]:
    """(rpc client, deployment, funder key) for ``rpc_url`` (or ``QF_RPC_URLS``' first), else the devnet.

    A node other than a devnet needs ``QF_FUNDER_KEY``; the contracts are deployed
    on first use and remembered under ``QF_HOME/deployments``.
    """
    url = rpc_url or (settings.rpc_urls[0] if settings.rpc_urls else None)
    if url is None:
        net = ensure_devnet(settings)
        return RpcClient(net.rpc_url), net.deployment, DEV_PRIVATE_KEY
    rpc = RpcClient(url)
    chain_id = rpc.chain_id()
    if settings.chain_id is not None and chain_id != settings.chain_id:
        raise ChainIdMismatch(f"node at {url} serves chain {chain_id}, but QF_CHAIN_ID is {settings.chain_id}")
    if settings.funder_key:
        try:
            key = bytes.fromhex(settings.funder_key.removeprefix("0x"))
        except ValueError:
            raise ConfigError("QF_FUNDER_KEY is not a hex private key") from None
    elif chain_id == DEVNET_CHAIN_ID:
        key = DEV_PRIVATE_KEY
    else:
        raise ConfigError(f"chain {chain_id} is not a devnet: set QF_FUNDER_KEY to a funded account's key")
    deployment, _ = ensure_deployment(rpc, key, settings.home / "deployments" / f"chain-{chain_id}.json")
    return rpc, deployment, key
