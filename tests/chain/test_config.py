"""The chains `qf index` reads: a TOML chains file, the single-chain variables, or every chain of the devnet.

A chains file is checked whole at start: every mistake is one ConfigError naming the file, the chain
and the key, and a chain's values are read exactly as the variable of the same setting is.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qf_sentinel.qf.chain.config import ChainConfig, configured_chains, parse_chains
from qf_sentinel.qf.chain.deployment import Deployment
from qf_sentinel.qf.chain.devnet_records import devnet_chains
from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.eth import from_hex
from qf_sentinel.qf.settings import NATIVE_MARKER, Settings

CORE = "0x1133eA7Af70876e64665ecD07C0A0476d09465a1"
REGISTRY = "0x4AAcca72145e1dF2aeC137E1f3C5E3D75DB8b5f3"
FEED = "0x" + "5f" * 20
TOKEN = "0x" + "6b" * 20

TWO_CHAINS = f"""
[[chains]]
chain_id = 10
name = "optimism"
rpc_urls = ["https://op-a.example/key", "https://op-b.example"]
ws_url = "wss://op-a.example/ws"
core = "{CORE}"
registry = "{REGISTRY}"
start_block = 111678968
price_feeds = {{ native = "{FEED}", "{TOKEN}" = "{FEED}" }}
confirmations = 10
rpc_rate_limit = 25
funding = true
funding_rpc_urls = "https://op-archive.example"

[[chains]]
chain_id = 42161
rpc_urls = "https://arb.example"
core = "{CORE}"
start_block = 146489425
"""


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings.from_env({}, home=tmp_path, **values)


def test_a_chains_file_gives_each_chain_its_node_contracts_and_tuning(tmp_path: Path) -> None:
    """Every key read as its variable is; what a table leaves out comes from the global setting."""
    base = settings(tmp_path, confirmations=64, poll_interval_seconds=0.25)
    op, arb = parse_chains(TWO_CHAINS, base, source="chains.toml")
    assert op == ChainConfig(
        name="optimism", chain_id=10, rpc_urls=("https://op-a.example/key", "https://op-b.example"),
        ws_url="wss://op-a.example/ws", core=from_hex(CORE.lower()), registry=from_hex(REGISTRY.lower()),
        start_block=111678968,
        price_feeds={from_hex(NATIVE_MARKER): from_hex(FEED), from_hex(TOKEN): from_hex(FEED)},
        funding=True, funding_rpc_urls=("https://op-archive.example",), confirmations=10,
        max_reorg_depth=base.max_reorg_depth, log_range_blocks=base.log_range_blocks,
        log_range_max_blocks=base.log_range_max_blocks, log_address_limit=base.log_address_limit,
        rpc_rate_limit=25.0, rpc_timeout_seconds=base.rpc_timeout_seconds, poll_interval_seconds=0.25,
        origin="chains.toml [[chains]] #1 (optimism) chain_id",
    )  # fmt: skip
    assert (arb.name, arb.chain_id, arb.rpc_urls, arb.registry, arb.price_feeds) == (
        "chain 42161", 42161, ("https://arb.example",), None, {})  # fmt: skip
    assert (arb.confirmations, arb.rpc_rate_limit, arb.funding, arb.funding_rpc_urls) == (
        64, None, False, ("https://arb.example",))  # fmt: skip


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("chains = 1", "no chains"),
        ("[[chain]]\nchain_id = 1", "unknown top-level key(s) chain"),
        ("[[chains]]\nchain_id = 1\nrpc_urls = ['https://a']", "#1: missing core"),
        (f"[[chains]]\nchain_id = 1\nrpc_urls = ['https://a']\ncore = '{CORE}'\nstart = 5", "unknown key(s) start"),
        (f"[[chains]]\nchain_id = 1\nrpc_urls = ['wss://a']\ncore = '{CORE}'", "#1 rpc_urls: 'wss://a' is not"),
        ("[[chains]]\nchain_id = 1\nrpc_urls = ['https://a']\ncore = '0x12'", "#1 core must be a 0x-prefixed"),
        (f"[[chains]]\nchain_id = 'ten'\nrpc_urls = ['https://a']\ncore = '{CORE}'", "#1 chain_id must be an"),
        (f"[[chains]]\nname = 'op'\nchain_id = 1\nrpc_urls = ['https://a']\ncore = '{CORE}'\nstart_block = -3",
         "#1 (op) start_block must be >= 0"),
        (f"[[chains]]\nchain_id = 1\nrpc_urls = ['https://a']\ncore = '{CORE}'\nconfirmations = -1",
         "#1 confirmations must be >= 0"),
        (f"[[chains]]\nchain_id = 1\nrpc_urls = ['https://a']\ncore = '{CORE}'\nprice_feeds = {{ native = 3 }}",
         "price_feeds: unexpected value"),
        (f"[[chains]]\nchain_id = 1\nrpc_urls = []\ncore = '{CORE}'", "rpc_urls: empty"),
        (f"[[chains]]\nchain_id = 1\nrpc_urls = ['https://a']\ncore = '{CORE}'\n" * 2, "chain 1 appears twice"),
        ("[[chains]\n", "is not valid TOML"),
    ],
)
def test_every_mistake_in_a_chains_file_is_one_line_naming_it(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_chains(text, settings(tmp_path), source="chains.toml")
    message = str(caught.value)
    assert message.startswith("chains.toml"), message
    assert fragment in message, message
    assert "\n" not in message


def test_a_chains_file_excludes_the_single_chain_variables(tmp_path: Path) -> None:
    """A chain's node in the file and another in QF_RPC_URLS would be ambiguous: refused, naming both."""
    path = tmp_path / "chains.toml"
    path.write_text(TWO_CHAINS)
    with pytest.raises(ConfigError, match="QF_RPC_URLS, QF_START_BLOCK and QF_CHAINS_FILE are both set"):
        configured_chains(settings(tmp_path, chains_file=path, rpc_urls="https://x", start_block=3))


