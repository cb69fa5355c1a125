"""Features that see coordination: what a project's donors have in common, and the donor's community.

A sybil attack needs many wallets that fund the same projects; whatever else it
hides, that leaves marks on the *projects* it targets and on the group of
wallets, not on any one wallet. So these features are computed per project and
per community, then handed to each donor as aggregates over what it funds. None
uses wallet history (nonces): a round of fresh real donors, or of aged attacker
wallets, must not decide. Each is documented with its unit and why it signals
coordination:

Per project (over all its donations), aggregated per donor as the
amount-weighted mean (``*_mean``) and the maximum (``*_max``) over the donor's
projects:

* ``exclusive`` (share 0..1 of the project's donors who fund nothing else):
  fan-out wallets exist for one recipient; real donors usually give to several;
* ``cohesion`` (mean pairwise cosine 0..1 of the other projects of the
  project's donors): a ring or a campaign funds the same set again and again,
  a real crowd's other choices are diverse;
* ``burst`` (share 0..1 of the project's donations in its busiest hour, beyond
  what its size explains: ``max(0, observed - expected)``): bursts of wallets
  arrive together;
* ``uniform`` (share 0..1 of the project's donations within 5% of its median
  donation): scripted wallets give the same amount;
* ``drip`` (0..1, how evenly the project's donations are spaced in time: one
  minus the coefficient of variation of the gaps, floored at 0): a slow drip
  is a metronome, real arrivals are irregular;
* ``time_surprise``, ``amount_surprise``, ``degree_surprise`` (Kolmogorov-Smirnov
  distance between the project's donations and all of its pool's, times
  sqrt(donations), so a few donations cannot look surprising by chance): in
  *when* they arrive, *how much* they give, and *how many projects* their
  donors fund. Whatever an attack imitates, its wallets are one actor's and
  tend to differ from the crowd in at least one of these; a real project's
  donors arrive, give and spread like the pool they belong to.

Per donor, against the other donors of the same projects:

* ``same_minute`` (log1p of the other donors who gave to one of the donor's
  projects within 60 s of it, less what the project's rate predicts, floored
  at 0): wallets run by one script donate together;
* ``amount_match`` (share 0..1 of the donor's donations within 5% of their
  project's median donation): the donor gives the campaign's amount.

Per community of the donor-project graph (Leiden, modularity, seeded; a
community holds donors and projects), the donor's community's:

* ``community_donors_log`` (log1p of its donors) and ``community_projects_log``;
* ``community_density`` (0..1, edges over donors x projects): a campaign's
  wallets each fund most of its projects;
* ``community_exclusivity`` (0..1, share of its donors' donations that go to
  its own projects): a closed group funds nothing outside;
* ``community_time_spread`` (0..1, standard deviation of its donations' times
  over the round's length): spread of activity;
* ``community_amount_cv`` (coefficient of variation of its donations'
  amounts, 0 = identical): uniformity of a group.
"""

from __future__ import annotations

import hashlib
import random
import threading
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse

from qf_sentinel.qf.model.dataset import Donations

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

PROJECT_METRICS: tuple[str, ...] = (
    "exclusive", "cohesion", "burst", "uniform", "drip", "time_surprise", "amount_surprise", "degree_surprise",
)
DONOR_METRICS: tuple[str, ...] = ("same_minute", "amount_match")
COMMUNITY_METRICS: tuple[str, ...] = (
    "community_donors_log",
    "community_projects_log",
    "community_density",
    "community_exclusivity",
    "community_time_spread",
    "community_amount_cv",
)
COORDINATION_FEATURES: tuple[str, ...] = (
    *(f"{m}_{agg}" for m in PROJECT_METRICS for agg in ("mean", "max")),
    *DONOR_METRICS,
    *COMMUNITY_METRICS,
)
BURST_SECONDS = 3600.0
SAME_MINUTE_SECONDS = 60.0
AMOUNT_TOLERANCE = 0.05
_IGRAPH_LOCK = threading.Lock()
#: (graph digest, membership) of the last partition (see :func:`communities`)
_LAST_PARTITION: list[Any] = []


