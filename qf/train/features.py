"""The model's feature vector: its names, order and missing-value rules, from plain arrays.

Shared by training and the scorer, so the order and the fill values can only
be defined once. A donor's vector is the per-donor columns of
``qf.donor_features`` (see ``sql/004_analytics.sql`` for their meaning and
units) followed by co-donation features computed here from the donations:

* ``codonor_max_similarity`` -- highest cosine similarity (0..1) between the
  donor's set of projects and any other donor's: sybil farms and collusion
  rings fund the same projects;
* ``codonor_similar_count`` -- how many other donors' project sets have cosine
  similarity >= 0.9 with the donor's (donors with one project excluded, since
  any two donors to one popular project would match);
* ``mean_project_donors_log`` -- log1p of the mean number of donors of the
  donor's projects: fan-out attacks favour unknown projects.

Missing values are filled (trees could route NaN, but the baselines cannot):
``median_gap_seconds`` and ``first_nonce`` with -1 (one donation / unknown),
``top_project_share`` with 1, anything else with 0.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import sparse

from qf.train.dataset import SQL_FEATURES

FloatArray = npt.NDArray[np.float64]

GRAPH_FEATURES: tuple[str, ...] = ("codonor_max_similarity", "codonor_similar_count", "mean_project_donors_log")
FEATURE_NAMES: tuple[str, ...] = (*SQL_FEATURES, *GRAPH_FEATURES)
FILL_VALUES: dict[str, float] = {"median_gap_seconds": -1.0, "first_nonce": -1.0, "top_project_share": 1.0}
SIMILAR_AT = 0.9
_CHUNK_ROWS = 1024


def graph_features(
    donor: npt.ArrayLike, project: npt.ArrayLike, *, n_donors: int, n_projects: int
) -> FloatArray:
    """[n_donors, 3] co-donation features from (donor, project) pairs of donations.

    Similarities are computed in row chunks of the donor x donor product, so
    memory stays O(chunk x donors) even for a Round 9-sized round.
    """
    donor = np.asarray(donor, dtype=np.int64)
    project = np.asarray(project, dtype=np.int64)
    out = np.zeros((n_donors, len(GRAPH_FEATURES)), dtype=np.float64)
    if donor.size == 0:
        return out
    x = sparse.csr_array(
        (np.ones(donor.size, dtype=np.float32), (donor, project)), shape=(n_donors, n_projects)
    )
    x.data[:] = 1.0  # duplicates summed: back to a set
    sizes = np.asarray(x.sum(axis=1)).ravel()
    norms = np.sqrt(sizes)
    norms[norms == 0] = 1.0
    xn = sparse.csr_array(sparse.diags_array(1.0 / norms) @ x)
    xt = xn.T.tocsr()
    multi = sizes >= 2
    for start in range(0, n_donors, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, n_donors)
        sim = (xn[start:stop] @ xt).toarray()
        rows = np.arange(stop - start)
        sim[rows, rows + start] = 0.0
        out[start:stop, 0] = sim.max(axis=1, initial=0.0)
        out[start:stop, 1] = ((sim >= SIMILAR_AT) & multi[None, :]).sum(axis=1) * multi[start:stop]
    project_donors = np.asarray(x.sum(axis=0)).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_donors = np.asarray(x @ project_donors).ravel() / sizes
    out[:, 2] = np.where(sizes > 0, np.log1p(np.nan_to_num(mean_donors)), 0.0)
    return out


def feature_matrix(donors: pd.DataFrame, graph: FloatArray) -> FloatArray:
    """[n, len(FEATURE_NAMES)] float64 matrix from qf.donor_features columns and :func:`graph_features`."""
    columns = [fill(donors[name].to_numpy(dtype=np.float64, na_value=np.nan), name) for name in SQL_FEATURES]
    matrix = np.column_stack([*columns, graph]) if columns else graph
    return np.ascontiguousarray(matrix, dtype=np.float64)


def fill(values: FloatArray, name: str) -> FloatArray:
    """Replace NaN (and infinities) by the feature's fill value."""
    out = np.array(values, dtype=np.float64)
    out[~np.isfinite(out)] = FILL_VALUES.get(name, 0.0)
    return out


def cold_start_row() -> FloatArray:
    """The vector of a donor never seen: every feature missing, i.e. 0 or its fill value (as training fills NULLs)."""
    row = np.zeros(len(FEATURE_NAMES), dtype=np.float64)
    for name, value in FILL_VALUES.items():
        row[FEATURE_NAMES.index(name)] = value
    return row


def first_donation_row(amount: float) -> FloatArray:
    """The vector of a donor never seen, as it will look once this one donation of ``amount`` is indexed.

    Closer to what the model was trained on (every training donor has at least
    one donation) than :func:`cold_start_row`; the wallet's nonce is unknown
    (-1) and it has no co-donors yet.
    """
    row = cold_start_row()
    values = {
        "donation_count": 1.0, "total_amount": amount, "mean_amount": amount, "distinct_projects": 1.0,
        "distinct_pools": 1.0, "distinct_tokens": 1.0, "round_amount_share": float(amount % 0.5 == 0),
        "gas_price_distinct": 1.0,
    }  # fmt: skip
    for name, value in values.items():
        row[FEATURE_NAMES.index(name)] = value
    return row


def signed_log1p(matrix: npt.ArrayLike) -> FloatArray:
    """sign(x) * log(1 + |x|): tames heavy-tailed amounts before distance-based models (LOF, k-means)."""
    values = np.asarray(matrix, dtype=np.float64)
    return np.sign(values) * np.log1p(np.abs(values))
