"""console.chains: which chains a page covers, what a ``?chain=`` filter picks, what a chain is called."""

from __future__ import annotations

import pytest

from qf_sentinel.console.chains import chain_label, in_scope, narrowed
from qf_sentinel.qf.errors import ConfigError


def test_the_console_shows_the_configured_chain_else_every_indexed_one() -> None:
    assert in_scope(10, [1, 10, 42161]) == [10]
    assert in_scope(31337, []) == [31337], "a configured chain not indexed yet still names the page"
    assert in_scope(None, [42161, 10]) == [10, 42161]
    with pytest.raises(ConfigError, match="nothing is indexed yet"):
        in_scope(None, [])


def test_a_chain_filter_picks_one_shown_chain_or_says_which_there_are() -> None:
    assert narrowed([10, 42161], None) is None
    assert narrowed([10, 42161], "") is None
    assert narrowed([10, 42161], "42161") == 42161
    with pytest.raises(ValueError, match=r"chain 5 is not shown here \(chains: 10, 42161\)"):
        narrowed([10, 42161], "5")
    with pytest.raises(ValueError, match="must be a chain id"):
        narrowed([10, 42161], "optimism")


def test_well_known_chains_are_named_others_shown_by_id() -> None:
    assert chain_label(10) == "10 Optimism"
    assert chain_label(42161) == "42161 Arbitrum One"
    assert chain_label(1) == "1 Ethereum"
    assert chain_label(31337) == "31337 devnet"
    assert chain_label(987654) == "987654"
    assert chain_label(None) == "—"