def coordination_features(
    d: Donations, n_donors: int, *, seed: int = 0, selected: npt.NDArray[np.bool_] | None = None
) -> FloatArray:
    """[n_donors, len(COORDINATION_FEATURES)] from the donations (``selected`` limits which count)."""
    keep = np.ones(d.size, dtype=bool) if selected is None else selected
    donor, project = d.donor[keep], d.project[keep]
    time = d.time[keep]
    amount = np.nan_to_num(d.amount[keep], nan=0.0)
    n_projects = len(d.project_ids)
    out = np.zeros((n_donors, len(COORDINATION_FEATURES)))
    if donor.size == 0:
        return out
    gave = sparse.csr_array((np.ones(donor.size), (donor, project)), shape=(n_donors, n_projects))
    gave.data[:] = 1.0  # a set of projects per donor
    metrics = project_metrics(donor, project, time, amount, gave, pool=d.project_pool)
    # Aggregate per donor: amount-weighted mean and max over the donor's projects.
    weights = sparse.csr_array((amount + 1e-12, (donor, project)), shape=(n_donors, n_projects))
    row_sum = np.asarray(weights.sum(axis=1)).ravel()
    row_sum[row_sum == 0] = 1.0
    column = 0
    for m in PROJECT_METRICS:
        values = metrics[m]
        out[:, column] = (weights @ values) / row_sum
        out[:, column + 1] = _row_max(gave, values)
        column += 2
    out[:, column] = _same_minute(donor, project, time, n_donors)
    out[:, column + 1] = _amount_match(donor, project, amount, n_donors, n_projects)
    column += 2
    out[:, column:] = _community_features(donor, project, time, amount, gave, seed=seed)
    return out


