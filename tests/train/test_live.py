"""The gate's point-in-time features: hand-checked values, no look into the future, attempts counted once."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from qf_sentinel.qf.model import live
from qf_sentinel.qf.model.live import Contribution, LiveState, feature_index, replay_features

P, Q = "1:0xaa", "1:0xbb"


def c(donor: str, project: str = P, amount: float = 1.0, time: float = 0.0, block: int = -1,
      nonce: int | None = None) -> Contribution:  # fmt: skip
    return Contribution(donor=donor, project=project, pool=project.partition(":")[0], amount=amount, time=time,
                        nonce=nonce, block=block)  # fmt: skip


def value(row: np.ndarray, name: str) -> float:
    return float(row[feature_index(name)])


def test_a_burst_of_new_wallets_with_one_amount_shows_before_anything_is_indexed() -> None:
    """Nine new wallets asked about the same 1.00 at one project in five minutes: the tenth sees all of it."""
    state = LiveState()
    state.land(c("old", Q, 3.0, time=0.0))  # an indexed donor elsewhere
    for i in range(9):
        state.attempt(c(f"new{i}", P, 1.0, time=1000.0 + 30 * i))
    row = state.features(c("new9", P, 1.0, time=1300.0))
    assert value(row, "project_arrivals_10m") == 9
    assert value(row, "project_new_coarrivals_10m") == 9
    assert value(row, "project_recent_new_share") == 1.0
    assert value(row, "project_recent_exclusive_share") == 1.0
    assert value(row, "project_same_amount_share") == 1.0
    assert value(row, "project_same_amount_streak") == 9
    assert value(row, "project_recent_amount_cv") == 0.0
    assert value(row, "project_donors_log") == 0.0  # nothing landed at P yet
    assert value(row, "donor_prior_donations") == 0.0
    assert value(row, "pool_recent_new_share") == 1.0
    assert value(row, "project_burst") == math.log1p(9)  # no history before the hour: the usual rate is 0


def test_the_donor_history_and_the_wallet_nonce() -> None:
    state = LiveState()
    state.land(c("d", Q, 2.0, time=0.0))
    state.land(c("d", P, 2.0, time=3600.0))
    row = state.features(c("d", P, 2.5, time=7200.0, nonce=7))
    assert value(row, "donor_prior_donations") == 2
    assert value(row, "donor_prior_projects") == 2
    assert value(row, "donor_hours_active") == 2.0
    assert value(row, "donor_gave_here_before") == 1.0
    assert value(row, "wallet_nonce") == 7
    assert value(row, "amount_round") == 1.0
    assert value(row, "amount_log") == math.log1p(2.5)
    unknown = state.features(c("e", P, 2.2, time=7200.0))
    assert value(unknown, "wallet_nonce") == live.NONCE_CAP  # unknown reads as an old wallet: it cannot raise risk
    assert value(unknown, "amount_round") == 0.0


def test_windows_stop_at_the_contribution_time() -> None:
    """An arrival after the contribution's time is not counted, nor one older than the window."""
    state = LiveState()
    state.attempt(c("a", time=0.0))
    state.attempt(c("b", time=3000.0))
    state.attempt(c("late", time=9000.0))
    row = state.features(c("x", time=3500.0))
    assert value(row, "project_arrivals_10m") == 1
    assert value(row, "project_arrivals_1h") == 2


def test_an_attempt_that_lands_arrives_once() -> None:
    state = LiveState()
    state.attempt(c("a", time=10.0))
    state.land(c("a", time=12.0))
    row = state.features(c("b", time=20.0))
    assert value(row, "project_arrivals_10m") == 1
    assert value(row, "project_donors_log") == math.log1p(1)
    assert state.is_known("a")


def test_an_attempt_older_than_its_ttl_does_not_absorb_a_landing() -> None:
    state = LiveState()
    state.attempt(c("a", time=0.0))
    state.land(c("a", time=live.ATTEMPT_TTL + 10.0))
    row = state.features(c("b", time=live.ATTEMPT_TTL + 20.0))
    assert value(row, "project_arrivals_1h") == 1  # the landing, in the window; the stale attempt is not
    assert state.forget_stale_attempts(live.ATTEMPT_TTL * 3) == 0


def test_a_ring_overlaps_and_a_crowd_does_not() -> None:
    ring, crowd = LiveState(), LiveState()
    projects = [f"1:0x{i:02x}" for i in range(12)]
    for i in range(8):
        for p in projects[:3]:
            ring.land(c(f"r{i}", p, time=float(i)))
        for p in projects[i: i + 3]:
            crowd.land(c(f"h{i}", p, time=float(i)))
        crowd.land(c(f"h{i}", projects[0], time=float(i)))
    ring_overlap = value(ring.features(c("x", projects[0], time=100.0)), "project_recent_overlap")
    crowd_overlap = value(crowd.features(c("x", projects[0], time=100.0)), "project_recent_overlap")
    assert ring_overlap == 1.0
    assert crowd_overlap < 0.5