def test_qf_chain_id_and_the_chain_option_pick_chains_of_the_file(tmp_path: Path) -> None:
    """One process per chain from one file: QF_CHAIN_ID (or `qf index --chain`) keeps the chains named."""
    path = tmp_path / "chains.toml"
    path.write_text(TWO_CHAINS)
    both = settings(tmp_path, chains_file=path)
    assert [c.chain_id for c in configured_chains(both)] == [10, 42161]
    assert [c.chain_id for c in configured_chains(both, only=[42161])] == [42161]
    assert [c.chain_id for c in configured_chains(both.with_(chain_id=10))] == [10]
    with pytest.raises(ConfigError, match=r"chain 5 is not configured \(chains: 10, 42161\)"):
        configured_chains(both, only=[5])
    with pytest.raises(ConfigError, match="cannot read the chains file"):
        configured_chains(settings(tmp_path, chains_file=tmp_path / "missing.toml"))


def test_the_single_chain_variables_still_make_one_chain(tmp_path: Path) -> None:
    """QF_RPC_URLS, QF_CHAIN_ID, QF_CORE_ADDRESS, ... without a chains file: the one chain they always made."""
    (chain,) = configured_chains(settings(tmp_path, rpc_urls="https://a,https://b", chain_id=10,
                                          core_address=CORE.lower(), start_block=7, confirmations=3))  # fmt: skip
    assert (chain.chain_id, chain.rpc_urls, chain.core, chain.start_block, chain.confirmations) == (
        10, ("https://a", "https://b"), from_hex(CORE.lower()), 7, 3)  # fmt: skip
    assert (chain.registry, chain.ws_url, chain.funding, chain.price_feeds, chain.origin) == (
        None, None, False, {}, "QF_CHAIN_ID")  # fmt: skip
    with pytest.raises(ConfigError, match="no core contract"):
        configured_chains(settings(tmp_path, rpc_urls="https://a"))


def deployment(chain_id: int, core: str) -> Deployment:
    return Deployment(chain_id=chain_id, genesis_hash="0x" + "00" * 32, core=core, token=TOKEN, deployer=FEED,
                      registry=REGISTRY.lower(), price_feeds={NATIVE_MARKER: FEED},
                      start_block=chain_id % 7)  # fmt: skip


def test_nothing_set_means_every_chain_of_the_devnet(tmp_path: Path) -> None:
    """With a devnet of two chains deployed, `qf index` with nothing set reads both, each from its own anvil
    (HTTP and WebSocket on its port) with its own deployment; QF_CHAIN_ID keeps one."""
    base = settings(tmp_path, anvil_port=18545)
    cores = {31337: "0x" + "a1" * 20, 31338: "0x" + "b2" * 20}
    for chain in devnet_chains(base):
        chain.deployment_path.parent.mkdir(parents=True, exist_ok=True)
        chain.deployment_path.write_text(deployment(chain.chain_id, cores[chain.chain_id]).to_json())
    assert [p.name for p in sorted((tmp_path / "devnet").iterdir())] == ["deployment-31338.json", "deployment.json"]
    first, second = configured_chains(base)
    assert (first.chain_id, first.rpc_urls, first.ws_url, first.core) == (
        31337, ("http://127.0.0.1:18545",), "ws://127.0.0.1:18545", from_hex(cores[31337]))  # fmt: skip
    assert (second.chain_id, second.rpc_urls, second.ws_url, second.core) == (
        31338, ("http://127.0.0.1:18546",), "ws://127.0.0.1:18546", from_hex(cores[31338]))  # fmt: skip
    assert [(c.funding, c.devnet) for c in (first, second)] == [(True, True), (True, True)]
    assert [c.chain_id for c in configured_chains(base.with_(chain_id=31338))] == [31338]
    assert [c.chain_id for c in configured_chains(base.with_(devnet_chains=1))] == [31337]
    # A single-chain variable keeps the one-chain behaviour: the first devnet chain fills in the rest.
    (only,) = configured_chains(base.with_(start_block=0))
    assert (only.chain_id, only.core, only.start_block) == (None, from_hex(cores[31337]), 0)
    with pytest.raises(ConfigError, match="no RPC URL"):
        configured_chains(settings(tmp_path / "elsewhere"))


def test_the_chains_file_is_a_setting(tmp_path: Path) -> None:
    """QF_CHAINS_FILE and QF_DEVNET_CHAINS are read from the environment like every setting."""
    read = Settings.from_env({"QF_CHAINS_FILE": str(tmp_path / "c.toml"), "QF_DEVNET_CHAINS": "3"})
    assert (read.chains_file, read.devnet_chains) == (tmp_path / "c.toml", 3)
    with pytest.raises(ConfigError, match="QF_DEVNET_CHAINS must be between 1 and 8"):
        Settings.from_env({"QF_DEVNET_CHAINS": "9"})
