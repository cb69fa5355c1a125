"""Fixtures of the scorer tests: a real model version trained on the synthetic round of tests/scorer/synthetic.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from qf_sentinel.qf.model.dataset import Dataset
from tests.scorer.synthetic import synthetic_dataset, train_version


@pytest.fixture(scope="session")
def synthetic() -> Dataset:
    """The synthetic labelled round (numpy and pandas only, no database)."""
    return synthetic_dataset()


@pytest.fixture(scope="session")
def model_dir(synthetic: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model version directory trained on :func:`synthetic` by the real pipeline (LATEST of its root).

    Trained once for the session (it takes seconds) and shared: a test that changes a version copies it first.
    """
    return train_version(tmp_path_factory.mktemp("models"), synthetic)
