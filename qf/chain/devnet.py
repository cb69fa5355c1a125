"""``qf devnet``: one anvil and one deployment under ``QF_HOME/devnet``.

Started detached so it outlives the command; found again through its pid file
and its answer on the port. Starting it twice reuses both the node and the
deployment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import structlog

from qf.chain.anvil import (
    DEV_PRIVATE_KEY,
    AnvilOptions,
    pid_alive,
    start_anvil,
    stop_process,
    wait_until_ready,
)
from qf.chain.deploy import Deployment, ensure_deployment
from qf.chain.rpc import RpcClient
from qf.errors import ChainError
from qf.settings import Settings

log = structlog.get_logger()

#: Detached nodes started by this process: kept referenced so that the Popen
#: objects are not collected (and warned about) while the node runs on.
_DETACHED: list[object] = []


@dataclass(frozen=True, slots=True)
class Devnet:
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


def devnet_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.anvil_port}"


def deployment_path(settings: Settings) -> Path:
    return settings.devnet_dir / "deployment.json"


def ensure_devnet(settings: Settings) -> Devnet:
    """Start anvil if it is not answering, then deploy if needed."""
    url = devnet_url(settings)
    pid_file = settings.devnet_dir / "anvil.pid"
    pid = int(pid_file.read_text()) if pid_file.exists() else None
    started = False
    try:
        wait_until_ready(url, timeout_seconds=0.3)
    except ChainError:
        proc = start_anvil(
            AnvilOptions(port=settings.anvil_port),
            log_path=settings.devnet_dir / "anvil.log",
            detached=True,
        )
        _DETACHED.append(proc)
        pid, started = proc.pid, True
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(str(pid))
        log.info("devnet_started", url=url, pid=pid)
    with RpcClient(url) as rpc:
        deployment, deployed = ensure_deployment(rpc, DEV_PRIVATE_KEY, deployment_path(settings))
    return Devnet(rpc_url=url, deployment=deployment, pid=pid, started=started, deployed=deployed)


def load_devnet_deployment(settings: Settings) -> Deployment | None:
    """The devnet's recorded deployment; None if there is none (or only an older version's: `qf devnet` redeploys)."""
    path = deployment_path(settings)
    try:
        return Deployment.from_json(path.read_text()) if path.exists() else None
    except ValueError:
        return None


def stop_devnet(settings: Settings) -> bool:
    """Stop the devnet's anvil if this QF_HOME started it; True if one was stopped."""
    pid_file = settings.devnet_dir / "anvil.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    pid_file.unlink()
    return pid_alive(pid) and stop_process(pid)
