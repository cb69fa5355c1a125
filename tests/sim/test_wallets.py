"""Deterministic wallets and the balance conventions planners share."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils.crypto import keccak

from qf_sentinel.qf.sim import wallets
from qf_sentinel.qf.sim.plan import Donation, Token
from qf_sentinel.qf.sim.wallets import (
    MIN_GAS_ALLOWANCE_WEI,
    SECP256K1_ORDER,
    derive_wallet,
    erc20_mints,
    gas_allowance_wei,
)
from tests.sim.checks import ADDRESS


def test_same_names_give_the_same_wallet() -> None:
    """Deriving twice from one namespace and ident gives equal wallets."""
    assert derive_wallet("sim-1", "honest/0") == derive_wallet("sim-1", "honest/0")


def test_key_is_keccak_of_the_documented_string() -> None:
    """The private key is keccak256("qf-sentinel/{namespace}/{ident}")."""
    wallet = derive_wallet("round9", "70b13b328c")
    assert wallet.private_key == keccak(text="qf-sentinel/round9/70b13b328c")


def test_different_names_give_different_wallets() -> None:
    """Namespace and ident both change the key (replay contributors and grants never meet)."""
    names = [("a", "b"), ("a", "c"), ("b", "b"), ("round9", "x"), ("round9-grant", "x")]
    keys = {derive_wallet(ns, ident).private_key for ns, ident in names}
    assert len(keys) == len(names)


def test_addresses_agree_with_eth_account() -> None:
    """The fast coincurve path gives eth_account's address, in lowercase hex."""
    for i in range(200):
        wallet = derive_wallet("check", str(i))
        expected = Account.from_key(wallet.private_key).address
        assert wallet.address == expected.lower()
        assert ADDRESS.fullmatch(wallet.address)


def test_prior_nonce_is_kept() -> None:
    """prior_nonce is carried on the wallet and does not change the key."""
    old = derive_wallet("sim-1", "w", prior_nonce=1500)
    assert old.prior_nonce == 1500
    assert old.private_key == derive_wallet("sim-1", "w").private_key


@pytest.mark.parametrize("bad", [b"\x00" * 32, SECP256K1_ORDER.to_bytes(32, "big"), b"\xff" * 32])
def test_invalid_hash_is_rehashed(monkeypatch: pytest.MonkeyPatch, bad: bytes) -> None:
    """A hash that is 0 or not below the curve order is hashed again."""
    real = keccak

    def fake(primitive: bytes | None = None, *, text: str | None = None) -> bytes:
        return bad if text is not None else real(primitive)

    monkeypatch.setattr(wallets, "keccak", fake)
    assert wallets.private_key_for("ns", "id") == real(bad)


def test_gas_allowance_covers_worst_case_transactions() -> None:
    """The allowance is at least 1 ETH and pays 200k gas at 50 gwei for every transaction."""
    for txs in (0, 1, 50, 98, 99, 100, 3_000):
        allowance = gas_allowance_wei(txs)
        assert allowance >= MIN_GAS_ALLOWANCE_WEI == 10**18
        assert allowance >= txs * 200_000 * 50 * 10**9


def test_erc20_mints_are_the_sum_of_each_donors_erc20_donations() -> None:
    """Only ERC-20 donations count, summed per donor; native-only donors get nothing."""
    donations = [
        Donation(0.0, 1, 0, Token.ERC20, 5),
        Donation(1.0, 2, 0, Token.NATIVE, 7),
        Donation(2.0, 1, 1, Token.ERC20, 6),
        Donation(3.0, 3, 1, Token.ERC20, 1),
        Donation(4.0, 3, 1, Token.NATIVE, 100),
    ]
    assert erc20_mints(donations) == {1: 11, 3: 1}
