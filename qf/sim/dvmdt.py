"""A round driven through the real DonationVotingMerkleDistributionDirectTransferStrategy bytecode.

The strategy Gitcoin Grants Stack rounds run on, deployed unmodified from
``@allo-team/allo-v2-sdk`` under the project's IAllo-speaking core, and
driven the way Grants Stack drives it:

* the round operator and every project own a Registry profile; projects
  register under their profile's anchor (the recipient id), sent by the owner,
  who is a profile member;
* the first pool is created on a freshly deployed strategy
  (``createPoolWithCustomStrategy``), the others on clones of an approved one
  (``createPool``), as Allo's factory does;
* the manager reviews with ``reviewRecipients``: whole 64-recipient status rows
  (4 bits each) and the recipients counter it saw;
* donors allocate through the core with ``PermitType.None``: native value, or
  an ERC-20 the donor approved to the pool's strategy (no Permit2 on the
  devnet, and this path never calls it);
* after the window, the manager publishes a Merkle root of the payouts
  (``updateDistribution``) and distributes with proofs.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import eth_abi
from eth_utils import keccak

from qf_sentinel.qf.chain.abi import ALLO_V2_EVENTS, NATIVE_TOKEN, load_artifact, topic0
from qf_sentinel.qf.chain.allo_sdk import DVMDT, PERMIT2, sdk_strategy
from qf_sentinel.qf.chain.deployment import Deployment
from qf_sentinel.qf.chain.merkle import merkle_root_and_proofs, payout_leaf
from qf_sentinel.qf.chain.rpc import RpcClient
from qf_sentinel.qf.chain.tx import TxRequest
from qf_sentinel.qf.errors import ChainError
from qf_sentinel.qf.eth import from_hex, to_hex
from qf_sentinel.qf.sim.execute import MAX_UINT, PoolOnChain, RoundExecution, _metadata
from qf_sentinel.qf.sim.plan import Donation, RecipientStatus, RoundPlan, Token

#: The strategy's Solidity ``InitializeData`` and the allocation data of ``PermitType.None``.
INIT_DATA = "(bool,bool,uint64,uint64,uint64,uint64,address[])"
ALLOCATION = ["address", "uint8", "(((address,uint256),uint256,uint256),bytes)"]
DISTRIBUTION = "(uint256,address,uint256,bytes32[])[]"
PERMIT_TYPE_NONE = 0
#: The name the devnet deploys the strategy under: the SDK's own (``DonationVotingMerkleDistribution.ts`` of
#: @allo-team/allo-v2-sdk 1.1.3 deploys this bytecode as v2.0). ``getStrategyId()`` answers
#: keccak256(abi.encode(name)), an id Gitcoin's indexers map to a donation strategy (``qf.strategy_kinds``).
STRATEGY_NAME = "DonationVotingMerkleDistributionDirectTransferStrategyv2.0"
STRATEGY_ID = keccak(eth_abi.encode(["string"], [STRATEGY_NAME]))
ROW = 64
#: An allocation moves the donation through the core, the strategy and the recipient.
DONATION_GAS = 600_000

_PROFILE_CREATED = topic0("ProfileCreated(bytes32,uint256,string,(uint256,string),address,address)")
_REGISTERED = topic0("Registered(address,bytes,address)")


def profile_id(nonce: int, owner: str) -> bytes:
    """Allo's profile id: keccak256(abi.encodePacked(nonce, owner))."""
    return keccak(nonce.to_bytes(32, "big") + from_hex(owner))


