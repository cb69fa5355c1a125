"""Attacks added to an indexed round in memory: the labels a real round does not have.

An operator's round comes without labels. :func:`inject_dataset` adds the
campaigns of :mod:`qf.sim.attacks` to the round's busiest pool as extra rows of
the :class:`~qf.model.dataset.Dataset` (never to the database), labelled
``injected``; the round's own donors stay as they are (unlabelled, or with the
labels the database holds). Features are then computed over the combined
donations by the same code as always, so the model learns what coordination
looks like *against this round's real donors*.

Rows are placed as the indexer would have stored them: block numbers
interpolated from the round's own time-to-block mapping, log indices after the
block's real ones, nonces counted per wallet from its prior history (plus an
ERC-20 approval), gas prices per wallet as the simulator sets them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from qf_sentinel.qf.errors import DataError
from qf_sentinel.qf.eth import to_hex
from qf_sentinel.qf.model.dataset import ORDER_SCALE, Dataset, assemble_dataset
from qf_sentinel.qf.sim.attacks import FAMILIES, Background, plan_attacks
from qf_sentinel.qf.sim.direct import derived_address
from qf_sentinel.qf.sim.plan import Token
from qf_sentinel.qf.sim.wallets import gas_price_wei

LABEL_SOURCE = "injected"
#: Log indices of injected donations start here within a block, after any real one.
_LOG_OFFSET = 50_000


def busiest_pool(dataset: Dataset) -> int:
    """Index (into the dataset's pools) of the pool with the most donations."""
    d = dataset.donations
    if d.size == 0:
        raise DataError("the round has no donations to add attacks to")
    return int(np.bincount(d.project_pool[d.project]).argmax())


def inject_dataset(
    dataset: Dataset, families: Sequence[str] = FAMILIES, *, seed: int = 0,
    campaigns: dict[str, str] | None = None, **sizes: tuple[int, int],
) -> Dataset:
    """``dataset`` with attack campaigns of each family in its busiest pool, attackers labelled ``injected``.

    Unless ``sizes`` say otherwise, a campaign runs between 1/200 and 1/60 of
    the round's donors as wallets (at least 5 and 10): attacks large enough to
    matter in the round's matching, small enough that the real donors stay
    the bulk of what the model learns "normal" from. ``campaigns``, if given, is
    filled with each attack wallet's campaign (its funding is drawn per campaign).
    """
    d = dataset.donations
    pool = busiest_pool(dataset)
    in_pool = d.project_pool[d.project] == pool
    counts = np.bincount(d.project[in_pool], minlength=len(d.project_ids))
    projects = np.flatnonzero(counts)
    order = projects[np.argsort(-counts[projects], kind="stable")]
    amounts = d.amount[in_pool]
    amounts = amounts[np.isfinite(amounts) & (amounts > 0)]
    start, end = float(d.time[in_pool].min()), float(d.time[in_pool].max())
    background = Background(
        pool=pool, token=Token.ERC20, duration_seconds=max(end - start, 3600.0), projects_by_popularity=order,
        popularity=counts[order], amounts=np.array([int(a * 1e18) for a in amounts], dtype=object),
    )  # fmt: skip
    n_donors, n_projects = len(dataset.donors), len(d.project_ids)
    sizes = {"wallets": (max(5, n_donors // 200), max(10, n_donors // 60))} | sizes
    attacks = plan_attacks(
        background, families, seed=seed, wallet_offset=n_donors, project_offset=n_projects, **sizes
    )
    if campaigns is not None:
        campaigns.update({
            to_hex(derived_address(attacks.namespace, w.ident)): w.ident.rsplit("/", 1)[0] for w in attacks.wallets
        })  # fmt: skip
    addresses = [*dataset.donors["address"], *(
        to_hex(derived_address(attacks.namespace, w.ident)) for w in attacks.wallets
    )]  # fmt: skip
    pool_key = d.project_ids[int(order[0])].partition(":")[0]
    project_ids = [*d.project_ids, *(f"{pool_key}:{addresses[o]}" for o in attacks.project_owners)]
    token = int(np.bincount(d.token[in_pool]).argmax())

    rows = sorted(attacks.donations)
    at = np.array([start + r[0] for r in rows], dtype=np.float64)
    real_order = np.argsort(d.time[in_pool], kind="stable")
    real_time, real_block = d.time[in_pool][real_order], d.block[in_pool][real_order]
    block = np.round(np.interp(at, real_time, real_block)).astype(np.int64)
    at = np.interp(block, real_block, real_time)  # the block's own time, as an indexed donation has
    log_index = _LOG_OFFSET + np.arange(len(rows)) - np.searchsorted(block, block)
    nonce_of: dict[int, int] = defaultdict(int)
    nonces = []
    for _, wallet, _, _ in rows:
        w = attacks.wallets[wallet - n_donors]
        nonces.append(w.prior_nonce + 1 + nonce_of[wallet])
        nonce_of[wallet] += 1
    base_units = [r[3] for r in rows]

    labels = {
        a: (bool(s), str(p), str(src))
        for a, s, p, src, known in zip(
            dataset.donors["address"], dataset.donors["is_sybil"], dataset.donors["pattern"], dataset.donors["source"],
            dataset.donors["labelled"], strict=True,
        )
        if known
    }  # fmt: skip
    labels |= {addresses[n_donors + i]: (True, w.family, LABEL_SOURCE) for i, w in enumerate(attacks.wallets)}
    merged_block = np.concatenate([d.block, block])
    merged_log = np.concatenate([d.order % ORDER_SCALE, log_index])
    everything = np.lexsort((merged_log, merged_block))
    donor = np.concatenate([d.donor, np.array([r[1] for r in rows], dtype=np.int64)])[everything]
    project = np.concatenate([d.project, np.array([r[2] for r in rows], dtype=np.int64)])[everything]
    tokens = np.concatenate([d.token, np.full(len(rows), token)])[everything]
    sources = dict(dataset.label_sources)
    sources[LABEL_SOURCE] = sources.get(LABEL_SOURCE, 0) + len(attacks.wallets)
    return assemble_dataset(
        dataset.chain_id,
        senders=[addresses[i] for i in donor],
        projects=[project_ids[j] for j in project],
        tokens=[int(t).to_bytes(4, "big") for t in tokens],
        amount=np.concatenate([d.amount, np.array([float(a) for a in base_units]) / 1e18])[everything],
        round_amount=np.concatenate(
            [d.round_amount, np.array([float(a % (5 * 10**17) == 0) for a in base_units])]
        )[everything],
        time=np.concatenate([d.time, at])[everything],
        block=merged_block[everything],
        log_index=merged_log[everything],
        nonce=np.concatenate([d.nonce, np.array(nonces, dtype=np.int64)])[everything],
        gas_price=np.concatenate(
            [d.gas_price, np.array([float(gas_price_wei(addresses[r[1]])) for r in rows])]
        )[everything],
        labels=labels,
        label_sources=sources,
    )