def project_metrics(
    donor: IntArray,
    project: IntArray,
    time: FloatArray,
    amount: FloatArray,
    gave: sparse.csr_array,
    *,
    pool: IntArray | None = None,
) -> dict[str, FloatArray]:
    """The per-project metrics of the module docstring, one value per project column of ``gave``."""
    n_projects = gave.shape[1]
    by_project = gave.T.tocsr()
    donors_of = np.diff(by_project.indptr).astype(np.float64)
    degree = np.diff(gave.indptr)
    single = (degree == 1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        exclusive = np.where(donors_of > 0, (by_project @ single) / donors_of, 0.0)
    cohesion = _cohesion(gave, by_project)
    duration = max(float(time.max() - time.min()), BURST_SECONDS)
    burst = np.zeros(n_projects)
    uniform = np.zeros(n_projects)
    drip = np.zeros(n_projects)
    order = np.lexsort((time, project))
    starts = np.searchsorted(project[order], np.arange(n_projects + 1))
    for p in range(n_projects):
        rows = order[starts[p] : starts[p + 1]]
        n = rows.size
        if n < 2:
            continue
        t = time[rows]
        busiest = np.searchsorted(t, t + BURST_SECONDS, side="right") - np.arange(n)
        expected = min(1.0, BURST_SECONDS / duration * 2)
        burst[p] = max(0.0, busiest.max() / n - expected) if n >= 3 else 0.0
        a = amount[rows]
        median = float(np.median(a))
        uniform[p] = float(np.mean(np.abs(a - median) <= AMOUNT_TOLERANCE * median)) if median > 0 else 0.0
        if n >= 4:
            gaps = np.diff(t)
            mean_gap = float(gaps.mean())
            drip[p] = max(0.0, 1.0 - float(gaps.std()) / mean_gap) if mean_gap > 0 else 0.0
    pool_of = np.zeros(n_projects, dtype=np.int64) if pool is None else pool
    donor_degree = degree[donor].astype(np.float64)
    surprise = {
        name: _surprise(values, project, pool_of, n_projects)
        for name, values in (("time_surprise", time), ("amount_surprise", amount), ("degree_surprise", donor_degree))
    }
    return {"exclusive": exclusive, "cohesion": cohesion, "burst": burst, "uniform": uniform, "drip": drip} | surprise


def _surprise(values: FloatArray, project: IntArray, pool_of: IntArray, n_projects: int) -> FloatArray:
    """sqrt(n) x KS distance between each project's values and its pool's (the pool's empirical CDF)."""
    out = np.zeros(n_projects)
    pool = pool_of[project]
    for k in np.unique(pool):
        mine = pool == k
        reference = np.sort(values[mine])
        n_ref = reference.size
        rows = np.flatnonzero(mine)
        order = rows[np.lexsort((values[rows], project[rows]))]
        starts = np.searchsorted(project[order], np.arange(n_projects + 1))
        for p in np.flatnonzero(np.diff(starts) > 0):
            x = values[order[starts[p] : starts[p + 1]]]
            n = x.size
            below = np.searchsorted(reference, x, side="left") / n_ref
            upto = np.searchsorted(reference, x, side="right") / n_ref
            ranks = np.arange(1, n + 1) / n
            gap = max(float(np.max(ranks - below)), float(np.max(upto - (ranks - 1 / n))))
            out[p] = np.sqrt(n) * max(0.0, gap)
    return out


def _cohesion(gave: sparse.csr_array, by_project: sparse.csr_array) -> FloatArray:
    """Mean pairwise cosine of the donors' *other* projects, per project, in O(nonzeros).

    With unit rows ``u_i`` (a donor's projects, L2-normalised), the sum over
    ordered pairs ``i != j`` of ``u_i . u_j`` is ``|sum u_i|^2 - n``; the
    project's own column (shared by all) is left out of every row first.
    """
    n_projects = gave.shape[1]
    degree = np.diff(gave.indptr).astype(np.float64)
    others = degree - 1  # the donor's other projects, for every project it funds
    out = np.zeros(n_projects)
    inv_norm = np.where(others > 0, 1.0 / np.sqrt(np.maximum(others, 1)), 0.0)
    unit = sparse.csr_array(sparse.diags_array(inv_norm) @ gave)
    for p in range(n_projects):
        members = by_project.indices[by_project.indptr[p] : by_project.indptr[p + 1]]
        members = members[others[members] > 0]
        n = members.size
        if n < 2:
            continue
        total = np.asarray(unit[members].sum(axis=0)).ravel()
        total[p] -= inv_norm[members].sum()  # drop the shared column p
        out[p] = max(0.0, (float(total @ total) - n) / (n * (n - 1)))
    return out


def _row_max(gave: sparse.csr_array, values: FloatArray) -> FloatArray:
    out = np.zeros(gave.shape[0])
    picked = values[gave.indices]
    nonempty = np.diff(gave.indptr) > 0
    out[nonempty] = np.maximum.reduceat(picked, gave.indptr[:-1][nonempty]) if picked.size else 0.0
    return out


def _same_minute(donor: IntArray, project: IntArray, time: FloatArray, n_donors: int) -> FloatArray:
    """Per donor, log1p of the excess of other donors within a minute at its projects over the project's rate."""
    order = np.lexsort((time, project))
    p_sorted, t_sorted, d_sorted = project[order], time[order], donor[order]
    n_projects = int(project.max()) + 1
    starts = np.searchsorted(p_sorted, np.arange(n_projects + 1))
    duration = max(float(time.max() - time.min()), SAME_MINUTE_SECONDS)
    excess = np.zeros(donor.size)
    for p in range(n_projects):
        lo, hi = starts[p], starts[p + 1]
        n = hi - lo
        if n < 2:
            continue
        t = t_sorted[lo:hi]
        within = np.searchsorted(t, t + SAME_MINUTE_SECONDS, side="right") - np.searchsorted(
            t, t - SAME_MINUTE_SECONDS, side="left"
        )
        expected = (n - 1) * min(1.0, 2 * SAME_MINUTE_SECONDS / duration)
        # the donor's own other donations to p in that minute do not count as co-donors
        own = _own_within(d_sorted[lo:hi], t)
        excess[lo:hi] = np.maximum(0.0, within - own - expected)
    out = np.zeros(n_donors)
    np.maximum.at(out, d_sorted, excess)
    return np.log1p(out)


def _own_within(donors: IntArray, t: FloatArray) -> FloatArray:
    """For each donation (sorted by time), how many donations of the same donor lie within a minute (itself too)."""
    out = np.ones(donors.size)
    order = np.lexsort((t, donors))
    d, tt = donors[order], t[order]
    boundaries = np.flatnonzero(np.diff(d)) + 1
    for group in np.split(np.arange(d.size), boundaries):
        if group.size > 1:
            times = tt[group]
            out[order[group]] = np.searchsorted(times, times + SAME_MINUTE_SECONDS, side="right") - np.searchsorted(
                times, times - SAME_MINUTE_SECONDS, side="left"
            )
    return out


def _amount_match(donor: IntArray, project: IntArray, amount: FloatArray, n_donors: int, n_projects: int) -> FloatArray:
    median = np.zeros(n_projects)
    order = np.argsort(project, kind="stable")
    starts = np.searchsorted(project[order], np.arange(n_projects + 1))
    for p in range(n_projects):
        rows = order[starts[p] : starts[p + 1]]
        if rows.size >= 2:
            median[p] = np.median(amount[rows])
    near = (median[project] > 0) & (np.abs(amount - median[project]) <= AMOUNT_TOLERANCE * median[project])
    count = np.bincount(donor, minlength=n_donors).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.bincount(donor, weights=near, minlength=n_donors) / count, 0.0)


