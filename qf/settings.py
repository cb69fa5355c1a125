"""The one frozen settings object, built at the entry point.

Environment variables give the defaults, command-line flags override them, and
nothing below the CLI reads the environment again. Every variable is listed in
``ENV_VARS`` (and in the README's configuration table).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from qf.errors import ConfigError

ENV_VARS: dict[str, str] = {
    "QF_HOME": "Directory for local state: embedded database, devnet, models (default ./.qf).",
    "QF_DATABASE_URL": "PostgreSQL URL; unset means an embedded server under QF_HOME/pgdata.",
    "QF_RPC_URLS": "Comma-separated JSON-RPC URLs; unset means the local devnet.",
    "QF_CHAIN_ID": "Chain id the node must serve; checked at start (unset: accept any).",
    "QF_ANVIL_PORT": "Port of the devnet's anvil on 127.0.0.1 (default 8545).",
    "QF_FUNDER_KEY": "Hex key that deploys and funds simulations (default: anvil's dev key on 31337).",
    "QF_CORE_ADDRESS": "Allo v2 core (pool factory) to index; unset means the devnet's deployment.",
    "QF_START_BLOCK": "First block to index (default: the devnet deployment's block, else 0).",
    "QF_POLL_INTERVAL_SECONDS": "Live-follow polling interval (default 0.5).",
    "QF_CONFIRMATIONS": "Blocks behind head counted final when the node has no finalized tag (default 64).",
    "QF_MAX_REORG_DEPTH": "Deepest reorg the indexer repairs; deeper stops it, deleting nothing (default 128).",
    "QF_LOG_RANGE_BLOCKS": "Initial eth_getLogs block span; adapts to the provider (default 2000).",
    "QF_LOG_RANGE_MAX_BLOCKS": "Largest eth_getLogs block span (default 50000).",
    "QF_RPC_RATE_LIMIT": "Requests per second per RPC endpoint (default unlimited).",
    "QF_RPC_TIMEOUT_SECONDS": "Per-request RPC timeout (default 10).",
    "QF_REFRESH_DEBOUNCE_SECONDS": "Least time between analytics refreshes (default 1).",
    "QF_INDEXER_METRICS_PORT": "Port of the indexer's /metrics, /healthz and /readyz (default 9101; 0 = off).",
    "QF_METRICS_HOST": "Address the metrics endpoints bind to (default 127.0.0.1).",
    "QF_MODELS_DIR": "Where `qf train` writes model versions and the scorer reads them (default QF_HOME/models).",
    "QF_LOG_FORMAT": "auto (console on a terminal, else JSON), json or console.",
    "QF_LOG_LEVEL": "debug, info, warning or error (default info).",
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable, resolved once."""

    home: Path = Path(".qf")
    database_url: str | None = None
    rpc_urls: tuple[str, ...] = ()
    chain_id: int | None = None
    anvil_port: int = 8545
    funder_key: str | None = field(default=None, repr=False)
    core_address: str | None = None
    start_block: int | None = None
    poll_interval_seconds: float = 0.5
    confirmations: int = 64
    max_reorg_depth: int = 128
    log_range_blocks: int = 2000
    log_range_max_blocks: int = 50_000
    rpc_rate_limit: float | None = None
    rpc_timeout_seconds: float = 10.0
    refresh_debounce_seconds: float = 1.0
    indexer_metrics_port: int = 9101
    metrics_host: str = "127.0.0.1"
    models_dir: Path | None = None
    log_format: str = "auto"
    log_level: str = "info"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``env`` (default ``os.environ``) and explicit overrides.

        Overrides that are ``None`` are ignored, so CLI flags can be passed through
        unconditionally.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {
            "home": Path(env.get("QF_HOME") or ".qf"),
            "database_url": env.get("QF_DATABASE_URL") or None,
            "rpc_urls": _split_urls(env.get("QF_RPC_URLS", "")),
            "chain_id": _int_or_none("QF_CHAIN_ID", env.get("QF_CHAIN_ID")),
            "anvil_port": _int_default("QF_ANVIL_PORT", env.get("QF_ANVIL_PORT"), 8545),
            "funder_key": env.get("QF_FUNDER_KEY") or None,
            "core_address": _address_or_none("QF_CORE_ADDRESS", env.get("QF_CORE_ADDRESS")),
            "start_block": _int_or_none("QF_START_BLOCK", env.get("QF_START_BLOCK")),
            "poll_interval_seconds": _float("QF_POLL_INTERVAL_SECONDS", env.get("QF_POLL_INTERVAL_SECONDS"), 0.5),
            "confirmations": _int_default("QF_CONFIRMATIONS", env.get("QF_CONFIRMATIONS"), 64),
            "max_reorg_depth": _int_default("QF_MAX_REORG_DEPTH", env.get("QF_MAX_REORG_DEPTH"), 128),
            "log_range_blocks": _int_default("QF_LOG_RANGE_BLOCKS", env.get("QF_LOG_RANGE_BLOCKS"), 2000),
            "log_range_max_blocks": _int_default("QF_LOG_RANGE_MAX_BLOCKS", env.get("QF_LOG_RANGE_MAX_BLOCKS"), 50_000),
            "rpc_rate_limit": _float("QF_RPC_RATE_LIMIT", env.get("QF_RPC_RATE_LIMIT"), None),
            "rpc_timeout_seconds": _float("QF_RPC_TIMEOUT_SECONDS", env.get("QF_RPC_TIMEOUT_SECONDS"), 10.0),
            "refresh_debounce_seconds": _float(
                "QF_REFRESH_DEBOUNCE_SECONDS", env.get("QF_REFRESH_DEBOUNCE_SECONDS"), 1.0
            ),
            "indexer_metrics_port": _port("QF_INDEXER_METRICS_PORT", env.get("QF_INDEXER_METRICS_PORT"), 9101),
            "metrics_host": env.get("QF_METRICS_HOST") or "127.0.0.1",
            "models_dir": Path(env["QF_MODELS_DIR"]) if env.get("QF_MODELS_DIR") else None,
            "log_format": env.get("QF_LOG_FORMAT") or "auto",
            "log_level": env.get("QF_LOG_LEVEL") or "info",
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(values["rpc_urls"], str):
            values["rpc_urls"] = _split_urls(values["rpc_urls"])
        values["home"] = Path(values["home"]).expanduser().resolve()
        values["models_dir"] = Path(values["models_dir"] or values["home"] / "models").expanduser().resolve()
        if values["log_format"] not in ("auto", "json", "console"):
            raise ConfigError(f"QF_LOG_FORMAT must be auto, json or console, not {values['log_format']!r}")
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed (settings stay immutable)."""
        return replace(self, **changes)

    @property
    def devnet_dir(self) -> Path:
        return self.home / "devnet"

    @property
    def pgdata_dir(self) -> Path:
        return self.home / "pgdata"


def _split_urls(raw: str) -> tuple[str, ...]:
    urls = tuple(u.strip() for u in raw.split(",") if u.strip())
    for url in urls:
        if not url.startswith(("http://", "https://", "ws://", "wss://")):
            raise ConfigError(f"QF_RPC_URLS: {url!r} is not an http(s) or ws(s) URL")
    return urls


def _float(name: str, raw: str | None, default: float | None) -> float | None:
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if not value >= 0 or value == float("inf"):
        raise ConfigError(f"{name} must be a finite number >= 0, not {raw!r}")
    return value


def _int_default(name: str, raw: str | None, default: int) -> int:
    value = _int_or_none(name, raw)
    if value is None:
        return default
    if value < 0:
        raise ConfigError(f"{name} must be >= 0, not {raw!r}")
    return value


def _port(name: str, raw: str | None, default: int) -> int:
    value = _int_or_none(name, raw)
    if value is None:
        return default
    if not 0 <= value <= 65535:
        raise ConfigError(f"{name} must be a port number (0-65535), not {raw!r}")
    return value


def _address_or_none(name: str, raw: str | None) -> str | None:
    if not raw:
        return None
    value = raw.strip().lower()
    if len(value) != 42 or not value.startswith("0x"):
        raise ConfigError(f"{name} must be a 0x-prefixed 20-byte address, not {raw!r}")
    try:
        bytes.fromhex(value[2:])
    except ValueError:
        raise ConfigError(f"{name} must be a 0x-prefixed 20-byte address, not {raw!r}") from None
    return value


def _int_or_none(name: str, raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return int(raw, 0)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {raw!r}") from None
