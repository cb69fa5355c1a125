"""Deterministic accounts for simulated rounds, and what they must hold before it opens.

Planners (``scenario``, ``gitcoin``) name every wallet by a ``namespace`` and an
``ident`` instead of drawing random keys, so a plan can be rebuilt from its seed
or its CSV and the executor can sign for any wallet it names. The private key is
``keccak256("qf-sentinel/{namespace}/{ident}")``, rehashed in the rare case it
is not a valid secp256k1 scalar. These keys are public by construction: they
are for local devnets only.

The module also fixes the balance conventions shared by both planners and the
executor:

* every wallet that sends a transaction is funded with ETH by a ``Funding`` row
  of at least :func:`gas_allowance_wei` for the transactions it sends, plus the
  native value it moves (native donations, outgoing fundings);
* a ``Funding`` may carry test tokens too (``token_amount``); the executor mints
  each wallet what its ERC-20 donations and the tokens it passes on exceed what
  it is sent (:func:`token_mints`): a replay's donors exactly the sum of their
  ERC-20 donations (:func:`erc20_mints`), a simulated round's exchange-like
  accounts what they hand out.

Address derivation goes straight through coincurve and keccak instead of
``eth_account.Account.from_key`` because the latter is about four times slower,
and a Round 9 replay derives close to nine thousand wallets; a test checks the
two agree.
"""

from __future__ import annotations

from collections.abc import Iterable

import coincurve
from eth_utils.crypto import keccak

from qf_sentinel.qf.eth import to_hex
from qf_sentinel.qf.sim.plan import Donation, RoundPlan, Token, Wallet

#: Order of the secp256k1 group; a private key must lie in [1, n).
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

#: Worst case the planners budget for one transaction: 200k gas at 50 gwei.
MAX_TX_COST_WEI = 200_000 * 50 * 10**9
#: Least ETH any transacting wallet receives for gas, whatever it sends.
MIN_GAS_ALLOWANCE_WEI = 10**18
#: Transactions budgeted on top of the counted ones (ERC-20 approval, a retry).
GAS_MARGIN_TXS = 2


def private_key_for(namespace: str, ident: str) -> bytes:
    """The 32-byte key named by ``namespace`` and ``ident``; rehashed until valid."""
    key = keccak(text=f"qf-sentinel/{namespace}/{ident}")
    while not 0 < int.from_bytes(key, "big") < SECP256K1_ORDER:
        key = keccak(key)
    return key


def address_of(private_key: bytes) -> str:
    """The lowercase 0x-hex Ethereum address that ``private_key`` controls."""
    public = coincurve.PublicKey.from_secret(private_key).format(compressed=False)
    return to_hex(keccak(public[1:])[-20:])


def derive_wallet(namespace: str, ident: str, prior_nonce: int = 0) -> Wallet:
    """The wallet named by ``namespace`` and ``ident`` (same names, same wallet)."""
    key = private_key_for(namespace, ident)
    return Wallet(private_key=key, address=address_of(key), prior_nonce=prior_nonce)


def gas_allowance_wei(tx_count: int) -> int:
    """ETH a wallet needs for gas to send ``tx_count`` transactions, generously."""
    return max(MIN_GAS_ALLOWANCE_WEI, (tx_count + GAS_MARGIN_TXS) * MAX_TX_COST_WEI)


def gas_price_wei(address: str) -> int:
    """A stable per-wallet gas price between 1 and 30 gwei (wallets keep habits)."""
    return (1 + int(address[2:10], 16) % 30) * 10**9


def token_mints(plan: RoundPlan) -> dict[int, int]:
    """Test tokens the executor mints to each wallet: what its ERC-20 donations and the tokens it passes on
    (``Funding.token_amount``) exceed the tokens it is sent; equal to :func:`erc20_mints` when no funding
    carries tokens."""
    need = erc20_mints(plan.donations)
    for f in plan.fundings:
        need[f.target] = need.get(f.target, 0) - f.token_amount
        if f.source is not None:
            need[f.source] = need.get(f.source, 0) + f.token_amount
    return {w: n for w, n in sorted(need.items()) if n > 0}


def erc20_mints(donations: Iterable[Donation]) -> dict[int, int]:
    """Test tokens the executor mints to each donor: the sum of its ERC-20 donations."""
    mints: dict[int, int] = {}
    for donation in donations:
        if donation.token is Token.ERC20:
            mints[donation.donor] = mints.get(donation.donor, 0) + donation.amount
    return mints
