"""The chain a command writes to: the node the user named (checked and funded), or the local devnet's chains."""

from __future__ import annotations

from qf_sentinel.qf.chain.anvil import DEV_PRIVATE_KEY, DEVNET_CHAIN_ID
from qf_sentinel.qf.chain.deploy import ensure_deployment
from qf_sentinel.qf.chain.deployment import Deployment
from qf_sentinel.qf.chain.devnet import ensure_chain, ensure_devnet
from qf_sentinel.qf.chain.devnet_records import devnet_chains
from qf_sentinel.qf.chain.rpc import RpcClient
from qf_sentinel.qf.errors import ChainIdMismatch, ConfigError
from qf_sentinel.qf.settings import MAX_DEVNET_CHAINS, Settings

Target = tuple[RpcClient, Deployment, bytes]


def is_devnet_chain(chain_id: int) -> bool:
    """A chain id `qf devnet` gives its anvils (whose dev key is funded)."""
    return DEVNET_CHAIN_ID <= chain_id < DEVNET_CHAIN_ID + MAX_DEVNET_CHAINS


def chain_target(settings: Settings, rpc_url: str | None) -> Target:
    """(rpc client, deployment, funder key) for ``rpc_url`` (or ``QF_RPC_URLS``' first), else the devnet's first chain.

    A node other than a devnet needs ``QF_FUNDER_KEY``; the contracts are deployed
    on first use and remembered under ``QF_HOME/deployments``.
    """
    if rpc_url or settings.rpc_urls:
        return chain_targets(settings, [rpc_url] if rpc_url else [])[0]
    net = ensure_chain(devnet_chains(settings)[0])
    return RpcClient(net.rpc_url), net.deployment, DEV_PRIVATE_KEY


def chain_targets(settings: Settings, rpc_urls: list[str]) -> list[Target]:
    """A target per node of ``rpc_urls`` (else ``QF_RPC_URLS``' first), else one per chain of the devnet."""
    urls = rpc_urls or ([settings.rpc_urls[0]] if settings.rpc_urls else [])
    if not urls:
        return _devnet_targets(settings)
    return [_target(settings, url, expect=settings.chain_id if len(urls) == 1 else None) for url in urls]


def _devnet_targets(settings: Settings) -> list[Target]:
    return [(RpcClient(net.rpc_url), net.deployment, DEV_PRIVATE_KEY) for net in ensure_devnet(settings)]


def _target(settings: Settings, url: str, *, expect: int | None) -> Target:
    rpc = RpcClient(url)
    chain_id = rpc.chain_id()
    if expect is not None and chain_id != expect:
        raise ChainIdMismatch(f"node at {url} serves chain {chain_id}, but QF_CHAIN_ID is {expect}")
    if settings.funder_key:
        try:
            key = bytes.fromhex(settings.funder_key.removeprefix("0x"))
        except ValueError:
            raise ConfigError("QF_FUNDER_KEY is not a hex private key") from None
    elif is_devnet_chain(chain_id):
        key = DEV_PRIVATE_KEY
    else:
        raise ConfigError(f"chain {chain_id} is not a devnet: set QF_FUNDER_KEY to a funded account's key")
    deployment, _ = ensure_deployment(rpc, key, settings.home / "deployments" / f"chain-{chain_id}.json")
    return rpc, deployment, key
