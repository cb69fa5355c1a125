"""The one frozen settings object, built at the entry point.

Environment variables give the defaults, command-line flags override them, and
nothing below the CLI reads the environment again. Each setting is declared
once, as a field with its environment variable, its description and its
default (:func:`setting`); ``ENV_VARS`` (``qf env`` and the README's
configuration table) is derived from those fields.
"""

from __future__ import annotations

import collections
import ipaddress
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.eth import address
from qf_sentinel.qf.logs import LogFormat

Parse = Callable[[str, str], Any]


def setting(env: str, doc: str, default: Any = None, *, parse: Parse | None = None, secret: bool = False,
            show_default: bool = True) -> Any:  # fmt: skip
    """A field read from ``env`` by ``parse(name, raw)`` (the raw string when None); ``default`` when unset."""
    shown = f" (default {default})" if show_default and default not in (None, (), "") else ""
    return field(default=default, repr=not secret, metadata={"env": env, "doc": doc + shown, "parse": parse})


def tokens_setting(env: str, doc: str) -> Any:
    """Bearer tokens read from ``env`` and from the file named by ``<env>_FILE`` (see :func:`_tokens`)."""
    return field(default_factory=dict, repr=False, metadata={"env": env, "doc": doc, "tokens": True})


def secret_setting(env: str, doc: str) -> Any:
    """A secret read from ``env`` or from the file named by ``<env>_FILE`` (see :func:`_secret`)."""
    return field(default=None, repr=False, metadata={"env": env, "doc": doc, "secret_file": True})


def _str(name: str, raw: str) -> str:
    return raw


def _path(name: str, raw: str) -> Path:
    return Path(raw).expanduser()


def _log_format(name: str, raw: str) -> LogFormat:
    if raw not in ("auto", "json", "console"):
        raise ConfigError(f"{name} must be auto, json or console, not {raw!r}")
    return raw  # type: ignore[return-value]  # checked just above


def _log_level(name: str, raw: str) -> str:
    if raw.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{name} must be debug, info, warning or error, not {raw!r}")
    return raw.lower()


def _number(name: str, raw: str) -> float:
    """A finite number >= 0."""
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if not value >= 0 or value == float("inf"):
        raise ConfigError(f"{name} must be a finite number >= 0, not {raw!r}")
    return value


def _share(name: str, raw: str) -> float:
    """A number between 0 and 1."""
    value = _number(name, raw)
    if value > 1:
        raise ConfigError(f"{name} must be between 0 and 1, not {raw!r}")
    return value


def _integer(name: str, raw: str) -> int:
    """An integer, decimal or 0x hex."""
    try:
        return int(raw, 0)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {raw!r}") from None


def _count(name: str, raw: str) -> int:
    """An integer >= 0."""
    value = _integer(name, raw)
    if value < 0:
        raise ConfigError(f"{name} must be >= 0, not {raw!r}")
    return value


def _port_number(name: str, raw: str) -> int:
    value = _integer(name, raw)
    if not 0 <= value <= 65535:
        raise ConfigError(f"{name} must be a port number (0-65535), not {raw!r}")
    return value


