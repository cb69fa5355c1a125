"""Attack injection and the model's data path: deterministic, labelled, equal in memory and in the database.

The round is a Round 9 prefix (the real replay's first 3,000 rows) with every
attack family injected, so the checks run on real background donors.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from qf_sentinel.qf.db import connect
from qf_sentinel.qf.model.behaviour import BEHAVIOUR_FEATURES, behaviour_features
from qf_sentinel.qf.model.dataset import Dataset
from qf_sentinel.qf.model.features import FEATURE_NAMES, feature_matrix
from qf_sentinel.qf.model.loader import load_dataset
from qf_sentinel.qf.sim.attacks import FAMILIES, inject, inject_with_targets
from qf_sentinel.qf.sim.direct import write_plan
from qf_sentinel.qf.sim.gitcoin import plan_from_rows, read_rows
from qf_sentinel.qf.sim.plan import RoundPlan
from qf_sentinel.qf.train.injection import LABEL_SOURCE, inject_dataset
from qf_sentinel.qf.train.plans import dataset_from_plan
from tests.sim.test_gitcoin import ROUND9

CHAIN = 424242
START = 1_615_334_400
SMALL = {"wallets": (5, 12), "campaigns": (1, 2)}


@pytest.fixture(scope="module")
def background() -> RoundPlan:
    return plan_from_rows(read_rows(ROUND9).head(3000))


@pytest.fixture(scope="module")
def attacked(background: RoundPlan) -> RoundPlan:
    return inject(background, seed=5, **SMALL)


def test_injection_is_deterministic_and_labels_only_attackers(background: RoundPlan, attacked: RoundPlan) -> None:
    assert inject(background, seed=5, **SMALL) == attacked
    assert inject(background, seed=6, **SMALL) != attacked
    assert background.labels == ()
    patterns = {label.pattern for label in attacked.labels}
    assert patterns == set(FAMILIES)
    assert all(label.is_sybil for label in attacked.labels)
    background_addresses = {w.address for w in background.wallets}
    assert not {label.address for label in attacked.labels} & background_addresses
    # the background's own donations are all still there, in time order with the attacks
    assert set(background.donations) <= set(attacked.donations)
    times = [d.at_seconds for d in attacked.donations]
    assert times == sorted(times)
    assert max(times) < attacked.pools[0].duration_seconds


def test_targets_are_new_or_existing_projects_the_family_funds(background: RoundPlan) -> None:
    plan, targets = inject_with_targets(background, seed=5, **SMALL)
    assert set(targets) == set(FAMILIES)
    sybils = {label.address for label in plan.labels}
    for family, projects in targets.items():
        donors = {plan.wallets[d.donor].address for d in plan.donations if d.project in projects}
        assert donors & sybils, f"{family}: nobody funds its targets"


def test_memory_path_equals_the_database_path(attacked: RoundPlan, migrated_db_url: str) -> None:
    """dataset_from_plan gives exactly what write_plan + load_dataset give, and the numpy behaviour features
    equal the SQL qf.donor_features on every donor."""
    memory = dataset_from_plan(attacked, chain_id=CHAIN, start_time=START, block_seconds=120)
    with connect(migrated_db_url) as conn:
        write_plan(conn, attacked, chain_id=CHAIN, start_time=START, block_seconds=120, label_source="simulation")
        database = load_dataset(conn, CHAIN)
        columns = ", ".join(f"{c}::int::float8" if c == "fresh_wallet" else f"{c}::float8" for c in BEHAVIOUR_FEATURES)
        sql = conn.execute(
            f"SELECT '0x' || encode(donor, 'hex'), {columns} FROM qf.donor_features WHERE chain_id = %s ORDER BY 1",
            (CHAIN,),
        ).fetchall()
    pd.testing.assert_frame_equal(memory.donors, database.donors)
    for name in memory.donations.__dataclass_fields__:
        a, b = getattr(memory.donations, name), getattr(database.donations, name)
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            assert a == b, name
    got = behaviour_features(database.donations, len(database.donors))
    expected = np.array([row[1:] for row in sql], dtype=np.float64)
    assert [row[0] for row in sql] == list(database.donors["address"])
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9, equal_nan=True)


def test_features_never_read_labels(attacked: RoundPlan) -> None:
    """The same donations with the labels taken away give the same feature matrix."""
    with_labels = dataset_from_plan(attacked, chain_id=CHAIN, start_time=START, block_seconds=120)
    without = dataset_from_plan(replace(attacked, labels=()), chain_id=CHAIN, start_time=START, block_seconds=120)
    assert with_labels.donors["labelled"].any()
    assert not without.donors["labelled"].any()
    np.testing.assert_array_equal(feature_matrix(with_labels), feature_matrix(without))
    assert feature_matrix(without).shape == (len(without.donors), len(FEATURE_NAMES))


def test_dataset_injection_keeps_the_real_round(background: RoundPlan) -> None:
    real = dataset_from_plan(background, chain_id=CHAIN, start_time=START, block_seconds=120)
    injected = inject_dataset(real, seed=3)
    again = inject_dataset(real, seed=3)
    pd.testing.assert_frame_equal(injected.donors, again.donors)
    donors = injected.donors
    attackers = donors[donors["source"] == LABEL_SOURCE]
    assert set(attackers["pattern"]) == set(FAMILIES)
    assert attackers["is_sybil"].all()
    assert set(real.donors["address"]) <= set(donors["address"])
    assert not donors.loc[donors["address"].isin(real.donors["address"]), "labelled"].any()
    # every real donation is still there, unchanged
    _assert_donations_kept(real, injected)
    order = injected.donations.order
    assert np.all(np.diff(order) > 0), "donations stay in chain order, one log position each"


def _assert_donations_kept(real: Dataset, injected: Dataset) -> None:
    def rows(ds: Dataset) -> set[tuple[str, str, float, float, int]]:
        d = ds.donations
        addresses = ds.donors["address"].to_numpy()
        return {
            (str(addresses[i]), d.project_ids[j], float(a), float(t), int(n))
            for i, j, a, t, n in zip(d.donor, d.project, d.amount, d.time, d.nonce, strict=True)
        }

    assert rows(real) <= rows(injected)