def donor_communities(d: Donations, n_donors: int, *, seed: int = 0) -> IntArray:
    """Each donor's community (as the coordination features see it); -1 for a donor without donations."""
    if d.size == 0:
        return np.full(n_donors, -1, dtype=np.int64)
    gave = sparse.csr_array((np.ones(d.size), (d.donor, d.project)), shape=(n_donors, len(d.project_ids)))
    gave.data[:] = 1.0
    membership, _ = communities(gave, seed)
    membership[np.diff(gave.indptr) == 0] = -1
    return membership


def communities(gave: sparse.csr_array, seed: int) -> tuple[IntArray, IntArray]:
    """Leiden communities (modularity) of the donor-project graph: (donor's community, project's community).

    The last answer is kept: `qf score` needs the communities the features were computed over, and Leiden
    is most of the features' time (1 s on Round 9), so the same graph is not partitioned twice.
    """
    import igraph  # noqa: PLC0415 - only needed here

    n_donors, n_projects = gave.shape
    coo = gave.tocoo()
    key = hashlib.sha256(np.asarray([n_donors, n_projects, seed], dtype=np.int64).tobytes())
    key.update(np.ascontiguousarray(coo.row, dtype=np.int64).tobytes())
    key.update(np.ascontiguousarray(coo.col, dtype=np.int64).tobytes())
    # igraph draws from one process-wide generator (Python's random module by default), which other threads
    # (a server's) also draw from: a private seeded generator, one detection at a time, keeps it reproducible.
    with _IGRAPH_LOCK:
        if _LAST_PARTITION and _LAST_PARTITION[0] == key.digest():
            membership = _LAST_PARTITION[1]
        else:
            graph = igraph.Graph(n=n_donors + n_projects, edges=np.column_stack([coo.row, n_donors + coo.col]).tolist())
            igraph.set_random_number_generator(random.Random(seed))
            try:
                partition = graph.community_leiden(objective_function="modularity", n_iterations=-1)
            finally:
                igraph.set_random_number_generator(random)
            membership = np.asarray(partition.membership, dtype=np.int64)
            membership.setflags(write=False)
            _LAST_PARTITION[:] = [key.digest(), membership]
    return membership[:n_donors].copy(), membership[n_donors:].copy()


def _community_features(
    donor: IntArray, project: IntArray, time: FloatArray, amount: FloatArray, gave: sparse.csr_array, *, seed: int
) -> FloatArray:
    n_donors = gave.shape[0]
    donor_community, project_community = communities(gave, seed)
    k = int(max(donor_community.max(initial=0), project_community.max(initial=0))) + 1
    members = np.bincount(donor_community, minlength=k).astype(np.float64)
    projects = np.bincount(project_community, minlength=k).astype(np.float64)
    edges = gave.tocoo()
    edges_inside = np.bincount(
        donor_community[edges.row],
        weights=(donor_community[edges.row] == project_community[edges.col]).astype(np.float64),
        minlength=k,
    )
    inside = (donor_community[donor] == project_community[project]).astype(np.float64)
    donations = np.bincount(donor_community[donor], minlength=k).astype(np.float64)
    duration = max(float(time.max() - time.min()), 1.0)
    c = donor_community[donor]
    mean_t = np.bincount(c, weights=time, minlength=k) / np.maximum(donations, 1)
    var_t = np.bincount(c, weights=(time - mean_t[c]) ** 2, minlength=k) / np.maximum(donations, 1)
    mean_a = np.bincount(c, weights=amount, minlength=k) / np.maximum(donations, 1)
    var_a = np.bincount(c, weights=(amount - mean_a[c]) ** 2, minlength=k) / np.maximum(donations, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_community = np.column_stack([
            np.log1p(members),
            np.log1p(projects),
            np.where(members * projects > 0, edges_inside / (members * projects), 0.0),
            np.where(donations > 0, np.bincount(c, weights=inside, minlength=k) / donations, 0.0),
            np.sqrt(var_t) / duration,
            np.where(mean_a > 0, np.sqrt(var_a) / mean_a, 0.0),
        ])  # fmt: skip
    return per_community[donor_community][:n_donors]
