"""Contribution features as of the moment of the call: what the gate can know before a donation exists.

A dApp backend asks the sidecar about a contribution *before* it is sent. At
that instant the gate knows the donor's indexed history (often none: a farm's
wallets give once each), the contribution itself, the wallet's facts on chain
(its nonce), and what is happening right now at the recipient and in the pool:
who arrived in the last minutes, how many were new wallets, whether their
amounts repeat, whether they give anywhere else. :class:`LiveState` holds that
state for one chain and computes :data:`CONTRIBUTION_FEATURES` from it as of a
time; it is the *one* code path behind training (every indexed donation
replayed in chain order, each featurised before it is applied), ``qf eval
--live``, ``qf score`` and the sidecar (which also counts the contributions it
was asked about but that are not indexed yet, as *attempts*).

Point in time, by construction: :meth:`LiveState.features` reads only what was
applied before it is called, and among that only what happened at or before
the contribution's time (window counts stop at ``time``), so no feature sees
the future; ``tests/model/test_live.py`` proves it by rewriting the future.

One donor, several chains: a wallet is an address on every chain, so its
history includes what it gave on the other indexed chains (landed with
``here=False``, their projects and pools keyed apart); the projects and pools
whose live state the features read are this chain's.

Arrivals and history: an *arrival* is a contribution seen at a project (an
attempt the sidecar scored, or an indexed donation nobody asked about); it
feeds the windows and the recency statistics. *History* (a donor's projects, a
project's donors) only grows with landed (indexed) donations. A landed
donation that matches a pending attempt of the same donor and project is not
counted as a second arrival.

Memory: per project, the arrivals of the last :data:`LONG_WINDOW` seconds (and
at least the last :data:`RECENT` of them); per pool, the last hour of arrival
times; per donor, its set of projects; per project, its set of donors: O(distinct
(donor, project) pairs) plus what arrived in the last hour. Pending attempts
expire after :data:`ATTEMPT_TTL` seconds. Measured in ``bench/scorer_grpc.py``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Container, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from qf_sentinel.qf.model.dataset import Dataset

FloatArray = npt.NDArray[np.float64]

#: The short and long windows of the arrival counts (seconds).
SHORT_WINDOW = 600.0
LONG_WINDOW = 3600.0
#: How many of a project's latest arrivals the recency statistics look at.
RECENT = 20
#: Of those, how many donors' project sets are compared pairwise (overlap).
OVERLAP_DONORS = 8
#: At most this many of a project's latest arrivals are scanned for new wallets arriving together.
COARRIVALS_SCANNED = 64
#: A donor's latest this many distinct projects are what overlaps between donors compare.
DONOR_RECENT_PROJECTS = 16
#: Two amounts are "the same" within this relative difference.
SAME_AMOUNT = 0.02
#: A pending attempt not matched by an indexed donation within this many seconds is forgotten.
ATTEMPT_TTL = 3600.0
#: The nonce is capped here: past it, a wallet is simply old. An unknown nonce reads as this value (see below).
NONCE_CAP = 1000.0

CONTRIBUTION_FEATURES: tuple[str, ...] = (
    # the contribution itself
    "amount_log",                     # log1p(amount in token units)
    "amount_round",                   # 1 when the amount is a multiple of 0.5 token units
    # the wallet, on chain at the call
    "wallet_nonce",                   # transactions sent before this one (capped; unknown = NONCE_CAP)
    # the donor's indexed history: this chain's rounds, and the same address's donations on other chains
    "donor_prior_donations",
    "donor_prior_projects",
    "donor_hours_active",             # since its first indexed donation (0 without one)
    "donor_gave_here_before",
    "donor_reach",                    # log1p(donors of the most popular project it gave to; 0 without history)
    # the recipient, as of the call
    "project_donors_log",             # log1p(distinct donors so far)
    "project_age_hours",              # since its first arrival (0 for the first)
    "project_arrivals_10m",
    "project_arrivals_1h",
    "project_burst",                  # log1p(arrivals in the last hour) - log1p(its usual hourly rate before that)
    "project_recent_new_share",       # of its last RECENT arrivals, those from wallets new to the index
    "project_recent_exclusive_share", # of those donors, the ones who gave nowhere else
    "project_recent_amount_cv",       # coefficient of variation of their amounts
    "project_same_amount_share",      # share of them within SAME_AMOUNT of this amount
    "project_same_amount_streak",     # latest arrivals in a row within SAME_AMOUNT of this amount
    "project_new_coarrivals_10m",     # distinct new wallets that arrived here in the last 10 minutes (<= 64)
    "project_recent_overlap",         # how much the latest donors' latest projects coincide (0..1)
    "project_recent_reach",           # median donor_reach of the latest donors (their other projects only)
    # the pool, as of the call
    "pool_burst",
    "pool_recent_new_share",          # share of the pool's arrivals in the last hour from new wallets
)  # fmt: skip
#: Wallet history may raise risk, never lower it: a higher nonce can only lower the score (monotone, -1).
MONOTONE_DECREASING: frozenset[str] = frozenset({"wallet_nonce"})
_INDEX = {name: i for i, name in enumerate(CONTRIBUTION_FEATURES)}
N_FEATURES = len(CONTRIBUTION_FEATURES)
(
    _AMOUNT_LOG, _AMOUNT_ROUND, _NONCE, _DONOR_COUNT, _DONOR_PROJECTS, _DONOR_HOURS, _DONOR_HERE, _DONOR_REACH,
    _PROJECT_DONORS, _PROJECT_AGE, _ARRIVALS_10M, _ARRIVALS_1H, _PROJECT_BURST, _RECENT_NEW, _RECENT_EXCLUSIVE,
    _RECENT_CV, _SAME_SHARE, _SAME_STREAK, _NEW_COARRIVALS, _RECENT_OVERLAP, _RECENT_REACH, _POOL_BURST, _POOL_NEW,
) = range(N_FEATURES)


@dataclass(frozen=True, slots=True)
class Contribution:
    """One contribution as the gate sees it: who, to what, how much, when (unix seconds), and the wallet's nonce.

    ``donor``, ``project`` and ``pool`` are any hashable keys (the sidecar uses
    20-byte addresses and ``"pool_id:0xrecipient"`` strings, as
    :class:`qf.model.dataset.Donations` does). ``nonce`` is None when unknown.
    """

    donor: Hashable
    project: Hashable
    pool: Hashable
    amount: float
    time: float
    nonce: int | None = None
    round_amount: bool | None = None
    #: the block it landed in (replays land a block's donations once the whole block is featurised)
    block: int = -1
    #: the donated token's address (None: unknown), for the funding features
    token: bytes | None = None


@dataclass(slots=True)
class _Donor:
    """A wallet: its landed (indexed) history, and its arrivals (attempts too), which show intent at once."""

    first_time: float = math.inf
    count: int = 0
    #: projects of its landed donations
    projects: set[Hashable] = field(default_factory=set)
    #: the two most popular distinct projects it gave to: (donors of the project when it gave, project)
    best: list[tuple[int, Hashable]] = field(default_factory=list)
    #: every project it arrived at (asked about or gave to)
    seen: set[Hashable] = field(default_factory=set)
    #: its latest distinct projects arrived at (at most DONOR_RECENT_PROJECTS), what overlaps compare
    recent: list[Hashable] = field(default_factory=list)

    def saw(self, popularity: int, project: Hashable) -> None:
        """Keep the two most popular distinct projects, popularity as of the donation (O(1), point in time)."""
        best = [b for b in self.best if b[1] != project]
        best.append((popularity, project))
        best.sort(key=lambda b: b[0], reverse=True)
        self.best = best[:2]

    def reach(self, excluding: Hashable | None = None) -> float:
        """log1p(donors of its most popular project other than ``excluding``, as of when it gave there)."""
        for popularity, project in self.best:
            if project != excluding:
                return math.log1p(popularity)
        return 0.0

    def arrive(self, project: Hashable) -> None:
        if project not in self.seen:
            self.seen.add(project)
            self.recent.append(project)
            if len(self.recent) > DONOR_RECENT_PROJECTS:
                del self.recent[0]


@dataclass(slots=True)
class _Arrivals:
    """Arrivals sorted by time, in parallel lists (the last LONG_WINDOW seconds and at least RECENT of them)."""

    times: list[float] = field(default_factory=list)
    donors: list[Hashable] = field(default_factory=list)
    amounts: list[float] = field(default_factory=list)
    new: list[bool] = field(default_factory=list)
    #: new_before[i] - new_before[j] = new wallets among arrivals j..i-1 (one more entry than ``times``), so a
    #: window's share of new wallets costs two lookups however busy the window is
    new_before: list[int] = field(default_factory=lambda: [0])
    first_time: float = math.inf
    total: int = 0

    def add(self, time: float, donor: Hashable, amount: float, new: bool) -> None:
        i = bisect.bisect_right(self.times, time)
        self.times.insert(i, time)
        self.donors.insert(i, donor)
        self.amounts.insert(i, amount)
        self.new.insert(i, new)
        counts = self.new_before
        counts.insert(i + 1, counts[i] + new)
        if new and i + 2 < len(counts):  # arrived out of order: the later prefix counts grow by one
            for j in range(i + 2, len(counts)):
                counts[j] += 1
        self.first_time = min(self.first_time, time)
        self.total += 1
        self._evict(self.times[-1] - LONG_WINDOW)

    def new_between(self, start: int, end: int) -> int:
        """New wallets among the arrivals ``start..end-1``."""
        return self.new_before[end] - self.new_before[start]

    def _evict(self, before: float) -> None:
        cut = min(bisect.bisect_left(self.times, before), len(self.times) - RECENT)
        if cut > 64:  # in chunks: deleting from the front of a list is O(n)
            del self.times[:cut], self.donors[:cut], self.amounts[:cut], self.new[:cut], self.new_before[:cut]


@dataclass(slots=True)
class _Project:
    arrivals: _Arrivals = field(default_factory=_Arrivals)
    donors: set[Hashable] = field(default_factory=set)


class LiveState:
    """One chain's donors, projects and pools as of the contributions applied so far (see the module docstring).

    Not thread-safe: the sidecar serialises calls with a lock (each is microseconds).
    """

    def __init__(self) -> None:
        self._donors: dict[Hashable, _Donor] = {}
        self._projects: dict[Hashable, _Project] = {}
        self._pools: dict[Hashable, _Arrivals] = {}
        self._pending: dict[tuple[Hashable, Hashable], list[float]] = {}
        #: latest time of a landed (indexed) donation applied
        self.latest_landed = -math.inf
        self.landed = 0
        #: donations of other chains applied as their donors' history
        self.landed_elsewhere = 0
        self.attempts = 0

    # -- applying ----------------------------------------------------------------------------------

    def attempt(self, c: Contribution) -> None:
        """A contribution the gate was asked about: it arrives now; its donor's history waits for the index."""
        self._arrive(c)
        self._pending.setdefault((c.donor, c.project), []).append(c.time)
        self.attempts += 1

    def land(self, c: Contribution, *, here: bool = True) -> None:
        """An indexed donation: history grows; it arrives unless it is the landing of a pending attempt.

        ``here=False`` for a donation on another chain (keyed apart, :func:`qf.model.loader.load_elsewhere`):
        its donor's history grows the same, but it does not move this chain's clock or landed count.
        """
        pending = self._pending.get((c.donor, c.project))
        if pending:
            while pending and pending[0] < c.time - ATTEMPT_TTL:
                pending.pop(0)
        if pending:
            pending.pop(0)
            if not pending:
                del self._pending[(c.donor, c.project)]
        else:
            self._arrive(c)
        donor = self._donors[c.donor]  # _arrive made it, now or when the attempt arrived
        donor.projects.add(c.project)
        donor.count += 1
        donor.first_time = min(donor.first_time, c.time)
        project = self._projects[c.project]
        project.donors.add(c.donor)
        donor.saw(len(project.donors), c.project)
        if here:
            self.latest_landed = max(self.latest_landed, c.time)
            self.landed += 1
        else:
            self.landed_elsewhere += 1

    def replay(self, contributions: Iterable[Contribution]) -> None:
        """Apply indexed donations in chain order (the sidecar's start-up and every rebuild)."""
        for c in contributions:
            self.land(c)

    def forget_stale_attempts(self, now: float) -> int:
        """Drop pending attempts older than :data:`ATTEMPT_TTL`; returns how many."""
        dropped = 0
        for key in list(self._pending):
            times = self._pending[key]
            keep = [t for t in times if t >= now - ATTEMPT_TTL]
            dropped += len(times) - len(keep)
            if keep:
                self._pending[key] = keep
            else:
                del self._pending[key]
        return dropped

    def pending_attempts(self) -> list[tuple[Hashable, Hashable, float]]:
        """``(donor, project, time)`` of every pending attempt: carried over when the state is rebuilt."""
        return [(d, p, t) for (d, p), times in self._pending.items() for t in times]

    def _arrive(self, c: Contribution) -> None:
        donor = self._donors.get(c.donor)
        if donor is None:
            donor = self._donors[c.donor] = _Donor()
        new = donor.count == 0
        donor.arrive(c.project)
        project = self._projects.get(c.project)
        if project is None:
            project = self._projects[c.project] = _Project()
        project.arrivals.add(c.time, c.donor, c.amount, new)
        pool = self._pools.get(c.pool)
        if pool is None:
            pool = self._pools[c.pool] = _Arrivals()
        pool.add(c.time, c.donor, c.amount, new)

    # -- reading -----------------------------------------------------------------------------------

    def arrived(self) -> Container[Hashable]:
        """Every donor that has arrived (asked about or indexed): the round's donors so far (membership)."""
        return self._donors

    def project_donors(self, project: Hashable) -> Container[Hashable]:
        """The donors of the project's landed donations (membership)."""
        found = self._projects.get(project)
        return found.donors if found is not None else frozenset()

    def is_known(self, donor: Hashable) -> bool:
        """Whether the donor has an indexed donation (otherwise its contribution is its first)."""
        history = self._donors.get(donor)
        return history is not None and history.count > 0

    def features(self, c: Contribution, out: FloatArray | None = None) -> FloatArray:
        """:data:`CONTRIBUTION_FEATURES` of ``c`` as of ``c.time``, from what was applied before this call."""
        row = np.zeros(N_FEATURES) if out is None else out
        if out is not None:
            row[:] = 0.0
        t = c.time
        amount = c.amount if math.isfinite(c.amount) and c.amount > 0 else 0.0
        row[_AMOUNT_LOG] = math.log1p(amount)
        row[_AMOUNT_ROUND] = float(c.round_amount if c.round_amount is not None else (amount * 2).is_integer())
        row[_NONCE] = NONCE_CAP if c.nonce is None or c.nonce < 0 else min(float(c.nonce), NONCE_CAP)
        donor = self._donors.get(c.donor)
        if donor is not None and donor.count:
            row[_DONOR_COUNT] = donor.count
            row[_DONOR_PROJECTS] = len(donor.projects)
            row[_DONOR_HOURS] = max(t - donor.first_time, 0.0) / 3600.0
            row[_DONOR_HERE] = float(c.project in donor.projects)
            row[_DONOR_REACH] = donor.reach()

        project = self._projects.get(c.project)
        if project is not None:
            self._project_features(project, c, amount, row)
        pool = self._pools.get(c.pool)
        if pool is not None:
            end = bisect.bisect_right(pool.times, t)
            hour = bisect.bisect_left(pool.times, t - LONG_WINDOW, 0, end)
            before_hour = pool.total - (len(pool.times) - end) - (end - hour)
            row[_POOL_BURST] = _burst(end - hour, before_hour, pool.first_time, t)
            row[_POOL_NEW] = pool.new_between(hour, end) / (end - hour) if end > hour else 0.0
        return row

    def _project_features(self, project: _Project, c: Contribution, amount: float, row: FloatArray) -> None:
        a = project.arrivals
        t = c.time
        row[_PROJECT_DONORS] = math.log1p(len(project.donors))
        row[_PROJECT_AGE] = max(t - a.first_time, 0.0) / 3600.0 if a.total else 0.0
        end = bisect.bisect_right(a.times, t)
        short = bisect.bisect_left(a.times, t - SHORT_WINDOW, 0, end)
        hour = bisect.bisect_left(a.times, t - LONG_WINDOW, 0, end)
        row[_ARRIVALS_10M] = end - short
        row[_ARRIVALS_1H] = end - hour
        before_hour = a.total - (len(a.times) - end) - (end - hour)
        row[_PROJECT_BURST] = _burst(end - hour, before_hour, a.first_time, t)
        start = max(0, end - RECENT)
        donors = a.donors[start:end]
        amounts = a.amounts[start:end]
        n = len(donors)
        if n == 0:
            return
        row[_RECENT_NEW] = a.new_between(start, end) / n
        donors_of = self._donors
        here = c.project
        exclusive = 0
        for d in donors:
            history = donors_of.get(d)
            # gave nowhere else: it arrived at no project, or at this one only
            if history is None or (len(history.seen) <= 1 and (not history.seen or here in history.seen)):
                exclusive += 1
        row[_RECENT_EXCLUSIVE] = exclusive / n
        total = 0.0
        for x in amounts:
            total += x
        mean = total / n
        if n > 1 and mean > 0:
            spread = 0.0
            for x in amounts:
                spread += (x - mean) * (x - mean)
            row[_RECENT_CV] = math.sqrt(spread / n) / mean
        same = streak = 0
        if amount > 0:
            tolerance = SAME_AMOUNT * amount
            run = True
            for x in reversed(amounts):
                if abs(x - amount) <= tolerance:
                    same += 1
                    if run:
                        streak += 1
                else:
                    run = False
        row[_SAME_SHARE] = same / n
        row[_SAME_STREAK] = streak
        # distinct new wallets among the window's latest COARRIVALS_SCANNED arrivals (the count saturates there)
        news, names = a.new, a.donors
        scan = range(max(short, end - COARRIVALS_SCANNED), end)
        row[_NEW_COARRIVALS] = len({names[i] for i in scan if news[i] and names[i] != c.donor})
        latest = self._latest_donors(donors, c.donor)
        row[_RECENT_OVERLAP] = _overlap([h.recent for h in latest])
        if latest:
            row[_RECENT_REACH] = _median([h.reach(c.project) for h in latest])

    def _latest_donors(self, donors: list[Hashable], current: Hashable) -> list[_Donor]:
        """The histories of the latest :data:`OVERLAP_DONORS` distinct donors with one, newest first."""
        latest: list[_Donor] = []
        seen: set[Hashable] = {current}
        for d in reversed(donors):
            if d in seen:
                continue
            seen.add(d)
            history = self._donors.get(d)
            if history is not None and history.recent:
                latest.append(history)
                if len(latest) == OVERLAP_DONORS:
                    break
        return latest


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def _overlap(project_lists: list[list[Hashable]]) -> float:
    """How much the donors' latest projects coincide: mean pairwise intersection over mean list size (0..1).

    1 when every donor gave to the same projects (a ring), near 0 when their
    carts are unrelated; 0 with fewer than two donors. O(total length), not O(pairs x length).
    """
    n = len(project_lists)
    if n < 2:
        return 0.0
    counts: dict[Hashable, int] = {}
    size = 0
    for projects in project_lists:
        size += len(projects)
        for key in projects:
            counts[key] = counts.get(key, 0) + 1
    shared_pairs = sum(k * (k - 1) for k in counts.values()) / (n * (n - 1))
    return shared_pairs / (size / n) if size else 0.0


