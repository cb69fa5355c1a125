"""Donor segments: silhouette finds planted clusters, assignment matches the fit, PCA keeps one shape."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from qf_sentinel.qf.errors import ConfigError, DataError
from qf_sentinel.qf.train.clusters import assign_cluster, choose_kmeans, pca_2d


def blobs(n_centers: int, n_rows: int = 300, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian blobs in 4-D (centres 10 apart, spread 0.5)."""
    centers = np.eye(n_centers, 4 if n_centers <= 4 else n_centers) * 10.0
    features, truth = make_blobs(n_samples=n_rows, centers=centers, cluster_std=0.5, random_state=seed)
    return features, truth


@pytest.mark.parametrize("planted", [3, 4, 6])
def test_silhouette_picks_the_planted_k(planted: int) -> None:
    """On separated blobs the best silhouette is at the number of blobs, and the labels recover them."""
    features, truth = blobs(planted)
    model = choose_kmeans(features, seed=0)
    assert model.k == planted
    assert max(model.silhouette, key=lambda k: model.silhouette[k]) == planted
    assert sorted(model.silhouette) == list(range(2, 9))
    # Same partition up to renaming: each true blob maps to exactly one label.
    pairs = set(zip(truth.tolist(), model.labels.tolist(), strict=True))
    assert len(pairs) == planted


def test_sampled_silhouette_still_picks_the_planted_k() -> None:
    """With more rows than the sample size the silhouette is estimated on a seeded sample."""
    features, _ = blobs(5, n_rows=900)
    model = choose_kmeans(features, k_range=range(2, 8), seed=3, sample_size=200)
    assert model.k == 5
    again = choose_kmeans(features, k_range=range(2, 8), seed=3, sample_size=200)
    assert again.silhouette == model.silhouette


def test_k_beyond_distinct_rows_is_skipped() -> None:
    """Seven rows but three distinct points support k = 2..3 only; three tight groups win."""
    features = np.array([[0.0, 0.0]] * 3 + [[5.0, 5.0]] * 3 + [[9.0, 0.0]])
    model = choose_kmeans(features)
    assert sorted(model.silhouette) == [2, 3]
    assert model.k == 3
    assert model.silhouette[3] == pytest.approx(6 / 7)  # the singleton scores 0, everyone else 1


def test_no_usable_k_is_a_data_error() -> None:
    """Two identical rows cannot be clustered; a tiny silhouette sample is a config error."""
    with pytest.raises(DataError):
        choose_kmeans(np.zeros((2, 3)))
    with pytest.raises(ConfigError):
        choose_kmeans(np.eye(3), sample_size=1)


def test_assign_cluster_reproduces_the_fit() -> None:
    """Nearest-centre assignment of the training rows gives the k-means labels."""
    features, _ = blobs(4)
    model = choose_kmeans(features, k_range=[4])
    assert assign_cluster(model.centers, features).tolist() == model.labels.tolist()


def test_assign_cluster_by_hand() -> None:
    """A single row is accepted; a point halfway between two centres goes to the lower index."""
    centers = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    assert assign_cluster(centers, [1.9, 0.2]).tolist() == [1]
    assert assign_cluster(centers, [[1.0, 0.0], [0.1, 2.9]]).tolist() == [0, 2]
    with pytest.raises(DataError):
        assign_cluster(centers, [[1.0, 2.0, 3.0]])


def test_pca_of_a_plane_explains_everything() -> None:
    """Points on a 2-D plane inside 5-D: two components explain all the variance."""
    rng = np.random.default_rng(0)
    plane = rng.normal(size=(50, 2)) @ rng.normal(size=(2, 5))
    coords, ratio = pca_2d(plane, seed=0)
    assert coords.shape == (50, 2)
    assert ratio[0] >= ratio[1] > 0
    assert ratio.sum() == pytest.approx(1.0)


def test_pca_pads_missing_axes() -> None:
    """One feature gives a zero second axis; constant features give all zeros."""
    coords, ratio = pca_2d(np.array([[1.0], [2.0], [4.0]]))
    assert coords[:, 1].tolist() == [0.0, 0.0, 0.0]
    assert ratio.tolist() == [1.0, 0.0]
    coords, ratio = pca_2d(np.ones((4, 3)))
    assert not coords.any()
    assert not ratio.any()
