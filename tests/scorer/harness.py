"""A real sidecar on loopback for tests: its own event loop in a thread, plain sync gRPC clients outside."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc

from qf_sentinel.qf.settings import Settings
from qf_sentinel.retention import run_retention
from qf_sentinel.scorer.api.v1 import scorer_pb2_grpc
from qf_sentinel.scorer.server import Sidecar, SidecarConfig, SidecarOptions

CLIENT_TOKEN = "client-token-0123456789abcdef"
ADMIN_TOKEN = "admin-token-0123456789abcdef"
AUTH = (("authorization", f"Bearer {CLIENT_TOKEN}"),)
ADMIN = (("authorization", f"Bearer {ADMIN_TOKEN}"),)


class RunningSidecar:
    def __init__(self, sidecar: Sidecar, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        self.sidecar = sidecar
        self.loop = loop
        self.thread = thread
        self.target = f"127.0.0.1:{sidecar.port}"
        self.channel = grpc.insecure_channel(self.target)
        self.stub = scorer_pb2_grpc.ScorerStub(self.channel)

    def stop(self) -> None:
        """Stop gracefully and wait (a no-op if the sidecar has stopped already)."""
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.sidecar.request_stop)
        self.thread.join(timeout=60)
        self.channel.close()


def settings_for(tmp: Path, **overrides: Any) -> Settings:
    env = {
        "QF_HOME": str(tmp),
        "QF_SCORER_TOKENS": f"dapp:{CLIENT_TOKEN}",
        "QF_SCORER_ADMIN_TOKENS": f"ops:{ADMIN_TOKEN}",
        "QF_SCORER_METRICS_PORT": "0",
        "QF_SCORER_RATE_LIMIT_PER_MINUTE": "0",
        "QF_SCORER_FEATURE_RELOAD_SECONDS": "60",
        "QF_LOG_LEVEL": "warning",
    }
    return Settings.from_env(env).with_(**overrides)


@contextmanager
def running_sidecar(
    settings: Settings, database_url: str, models_root: Path, *, drain_seconds: float = 0.2, metrics: bool = False,
    version: str | None = None,
) -> Iterator[RunningSidecar]:  # fmt: skip
    """Start a sidecar on a free loopback port; stopped (gracefully) when the block ends."""
    # The retention job as `qf serve` runs it (the sidecar's own default is none).
    options = SidecarOptions(host="127.0.0.1", port=0, models_root=models_root, drain_seconds=drain_seconds,
                             grace_seconds=5.0, metrics=metrics, seed=0, version=version,
                             retention=run_retention)  # fmt: skip
    sidecar = Sidecar(SidecarConfig.from_settings(settings), database_url, options)
    ready = threading.Event()
    failure: list[BaseException] = []
    holder: dict[str, asyncio.AbstractEventLoop] = {}

    async def main() -> None:
        holder["loop"] = asyncio.get_running_loop()
        try:
            await sidecar.start()
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            raise
        ready.set()
        try:
            await sidecar.wait()
        finally:
            await sidecar.stop()

    thread = threading.Thread(target=lambda: asyncio.run(main()), name="test-sidecar", daemon=True)
    thread.start()
    if not ready.wait(timeout=120):
        raise TimeoutError("the sidecar did not start in 120 s")
    if failure:
        thread.join(timeout=30)
        raise failure[0]
    running = RunningSidecar(sidecar, holder["loop"], thread)
    try:
        yield running
    finally:
        running.stop()
