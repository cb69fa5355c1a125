"""A wallet's facts on chain at the moment of the call: nonce, code, balance. Cached, bounded in time, fail-soft.

The gate reads the wallet's nonce (transactions it has sent: what the
donation's transaction nonce will be, which is what training saw) and whether
it has code (a contract wallet's nonce counts contracts it created, not
transactions, so it is read as unknown). The balance is kept for the reviewer
(the audit row and the reasons), not for the model: no training row has a
balance as of its donation.

One JSON-RPC batch (``eth_getTransactionCount``, ``eth_getCode``,
``eth_getBalance`` at ``latest``) per wallet, answers cached for
``ttl_seconds`` in a bounded LRU. The node must never make the gate slow or
fail: a lookup that takes longer than ``budget_seconds``, a refused
connection or a malformed answer gives *unknown* facts at once, counted in
``qf_scorer_wallet_facts_total{outcome}``, and opens a breaker
(:class:`scorer.breaker.Breaker`): while the node is down, calls skip it
(``outcome="skipped"``) but one probe per ``retry_seconds``.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from qf_sentinel.scorer.breaker import Breaker
from qf_sentinel.scorer.metrics import ScorerMetrics

log = structlog.get_logger("scorer.wallet_facts")
MAX_HEX_DIGITS = 80  # a uint256 is 64; anything longer is not an answer


@dataclass(frozen=True, slots=True)
class WalletFacts:
    """What the node said (None = unknown) and where the answer came from (node, cache, or why unknown)."""

    nonce: int | None
    is_contract: bool | None
    balance_wei: int | None
    outcome: str

    @property
    def gate_nonce(self) -> int | None:
        """The nonce the gate reads: unknown for a contract (its nonce does not count transactions)."""
        return None if self.is_contract or self.is_contract is None else self.nonce

    @classmethod
    def unknown(cls, outcome: str) -> WalletFacts:
        return cls(nonce=None, is_contract=None, balance_wei=None, outcome=outcome)


class WalletFactsClient:
    """Looks wallets up on a JSON-RPC node (see the module docstring); ``url`` None means never (all unknown)."""

    def __init__(
        self, url: str | None, metrics: ScorerMetrics, *, budget_seconds: float = 0.025, ttl_seconds: float = 30.0,
        max_entries: int = 100_000, retry_seconds: float = 5.0, clock: Any = time.monotonic,
    ) -> None:  # fmt: skip
        self.url = url
        self.budget_seconds = budget_seconds
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._metrics = metrics
        self._clock = clock
        self._cache: OrderedDict[bytes, tuple[float, WalletFacts]] = OrderedDict()
        self._breaker = Breaker(retry_seconds, clock=clock)
        # Made now, not within a call's budget: building its TLS context alone takes tens of milliseconds.
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(max(budget_seconds, 0.001) * 4)) if url else None

    async def lookup(self, address: bytes) -> WalletFacts:
        """The wallet's facts, from the cache, the node within the budget, or unknown."""
        now = self._clock()
        cached = self._cache.get(address)
        if cached is not None and now - cached[0] < self.ttl_seconds:
            self._cache.move_to_end(address)
            return self._count(WalletFacts(cached[1].nonce, cached[1].is_contract, cached[1].balance_wei, "cached"))
        if self.url is None:
            return self._count(WalletFacts.unknown("off"))
        if not self._breaker.allow():
            return self._count(WalletFacts.unknown("skipped"))
        try:
            async with asyncio.timeout(self.budget_seconds):
                facts = await self._ask(address)
        except TimeoutError:
            self._breaker.failed()
            return self._count(WalletFacts.unknown("timeout"))
        except (httpx.HTTPError, OSError, ValueError, KeyError, TypeError) as exc:
            self._breaker.failed()
            log.warning("wallet_facts_failed", error=f"{type(exc).__name__}: {str(exc)[:120]}")
            return self._count(WalletFacts.unknown("error"))
        self._breaker.succeeded()
        self._cache[address] = (now, facts)
        self._cache.move_to_end(address)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return self._count(facts)

    async def warm_up(self, timeout_seconds: float = 5.0) -> bool:
        """One ``eth_chainId`` before serving: the HTTP stack's first request costs hundreds of milliseconds of
        imports and set-up, which must not fall inside a call's budget. Says whether the node answered."""
        if self._client is None or self.url is None:
            return False
        try:
            response = await self._client.post(
                self.url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
                timeout=timeout_seconds,
            )  # fmt: skip
            response.raise_for_status()
        except (httpx.HTTPError, OSError) as exc:
            log.warning("wallet_facts_node_unreachable", error=f"{type(exc).__name__}: {str(exc)[:120]}",
                        consequence="wallet facts are unknown until it answers")  # fmt: skip
            return False
        return True

    async def _ask(self, address: bytes) -> WalletFacts:
        if self._client is None or self.url is None:
            raise ValueError("no node configured")
        hex_address = "0x" + address.hex()
        batch = [
            {"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionCount", "params": [hex_address, "latest"]},
            {"jsonrpc": "2.0", "id": 2, "method": "eth_getCode", "params": [hex_address, "latest"]},
            {"jsonrpc": "2.0", "id": 3, "method": "eth_getBalance", "params": [hex_address, "latest"]},
        ]
        response = await self._client.post(self.url, json=batch)
        response.raise_for_status()
        answers = {item["id"]: item for item in response.json()}
        nonce = _quantity(answers[1]["result"])
        code = answers[2]["result"]
        if not isinstance(code, str) or not code.startswith("0x"):
            raise ValueError("eth_getCode did not answer hex")
        return WalletFacts(nonce=nonce, is_contract=len(code) > 2, balance_wei=_quantity(answers[3]["result"]),
                           outcome="node")  # fmt: skip

    def _count(self, facts: WalletFacts) -> WalletFacts:
        self._metrics.wallet_facts.labels(outcome=facts.outcome).inc()
        return facts

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _quantity(value: object) -> int:
    """A JSON-RPC quantity ("0x1a"), refusing anything else (a hostile or broken node)."""
    if not isinstance(value, str) or not value.startswith("0x") or not 2 < len(value) <= MAX_HEX_DIGITS + 2:
        raise ValueError(f"not a hex quantity: {str(value)[:40]!r}")
    return int(value, 16)
