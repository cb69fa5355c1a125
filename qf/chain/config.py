"""The chains ``qf index`` reads at once, each with its own node, contracts, start block and tuning.

One :class:`ChainConfig` per chain, from the first of:

1. a chains file (``QF_CHAINS_FILE``, ``qf index --config FILE``): TOML, one ``[[chains]]`` table per chain
   (:func:`parse_chains`); a chain's keys are the chain settings' names (``rpc_urls``, ``core``,
   ``start_block``, ``confirmations``, ...), parsed as their variables are (``qf.settings.parse_setting``);
   what a table leaves out comes from the global setting;
2. the single-chain variables (``QF_RPC_URLS``, ``QF_CORE_ADDRESS``, ``QF_START_BLOCK``, ...): one chain, as
   before there were several, with the first devnet chain filling in what is unset;
3. nothing set: every chain of the local devnet (``qf devnet``), each with its recorded deployment.

``QF_CHAIN_ID`` (or ``qf index --chain``) then keeps only the chains named, so one process per chain
can run from one file. Read once, at the entry point; the indexer, the funding worker and ``qf
simulate`` take the resulting objects. The Registry a chain leaves unset is asked of its core by the
indexer (``getRegistry()``), which needs the node, so it is not resolved here.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from qf_sentinel.qf.chain.deployment import Deployment
from qf_sentinel.qf.chain.devnet_records import (
    DevnetChain,
    devnet_chains,
    devnet_url,
    load_devnet_deployment,
    load_devnet_deployments,
)
from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.eth import from_hex
from qf_sentinel.qf.settings import Settings, parse_setting

#: Keys of a ``[[chains]]`` table and the setting each is read as (``name`` is the chain's label in logs).
CHAIN_KEYS: Mapping[str, str] = {
    "chain_id": "chain_id",
    "rpc_urls": "rpc_urls",
    "ws_url": "ws_url",
    "core": "core_address",
    "registry": "registry_address",
    "start_block": "start_block",
    "price_feeds": "price_feeds",
    "funding": "funding",
    "funding_rpc_urls": "funding_rpc_urls",
    "confirmations": "confirmations",
    "max_reorg_depth": "max_reorg_depth",
    "log_range_blocks": "log_range_blocks",
    "log_range_max_blocks": "log_range_max_blocks",
    "log_address_limit": "log_address_limit",
    "rpc_rate_limit": "rpc_rate_limit",
    "rpc_timeout_seconds": "rpc_timeout_seconds",
    "poll_interval_seconds": "poll_interval_seconds",
}
REQUIRED_KEYS = ("chain_id", "rpc_urls", "core")
#: Settings that describe one chain: with a chains file they go in the file, not in the environment.
SINGLE_CHAIN_SETTINGS = ("rpc_urls", "ws_url", "core_address", "registry_address", "start_block", "price_feeds",
                         "funding_rpc_urls")  # fmt: skip


@dataclass(frozen=True, slots=True)
class ChainConfig:
    """One chain to index: where its node is, what to read from it, from which block, and how."""

    #: Label for logs and messages (the file's ``name``, else ``chain N``).
    name: str
    #: The chain id the node must serve; None only for the single-chain variables without QF_CHAIN_ID.
    chain_id: int | None
    rpc_urls: tuple[str, ...]
    #: ws(s):// URL whose newHeads wake live follow (None: polling only).
    ws_url: str | None
    core: bytes
    #: The Allo v2 Registry; None: ask the core's getRegistry() (the indexer does).
    registry: bytes | None
    start_block: int
    #: Token -> its USD price feed.
    price_feeds: Mapping[bytes, bytes]
    #: Run a funding worker beside this chain's indexer.
    funding: bool
    #: Nodes for funding lookups (the chain's own unless set).
    funding_rpc_urls: tuple[str, ...]
    confirmations: int
    max_reorg_depth: int
    log_range_blocks: int
    log_range_max_blocks: int
    log_address_limit: int
    rpc_rate_limit: float | None
    rpc_timeout_seconds: float
    poll_interval_seconds: float
    #: True for a chain of the local devnet (its defaults, its faucet).
    devnet: bool = False
    #: Where ``chain_id`` was set, for messages ("QF_CHAIN_ID", "chains.toml [[chains]] #2 (optimism) chain_id").
    origin: str = "QF_CHAIN_ID"


def configured_chains(settings: Settings, *, only: Collection[int] = ()) -> tuple[ChainConfig, ...]:
    """The chains to index (see the module docstring); ``only`` (or QF_CHAIN_ID) keeps those chain ids."""
    wanted = set(only) | ({settings.chain_id} if settings.chain_id is not None else set())
    given = [name for name in SINGLE_CHAIN_SETTINGS if getattr(settings, name) not in (None, ())]
    if settings.chains_file is not None:
        if given:
            env = {f.name: f.metadata["env"] for f in fields(Settings)}
            raise ConfigError(f"{', '.join(env[n] for n in given)} and QF_CHAINS_FILE are both set: with a chains "
                              "file, each chain's settings go in its [[chains]] table")  # fmt: skip
        chains = load_chains_file(settings.chains_file, settings)
    elif given:
        if len(wanted) > 1:
            raise ConfigError(f"one chain is configured (QF_RPC_URLS, ...), not chains {sorted(wanted)}")
        chain = _single_chain(settings)
        if wanted and chain.chain_id is None:  # `qf index --chain N` with the single-chain variables
            chain = replace(chain, chain_id=min(wanted), name=f"chain {min(wanted)}", origin="--chain")
        return (chain,)
    else:
        chains = _devnet(settings)
    if not wanted:
        return chains
    missing = wanted - {c.chain_id for c in chains}
    if missing:
        offered = ", ".join(str(c.chain_id) for c in chains)
        raise ConfigError(f"chain {', '.join(map(str, sorted(missing)))} is not configured (chains: {offered})")
    return tuple(c for c in chains if c.chain_id in wanted)


def load_chains_file(path: Path, settings: Settings) -> tuple[ChainConfig, ...]:
    """Read and check a chains file; every problem is a ConfigError naming the file, the chain and the key."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the chains file {path} ({exc.strerror})") from None
    return parse_chains(text, settings, source=path.name)