def _burst(in_hour: int, before: int, first_time: float, t: float) -> float:
    """log1p(arrivals in the last hour) - log1p(the usual hourly rate over the time before that hour)."""
    hours_before = max((t - LONG_WINDOW - first_time) / 3600.0, 1.0)
    usual = max(before, 0) / hours_before
    return math.log1p(in_hour) - math.log1p(usual)


def feature_index(name: str) -> int:
    """The column of ``name`` in :data:`CONTRIBUTION_FEATURES`."""
    return _INDEX[name]


def contributions_of(dataset: Dataset) -> list[Contribution]:
    """Every donation of ``dataset`` as a :class:`Contribution`, in chain order (as the index holds them)."""
    d = dataset.donations
    addresses = dataset.donors["address"].to_numpy()
    pools = [key.partition(":")[0] for key in d.project_ids]
    tokens = [bytes.fromhex(t) for t in d.token_ids]
    round_amount = d.round_amount
    return [
        Contribution(
            donor=addresses[donor], project=d.project_ids[project], pool=pools[project],
            amount=float(amount), time=float(time), nonce=int(nonce),
            round_amount=None if math.isnan(r) else bool(r), block=int(block),
            token=tokens[token] if tokens else None,
        )
        for donor, project, amount, time, nonce, r, block, token in zip(
            d.donor.tolist(), d.project.tolist(), d.amount.tolist(), d.time.tolist(), d.nonce.tolist(),
            round_amount.tolist(), d.block.tolist(), d.token.tolist(), strict=True,
        )
    ]  # fmt: skip


