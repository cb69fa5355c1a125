"""Where the devnet's chains live and what was deployed on them, read without starting anything.

``QF_DEVNET_CHAINS`` chains: the k-th listens on ``QF_ANVIL_PORT + k`` with chain id
``31337 + k``, its files under ``QF_HOME/devnet``. Starting and stopping them is ``devnet.py``;
this is what the indexer's, the sidecar's and the console's configuration read, so it starts
nothing and needs no chain library.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qf_sentinel.qf.chain.anvil import DEVNET_CHAIN_ID
from qf_sentinel.qf.chain.deployment import Deployment
from qf_sentinel.qf.settings import Settings


@dataclass(frozen=True, slots=True)
class DevnetChain:
    """Where the k-th chain of the devnet lives: its port, chain id and files."""

    index: int
    chain_id: int
    port: int
    directory: Path

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """anvil serves WebSocket on its HTTP port."""
        return f"ws://127.0.0.1:{self.port}"

    def _file(self, stem: str, suffix: str) -> Path:
        return self.directory / (f"{stem}{suffix}" if self.index == 0 else f"{stem}-{self.chain_id}{suffix}")

    @property
    def deployment_path(self) -> Path:
        return self._file("deployment", ".json")

    @property
    def pid_file(self) -> Path:
        return self._file("anvil", ".pid")

    @property
    def log_path(self) -> Path:
        return self._file("anvil", ".log")


def devnet_chains(settings: Settings) -> list[DevnetChain]:
    """The devnet's chains, first to last (``QF_DEVNET_CHAINS`` of them)."""
    return [DevnetChain(k, DEVNET_CHAIN_ID + k, settings.anvil_port + k, settings.devnet_dir)
            for k in range(settings.devnet_chains)]  # fmt: skip


def devnet_url(settings: Settings) -> str:
    """The first chain's RPC URL."""
    return devnet_chains(settings)[0].rpc_url


def deployment_path(settings: Settings) -> Path:
    """The first chain's deployment record."""
    return devnet_chains(settings)[0].deployment_path


def _load(path: Path) -> Deployment | None:
    try:
        return Deployment.from_json(path.read_text()) if path.exists() else None
    except ValueError:
        return None


def load_devnet_deployment(settings: Settings) -> Deployment | None:
    """The first chain's recorded deployment; None if there is none (or only an older version's: `qf devnet`
    redeploys)."""
    return _load(deployment_path(settings))


def load_devnet_deployments(settings: Settings) -> list[tuple[DevnetChain, Deployment]]:
    """Every devnet chain with a recorded deployment, first chain first."""
    found = [(chain, _load(chain.deployment_path)) for chain in devnet_chains(settings)]
    return [(chain, deployment) for chain, deployment in found if deployment is not None]