def parse_chains(text: str, settings: Settings, *, source: str = "chains file") -> tuple[ChainConfig, ...]:
    """The chains of a TOML chains file (``[[chains]]`` tables), defaults from ``settings``."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}") from None
    unknown = set(document) - {"chains"}
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key(s) {', '.join(sorted(unknown))} (expected [[chains]])")
    tables = document.get("chains")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{source}: no chains: add one [[chains]] table per chain")
    chains = tuple(_from_table(table, settings, f"{source} [[chains]] #{i + 1}") for i, table in enumerate(tables))
    seen: set[int | None] = set()
    for chain in chains:
        if chain.chain_id in seen:
            raise ConfigError(f"{source}: chain {chain.chain_id} appears twice")
        seen.add(chain.chain_id)
    return chains


def _from_table(table: dict[str, Any], settings: Settings, where: str) -> ChainConfig:
    unknown = set(table) - set(CHAIN_KEYS) - {"name"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
                          f"(known: name, {', '.join(CHAIN_KEYS)})")  # fmt: skip
    missing = [k for k in REQUIRED_KEYS if k not in table]
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}")
    name = table.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ConfigError(f"{where} name: must be a non-empty string")
    if name is not None:
        where = f"{where} ({name})"
    values = {key: _value(table[key], CHAIN_KEYS[key], f"{where} {key}") for key in table if key != "name"}
    chain_id = values["chain_id"]
    name = name or f"chain {chain_id}"
    if not values["rpc_urls"]:
        raise ConfigError(f"{where} rpc_urls: at least one http(s) URL")

    def tuned(key: str) -> Any:
        return values[key] if key in values else getattr(settings, CHAIN_KEYS[key])

    feeds = values.get("price_feeds") or {}
    funding = values.get("funding", settings.funding if settings.funding is not None else False)
    return ChainConfig(
        name=name, chain_id=chain_id, rpc_urls=values["rpc_urls"], ws_url=values.get("ws_url"),
        core=from_hex(values["core"]),
        registry=from_hex(values["registry"]) if values.get("registry") else None,
        start_block=values.get("start_block", 0),
        price_feeds={from_hex(t): from_hex(f) for t, f in feeds.items()},
        funding=bool(funding), funding_rpc_urls=values.get("funding_rpc_urls") or values["rpc_urls"],
        confirmations=tuned("confirmations"), max_reorg_depth=tuned("max_reorg_depth"),
        log_range_blocks=tuned("log_range_blocks"), log_range_max_blocks=tuned("log_range_max_blocks"),
        log_address_limit=tuned("log_address_limit"), rpc_rate_limit=tuned("rpc_rate_limit"),
        rpc_timeout_seconds=tuned("rpc_timeout_seconds"), poll_interval_seconds=tuned("poll_interval_seconds"),
        origin=f"{where} chain_id",
    )  # fmt: skip


def _value(raw: Any, setting: str, where: str) -> Any:
    """A TOML value read as ``setting``'s variable would be: lists joined by commas, tables as ``k=v`` pairs."""
    if isinstance(raw, bool):
        text = "true" if raw else "false"
    elif isinstance(raw, int | float | str):
        text = str(raw)
    elif isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        text = ",".join(raw)
    elif isinstance(raw, dict) and all(isinstance(v, str) for v in raw.values()):
        text = ",".join(f"{k}={v}" for k, v in raw.items())
    else:
        raise ConfigError(f"{where}: unexpected value {str(raw)[:60]!r}")
    if not text.strip():
        raise ConfigError(f"{where}: empty")
    return parse_setting(setting, text, where=where)


