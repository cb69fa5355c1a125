"""The dataset of a simulated or replayed round, as :func:`qf.model.loader.load_dataset` would read it once indexed.

How the offline evaluation builds its rounds in seconds, without a database
(``tests/train`` checks that both agree exactly).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qf_sentinel.qf.model.dataset import Dataset, assemble_dataset
from qf_sentinel.qf.sim.plan import Label, RoundPlan


def dataset_from_plan(
    plan: RoundPlan,
    *,
    chain_id: int,
    start_time: int,
    block_seconds: int = 12,
    first_pool: int = 1,
    label_source: str = "simulation",
) -> Dataset:
    """The dataset :func:`load_dataset` would read after ``write_plan`` of ``plan`` into an empty chain.

    Blocks, nonces and times follow :func:`qf.sim.direct.donation_rows`, as on an empty chain.
    """
    from qf_sentinel.qf.sim import direct  # noqa: PLC0415 - the planner's row layout, only needed here

    first_block = direct.first_donation_block(plan)
    rows = direct.donation_rows(plan, first_block=first_block, start_time=start_time, block_seconds=block_seconds)
    owners = [plan.wallets[p.owner].address for p in plan.projects]
    tokens = {t: direct.token_address(chain_id, t) for t in {r.token for r in rows}}
    amounts = [r.amount for r in rows]
    labels = {label.address: (label.is_sybil, label.pattern, label_source) for label in _latest(plan.labels)}
    return assemble_dataset(
        chain_id,
        senders=[plan.wallets[r.donor].address for r in rows],
        projects=[f"{first_pool + plan.projects[r.project].pool}:{owners[r.project]}" for r in rows],
        tokens=[tokens[r.token] for r in rows],
        amount=np.array([float(a) for a in amounts], dtype=np.float64) / 1e18,  # as SQL: float8, then / 1e18
        round_amount=np.array([float(a % (5 * 10**17) == 0) for a in amounts], dtype=np.float64),
        time=np.array([r.time for r in rows], dtype=np.float64),
        block=np.array([r.block for r in rows], dtype=np.int64),
        log_index=np.array([r.log_index for r in rows], dtype=np.int64),
        nonce=np.array([r.nonce for r in rows], dtype=np.int64),
        gas_price=np.array([r.gas_price for r in rows], dtype=np.float64),
        labels=labels,
        label_sources={label_source: len(labels)} if labels else {},
    )


def _latest(labels: Sequence[Label]) -> list[Label]:
    """One label per address, the last one given (as the database's "most recent wins")."""
    return list({label.address: label for label in labels}.values())
