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
    "QF_SCORER_HOST": "Address the scoring sidecar's gRPC server binds to (default 127.0.0.1).",
    "QF_SCORER_PORT": "gRPC port of the scoring sidecar (default 50051).",
    "QF_SCORER_METRICS_PORT": "Port of the sidecar's Prometheus /metrics (default 9102; 0 = off).",
    "QF_SCORER_TOKENS": "Client bearer tokens, `name:token` separated by commas.",
    "QF_SCORER_TOKENS_FILE": "File with one `name:token` client token per line (e.g. a Docker secret).",
    "QF_SCORER_ADMIN_TOKENS": "Admin bearer tokens for ReloadModels, `name:token` separated by commas.",
    "QF_SCORER_ADMIN_TOKENS_FILE": "File with one `name:token` admin token per line.",
    "QF_SCORER_RATE_LIMIT_PER_MINUTE": "Requests per minute per client, token bucket (default 100; 0 = unlimited).",
    "QF_SCORER_MAX_BATCH": "Largest ScoreContributions batch (default 256).",
    "QF_SCORER_MAX_CONCURRENT_RPCS": "RPCs handled at once; more are refused with RESOURCE_EXHAUSTED (default 256).",
    "QF_SCORER_REVIEW_THRESHOLD": "Risk from which a contribution goes to REVIEW (default: the model's manifest, 0.4).",
    "QF_SCORER_BLOCK_THRESHOLD": "Risk above which a contribution is BLOCKed (default: the model's manifest, 0.7).",
    "QF_SCORER_FEATURE_RELOAD_SECONDS": "Fallback interval of the feature reload; NOTIFY is sooner (default 60).",
    "QF_AUDIT_RETENTION_DAYS": "Days the sidecar's decisions are kept in qf.scorer_decisions (default 90).",
    "QF_EXPERIMENT_RETENTION_DAYS": "Days experiment outcomes are kept (default 365).",
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
    scorer_host: str = "127.0.0.1"
    scorer_port: int = 50051
    scorer_metrics_port: int = 9102
    scorer_tokens: dict[str, str] = field(default_factory=dict, repr=False)
    scorer_admin_tokens: dict[str, str] = field(default_factory=dict, repr=False)
    scorer_rate_limit_per_minute: float = 100.0
    scorer_max_batch: int = 256
    scorer_max_concurrent_rpcs: int = 256
    scorer_review_threshold: float | None = None
    scorer_block_threshold: float | None = None
    scorer_feature_reload_seconds: float = 60.0
    audit_retention_days: int = 90
    experiment_retention_days: int = 365
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
            "scorer_host": env.get("QF_SCORER_HOST") or "127.0.0.1",
            "scorer_port": _port("QF_SCORER_PORT", env.get("QF_SCORER_PORT"), 50051),
            "scorer_metrics_port": _port("QF_SCORER_METRICS_PORT", env.get("QF_SCORER_METRICS_PORT"), 9102),
            "scorer_tokens": _tokens(env, "QF_SCORER_TOKENS"),
            "scorer_admin_tokens": _tokens(env, "QF_SCORER_ADMIN_TOKENS"),
            "scorer_rate_limit_per_minute": _float(
                "QF_SCORER_RATE_LIMIT_PER_MINUTE", env.get("QF_SCORER_RATE_LIMIT_PER_MINUTE"), 100.0
            ),
            "scorer_max_batch": _int_default("QF_SCORER_MAX_BATCH", env.get("QF_SCORER_MAX_BATCH"), 256),
            "scorer_max_concurrent_rpcs": _int_default(
                "QF_SCORER_MAX_CONCURRENT_RPCS", env.get("QF_SCORER_MAX_CONCURRENT_RPCS"), 256
            ),
            "scorer_review_threshold": _fraction("QF_SCORER_REVIEW_THRESHOLD", env.get("QF_SCORER_REVIEW_THRESHOLD")),
            "scorer_block_threshold": _fraction("QF_SCORER_BLOCK_THRESHOLD", env.get("QF_SCORER_BLOCK_THRESHOLD")),
            "scorer_feature_reload_seconds": _float(
                "QF_SCORER_FEATURE_RELOAD_SECONDS", env.get("QF_SCORER_FEATURE_RELOAD_SECONDS"), 60.0
            ),
            "audit_retention_days": _int_default("QF_AUDIT_RETENTION_DAYS", env.get("QF_AUDIT_RETENTION_DAYS"), 90),
            "experiment_retention_days": _int_default(
                "QF_EXPERIMENT_RETENTION_DAYS", env.get("QF_EXPERIMENT_RETENTION_DAYS"), 365
            ),
            "log_format": env.get("QF_LOG_FORMAT") or "auto",
            "log_level": env.get("QF_LOG_LEVEL") or "info",
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(values["rpc_urls"], str):
            values["rpc_urls"] = _split_urls(values["rpc_urls"])
        values["home"] = Path(values["home"]).expanduser().resolve()
        values["models_dir"] = Path(values["models_dir"] or values["home"] / "models").expanduser().resolve()
        if (values["scorer_review_threshold"] is None) != (values["scorer_block_threshold"] is None):
            raise ConfigError("set both QF_SCORER_REVIEW_THRESHOLD and QF_SCORER_BLOCK_THRESHOLD, or neither")
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


def _tokens(env: Mapping[str, str], name: str) -> dict[str, str]:
    """``name:token`` pairs from the variable (comma-separated) and from the file ``<name>_FILE`` (one per line)."""
    entries = [e for e in (env.get(name) or "").split(",") if e.strip()]
    path = env.get(f"{name}_FILE")
    if path:
        try:
            entries += [line for line in Path(path).read_text().splitlines() if line.strip()]
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {path} ({exc.strerror})") from None
    tokens: dict[str, str] = {}
    for entry in entries:
        client, sep, token = entry.strip().partition(":")
        if not sep or not client or len(token) < 16:
            # Never echo the entry: it may hold a secret.
            raise ConfigError(f"{name}: every entry must be name:token with a token of at least 16 characters")
        if client in tokens:
            raise ConfigError(f"{name}: client {client!r} appears twice")
        tokens[client] = token
    return tokens


def _fraction(name: str, raw: str | None) -> float | None:
    value = _float(name, raw, None)
    if value is not None and value > 1:
        raise ConfigError(f"{name} must be between 0 and 1, not {raw!r}")
    return value


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