def _tuning(settings: Settings) -> dict[str, Any]:
    return {"confirmations": settings.confirmations, "max_reorg_depth": settings.max_reorg_depth,
            "log_range_blocks": settings.log_range_blocks, "log_range_max_blocks": settings.log_range_max_blocks,
            "log_address_limit": settings.log_address_limit, "rpc_rate_limit": settings.rpc_rate_limit,
            "rpc_timeout_seconds": settings.rpc_timeout_seconds,
            "poll_interval_seconds": settings.poll_interval_seconds}  # fmt: skip


def _single_chain(settings: Settings) -> ChainConfig:
    """The chain of the single-chain variables, the first devnet chain filling in what they leave unset."""
    deployment = load_devnet_deployment(settings)
    first = devnet_chains(settings)[0]
    urls = settings.rpc_urls
    if not urls:
        if deployment is None:
            raise ConfigError("no RPC URL: set QF_RPC_URLS or QF_CHAINS_FILE (or run `qf devnet` first)")
        urls = (first.rpc_url,)
    core = settings.core_address or (deployment.core if deployment and not settings.rpc_urls else None)
    if core is None:
        raise ConfigError("no core contract: set QF_CORE_ADDRESS to the Allo v2 core address")
    ours = deployment is not None and deployment.core == core
    start = settings.start_block
    if start is None:
        start = deployment.start_block if deployment is not None and ours else 0
    registry = settings.registry_address or (deployment.registry if deployment is not None and ours else None)
    if settings.price_feeds is not None:
        feeds = settings.price_feeds
    else:
        feeds = deployment.price_feeds if deployment is not None and ours else {}
    ws_url = settings.ws_url
    if ws_url is None and not settings.rpc_urls and deployment is not None:
        ws_url = first.ws_url  # following the local devnet: its anvil's WebSocket
    on_devnet = not settings.rpc_urls and not settings.funding_rpc_urls and deployment is not None
    funding = settings.funding if settings.funding is not None else on_devnet
    return ChainConfig(
        name=f"chain {settings.chain_id}" if settings.chain_id is not None else "chain", chain_id=settings.chain_id,
        rpc_urls=urls, ws_url=ws_url, core=from_hex(core), registry=from_hex(registry) if registry else None,
        start_block=start, price_feeds={from_hex(t): from_hex(f) for t, f in feeds.items()}, funding=funding,
        funding_rpc_urls=settings.funding_rpc_urls or urls, devnet=not settings.rpc_urls, **_tuning(settings),
    )  # fmt: skip


def _devnet(settings: Settings) -> tuple[ChainConfig, ...]:
    """Every chain of the local devnet with a recorded deployment."""
    found = load_devnet_deployments(settings)
    if not found:
        raise ConfigError("no RPC URL: set QF_RPC_URLS or QF_CHAINS_FILE (or run `qf devnet` first)")
    funding = settings.funding if settings.funding is not None else True
    return tuple(_devnet_chain(settings, chain, d, funding) for chain, d in found)


def _devnet_chain(settings: Settings, chain: DevnetChain, d: Deployment, funding: bool) -> ChainConfig:
    return ChainConfig(
        name=f"devnet chain {d.chain_id}", chain_id=d.chain_id, rpc_urls=(chain.rpc_url,), ws_url=chain.ws_url,
        core=from_hex(d.core), registry=from_hex(d.registry), start_block=d.start_block,
        price_feeds={from_hex(t): from_hex(f) for t, f in d.price_feeds.items()}, funding=funding,
        funding_rpc_urls=(chain.rpc_url,), devnet=True, origin="the devnet's chain id", **_tuning(settings),
    )  # fmt: skip


def wallet_node(settings: Settings) -> str | None:
    """The node the sidecar reads wallet facts from: QF_SCORER_RPC_URL, QF_RPC_URLS' first, else the devnet's."""
    if settings.scorer_rpc_url:
        return settings.scorer_rpc_url
    if settings.rpc_urls:
        return settings.rpc_urls[0]
    return devnet_url(settings) if load_devnet_deployment(settings) is not None else None
