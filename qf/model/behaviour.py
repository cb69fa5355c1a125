"""Per-donor behaviour features from the donation arrays: the columns of ``qf.donor_features``, in numpy.

The model's features are computed here rather than read from the SQL table so
that one function serves every path that needs them (training on an indexed
round, training on a round with injected attacks held only in memory, the
sidecar's snapshot, ``qf score``) and so none can drift from another. The SQL
table stays for analysts in psql; a test checks that both give the same values
(see ``sql/004_analytics.sql`` for each column's meaning and unit):

``donation_count``, ``total_amount``, ``mean_amount``, ``amount_stddev``
(population), ``distinct_projects``, ``distinct_pools``, ``distinct_tokens``,
``active_seconds``, ``first_nonce`` (of the first donation in chain order),
``fresh_wallet`` (first nonce < 3), ``median_gap_seconds`` (NaN with one
donation), ``round_amount_share``, ``same_block_codonations`` (donations in a
block where another donor gave to the same project), ``top_project_share``
(NaN when the total is 0) and ``gas_price_distinct``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from qf_sentinel.qf.model.dataset import Donations

FloatArray = npt.NDArray[np.float64]

BEHAVIOUR_FEATURES: tuple[str, ...] = (
    "donation_count",
    "total_amount",
    "mean_amount",
    "amount_stddev",
    "distinct_projects",
    "distinct_pools",
    "distinct_tokens",
    "active_seconds",
    "first_nonce",
    "fresh_wallet",
    "median_gap_seconds",
    "round_amount_share",
    "same_block_codonations",
    "top_project_share",
    "gas_price_distinct",
)
FRESH_NONCE = 3


def behaviour_features(d: Donations, n_donors: int, selected: npt.NDArray[np.bool_] | None = None) -> FloatArray:
    """[n_donors, len(BEHAVIOUR_FEATURES)]; NaN where SQL gives NULL. ``selected`` limits the donations used."""
    keep = np.ones(d.size, dtype=bool) if selected is None else selected
    frame = pd.DataFrame(
        {
            "donor": d.donor[keep],
            "project": d.project[keep],
            "pool": d.project_pool[d.project[keep]],
            "token": d.token[keep],
            "amount": d.amount[keep],
            "round": d.round_amount[keep],
            "time": d.time[keep],
            "block": d.block[keep],
            "order": d.order[keep],
            "nonce": d.nonce[keep],
            "gas": d.gas_price[keep],
        }
    ).sort_values(["donor", "order"], kind="stable")
    out = np.full((n_donors, len(BEHAVIOUR_FEATURES)), np.nan)
    if frame.empty:
        return out
    by = frame.groupby("donor", sort=True)
    rows = by.size().index.to_numpy()
    col = {name: i for i, name in enumerate(BEHAVIOUR_FEATURES)}

    first = by.first()
    totals = by["amount"].sum(min_count=1)
    project_totals = frame.groupby(["donor", "project"])["amount"].sum(min_count=1)
    gaps = frame["time"].diff().where(frame["donor"].eq(frame["donor"].shift()))
    # Another donor gave to the same project in the same block.
    per_block = frame.groupby(["block", "project"])["donor"].transform("nunique")
    out[rows, col["donation_count"]] = by.size().to_numpy()
    out[rows, col["total_amount"]] = totals.to_numpy()
    out[rows, col["mean_amount"]] = by["amount"].mean().to_numpy()
    out[rows, col["amount_stddev"]] = by["amount"].std(ddof=0).fillna(0.0).to_numpy()
    out[rows, col["distinct_projects"]] = by["project"].nunique().to_numpy()
    out[rows, col["distinct_pools"]] = by["pool"].nunique().to_numpy()
    out[rows, col["distinct_tokens"]] = by["token"].nunique().to_numpy()
    out[rows, col["active_seconds"]] = (by["time"].max() - by["time"].min()).to_numpy()
    out[rows, col["first_nonce"]] = first["nonce"].to_numpy()
    out[rows, col["fresh_wallet"]] = (first["nonce"] < FRESH_NONCE).astype(np.float64).to_numpy()
    out[rows, col["median_gap_seconds"]] = gaps.groupby(frame["donor"]).median().reindex(rows).to_numpy()
    out[rows, col["round_amount_share"]] = by["round"].mean().to_numpy()
    out[rows, col["same_block_codonations"]] = (per_block > 1).groupby(frame["donor"]).sum().to_numpy()
    top = project_totals.groupby(level="donor").max().reindex(rows).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        out[rows, col["top_project_share"]] = np.where(totals.to_numpy() > 0, top / totals.to_numpy(), np.nan)
    out[rows, col["gas_price_distinct"]] = by["gas"].nunique().to_numpy()
    return out
