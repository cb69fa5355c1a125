"""Execute a ``RoundPlan`` on a node as real signed transactions.

The round's life, in order: wallets get their history (``anvil_setNonce``); at
setup the faucet pays the fundings planned without a time (the round's
exchange-like sources; every wallet of a replay) and the test tokens are minted;
then every timed funding is sent when the plan says, days to minutes before the
wallet first acts (an ETH transfer, and an ERC-20 transfer when it carries
tokens): those before the round ahead of the pools, those inside the window in
the block slot they fall in, before that slot's donations. Pools are created and
funded, projects register and are reviewed, donors approve the token (right
after their funding when it comes during the round), every donation is sent in
the plan's time order, and finally the matching pool is distributed.

On anvil the executor pauses automine and mines each block itself at the
timestamp the plan asks for (``block_seconds`` slots from the allocation
start), so block times follow the plan. On any other node it sends as fast as
the node takes transactions and waits for receipts (time is compressed).

ERC-20 convention (shared with the planners): each wallet is minted what its
ERC-20 donations and the tokens it sends exceed the tokens it receives
(``wallets.token_mints``: a replay's donors get exactly their donations, a
simulated round's exchange-like sources what they hand out); the deployer
(faucet) is minted the ERC-20 pools' matching amounts.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import eth_abi
import structlog
from eth_account import Account

from qf_sentinel.qf.chain.abi import ALLO_V2_EVENTS, NATIVE_TOKEN, load_artifact, topic0
from qf_sentinel.qf.chain.deploy import FEED_DECIMALS
from qf_sentinel.qf.chain.deployment import Deployment
from qf_sentinel.qf.chain.rpc import RpcClient
from qf_sentinel.qf.chain.tx import TxRequest, TxSender, block_receipts, wait_for_receipts
from qf_sentinel.qf.errors import ChainError, RpcError
from qf_sentinel.qf.eth import from_hex, to_hex
from qf_sentinel.qf.sim.plan import Donation, Funding, RecipientStatus, RoundPlan, Token
from qf_sentinel.qf.sim.wallets import gas_price_wei, token_mints

log = structlog.get_logger()

GAS_MONEY_WEI = 10**18
#: A first ERC-20 donation to a new recipient writes fresh storage through three contracts.
DONATION_GAS = 500_000
REVIEW_CHUNK = 200
MAX_TXS_PER_BLOCK = 250
REGISTRATION_LEAD_SECONDS = 3600
#: ETH's price moves once every this many block slots of donations.
PRICE_MOVE_SLOTS = 20
MAX_UINT = 2**256 - 1
#: Only for splitting the simulated matching pool across tokens; not a price feed.
ETH_IN_TOKENS = 2000
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class PoolOnChain:
    pool_id: int
    strategy: str
    token: str
    allocation_start: int
    allocation_end: int


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    pools: tuple[PoolOnChain, ...]
    donations: int
    first_block: int
    last_block: int
    transactions: int
    seconds: float
    skipped: dict[str, int] = field(default_factory=dict)


class _Miner:
    """Block production: explicit on anvil (with timestamps), passive elsewhere."""

    def __init__(self, rpc: RpcClient, *, control: bool) -> None:
        self.rpc = rpc
        self.control = control
        self.last_timestamp = int(rpc.call("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)

    def now(self) -> int:
        if not self.control:
            latest = self.rpc.call("eth_getBlockByNumber", ["latest", False])
            self.last_timestamp = int(latest["timestamp"], 16)
        return self.last_timestamp

    def mine(self, timestamp: int | None = None) -> list[int]:
        """Mine everything pending (several blocks if the gas limit demands); block numbers."""
        if not self.control:
            return []
        blocks = []
        ts = max(timestamp or self.last_timestamp + 1, self.last_timestamp + 1)
        while True:
            self.rpc.call("evm_setNextBlockTimestamp", [hex(ts)])
            self.rpc.call("evm_mine")
            block = self.rpc.call("eth_getBlockByNumber", ["latest", False])
            blocks.append(int(block["number"], 16))
            self.last_timestamp = ts
            pending = int(self.rpc.call("txpool_status")["pending"], 16)
            if pending == 0:
                return blocks
            if not block["transactions"]:
                raise ChainError(
                    f"{pending} transactions stay pending after mining an empty block "
                    "(a sender without funds or a nonce gap)"
                )
            ts += 1


def _is_anvil(rpc: RpcClient) -> bool:
    try:
        return rpc.client_version().lower().startswith("anvil")
    except RpcError:
        return False


def _metadata(name: str) -> tuple[int, str]:
    return (1, "bafy" + hashlib.sha256(name.encode()).hexdigest()[:52])


class RoundExecution:
    """One round sent through the project's own DonationStrategy; subclasses drive other strategies."""

    def __init__(self, rpc: RpcClient, deployment: Deployment, plan: RoundPlan, funder_key: bytes) -> None:
        self.rpc = rpc
        self.deployment = deployment
        self.plan = plan
        self.funder_key = funder_key
        self.funder = Account.from_key(funder_key).address.lower()
        self.sender = TxSender(rpc, rpc.chain_id())
        self.anvil = _is_anvil(rpc)
        self.miner = _Miner(rpc, control=self.anvil)
        self.core = load_artifact("QFAllo")
        self.strategy = load_artifact("DonationStrategy")
        self.erc20 = load_artifact("TestToken")
        self.feed = load_artifact("PriceFeed")
        self.tx_count = 0
        # ETH's USD price walks during the round (1% steps), seeded by the plan: same plan, same prices.
        self.prices = random.Random(int.from_bytes(hashlib.sha256(plan.name.encode()).digest()[:8], "big"))
        self.eth_price = 0.0

    # -- helpers -------------------------------------------------------------
    def token_address(self, token: Token) -> str:
        return NATIVE_TOKEN if token is Token.NATIVE else self.deployment.token

    def funder_tx(self, to: str, data: bytes = b"", value: int = 0, gas: int = 500_000) -> TxRequest:
        return TxRequest(self.funder_key, self.funder, to, data, value, gas)

    def wallet_tx(
        self, index: int, to: str, data: bytes = b"", value: int = 0, gas: int = 250_000
    ) -> TxRequest:
        w = self.plan.wallets[index]
        return TxRequest(w.private_key, w.address, to, data, value, gas, gas_price_wei(w.address))

    def run(self, requests: Sequence[TxRequest], timestamp: int | None = None) -> list[dict[str, Any]]:
        """Send, mine, and return receipts (raising on any revert)."""
        if not requests:
            return []
        if not self.miner.control:
            hashes = self.sender.send(requests)
            self.tx_count += len(hashes)
            return wait_for_receipts(self.rpc, hashes)
        # Modest blocks: anvil's receipt lookups cost O(transactions in the block) each.
        receipts = []
        for start in range(0, len(requests), MAX_TXS_PER_BLOCK):
            hashes = self.sender.send(requests[start : start + MAX_TXS_PER_BLOCK])
            self.tx_count += len(hashes)
            found = block_receipts(self.rpc, self.miner.mine(timestamp))
            missing = [h for h in hashes if h not in found]
            if missing:
                raise ChainError(f"{len(missing)} transactions were not mined, e.g. {missing[0]}")
            receipts += [found[h] for h in hashes]
        return receipts

    # -- phases --------------------------------------------------------------
    def give_history(self) -> None:
        """Older wallets get their prior nonce (anvil only; elsewhere wallets start fresh)."""
        aged = [w for w in self.plan.wallets if w.prior_nonce > 0]
        if not self.anvil or not aged:
            return
        for start in range(0, len(aged), 500):
            chunk = aged[start : start + 500]
            self.rpc.batch([("anvil_setNonce", [w.address, hex(w.prior_nonce)]) for w in chunk])
        for w in aged:
            self.sender.set_nonce(w.address, w.prior_nonce)

    def ensure_funder_balance(self, senders: set[int]) -> None:
        """The faucet must cover all it sends; on anvil it is topped up, elsewhere checked."""
        funded = {f.target for f in self.plan.fundings}
        native_pools = sum(p.matching_amount for p in self.plan.pools if p.token is Token.NATIVE)  # any time
        needed = (
            sum(f.amount for f in self.plan.fundings if f.source is None)
            + GAS_MONEY_WEI * (len(senders - funded) + 10)
            + native_pools
        )
        balance = int(self.rpc.call("eth_getBalance", [self.funder, "latest"]), 16)
        if balance >= needed:
            return
        if self.anvil:
            self.rpc.call("anvil_setBalance", [self.funder, hex(needed * 2)])
            return
        raise ChainError(
            f"funder {self.funder} holds {balance / 1e18:.4f} ETH but the round needs {needed / 1e18:.4f} ETH"
        )

    def funding_txs(self, f: Funding) -> list[TxRequest]:
        """The transfers of one funding: its ETH, then its tokens (if any), from the faucet or a plan wallet."""
        to = self.plan.wallets[f.target].address
        send = self.funder_tx if f.source is None else partial(self.wallet_tx, f.source)
        txs = [send(to, value=f.amount, gas=21_000)]
        if f.token_amount:
            call = self.erc20.encode_call("transfer", [to, f.token_amount])
            txs.append(send(self.deployment.token, call, gas=90_000))
        return txs

    def approval_txs(self, pools: list[PoolOnChain], donor: int) -> list[TxRequest]:
        """What an ERC-20 donor approves before donating: the core, which pulls its donations."""
        del pools
        call = self.erc20.encode_call("approve", [self.deployment.core, MAX_UINT])
        return [self.wallet_tx(donor, self.deployment.token, call, gas=80_000)]

    def fund(self, senders: set[int], erc20_due: dict[int, int], matching_erc20: int) -> None:
        """Setup: the fundings planned without a time, gas for senders nobody funds, and the token mints."""
        plan = self.plan
        funded = {f.target for f in plan.fundings}
        setup = [f for f in plan.fundings if f.at_seconds is None]
        first = [tx for f in setup if f.source is None for tx in self.funding_txs(f)]
        first += [
            self.funder_tx(plan.wallets[i].address, value=GAS_MONEY_WEI, gas=21_000)
            for i in sorted(senders - funded)
        ]
        token = self.deployment.token
        mint_to = [plan.wallets[i].address for i in sorted(erc20_due)] + [self.funder]
        mint_amounts = [erc20_due[i] for i in sorted(erc20_due)] + [matching_erc20]
        for start in range(0, len(mint_to), 300):
            data = self.erc20.encode_call(
                "mintBatch", [mint_to[start : start + 300], mint_amounts[start : start + 300]]
            )
            first.append(self.funder_tx(token, data, gas=15_000_000))
        first.append(
            self.funder_tx(token, self.erc20.encode_call("approve", [self.deployment.core, MAX_UINT]))
        )
        self.run(first)
        # Wallet-to-wallet seeding, in waves: a funder can only pass on what it received.
        pending = [f for f in setup if f.source is not None]
        has_money = {f.target for f in setup if f.source is None} | (senders - funded)
        while pending:
            wave = [f for f in pending if f.source in has_money]
            if not wave:
                raise ChainError("plan has fundings from wallets that never receive ETH")
            self.run([tx for f in wave for tx in self.funding_txs(f)])
            has_money |= {f.target for f in wave}
            pending = [f for f in pending if f not in wave]

    def fund_before_round(self, allocation_start: int, block_seconds: int) -> None:
        """The fundings timed before the window, each in its block slot (mined at its time on anvil), in plan order."""
        slots: dict[int, list[Funding]] = defaultdict(list)
        for f in self.plan.fundings:
            if f.at_seconds is not None and f.at_seconds < 0:
                slots[math.floor(f.at_seconds / block_seconds)].append(f)
        for slot in sorted(slots):
            self.fund_in_waves(slots[slot], allocation_start + slot * block_seconds)

    def fund_in_waves(self, fundings: list[Funding], timestamp: int | None = None) -> None:
        """Send fundings of one block slot, a block per wave: a wallet funded in the slot passes money on in the
        next wave (a node refuses a transaction its sender cannot pay for yet)."""
        remaining = list(fundings)
        while remaining:
            targets = {f.target for f in remaining}
            wave = [f for f in remaining if f.source not in targets]
            if not wave:
                raise ChainError("plan has a cycle of fundings")
            self.run([tx for f in wave for tx in self.funding_txs(f)], timestamp)
            sent = {id(f) for f in wave}
            remaining = [f for f in remaining if id(f) not in sent]

    def create_pools(self, allocation_start: int) -> list[PoolOnChain]:
        requests, windows = [], []
        now = self.miner.now()
        for pool in self.plan.pools:
            token = self.token_address(pool.token)
            first_part = pool.matching_amount - pool.matching_amount // 5
            w = (
                now,
                allocation_start + pool.duration_seconds,
                allocation_start,
                allocation_start + pool.duration_seconds,
            )
            windows.append(w)
            data = self.core.encode_call(
                "createDonationPool",
                [
                    hashlib.sha256(pool.name.encode()).digest(),
                    token,
                    first_part,
                    _metadata(pool.name),
                    list(w),
                    [NATIVE_TOKEN, self.deployment.token],
                ],
            )
            requests.append(
                self.funder_tx(
                    self.deployment.core,
                    data,
                    first_part if token == NATIVE_TOKEN else 0,
                    6_000_000,
                )
            )
        receipts = self.run(requests)
        created = topic0(ALLO_V2_EVENTS["PoolCreated"])
        pools = []
        for receipt, w in zip(receipts, windows, strict=True):
            entry = next(lg for lg in receipt["logs"] if lg["topics"][0] == created)
            strategy, token, _amount, _meta = eth_abi.decode(
                ["address", "address", "uint256", "(uint256,string)"],
                from_hex(entry["data"]),
            )
            pools.append(
                PoolOnChain(int(entry["topics"][1], 16), strategy.lower(), token.lower(), w[2], w[3])
            )
        # Top up each pool with the rest (a second PoolFunded) and update its metadata once.
        top_ups = []
        for pool, on_chain in zip(self.plan.pools, pools, strict=True):
            rest = pool.matching_amount // 5
            if rest:
                value = rest if on_chain.token == NATIVE_TOKEN else 0
                top_ups.append(
                    self.funder_tx(
                        self.deployment.core,
                        self.core.encode_call("fundPool", [on_chain.pool_id, rest]),
                        value,
                    )
                )
            meta = _metadata(pool.name + "/v2")
            top_ups.append(
                self.funder_tx(
                    self.deployment.core,
                    self.core.encode_call("updatePoolMetadata", [on_chain.pool_id, meta]),
                )
            )
        self.run(top_ups)
        return pools

    def register_and_review(self, pools: list[PoolOnChain], erc20_donors: set[int]) -> None:
        plan = self.plan

        def registration(project_index: int) -> TxRequest:
            project = plan.projects[project_index]
            owner = plan.wallets[project.owner].address
            data = eth_abi.encode(
                ["address", "address", "(uint256,string)"], [owner, owner, _metadata(project.name)]
            )
            call = self.core.encode_call("registerRecipient", [pools[project.pool].pool_id, data])
            return self.wallet_tx(project.owner, self.deployment.core, call, gas=400_000)

        approvals = [tx for i in sorted(erc20_donors) for tx in self.approval_txs(pools, i)]
        self.run([registration(i) for i in range(len(plan.projects))] + approvals)
        by_pool: dict[int, list[int]] = defaultdict(list)
        for i, project in enumerate(plan.projects):
            by_pool[project.pool].append(i)
        reviews = []
        appeals = []
        for pool_index, indices in by_pool.items():
            decided = [i for i in indices if plan.projects[i].status is not RecipientStatus.PENDING]
            rejected = [i for i in decided if plan.projects[i].status is RecipientStatus.REJECTED]
            if decided:
                reviews.extend(self._review(pools[pool_index], decided))
            if rejected:
                appeals.append(rejected[0])
        self.run(reviews)
        if appeals:
            # A rejected project re-applies (UpdatedRegistration, status appealed); the manager
            # rejects it again, so the final status is still the plan's.
            self.run([registration(i) for i in appeals])
            self.run([tx for i in appeals for tx in self._review(pools[plan.projects[i].pool], [i])])

    def _review(self, pool: PoolOnChain, project_indices: list[int]) -> list[TxRequest]:
        """The manager's review transactions, in chunks that fit a block."""
        requests = []
        for start in range(0, len(project_indices), REVIEW_CHUNK):
            chunk = project_indices[start : start + REVIEW_CHUNK]
            ids = [self.plan.wallets[self.plan.projects[i].owner].address for i in chunk]
            statuses = [int(self.plan.projects[i].status) for i in chunk]
            call = self.strategy.encode_call("reviewRecipients", [ids, statuses])
            requests.append(self.funder_tx(pool.strategy, call, gas=200_000 + 30_000 * len(chunk)))
        return requests

    def donate(
        self, pools: list[PoolOnChain], block_seconds: int, progress: ProgressFn | None,
        erc20_donors: set[int] | None = None,
    ) -> tuple[int, int]:  # fmt: skip
        """Every donation in its block slot; fundings timed inside the window are mined first in their slot, then
        the approvals of the ``erc20_donors`` they fund (those that approve then), then the slot's donations."""
        plan = self.plan
        erc20_donors = erc20_donors or set()
        slots, fundings = self._slots(block_seconds)
        done = 0
        unchecked: list[int] = []
        unchecked_donations = 0
        first_block = last_block = 0
        donating = 0
        for slot in sorted(set(slots) | set(fundings)):
            if slot in slots:
                if donating % PRICE_MOVE_SLOTS == 0:
                    self._move_eth_price()
                donating += 1
            funded = fundings.get(slot, [])
            self.fund_in_waves(funded, pools[0].allocation_start + slot * block_seconds)
            before = [tx for f in funded if f.target in erc20_donors for tx in self.approval_txs(pools, f.target)]
            gifts = [self._donation_tx(pools, plan.donations[i]) for i in slots.get(slot, [])]
            requests = before + gifts
            if not self.anvil:
                receipts = self.run(requests)
                numbers = [int(str(r["blockNumber"]), 16) for r in receipts]
                first_block, last_block = first_block or min(numbers), max(numbers)
            else:
                for start in range(0, len(requests), MAX_TXS_PER_BLOCK):
                    chunk = requests[start : start + MAX_TXS_PER_BLOCK]
                    self.tx_count += len(self.sender.send(chunk))
                    mined = self.miner.mine(pools[0].allocation_start + slot * block_seconds)
                    gifts_in_chunk = max(0, min(start + len(chunk), len(requests)) - max(start, len(before)))
                    if gifts_in_chunk:
                        unchecked += mined
                        unchecked_donations += gifts_in_chunk
                        first_block, last_block = first_block or mined[0], mined[-1]
                if len(unchecked) >= 500:
                    self._verify_donations(pools, unchecked, unchecked_donations)
                    unchecked, unchecked_donations = [], 0
            done += len(gifts)
            if progress and gifts:
                progress(done, len(plan.donations))
        if unchecked:
            self._verify_donations(pools, unchecked, unchecked_donations)
        return first_block, last_block

    def _slots(self, block_seconds: int) -> tuple[dict[int, list[int]], dict[int, list[Funding]]]:
        """Donations (by index) and in-window fundings by block slot."""
        slots: dict[int, list[int]] = defaultdict(list)
        for i, d in enumerate(self.plan.donations):
            slots[int(d.at_seconds // block_seconds)].append(i)
        fundings: dict[int, list[Funding]] = defaultdict(list)
        for f in self.plan.fundings:
            if f.at_seconds is not None and f.at_seconds >= 0:
                fundings[int(f.at_seconds // block_seconds)].append(f)
        return slots, fundings

    def _move_eth_price(self) -> None:
        """Post the next ETH/USD answer (sent now, mined with the next block) if the funder owns the feed."""
        feed = self.deployment.price_feeds.get(NATIVE_TOKEN)
        if feed is None:
            return
        if not self.eth_price:
            owner = self._uint_call(feed, self.feed.encode_call("owner", []))
            if owner != int(self.funder, 16):
                self.deployment = replace(self.deployment, price_feeds={})  # not ours to move: prices stay put
                return
            self.eth_price = float(ETH_IN_TOKENS)
        self.eth_price *= math.exp(self.prices.gauss(0.0, 0.01))
        answer = round(self.eth_price * 10**FEED_DECIMALS)
        request = self.funder_tx(feed, self.feed.encode_call("updateAnswer", [answer]), gas=120_000)
        if self.miner.control:
            self.tx_count += len(self.sender.send([request]))
        else:
            self.run([request])

    def _donation_tx(self, pools: list[PoolOnChain], d: Donation) -> TxRequest:
        project = self.plan.projects[d.project]
        recipient = self.plan.wallets[project.owner].address
        data = eth_abi.encode(
            ["address", "address", "uint256"], [recipient, self.token_address(d.token), d.amount]
        )
        call = self.core.encode_call("allocate", [pools[project.pool].pool_id, data])
        value = d.amount if d.token is Token.NATIVE else 0
        return self.wallet_tx(d.donor, self.deployment.core, call, value, gas=DONATION_GAS)

    def _verify_donations(self, pools: list[PoolOnChain], blocks: list[int], expected: int) -> None:
        """Every donation sent must have left exactly one Allocated log.

        Counting logs is one indexed query; receipts are fetched only to name the
        culprit when the count is short.
        """
        logs = self.rpc.call(
            "eth_getLogs",
            [
                {
                    "fromBlock": hex(blocks[0]),
                    "toBlock": hex(blocks[-1]),
                    "address": [p.strategy for p in pools],
                    "topics": [topic0(ALLO_V2_EVENTS["Allocated"])],
                }
            ],
        )
        if len(logs) != expected:
            block_receipts(self.rpc, blocks)  # raises TxFailed naming the reverted one
            raise ChainError(
                f"expected {expected} Allocated logs in blocks {blocks[0]}..{blocks[-1]}, found {len(logs)}"
            )

    def distribute(self, pools: list[PoolOnChain]) -> None:
        """Pay each pool's matching by the standard QF formula (ETH valued at ETH_IN_TOKENS)."""
        self.close_windows(pools)
        requests = []
        for pool_index, on_chain in enumerate(pools):
            available = self._uint_call(on_chain.strategy, self.strategy.encode_call("poolAmount", []))
            payouts = self.payouts(pool_index, available)
            if not payouts:
                continue
            ids = [self.plan.wallets[self.plan.projects[p].owner].address for p, _ in payouts]
            amounts = [amount for _, amount in payouts]
            call = self.strategy.encode_call("distribute", [ids, amounts])
            requests.append(self.funder_tx(on_chain.strategy, call, gas=15_000_000))
        self.run(requests)

    def close_windows(self, pools: list[PoolOnChain]) -> None:
        """Move past every allocation window: mine beyond it on anvil, else shorten the windows to now."""
        end = max(p.allocation_end for p in pools)
        if self.anvil:
            self.miner.mine(end + 1)
            return
        for on_chain in pools:  # compress time: close the windows now
            now = self.miner.now()
            w = self.strategy.encode_call("updatePoolTimestamps", [on_chain.allocation_start - 1, now,
                                                                   on_chain.allocation_start, now])  # fmt: skip
            self.run([self.funder_tx(on_chain.strategy, w)])

    def payouts(self, pool_index: int, available: int) -> list[tuple[int, int]]:
        """(project index, amount) of pool ``pool_index``'s matching: standard QF shares of 99.9% of ``available``."""
        per_project: dict[int, dict[int, float]] = defaultdict(lambda: defaultdict(float))
        for d in self.plan.donations:
            if self.plan.projects[d.project].pool == pool_index:
                units = d.amount / 1e18 * (ETH_IN_TOKENS if d.token is Token.NATIVE else 1)
                per_project[d.project][d.donor] += units
        raw = {p: sum(math.sqrt(c) for c in donors.values()) ** 2 - sum(donors.values())
               for p, donors in per_project.items()}  # fmt: skip
        total = sum(raw.values())
        if total <= 0 or available == 0:
            return []
        shares = [(p, int(available * (m / total) * 0.999)) for p, m in sorted(raw.items())]
        return [(p, amount) for p, amount in shares if amount > 0]

    def _uint_call(self, to: str, data: bytes) -> int:
        return int(self.rpc.call("eth_call", [{"to": to, "data": to_hex(data)}, "latest"]), 16)


def execute_plan(
    rpc: RpcClient,
    deployment: Deployment,
    plan: RoundPlan,
    funder_key: bytes,
    *,
    block_seconds: int = 12,
    progress: ProgressFn | None = None,
    execution: type[RoundExecution] = RoundExecution,
) -> ExecutionResult:
    """Send the whole round; returns where it landed. Raises ``TxFailed`` on any revert.

    ``execution`` drives the pools' strategy: the project's own by default,
    ``qf.sim.dvmdt.DvmdtRound`` for the real Allo v2 donation-voting bytecode.
    """
    started = time.monotonic()
    round_ = execution(rpc, deployment, plan, funder_key)
    if round_.anvil:
        rpc.call("evm_setAutomine", [False])
    try:
        matching_erc20 = sum(p.matching_amount for p in plan.pools if p.token is Token.ERC20)
        senders = {d.donor for d in plan.donations} | {p.owner for p in plan.projects}
        senders |= {f.source for f in plan.fundings if f.source is not None}
        round_.give_history()
        round_.ensure_funder_balance(senders)
        round_.fund(senders, token_mints(plan), matching_erc20)
        # On anvil, the history before the round is as long as the earliest timed funding asks.
        earliest = min((f.at_seconds for f in plan.fundings if f.at_seconds is not None), default=0.0)
        lead = REGISTRATION_LEAD_SECONDS + max(0, math.ceil(-earliest)) if round_.anvil else 0
        allocation_start = round_.miner.now() + lead
        round_.fund_before_round(allocation_start, block_seconds)
        log.info("round_funded", wallets=len(plan.wallets), seconds=round(time.monotonic() - started, 1))
        erc20 = {d.donor for d in plan.donations if d.token is Token.ERC20}
        in_window = {f.target for f in plan.fundings if f.at_seconds is not None and f.at_seconds >= 0}
        pools = round_.create_pools(allocation_start)
        round_.register_and_review(pools, erc20 - in_window)
        log.info(
            "round_opened",
            pools=len(pools),
            projects=len(plan.projects),
            seconds=round(time.monotonic() - started, 1),
        )
        if round_.anvil:
            round_.miner.mine(allocation_start)
        first_block, last_block = round_.donate(pools, block_seconds, progress, erc20 & in_window)
        round_.distribute(pools)
    finally:
        if round_.anvil:
            rpc.call("evm_setAutomine", [True])
    result = ExecutionResult(
        pools=tuple(pools),
        donations=len(plan.donations),
        first_block=first_block,
        last_block=last_block,
        transactions=round_.tx_count,
        seconds=time.monotonic() - started,
        skipped=dict(plan.skipped),
    )
    log.info(
        "round_executed",
        plan=plan.name,
        donations=result.donations,
        transactions=result.transactions,
        blocks=f"{first_block}..{last_block}",
        seconds=round(result.seconds, 1),
    )
    return result
