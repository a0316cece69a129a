"""Tests of dsstne.datasets: shapes, determinism, statistics, timestamps and learnable structure."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import scipy.sparse as sp

from dsstne import datasets
from dsstne.datasets import ML20M_ITEMS, ML20M_USERS, SyntheticRatings, movielens_20m_shape, synthetic_ratings
from dsstne.errors import DataError
from dsstne.metrics import popularity_recommend, precision_at_k, random_recommend

T_FIRST, T_LAST = 789_652_009, 1_427_784_002  # MovieLens' date range


@pytest.fixture(scope="module")
def small() -> SyntheticRatings:
    return synthetic_ratings(2000, 1000, seed=0)


@pytest.fixture(scope="module")
def default() -> SyntheticRatings:
    return synthetic_ratings()  # MovieLens-1M-like shape


def _arrays(d: SyntheticRatings) -> list[np.ndarray]:
    out = [d.item_popularity]
    for m in (d.train, d.test, d.train_timestamps, d.test_timestamps):
        out += [m.indptr, m.indices, m.data]
    return out


def test_constants():
    assert (ML20M_USERS, ML20M_ITEMS) == (138_493, 27_278)


def test_shapes_and_types(default):
    d = default
    assert (d.users, d.items) == (6040, 3706)
    for m in (d.train, d.test, d.train_timestamps, d.test_timestamps):
        assert isinstance(m, sp.csr_matrix)
        assert m.shape == (6040, 3706)
        assert m.has_sorted_indices
    assert d.train.dtype == np.float32 and d.test.dtype == np.float32
    assert np.all(d.train.data == 1.0) and np.all(d.test.data == 1.0)
    assert d.train_timestamps.dtype == np.int64
    np.testing.assert_array_equal(d.train_timestamps.indptr, d.train.indptr)
    np.testing.assert_array_equal(d.train_timestamps.indices, d.train.indices)
    np.testing.assert_array_equal(d.test_timestamps.indices, d.test.indices)
    assert d.item_popularity.shape == (3706,)
    np.testing.assert_array_equal(d.item_popularity, np.bincount(d.train.indices, minlength=3706))
    allr = d.all_ratings()
    assert allr.shape == (6040, 3706) and allr.nnz == d.nnz == d.train.nnz + d.test.nnz
    assert allr.has_sorted_indices and np.all(allr.data == 1.0)
    assert d.all_timestamps().nnz == d.nnz


def test_determinism(small):
    again = synthetic_ratings(2000, 1000, seed=0)
    for a, b in zip(_arrays(small), _arrays(again), strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    other = synthetic_ratings(2000, 1000, seed=1)
    assert (other.train != small.train).nnz > 0
    assert not np.array_equal(other.item_popularity, small.item_popularity)


def test_no_duplicates_and_disjoint(default):
    d = default
    for m in (d.train, d.test):
        rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
        same_row = rows[1:] == rows[:-1]
        assert np.all(m.indices[1:][same_row] > m.indices[:-1][same_row])  # strictly increasing per row
        assert m.indices.min() >= 0 and m.indices.max() < d.items
    assert d.train.multiply(d.test).nnz == 0


def test_counts_and_test_fraction(default):
    d = default
    n_train = np.diff(d.train.indptr)
    n_test = np.diff(d.test.indptr)
    n = n_train + n_test
    assert n.min() >= 20 and n.max() <= d.items
    assert abs(n.mean() - 144.4) < 0.06 * 144.4
    assert np.median(n) < 0.75 * n.mean()  # heavy-tailed: mean well above the median
    assert n.max() > 8 * np.median(n)
    np.testing.assert_array_equal(n_test, np.minimum(np.floor(0.2 * n + 0.5), n - 1))
    assert n_train.min() >= 1


def test_zipf_like_popularity():
    d = synthetic_ratings(3000, 3000, ratings_per_user=40, seed=2)
    counts = np.sort(np.asarray(d.all_ratings().sum(axis=0)).ravel())[::-1]
    top_decile = counts[: counts.size // 10].sum() / counts.sum()
    assert top_decile > 0.4
    assert counts[0] > 50 * np.median(counts)


def test_timestamps(small):
    d = small
    for ts in (d.train_timestamps, d.test_timestamps):
        assert ts.data.min() >= T_FIRST and ts.data.max() <= T_LAST
    allts = d.all_timestamps()
    rows = np.repeat(np.arange(d.users), np.diff(allts.indptr))
    order = np.lexsort((allts.data, rows))  # each user's ratings in time order
    t, r = allts.data[order], rows[order]
    same = r[1:] == r[:-1]
    assert np.all(t[1:][same] > t[:-1][same])  # strictly increasing per user
    # Users rate in sessions: most consecutive gaps are short, a few are long breaks.
    gaps = (t[1:] - t[:-1])[same]
    assert np.median(gaps) < 600
    assert np.mean(gaps > 86_400) > 0.01


def test_structure_taste_model_beats_popularity_beats_random(small):
    d = small
    x = d.train.toarray().astype(np.float64)
    seen = x > 0
    # Taste-aware model 1: rank-16 truncated SVD of the training matrix.
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    svd_scores = (u[:, :16] * s[:16]) @ vt[:16]
    # Taste-aware model 2: item-item cosine kNN.
    norms = np.sqrt(x.sum(axis=0)) + 1e-9
    sim = (x.T @ x) / norms[:, None] / norms[None, :]
    np.fill_diagonal(sim, 0.0)
    knn_scores = x @ sim

    def top10(scores):
        scores = np.where(seen, -np.inf, scores)
        return np.argsort(-scores, axis=1, kind="stable")[:, :10]

    p_svd = precision_at_k(top10(svd_scores), d.test, 10)
    p_knn = precision_at_k(top10(knn_scores), d.test, 10)
    p_pop = precision_at_k(popularity_recommend(d.train, 10), d.test, 10)
    p_rnd = precision_at_k(random_recommend(d.train, 10, seed=0), d.test, 10)
    print(f"precision@10: svd={p_svd:.3f} knn={p_knn:.3f} popularity={p_pop:.3f} random={p_rnd:.3f}")
    assert p_svd > 1.4 * p_pop
    assert p_knn > 1.2 * p_pop
    assert p_pop > 3 * p_rnd


def test_small_and_edge_shapes():
    d = synthetic_ratings(1, 1, ratings_per_user=1, min_ratings=1)
    assert d.train.nnz == 1 and d.test.nnz == 0  # a user always keeps one training item
    d = synthetic_ratings(5, 3, ratings_per_user=2, min_ratings=1, latent_dim=16)
    assert d.train.shape == (5, 3)
    d = synthetic_ratings(50, 30, ratings_per_user=30)  # everyone rates everything
    assert d.nnz == 50 * 30
    d = synthetic_ratings(100, 40, ratings_per_user=25, test_fraction=0.0)
    assert d.test.nnz == 0
    d = synthetic_ratings(200, 300, ratings_per_user=20, zipf_exponent=0.0, seed=np.int64(3))
    assert np.all(np.diff(d.all_ratings().indptr) == 20)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"users": 0},
        {"items": 0},
        {"items": 10},  # min_ratings 20 > items
        {"ratings_per_user": 10.0},  # below min_ratings
        {"test_fraction": 1.0},
        {"test_fraction": -0.1},
        {"seed": -1},
        {"seed": 1.5},
        {"latent_dim": 0},
        {"min_ratings": 0},
        {"zipf_exponent": -1.0},
        {"users": 2.0},
    ],
)
def test_bad_arguments(kwargs):
    with pytest.raises(DataError):
        synthetic_ratings(**kwargs)


def test_default_shape_is_fast():
    t0 = time.perf_counter()
    synthetic_ratings(seed=5)
    assert time.perf_counter() - t0 < 5.0


@pytest.mark.skipif(
    not os.environ.get("DSSTNE_SLOW_TESTS"), reason="set DSSTNE_SLOW_TESTS=1 (builds ~20M ratings)"
)
def test_movielens_20m_shape_build_time():
    t0 = time.perf_counter()
    d = movielens_20m_shape()
    elapsed = time.perf_counter() - t0
    assert (d.users, d.items) == (ML20M_USERS, ML20M_ITEMS)
    assert 18e6 < d.nnz < 22e6
    assert elapsed < 30.0


def test_module_exports():
    for name in datasets.__all__:
        assert hasattr(datasets, name)