def _switch(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false (1/0, yes/no), not {raw!r}")


def _address(name: str, raw: str) -> str:
    """A 0x address, lower-cased."""
    value = raw.lower()
    try:
        if not value.startswith("0x"):
            raise ValueError(value)
        address(value)
    except ValueError:
        raise ConfigError(f"{name} must be a 0x-prefixed 20-byte address, not {raw!r}") from None
    return value


#: Allo's marker address for the chain's native coin (qf.chain.abi.NATIVE_TOKEN).
NATIVE_MARKER = "0x" + "ee" * 20


def _price_feeds(name: str, raw: str) -> dict[str, str]:
    """``token=feed`` pairs, comma-separated; ``native`` (or ``eth``) names the chain's coin."""
    feeds: dict[str, str] = {}
    for pair in (p.strip() for p in raw.split(",") if p.strip()):
        token, sep, feed = pair.partition("=")
        if not sep:
            raise ConfigError(f"{name}: {pair!r} is not token=feed")
        key = NATIVE_MARKER if token.strip().lower() in ("native", "eth") else _address(name, token.strip())
        feeds[key] = _address(name, feed.strip())
    return feeds


def _rpc_urls(name: str, raw: str) -> tuple[str, ...]:
    urls = tuple(u.strip() for u in raw.split(",") if u.strip())
    for url in urls:
        if not url.startswith(("http://", "https://")):
            # The indexer speaks JSON-RPC over HTTP; a ws:// URL would only be refused later, at the first call.
            raise ConfigError(f"{name}: {url.split('?')[0]!r} is not an http(s) URL (WebSocket is not supported)")
    return urls


def _http_url(name: str, raw: str) -> str:
    """One http(s) JSON-RPC URL."""
    return _rpc_urls(name, raw)[0] if raw.strip() else raw


def _ws_url(name: str, raw: str) -> str:
    """A ws:// or wss:// URL with a host (and a valid port, if any)."""
    try:
        parts = urlsplit(raw)
        valid = parts.scheme in ("ws", "wss") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is not a number or out of range, a broken IPv6 literal
        valid = False
    if not valid:
        # Shown as scheme://host only: credentials and API keys hide in the user part, the path and the query.
        scheme, sep, rest = raw.rpartition("://")
        shown = scheme + sep + rest.split("/")[0].split("?")[0].rpartition("@")[2]
        raise ConfigError(f"{name} must be a ws:// or wss:// URL with a host, not {shown!r}")
    return raw


def _networks(name: str, raw: str) -> tuple[str, ...]:
    """IP addresses or networks (CIDR), comma-separated."""
    found = []
    for item in (i.strip() for i in raw.split(",") if i.strip()):
        try:
            found.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ConfigError(f"{name}: {item!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/8)"
                              ) from None  # fmt: skip
    return tuple(found)


#: Most chains `qf devnet` runs (chain ids DEVNET_CHAIN_ID .. + this - 1).
MAX_DEVNET_CHAINS = 8


def _devnet_chains(name: str, raw: str) -> int:
    value = _integer(name, raw)
    if not 1 <= value <= MAX_DEVNET_CHAINS:
        raise ConfigError(f"{name} must be between 1 and {MAX_DEVNET_CHAINS}, not {raw!r}")
    return value


def _positive(name: str, raw: str) -> int:
    """An integer >= 1."""
    value = _integer(name, raw)
    if value < 1:
        raise ConfigError(f"{name} must be >= 1, not {raw!r}")
    return value


#: Native funding methods, cheapest first (qf.funding.graph.Method values).
FUNDING_METHODS = ("trace_filter", "ots", "trace_block")


def _funding_methods(name: str, raw: str) -> tuple[str, ...]:
    """Native funding methods to try, in order; a subset of trace_filter, ots, trace_block."""
    methods = tuple(m.strip().lower() for m in raw.split(",") if m.strip())
    unknown = [m for m in methods if m not in FUNDING_METHODS]
    if unknown or len(set(methods)) != len(methods):
        raise ConfigError(f"{name} must list some of {', '.join(FUNDING_METHODS)} once each, not {raw!r}")
    return methods


def _gateway_urls(name: str, raw: str) -> tuple[str, ...]:
    urls = tuple(u.strip().rstrip("/") for u in raw.split(",") if u.strip())
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{name}: {url.split('?')[0]!r} is not an http(s) gateway URL")
    return urls


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable, resolved once."""

    home: Path = setting("QF_HOME", "Directory for local state: embedded database, devnet, models.", Path(".qf"),
                         parse=_path, show_default=False)  # fmt: skip
    database_url: str | None = setting(
        "QF_DATABASE_URL", "PostgreSQL URL; unset means an embedded server under QF_HOME/pgdata.", secret=True
    )
    rpc_urls: tuple[str, ...] = setting(
        "QF_RPC_URLS", "Comma-separated http(s) JSON-RPC URLs; unset means the local devnet.", (), parse=_rpc_urls
    )
    ws_url: str | None = setting(
        "QF_WS_URL", "ws(s):// URL whose newHeads subscription wakes live follow (fetching stays on HTTP); unset "
        "means polling only, except on the local devnet, whose anvil serves WebSocket on its HTTP port.",
        parse=_ws_url, secret=True,
    )  # fmt: skip
    chain_id: int | None = setting(
        "QF_CHAIN_ID", "Chain id the node must serve; checked at start (unset: any). With a chains file or the "
        "devnet's chains, the one chain to index.", parse=_integer,
    )  # fmt: skip
    anvil_port: int = setting("QF_ANVIL_PORT", "Port of the devnet's first anvil on 127.0.0.1 (the k-th chain's "
                              "anvil listens on this port + k).", 8545, parse=_port_number)  # fmt: skip
    devnet_chains: int = setting(
        "QF_DEVNET_CHAINS", "Chains the devnet runs, each its own anvil with the contracts deployed: chain ids 31337, "
        "31338, ... on QF_ANVIL_PORT, QF_ANVIL_PORT + 1, ...", 2, parse=_devnet_chains,
    )  # fmt: skip
    chains_file: Path | None = setting(
        "QF_CHAINS_FILE", "TOML file of the chains `qf index` reads at once, one [[chains]] table each (chain_id, "
        "rpc_urls, core, start_block, ...); unset: one chain from QF_RPC_URLS and the other chain variables, or "
        "every chain of the local devnet.", parse=_path,
    )  # fmt: skip
    funder_key: str | None = setting(
        "QF_FUNDER_KEY", "Hex key that deploys and funds simulations (default: anvil's dev key on 31337).", secret=True
    )
    core_address: str | None = setting(
        "QF_CORE_ADDRESS", "Allo v2 core (pool factory) to index; unset means the devnet's deployment.", parse=_address
    )
    registry_address: str | None = setting(
        "QF_REGISTRY_ADDRESS",
        "Allo v2 Registry to index profiles from; unset means the devnet's, else the core's getRegistry().",
        parse=_address,
    )
    price_feeds: dict[str, str] | None = setting(
        "QF_PRICE_FEEDS",
        "USD price feeds to index, token=feed comma-separated (token: 0x address or native); unset: the devnet's.",
        parse=_price_feeds,
    )
    start_block: int | None = setting(
        "QF_START_BLOCK", "First block to index (default: the devnet deployment's block, else 0).", parse=_count
    )
    poll_interval_seconds: float = setting("QF_POLL_INTERVAL_SECONDS", "Live-follow polling interval.", 0.5,
                                           parse=_number)  # fmt: skip
    confirmations: int = setting(
        "QF_CONFIRMATIONS", "Blocks behind head counted final when the node has no finalized tag.", 64, parse=_count
    )
    max_reorg_depth: int = setting(
        "QF_MAX_REORG_DEPTH", "Deepest reorg the indexer repairs; deeper stops it, deleting nothing.", 128,
        parse=_count,
    )  # fmt: skip
    log_range_blocks: int = setting(
        "QF_LOG_RANGE_BLOCKS", "Initial eth_getLogs block span; adapts to the provider.", 2000, parse=_count
    )
    log_range_max_blocks: int = setting("QF_LOG_RANGE_MAX_BLOCKS", "Largest eth_getLogs block span.", 50_000,
                                        parse=_count)  # fmt: skip
    log_address_limit: int = setting(
        "QF_LOG_ADDRESS_LIMIT",
        "Most contracts one eth_getLogs names; above it, filter by topic0 and drop other contracts' logs locally.",
        1000, parse=_count,
    )  # fmt: skip
    rpc_rate_limit: float | None = setting(
        "QF_RPC_RATE_LIMIT", "Requests per second per RPC endpoint (default unlimited).", parse=_number
    )
    rpc_timeout_seconds: float = setting("QF_RPC_TIMEOUT_SECONDS", "Per-request RPC timeout.", 10.0, parse=_number)
    refresh_debounce_seconds: float = setting(
        "QF_REFRESH_DEBOUNCE_SECONDS", "Least time between analytics refreshes.", 1.0, parse=_number
    )
    indexer_metrics_port: int = setting(
        "QF_INDEXER_METRICS_PORT", "Port of the indexer's /metrics, /healthz and /readyz (0 = off).", 9101,
        parse=_port_number,
    )  # fmt: skip
    ipfs_gateways: tuple[str, ...] = setting(
        "QF_IPFS_GATEWAYS", "Comma-separated IPFS gateway base URLs for metadata, tried in order (trustless: each "
        "block is verified against its CID); unset means metadata is not fetched.", (), parse=_gateway_urls,
    )  # fmt: skip
    ipfs_timeout_seconds: float = setting("QF_IPFS_TIMEOUT_SECONDS", "Per-request IPFS gateway timeout.", 20.0,
                                          parse=_number)  # fmt: skip
    ipfs_concurrency: int = setting("QF_IPFS_CONCURRENCY", "Metadata documents fetched at once.", 4, parse=_positive)
    ipfs_max_bytes: int = setting(
        "QF_IPFS_MAX_BYTES", "Largest metadata document fetched; a larger one is marked invalid.", 1_048_576,
        parse=_count,
    )  # fmt: skip
    ipfs_retry_base_seconds: float = setting(
        "QF_IPFS_RETRY_BASE_SECONDS", "Wait after a failed metadata fetch, doubling per failure.", 60.0, parse=_number
    )
    ipfs_retry_max_seconds: float = setting(
        "QF_IPFS_RETRY_MAX_SECONDS", "Longest wait between metadata fetch attempts.", 21_600.0, parse=_number
    )
    funding: bool | None = setting(
        "QF_FUNDING", "Find donors' funding (first funder, peel chains) beside `qf index`; unset: on for the local "
        "devnet, off for other nodes (`qf funding` runs it alone).", parse=_switch,
    )  # fmt: skip
    funding_rpc_urls: tuple[str, ...] = setting(
        "QF_FUNDING_RPC_URLS", "Comma-separated http(s) JSON-RPC URLs for funding lookups (a node with trace_filter "
        "or ots_*); unset: QF_RPC_URLS, else the local devnet.", (), parse=_rpc_urls,
    )  # fmt: skip
    funding_methods: tuple[str, ...] = setting(
        "QF_FUNDING_METHODS", "Native funding methods to try, in order, among those the node answers.",
        FUNDING_METHODS, parse=_funding_methods, show_default=False,
    )  # fmt: skip
    funding_max_depth: int = setting(
        "QF_FUNDING_MAX_DEPTH", "Hops of funding looked up behind a donor (1: its funder only).", 3, parse=_positive
    )
    funding_max_calls: int = setting(
        "QF_FUNDING_MAX_CALLS", "Most JSON-RPC calls one wallet's search may spend before it stops and resumes later.",
        64, parse=_positive,
    )  # fmt: skip
    funding_concurrency: int = setting("QF_FUNDING_CONCURRENCY", "Wallets searched at once.", 4, parse=_positive)
    metrics_host: str = setting("QF_METRICS_HOST", "Address the metrics endpoints bind to.", "127.0.0.1")
    models_dir: Path = setting(
        "QF_MODELS_DIR", "Where `qf train` writes model versions and the scorer reads them (default QF_HOME/models).",
        Path(".qf/models"), parse=_path, show_default=False,
    )  # fmt: skip
    scorer_host: str = setting("QF_SCORER_HOST", "Address the scoring sidecar's gRPC server binds to.", "127.0.0.1")
    scorer_port: int = setting("QF_SCORER_PORT", "gRPC port of the scoring sidecar.", 50051, parse=_port_number)
    scorer_metrics_port: int = setting(
        "QF_SCORER_METRICS_PORT", "Port of the sidecar's Prometheus /metrics (0 = off).", 9102, parse=_port_number
    )
    scorer_tokens: dict[str, str] = tokens_setting(
        "QF_SCORER_TOKENS", "Client bearer tokens, `name:token` separated by commas."
    )
    scorer_admin_tokens: dict[str, str] = tokens_setting(
        "QF_SCORER_ADMIN_TOKENS", "Admin bearer tokens for ReloadModels, `name:token` separated by commas."
    )
    scorer_rate_limit_per_minute: float = setting(
        "QF_SCORER_RATE_LIMIT_PER_MINUTE", "Requests per minute per client, token bucket (0 = unlimited).", 100.0,
        parse=_number,
    )  # fmt: skip
    scorer_max_batch: int = setting("QF_SCORER_MAX_BATCH", "Largest ScoreContributions batch.", 256, parse=_count)
    scorer_max_concurrent_rpcs: int = setting(
        "QF_SCORER_MAX_CONCURRENT_RPCS", "RPCs handled at once; more are refused with RESOURCE_EXHAUSTED.", 256,
        parse=_count,
    )  # fmt: skip
    scorer_review_threshold: float | None = setting(
        "QF_SCORER_REVIEW_THRESHOLD", "Risk from which a contribution goes to REVIEW (default: the model's "
        "manifest, 0.4).", parse=_share,
    )  # fmt: skip
    scorer_block_threshold: float | None = setting(
        "QF_SCORER_BLOCK_THRESHOLD", "Risk above which a contribution is BLOCKed (default: the model's manifest, "
        "0.7).", parse=_share,
    )  # fmt: skip
    scorer_feature_reload_seconds: float = setting(
        "QF_SCORER_FEATURE_RELOAD_SECONDS", "Fallback interval of the feature reload; NOTIFY is sooner.", 60.0,
        parse=_number,
    )  # fmt: skip
    scorer_rpc_url: str | None = setting(
        "QF_SCORER_RPC_URL", "JSON-RPC node the sidecar reads wallet facts from (nonce, code, balance) at each "
        "call; unset: the first of QF_RPC_URLS, else the local devnet's if one is deployed, else none (unknown).",
        parse=_http_url,
    )  # fmt: skip
    scorer_wallet_budget_ms: float = setting(
        "QF_SCORER_WALLET_BUDGET_MS", "Longest wait for the node's wallet facts on a call; past it they are "
        "unknown (counted) and the gate answers without them.", 25.0, parse=_number,
    )  # fmt: skip
    scorer_wallet_cache_seconds: float = setting(
        "QF_SCORER_WALLET_CACHE_SECONDS", "How long a wallet's facts are reused before the node is asked again.",
        30.0, parse=_number,
    )  # fmt: skip
    console_host: str = setting("QF_CONSOLE_HOST", "Address the operator console (`qf console`) binds to.",
                                "127.0.0.1")  # fmt: skip
    console_port: int = setting("QF_CONSOLE_PORT", "HTTP port of the operator console.", 8088, parse=_port_number)
    console_secure_cookies: bool = setting(
        "QF_CONSOLE_SECURE_COOKIES", "Send the console's session cookie over HTTPS only (behind a TLS proxy).",
        False, parse=_switch,
    )  # fmt: skip
    console_max_body_bytes: int = setting(
        "QF_CONSOLE_MAX_BODY_BYTES", "Largest request body the console reads; larger ones are refused (413) "
        "before any parsing.", 65_536, parse=_positive,
    )  # fmt: skip
    console_session_secret: str | None = secret_setting(
        "QF_CONSOLE_SESSION_SECRET", "Key that signs the console's session cookies (32+ characters, e.g. "
        "`openssl rand -hex 32`); the same key across restarts keeps people logged in."
    )
    console_trusted_proxies: tuple[str, ...] = setting(
        "QF_CONSOLE_TRUSTED_PROXIES", "IP addresses or networks of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto the console believes, comma-separated; unset: none, the connecting address counts.",
        (), parse=_networks,
    )  # fmt: skip
    console_login_failures: int = setting(
        "QF_CONSOLE_LOGIN_FAILURES", "Failed console logins one client address may make per "
        "QF_CONSOLE_LOGIN_WINDOW_SECONDS before it gets 429.", 5, parse=_positive,
    )  # fmt: skip
    console_login_global_failures: int = setting(
        "QF_CONSOLE_LOGIN_GLOBAL_FAILURES", "Failed console logins from all clients together per window before "
        "every login gets 429.", 100, parse=_positive,
    )  # fmt: skip
    console_login_window_seconds: float = setting(
        "QF_CONSOLE_LOGIN_WINDOW_SECONDS", "Window of the console's login throttle: the allowance of failures "
        "refills evenly over it.", 900.0, parse=_number,
    )  # fmt: skip
    console_reviewer_tokens: dict[str, str] = tokens_setting(
        "QF_CONSOLE_REVIEWER_TOKENS", "Console logins that may review, `name:token` separated by commas; the name "
        "is the verdicts' source in qf.labels."
    )
    console_viewer_tokens: dict[str, str] = tokens_setting(
        "QF_CONSOLE_VIEWER_TOKENS", "Read-only console logins, `name:token` separated by commas."
    )
    audit_retention_days: int = setting(
        "QF_AUDIT_RETENTION_DAYS", "Days the sidecar's decisions are kept in qf.scorer_decisions.", 90, parse=_count
    )
    experiment_retention_days: int = setting(
        "QF_EXPERIMENT_RETENTION_DAYS", "Days experiment outcomes are kept.", 365, parse=_count
    )
    log_format: LogFormat = setting(
        "QF_LOG_FORMAT", "auto (console on a terminal, else JSON), json or console.", "auto", parse=_log_format,
        show_default=False,
    )  # fmt: skip
    log_level: str = setting("QF_LOG_LEVEL", "debug, info, warning or error.", "info", parse=_log_level)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``env`` (default ``os.environ``) and explicit overrides.

        Overrides that are ``None`` are ignored, so CLI flags can be passed through
        unconditionally.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f.metadata["env"]
            if f.metadata.get("tokens"):
                values[f.name] = _tokens(env, name)
                continue
            if f.metadata.get("secret_file"):
                values[f.name] = _secret(env, name)
                continue
            parse = f.metadata["parse"] or _str
            raw = (env.get(name) or "").strip()
            if raw:
                values[f.name] = parse(name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(values.get("rpc_urls"), str):
            values["rpc_urls"] = _rpc_urls("QF_RPC_URLS", values["rpc_urls"])
        home = Path(values.get("home", default_of("home"))).expanduser().resolve()
        values["home"] = home
        values["models_dir"] = Path(values.get("models_dir") or home / "models").expanduser().resolve()
        if "log_format" in values:
            values["log_format"] = _log_format("--log-format", str(values["log_format"]))
        if "log_level" in values:
            values["log_level"] = _log_level("--log-level", str(values["log_level"]))
        if (values.get("scorer_review_threshold") is None) != (values.get("scorer_block_threshold") is None):
            raise ConfigError("set both QF_SCORER_REVIEW_THRESHOLD and QF_SCORER_BLOCK_THRESHOLD, or neither")
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


def parse_setting(name: str, raw: str, *, where: str) -> Any:
    """``raw`` read as setting ``name`` is read from its variable, with errors naming ``where`` (a file and key).

    The chains file (``qf.chain.config``) gives per-chain values of settings: one parser for both.
    """
    f = next(f for f in fields(Settings) if f.name == name)
    parse = f.metadata["parse"] or _str
    return parse(where, raw)


def default_of(name: str) -> Any:
    """The default of setting ``name``: for the components' own configuration objects, so it is written once."""
    f = next(f for f in fields(Settings) if f.name == name)
    return f.default if f.default is not MISSING else {}  # the token fields: an empty dict


#: Every environment variable read, with its description and default: ``qf env`` and the README.
ENV_VARS: dict[str, str] = {f.metadata["env"]: f.metadata["doc"] for f in fields(Settings)} | {
    "QF_SCORER_TOKENS_FILE": "File with one `name:token` client token per line (e.g. a Docker secret).",
    "QF_SCORER_ADMIN_TOKENS_FILE": "File with one `name:token` admin token per line.",
    "QF_CONSOLE_REVIEWER_TOKENS_FILE": "File with one `name:token` console reviewer token per line.",
    "QF_CONSOLE_VIEWER_TOKENS_FILE": "File with one `name:token` read-only console token per line.",
    "QF_CONSOLE_SESSION_SECRET_FILE": "File holding the console's session signing key (e.g. a Docker secret).",
    "QF_NODE_MODULES": "The npm packages of the devnet (anvil, the Allo SDK) for an installed wheel "
    "(default: the checkout's node_modules, else ./node_modules).",
}

#: Least estimated entropy of a bearer token, and of a signing key (see :func:`estimated_entropy_bits`).
MIN_TOKEN_BITS = 40.0
MIN_SECRET_BITS = 80.0
MIN_SECRET_CHARS = 32


def estimated_entropy_bits(text: str) -> float:
    """Length times the Shannon entropy of the text's own character frequencies, in bits.

    A crude estimate, written here because it is five lines: it cannot see a
    dictionary word, but it does catch what a person types when asked for a
    token (``aaaaaaaaaaaaaaaa`` is 0 bits, ``abcdabcdabcdabcd`` 32), while random
    tokens pass (16 hex digits estimate ~51 bits, 32 hex digits ~112). zxcvbn
    judges passwords people choose; these are keys a machine should draw.
    """
    counts = collections.Counter(text)
    n = len(text)
    return -n * sum(c / n * math.log2(c / n) for c in counts.values()) if n else 0.0


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """A signing key from the variable or from the file ``<name>_FILE`` (trailing newline dropped)."""
    value = (env.get(name) or "").strip() or None
    path = env.get(f"{name}_FILE")
    if path:
        try:
            from_file = Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {path} ({exc.strerror})") from None
        if value is not None and value != from_file:
            raise ConfigError(f"{name} and {name}_FILE are both set, to different keys: set one")
        value = from_file
    if value is not None:
        # Never echo the key.
        if len(value) < MIN_SECRET_CHARS:
            raise ConfigError(f"{name}: the key must be at least {MIN_SECRET_CHARS} characters "
                              "(e.g. `openssl rand -hex 32`)")  # fmt: skip
        if estimated_entropy_bits(value) < MIN_SECRET_BITS:
            raise ConfigError(f"{name}: the key has too little entropy (repeated characters?): draw a random one, "
                              "e.g. `openssl rand -hex 32`")  # fmt: skip
    return value


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
        if estimated_entropy_bits(token) < MIN_TOKEN_BITS:
            # The name is safe to show (it is not the secret); the token is never echoed.
            raise ConfigError(f"{name}: the token of {client!r} has too little entropy (repeated characters?): "
                              "draw a random one, e.g. `openssl rand -hex 16`")
        if client in tokens:
            raise ConfigError(f"{name}: client {client!r} appears twice")
        tokens[client] = token
    return tokens
