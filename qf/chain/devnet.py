"""``qf devnet``: one anvil per chain and one deployment on each, under ``QF_HOME/devnet``.

``QF_DEVNET_CHAINS`` anvils (two by default, so that multi-chain indexing has two chains to read):
the k-th listens on ``QF_ANVIL_PORT + k`` with chain id ``31337 + k``. Each is started detached so
it outlives the command, found again through its pid file and its answer on the port, and gets the
contracts deployed once. Starting the devnet twice reuses the nodes and the deployments. The first
chain keeps the file names of a one-chain devnet (``deployment.json``, ``anvil.pid``, ``anvil.log``);
the others add their chain id (``deployment-31338.json``, ...).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import structlog

from qf_sentinel.qf.chain.anvil import (
    DEV_PRIVATE_KEY,
    DEVNET_CHAIN_ID,
    AnvilOptions,
    pid_alive,
    start_anvil,
    stop_process,
    wait_until_ready,
)
from qf_sentinel.qf.chain.deploy import ensure_deployment
from qf_sentinel.qf.chain.deployment import Deployment
from qf_sentinel.qf.chain.devnet_records import DevnetChain, devnet_chains
from qf_sentinel.qf.chain.rpc import RpcClient
from qf_sentinel.qf.errors import ChainError
from qf_sentinel.qf.settings import Settings

log = structlog.get_logger()

#: Detached nodes started by this process: kept referenced so that the Popen
#: objects are not collected (and warned about) while the node runs on.
_DETACHED: list[object] = []


@dataclass(frozen=True, slots=True)
class Devnet:
    """One running chain of the devnet and its deployment."""

    rpc_url: str
    deployment: Deployment
    pid: int | None
    #: False when both the node and the deployment were already there.
    started: bool
    deployed: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "rpc_url": self.rpc_url,
            "chain_id": self.deployment.chain_id,
            "core": self.deployment.core,
            "token": self.deployment.token,
            "registry": self.deployment.registry,
            "price_feeds": self.deployment.price_feeds,
            "deployer": self.deployment.deployer,
            "start_block": self.deployment.start_block,
            "pid": self.pid,
            "started": self.started,
            "deployed": self.deployed,
        }

    def as_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)


def ensure_chain(chain: DevnetChain) -> Devnet:
    """Start this chain's anvil if it is not answering, then deploy if needed."""
    pid = int(chain.pid_file.read_text()) if chain.pid_file.exists() else None
    started = False
    try:
        wait_until_ready(chain.rpc_url, timeout_seconds=0.3)
    except ChainError:
        proc = start_anvil(AnvilOptions(port=chain.port, chain_id=chain.chain_id), log_path=chain.log_path,
                           detached=True)  # fmt: skip
        _DETACHED.append(proc)
        pid, started = proc.pid, True
        chain.pid_file.parent.mkdir(parents=True, exist_ok=True)
        chain.pid_file.write_text(str(pid))
        log.info("devnet_started", url=chain.rpc_url, chain_id=chain.chain_id, pid=pid)
    with RpcClient(chain.rpc_url) as rpc:
        served = rpc.chain_id()
        if served != chain.chain_id:
            raise ChainError(f"port {chain.port} answers chain {served}, not the devnet's chain {chain.chain_id}: "
                             "another node holds the port (set QF_ANVIL_PORT)")  # fmt: skip
        deployment, deployed = ensure_deployment(rpc, DEV_PRIVATE_KEY, chain.deployment_path)
    return Devnet(rpc_url=chain.rpc_url, deployment=deployment, pid=pid, started=started, deployed=deployed)


def ensure_devnet(settings: Settings) -> list[Devnet]:
    """Every chain of the devnet running with its contracts deployed, first chain first."""
    return [ensure_chain(chain) for chain in devnet_chains(settings)]


def stop_devnet(settings: Settings) -> bool:
    """Stop the devnet's anvils this QF_HOME started; True if one was stopped."""
    stopped = False
    for chain in devnet_chains(settings) + _extra_chains(settings):
        if not chain.pid_file.exists():
            continue
        pid = int(chain.pid_file.read_text())
        chain.pid_file.unlink()
        stopped = (pid_alive(pid) and stop_process(pid)) or stopped
    return stopped


def _extra_chains(settings: Settings) -> list[DevnetChain]:
    """Chains a devnet with more chains than QF_DEVNET_CHAINS says started (their pid files are still there)."""
    known = {c.pid_file for c in devnet_chains(settings)}
    extra = []
    for path in sorted(settings.devnet_dir.glob("anvil-*.pid")):
        suffix = path.stem.removeprefix("anvil-")
        if path not in known and suffix.isdigit() and int(suffix) > DEVNET_CHAIN_ID:
            k = int(suffix) - DEVNET_CHAIN_ID
            extra.append(DevnetChain(k, int(suffix), settings.anvil_port + k, settings.devnet_dir))
    return extra