class DvmdtRound(RoundExecution):
    """The phases of `RoundExecution` for pools on the real donation-voting strategy."""

    def __init__(self, rpc: RpcClient, deployment: Deployment, plan: RoundPlan, funder_key: bytes) -> None:
        super().__init__(rpc, deployment, plan, funder_key)
        self.dvmdt = sdk_strategy(DVMDT)
        self.registry = load_artifact("Registry")
        #: project index -> recipient id (its profile's anchor)
        self.anchors: dict[int, str] = {}
        #: (pool index, project index) -> status nibble index (recipients counter - 1)
        self.indices: dict[tuple[int, int], int] = {}
        self.counters: dict[int, int] = defaultdict(lambda: 1)

    # -- pools --------------------------------------------------------------------------------
    def create_pools(self, allocation_start: int) -> list[PoolOnChain]:
        operator = self._profile_for(self.funder_key, self.funder, "QF Sentinel round operator", nonce=1)
        template = self._deploy_strategy()
        cloneable = self._funder_owns_core()
        if cloneable:
            call = self.core.encode_call("addToCloneableStrategies", [template])
            self.run([self.funder_tx(self.deployment.core, call)])
        now = self.miner.now()
        pools = []
        for i, pool in enumerate(self.plan.pools):
            token = self.token_address(pool.token)
            end = allocation_start + pool.duration_seconds
            init = eth_abi.encode([INIT_DATA], [(True, True, now, end, allocation_start, end,
                                                 [NATIVE_TOKEN, self.deployment.token])])  # fmt: skip
            clone = cloneable and i > 0
            strategy = template if clone else (template if i == 0 else self._deploy_strategy())
            function = "createPool" if clone else "createPoolWithCustomStrategy"
            call = self.core.encode_call(function, [operator, strategy, init, token, pool.matching_amount,
                                                    _metadata(pool.name), []])  # fmt: skip
            value = pool.matching_amount if token == NATIVE_TOKEN else 0
            (receipt,) = self.run([self.funder_tx(self.deployment.core, call, value, 8_000_000)])
            created = next(lg for lg in receipt["logs"] if lg["topics"][0] == topic0(ALLO_V2_EVENTS["PoolCreated"]))
            address = "0x" + created["data"][26:66]  # the strategy: the first data word
            pools.append(PoolOnChain(int(created["topics"][1], 16), address.lower(), token, allocation_start, end))
        return pools

    def _deploy_strategy(self) -> str:
        data = self.dvmdt.deploy_data([self.deployment.core, STRATEGY_NAME, PERMIT2])
        (receipt,) = self.run([TxRequest(self.funder_key, self.funder, None, data, 0, 8_000_000)])
        return str(receipt["contractAddress"]).lower()

    def _funder_owns_core(self) -> bool:
        owner = self._call(self.deployment.core, self.core.encode_call("owner", []))
        return owner[12:] == from_hex(self.funder)

    def _profile_for(self, key: bytes, owner: str, name: str, *, nonce: int) -> bytes:
        """Create ``owner``'s profile if it has none; its id."""
        pid = profile_id(nonce, owner)
        found = self._call(self.deployment.registry, self.registry.encode_call("getProfileById", [pid]))
        (profile,) = eth_abi.decode(["(bytes32,uint256,string,(uint256,string),address,address)"], found)
        if int(profile[5], 16):  # it has an anchor: it exists
            return pid
        call = self.registry.encode_call("createProfile", [nonce, name, _metadata(name), owner, []])
        self.run([TxRequest(key, owner, self.deployment.registry, call, 0, 1_000_000)])
        return pid

    # -- projects -----------------------------------------------------------------------------
    def register_and_review(self, pools: list[PoolOnChain], erc20_donors: set[int]) -> None:
        plan = self.plan
        profiles = []
        for i, project in enumerate(plan.projects):
            owner = plan.wallets[project.owner]
            call = self.registry.encode_call("createProfile", [i + 1, project.name, _metadata(project.name),
                                                               owner.address, []])  # fmt: skip
            profiles.append(self.wallet_tx(project.owner, self.deployment.registry, call, gas=1_000_000))
        for i, receipt in enumerate(self.run(profiles)):
            entry = next(lg for lg in receipt["logs"] if lg["topics"][0] == _PROFILE_CREATED)
            _owner, anchor = eth_abi.decode(["address", "address"], from_hex(entry["data"])[96:160])
            self.anchors[i] = anchor.lower()
        for receipt in self.run([self._registration(pools, i) for i in range(len(plan.projects))]):
            self._note_registered(pools, receipt)
        self.run([tx for i in sorted(erc20_donors) for tx in self.approval_txs(pools, i)])
        decided = [i for i, p in enumerate(plan.projects) if p.status is not RecipientStatus.PENDING]
        self.run(self._review_rows(pools, decided))
        appeals: dict[int, int] = {}
        for i in decided:
            if plan.projects[i].status is RecipientStatus.REJECTED:
                appeals.setdefault(plan.projects[i].pool, i)
        if appeals:
            # A rejected project re-applies (UpdatedRegistration, status appealed); the manager rejects it again.
            self.run([self._registration(pools, i) for i in appeals.values()])
            self.run(self._review_rows(pools, list(appeals.values())))

    def approval_txs(self, pools: list[PoolOnChain], donor: int) -> list[TxRequest]:
        """A donor approves each pool's strategy, which pulls its ERC-20 donations itself."""
        token = self.deployment.token
        return [self.wallet_tx(donor, token, self.erc20.encode_call("approve", [pool.strategy, MAX_UINT]), gas=80_000)
                for pool in pools]  # fmt: skip

    def _registration(self, pools: list[PoolOnChain], project_index: int) -> TxRequest:
        project = self.plan.projects[project_index]
        owner = self.plan.wallets[project.owner].address
        data = eth_abi.encode(["address", "address", "(uint256,string)"],
                              [self.anchors[project_index], owner, _metadata(project.name)])  # fmt: skip
        call = self.core.encode_call("registerRecipient", [pools[project.pool].pool_id, data])
        return self.wallet_tx(project.owner, self.deployment.core, call, gas=600_000)

    def _note_registered(self, pools: list[PoolOnChain], receipt: dict[str, Any]) -> None:
        for entry in receipt["logs"]:
            if entry["topics"][0] != _REGISTERED:
                continue
            anchor = "0x" + entry["topics"][1][-40:]
            pool = next(k for k, p in enumerate(pools) if p.strategy == entry["address"].lower())
            project = next(i for i, a in self.anchors.items() if a == anchor)
            raw = eth_abi.decode(["bytes", "address"], from_hex(entry["data"]))[0]
            _inner, counter = eth_abi.decode(["bytes", "uint256"], raw)
            self.indices[(pool, project)] = counter - 1
            self.counters[pool] = max(self.counters[pool], counter + 1)

    def _review_rows(self, pools: list[PoolOnChain], project_indices: list[int]) -> list[TxRequest]:
        """One reviewRecipients per pool: the rows holding these projects, each with every recipient's final status."""
        plan = self.plan
        requests = []
        for k, pool in enumerate(pools):
            chosen = [i for i in project_indices if plan.projects[i].pool == k]
            if not chosen:
                continue
            status = {index: int(plan.projects[i].status) for (p, i), index in self.indices.items() if p == k}
            rows = sorted({self.indices[(k, i)] // ROW for i in chosen})
            statuses = [(row, sum(s << (4 * (n % ROW)) for n, s in status.items() if n // ROW == row)) for row in rows]
            call = self.dvmdt.encode_call("reviewRecipients", [statuses, self.counters[k]])
            requests.append(self.funder_tx(pool.strategy, call, gas=300_000 + 40_000 * len(rows)))
        return requests

    # -- donations ----------------------------------------------------------------------------
    def _donation_tx(self, pools: list[PoolOnChain], d: Donation) -> TxRequest:
        project = self.plan.projects[d.project]
        token = self.token_address(d.token)
        data = eth_abi.encode(ALLOCATION, [self.anchors[d.project], PERMIT_TYPE_NONE, (((token, d.amount), 0, 0), b"")])
        call = self.core.encode_call("allocate", [pools[project.pool].pool_id, data])
        value = d.amount if d.token is Token.NATIVE else 0
        return self.wallet_tx(d.donor, self.deployment.core, call, value, gas=DONATION_GAS)

    # -- distribution -------------------------------------------------------------------------
    def distribute(self, pools: list[PoolOnChain]) -> None:
        """Publish each pool's payouts as a Merkle root, then pay them with proofs through the core."""
        self.close_windows(pools)
        for k, pool in enumerate(pools):
            available = self._uint_call(pool.strategy, self.dvmdt.encode_call("getPoolAmount", []))
            payouts = [(self.anchors[p], self.plan.wallets[self.plan.projects[p].owner].address, amount)
                       for p, amount in self.payouts(k, available)]  # fmt: skip
            if not payouts:
                continue
            leaves = [payout_leaf(i, anchor, owner, amount) for i, (anchor, owner, amount) in enumerate(payouts)]
            root, proofs = merkle_root_and_proofs(leaves)
            update = self.dvmdt.encode_call("updateDistribution", [root, _metadata(f"distribution-{pool.pool_id}")])
            self.run([self.funder_tx(pool.strategy, update, gas=300_000)])
            batch = [(i, anchor, amount, proofs[i]) for i, (anchor, _owner, amount) in enumerate(payouts)]
            call = self.core.encode_call("distribute", [pool.pool_id, [], eth_abi.encode([DISTRIBUTION], [batch])])
            self.run([self.funder_tx(self.deployment.core, call, gas=15_000_000)])

    def _call(self, to: str, data: bytes) -> bytes:
        answer = self.rpc.call("eth_call", [{"to": to, "data": to_hex(data)}, "latest"])
        if not isinstance(answer, str):
            raise ChainError(f"eth_call to {to} gave {answer!r}")
        return from_hex(answer)
