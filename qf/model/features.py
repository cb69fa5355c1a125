"""The model's feature vector: its names, order and missing-value rules, from the donation arrays.

Shared by training, the sidecar and ``qf score``, so the order and the fill
values are defined once and every path computes the same numbers with the same
code (:func:`feature_matrix` of a :class:`~qf.model.dataset.Dataset`). A donor's
vector is, in order:

* the behaviour features of :mod:`qf.model.behaviour` (the columns of
  ``qf.donor_features``, computed in numpy);
* the coordination features of :mod:`qf.model.coordination` (per project,
  per donor against its projects' other donors, per community);
* co-donation features computed here:

  - ``codonor_max_similarity`` -- highest cosine similarity (0..1) between the
    donor's set of projects and any other donor's: sybil farms and collusion
    rings fund the same projects;
  - ``codonor_similar_count`` -- how many other donors' project sets have cosine
    similarity >= 0.9 with the donor's (donors with one project excluded, since
    any two donors to one popular project would match);
  - ``mean_project_donors_log`` -- log1p of the mean number of donors of the
    donor's projects: fan-out attacks favour unknown projects.

* ``coordination_anomaly`` -- how unusual the donor's coordination features are
  among this round's donors: an Isolation Forest fitted without labels on the
  coordination features (``signed_log1p``) of the round's real donors, its
  ``-score_samples`` (higher = more unusual; about 0.35-0.45 is ordinary). It
  flags coordination shapes no label describes; the supervised model decides
  how much it counts. Training and serving compute it with the same exported
  kernel (:data:`CoordinationScore`); 0 when no model is given.

Missing values are filled (trees could route NaN, but the baselines cannot):
``median_gap_seconds`` and ``first_nonce`` with -1 (one donation / unknown),
``top_project_share`` with 1, anything else with 0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from scipy import sparse

from qf_sentinel.qf.model.behaviour import BEHAVIOUR_FEATURES, behaviour_features
from qf_sentinel.qf.model.coordination import COORDINATION_FEATURES, coordination_features
from qf_sentinel.qf.model.dataset import Dataset

FloatArray = npt.NDArray[np.float64]

GRAPH_FEATURES: tuple[str, ...] = ("codonor_max_similarity", "codonor_similar_count", "mean_project_donors_log")
ANOMALY_FEATURES: tuple[str, ...] = ("coordination_anomaly",)
FEATURE_NAMES: tuple[str, ...] = (*BEHAVIOUR_FEATURES, *COORDINATION_FEATURES, *GRAPH_FEATURES, *ANOMALY_FEATURES)
#: Columns of FEATURE_NAMES the coordination anomaly model reads, in order.
COORDINATION_COLUMNS: tuple[int, ...] = tuple(FEATURE_NAMES.index(n) for n in COORDINATION_FEATURES)
#: The unsupervised coordination score: signed_log1p'd coordination columns in, one score per row out.
CoordinationScore = Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]
FILL_VALUES: dict[str, float] = {"median_gap_seconds": -1.0, "first_nonce": -1.0, "top_project_share": 1.0}
SIMILAR_AT = 0.9
#: Seed of the community detection: fixed, so a donor's vector depends on the data only.
COMMUNITY_SEED = 0
_CHUNK_ROWS = 1024


def feature_matrix(
    dataset: Dataset,
    selected: npt.NDArray[np.bool_] | None = None,
    *,
    coordination: CoordinationScore | None = None,
) -> FloatArray:
    """[n_donors, len(FEATURE_NAMES)] float64, filled; only the ``selected`` donations count (default all).

    ``coordination`` scores the ``coordination_anomaly`` column (0 without it).
    """
    d = dataset.donations
    n = len(dataset.donors)
    keep = np.ones(d.size, dtype=bool) if selected is None else selected
    behaviour = behaviour_features(d, n, keep)
    coordination_part = coordination_features(d, n, seed=COMMUNITY_SEED, selected=keep)
    graph = graph_features(d.donor[keep], d.project[keep], n_donors=n, n_projects=len(d.project_ids))
    matrix = np.column_stack([behaviour, coordination_part, graph, np.zeros(n)])
    for j, name in enumerate(FEATURE_NAMES):
        matrix[:, j] = fill(matrix[:, j], name)
    if coordination is not None:
        matrix[:, -1] = coordination_anomaly(matrix, coordination)
    return np.ascontiguousarray(matrix, dtype=np.float64)


def coordination_input(matrix: npt.ArrayLike) -> FloatArray:
    """What the coordination anomaly model reads of full feature rows: signed_log1p of the coordination columns."""
    rows = np.atleast_2d(np.asarray(matrix, dtype=np.float64))
    return np.ascontiguousarray(signed_log1p(rows[:, list(COORDINATION_COLUMNS)]))


def coordination_anomaly(matrix: npt.ArrayLike, score: CoordinationScore) -> FloatArray:
    """The ``coordination_anomaly`` column of full feature rows."""
    return np.asarray(score(coordination_input(matrix)), dtype=np.float64)


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
