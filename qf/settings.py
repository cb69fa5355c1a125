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
    log_format: str = "auto"
    log_level: str = "info"
    extra: Mapping[str, Any] = field(default_factory=dict)

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
            "anvil_port": _int_or_none("QF_ANVIL_PORT", env.get("QF_ANVIL_PORT")) or 8545,
            "funder_key": env.get("QF_FUNDER_KEY") or None,
            "log_format": env.get("QF_LOG_FORMAT") or "auto",
            "log_level": env.get("QF_LOG_LEVEL") or "info",
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(values["rpc_urls"], str):
            values["rpc_urls"] = _split_urls(values["rpc_urls"])
        values["home"] = Path(values["home"]).expanduser().resolve()
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


def _int_or_none(name: str, raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return int(raw, 0)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {raw!r}") from None