def test_replay_lands_a_block_only_after_featurising_it() -> None:
    """A cart in one block: its second donation sees the first as an attempt (an arrival), not as history."""
    rows = replay_features([c("d", P, time=0.0, block=1), c("d", Q, time=0.0, block=1), c("d", P, time=12.0, block=2)])
    assert value(rows[1], "donor_prior_donations") == 0
    assert value(rows[1], "project_arrivals_10m") == 0  # Q's first arrival; P saw the cart's first item
    assert value(rows[2], "project_arrivals_10m") == 1
    assert value(rows[2], "donor_prior_donations") == 2


def test_a_state_rebuilt_from_the_index_answers_as_the_one_that_followed_it() -> None:
    rng = np.random.default_rng(3)
    contributions = [
        c(f"d{rng.integers(0, 30)}", f"1:0x{rng.integers(0, 6):02x}", float(rng.integers(1, 5)), time=12.0 * b, block=b)
        for b in range(200)
        for _ in range(int(rng.integers(0, 3)))
    ]
    followed = LiveState()
    replay_features(contributions, followed)
    rebuilt = LiveState()
    rebuilt.replay(contributions)
    probe = c("d1", "1:0x02", 2.0, time=12.0 * 200)
    np.testing.assert_array_equal(followed.features(probe), rebuilt.features(probe))


_contributions = st.lists(
    st.tuples(st.integers(0, 8), st.integers(0, 3), st.floats(0.1, 50.0), st.integers(0, 40), st.integers(0, 30)),
    min_size=2, max_size=80,
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(history=_contributions, future=_contributions, data=st.data())
def test_no_feature_sees_the_future(history: list, future: list, data: st.DataObject) -> None:
    """Rewriting every block after a cut (other donors, projects, amounts, times) changes no row before it."""

    def rows(raw: list, start_block: int) -> list[Contribution]:
        return [
            c(f"d{d}", f"1:0x{p:02x}", round(a, 2), time=60.0 * (start_block + b), block=start_block + b, nonce=n)
            for d, p, a, b, n in sorted(raw, key=lambda r: r[3])
        ]

    before = rows(history, 0)
    cut = before[-1].block + 1
    after_a = rows(future, cut)
    after_b = rows(data.draw(_contributions), cut)
    a = replay_features([*before, *after_a])[: len(before)]
    b = replay_features([*before, *after_b])[: len(before)]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, replay_features(before))


def test_memory_stays_bounded_by_the_window() -> None:
    state = LiveState()
    for i in range(20_000):
        state.attempt(c(f"w{i}", time=float(i)))  # one arrival a second for 5.5 hours
    arrivals = state._projects[P].arrivals
    assert len(arrivals.times) <= live.LONG_WINDOW + 64 + live.RECENT
    assert arrivals.total == 20_000


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 10_000), st.booleans()), min_size=1, max_size=300))
def test_window_counts_of_new_wallets_survive_out_of_order_arrivals(arrivals: list[tuple[float, bool]]) -> None:
    """Indexed rows can arrive before later attempts' times: the prefix counts stay equal to counting."""
    window = live._Arrivals()
    for i, (at, new) in enumerate(arrivals):
        window.add(at, f"d{i}", 1.0, new)
    n = len(window.times)
    assert window.times == sorted(window.times)
    for start in range(0, n, max(1, n // 7)):
        for end in range(start, n + 1, max(1, n // 5)):
            assert window.new_between(start, end) == sum(window.new[start:end])


def test_a_wallet_is_one_donor_on_every_chain_as_of_the_call() -> None:
    """Another chain's donations are the donor's history once strictly earlier, and never this chain's
    project or pool state (their keys are apart)."""
    here = [c("w", P, 1.0, time=1000.0, block=5), c("v", P, 1.0, time=1000.0, block=5)]
    elsewhere = [
        Contribution(donor="w", project="10/7:0xaa", pool="10/7", amount=2.0, time=400.0, block=90),
        Contribution(donor="w", project="10/7:0xcc", pool="10/7", amount=2.0, time=999.0, block=91),
        Contribution(donor="v", project="10/7:0xaa", pool="10/7", amount=2.0, time=1000.0, block=92),  # not before
    ]
    rows = replay_features(here, elsewhere=elsewhere)
    assert value(rows[0], "donor_prior_donations") == 2
    assert value(rows[0], "donor_prior_projects") == 2
    assert value(rows[0], "donor_hours_active") == (1000.0 - 400.0) / 3600.0
    assert value(rows[0], "donor_gave_here_before") == 0.0  # 0xaa on chain 10 is not P here
    assert value(rows[1], "donor_prior_donations") == 0  # its gift elsewhere is not earlier than the call
    assert value(rows[0], "project_donors_log") == 0.0
    assert value(rows[0], "pool_recent_new_share") == 0.0  # the pool here saw no one before
    alone = replay_features(here)
    assert value(alone[0], "donor_prior_donations") == 0
    for name in live.CONTRIBUTION_FEATURES:
        if not name.startswith("donor_"):
            assert value(rows[0], name) == value(alone[0], name), name
    state = LiveState()
    replay_features(here, state=state, elsewhere=elsewhere)
    assert (state.landed, state.landed_elsewhere) == (2, 2)
    assert state.latest_landed == 1000.0
