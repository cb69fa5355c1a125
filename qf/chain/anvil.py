"""The anvil devnet node from the pinned npm package, on 127.0.0.1 only.

``start_anvil`` launches the platform binary that ``npm ci`` put under
``node_modules/@foundry-rs/`` (the JS launcher would add a Node.js process per
start), waits until it answers, and returns the process. Detached starts
(``qf devnet``) outlive the CLI and are found again through a pid file.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from qf_sentinel.qf.chain.rpc import RpcClient
from qf_sentinel.qf.errors import ChainError, ConfigError, RpcError, RpcUnavailable
from qf_sentinel.qf.package_data import node_modules

DEVNET_CHAIN_ID = 31337
#: anvil's first default account ("test test ... junk" mnemonic): public test key,
#: used as deployer, token owner and faucet on the devnet only.
DEV_PRIVATE_KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
#: Big blocks so that a replay of 80k donations needs no more blocks than time slots.
DEVNET_BLOCK_GAS_LIMIT = 1_000_000_000

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def anvil_binary() -> Path:
    """Path of the anvil binary installed by ``npm ci`` (see ``node_modules()``), else anvil on PATH."""
    system = platform.system().lower()
    arch = _ARCH.get(platform.machine().lower(), platform.machine().lower())
    exe = "anvil.exe" if system == "windows" else "anvil"
    candidate = node_modules() / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin" / exe
    if candidate.exists():
        return candidate
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise ConfigError("anvil not found: run `npm ci` (or `make setup`) in the project root")


@dataclass(frozen=True, slots=True)
class AnvilOptions:
    port: int = 8545
    chain_id: int = DEVNET_CHAIN_ID
    block_gas_limit: int = DEVNET_BLOCK_GAS_LIMIT
    #: Blocks are mined when asked (simulators control block times) unless set.
    block_time_seconds: float | None = None


def start_anvil(options: AnvilOptions, *, log_path: Path, detached: bool = False) -> subprocess.Popen[bytes]:
    """Start anvil on 127.0.0.1 and wait until it answers JSON-RPC."""
    args = [
        str(anvil_binary()),
        "--host", "127.0.0.1",
        "--port", str(options.port),
        "--chain-id", str(options.chain_id),
        "--gas-limit", str(options.block_gas_limit),
        "--order", "fifo",
        "--accounts", "10",
    ]  # fmt: skip
    if options.block_time_seconds:
        args += ["--block-time", str(options.block_time_seconds)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=detached,
        )  # fmt: skip
    url = f"http://127.0.0.1:{options.port}"
    try:
        wait_until_ready(url, timeout_seconds=20.0, process=proc, log_path=log_path)
    except ChainError:
        stop_process(proc.pid)
        raise
    return proc


def wait_until_ready(
    url: str,
    *,
    timeout_seconds: float,
    process: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
) -> int:
    """Poll ``eth_chainId`` until the node answers; returns the chain id."""
    deadline = time.monotonic() + timeout_seconds
    with RpcClient(url, timeout_seconds=2.0) as rpc:
        while True:
            if process is not None and process.poll() is not None:
                tail = _tail(log_path) if log_path else ""
                raise ChainError(f"anvil exited with code {process.returncode}: {tail}")
            try:
                return rpc.chain_id()
            except (RpcUnavailable, RpcError):
                if time.monotonic() > deadline:
                    raise ChainError(
                        f"anvil did not answer at {url} within {timeout_seconds:.0f} s"
                    ) from None
                time.sleep(0.05)


def stop_process(pid: int, *, timeout_seconds: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after a grace period; True if a process was stopped."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists"; reap it if it is ours.
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return waited == 0


def _tail(path: Path | None, lines: int = 3) -> str:
    if path is None or not path.exists():
        return ""
    return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