#: Called for each contribution of a replay once its features are computed, before it arrives: ``(row, c, state)``.
AlsoHook = Callable[[int, Contribution, "LiveState"], None]


def replay_features(
    contributions: Sequence[Contribution], state: LiveState | None = None, also: AlsoHook | None = None,
    elsewhere: Sequence[Contribution] = (),
) -> FloatArray:
    """Each contribution's features as the sidecar would have computed them when it was asked, in chain order.

    What training, ``qf score`` and the evaluations see of an indexed round: each
    donation is featurised, then counted as an attempt (the next call sees it
    arrive), and a block's donations land (join the donors' histories) only after
    the whole block is featurised, as the index only knows mined blocks. No row
    sees a later donation, nor the landing of its own block. ``elsewhere`` (other
    chains' donations, time order, :func:`qf.model.loader.load_elsewhere`) land as
    their donors' history once strictly earlier than the block being featurised.
    """
    live = LiveState() if state is None else state
    out = np.zeros((len(contributions), N_FEATURES))
    other = 0
    for start, stop in blocks(contributions):
        while other < len(elsewhere) and elsewhere[other].time < contributions[start].time:
            live.land(elsewhere[other], here=False)
            other += 1
        for i in range(start, stop):
            c = contributions[i]
            live.features(c, out[i])
            if also is not None:
                also(i, c, live)
            live.attempt(c)
        for i in range(start, stop):
            live.land(contributions[i])
    return out


def blocks(contributions: Sequence[Contribution]) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of each run of consecutive contributions in one block (a block of -1 is its own run)."""
    start = 0
    n = len(contributions)
    while start < n:
        block = contributions[start].block
        stop = start + 1
        if block >= 0:
            while stop < n and contributions[stop].block == block:
                stop += 1
        yield start, stop
        start = stop
