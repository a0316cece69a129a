"""Tests of dsstne.metrics: ranking metrics against a slow pure-Python reference, hand cases, baselines."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import scipy.sparse as sp

from dsstne.errors import DataError
from dsstne.metrics import (
    evaluate,
    hit_rate_at_k,
    map_at_k,
    ndcg_at_k,
    popularity_recommend,
    precision_at_k,
    random_recommend,
    recall_at_k,
)

# ----------------------------------------------------------------------------------------------------
# slow, obviously-correct reference
# ----------------------------------------------------------------------------------------------------


def _relevant_sets(truth: sp.spmatrix, threshold: float | None) -> list[set[int]]:
    dense = truth.toarray()  # toarray sums duplicate entries
    out = []
    for row in dense:
        if threshold is None:
            out.append({j for j, v in enumerate(row) if v != 0})
        else:
            out.append({j for j, v in enumerate(row) if v >= threshold})
    return out


def _ref_user(recs: list[int], rel: set[int], k: int, idcg: str) -> dict[str, float]:
    seen: set[int] = set()
    hits = []
    for item in (list(recs) + [-1] * k)[:k]:
        hit = item >= 0 and item not in seen and item in rel
        if item >= 0:
            seen.add(item)
        hits.append(hit)
    n_hits = sum(hits)
    dcg = sum(1.0 / math.log2(r + 2) for r, h in enumerate(hits) if h)
    m = min(len(rel), k) if idcg == "min" else len(rel)
    ideal = sum(1.0 / math.log2(r + 2) for r in range(m))
    ap = 0.0
    running = 0
    for r, h in enumerate(hits):
        if h:
            running += 1
            ap += running / (r + 1)
    return {
        "precision": n_hits / k,
        "recall": n_hits / len(rel),
        "ndcg": dcg / ideal,
        "map": ap / min(len(rel), k),
        "hit_rate": float(n_hits > 0),
    }


def _reference(recs: np.ndarray, truth: sp.spmatrix, k: int, threshold=None, idcg="min") -> dict[str, float]:
    rels = _relevant_sets(truth, threshold)
    per_user = [_ref_user(list(recs[u]), rels[u], k, idcg) for u in range(len(rels)) if rels[u]]
    if not per_user:
        return {name: float("nan") for name in ("precision", "recall", "ndcg", "map", "hit_rate")}
    return {name: sum(p[name] for p in per_user) / len(per_user) for name in per_user[0]}


def _random_case(rng: np.random.Generator, n_users=60, n_items=25, width=12):
    recs = rng.integers(-1, n_items, size=(n_users, width))  # includes -1 padding and repeats
    recs[rng.random(n_users) < 0.2, width // 2 :] = -1  # some rows padded at the end
    density = rng.uniform(0.02, 0.4)
    truth = sp.random(
        n_users,
        n_items,
        density=density,
        format="csr",
        random_state=rng,
        data_rvs=lambda n: rng.integers(1, 6, size=n).astype(np.float64),
    )
    truth = truth.tolil()
    truth[rng.integers(0, n_users, size=n_users // 5), :] = 0  # users without truth
    return recs, truth.tocsr()


FUNCS = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "map": map_at_k,
    "hit_rate": hit_rate_at_k,
}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 3, 10, 20])
def test_random_inputs_match_reference(seed, k):
    rng = np.random.default_rng(seed)
    recs, truth = _random_case(rng)
    threshold = None if seed % 2 == 0 else 3.0
    ref = _reference(recs, truth, k, threshold)
    for name, func in FUNCS.items():
        assert func(recs, truth, k, threshold=threshold) == pytest.approx(ref[name], rel=1e-12, abs=1e-12), (
            name
        )
    ref_all = _reference(recs, truth, k, threshold, idcg="all")
    assert ndcg_at_k(recs, truth, k, threshold=threshold, idcg="all") == pytest.approx(
        ref_all["ndcg"], abs=1e-12
    )
    ev = evaluate(recs, truth, ks=(k,), threshold=threshold)
    for name in FUNCS:
        assert ev[f"{name}@{k}"] == pytest.approx(ref[name], abs=1e-12)


# ----------------------------------------------------------------------------------------------------
# hand-computed cases
# ----------------------------------------------------------------------------------------------------


def _hand_case():
    recs = np.array([[0, 1, 2], [2, -1, 0], [5, 4, 3]])
    truth = sp.csr_matrix(([1.0, 1.0, 1.0], ([0, 0, 1], [1, 3, 0])), shape=(3, 6))  # user 2 has no truth
    return recs, truth


def test_hand_case():
    recs, truth = _hand_case()
    l3, l4 = math.log2(3), math.log2(4)
    assert precision_at_k(recs, truth, 3) == pytest.approx((1 / 3 + 1 / 3) / 2)
    assert recall_at_k(recs, truth, 3) == pytest.approx((1 / 2 + 1) / 2)
    assert ndcg_at_k(recs, truth, 3) == pytest.approx(((1 / l3) / (1 + 1 / l3) + (1 / l4) / 1) / 2)
    assert map_at_k(recs, truth, 3) == pytest.approx(((1 / 2) / 2 + (1 / 3) / 1) / 2)
    assert hit_rate_at_k(recs, truth, 3) == 1.0
    assert precision_at_k(recs, truth, 1) == 0.0
    # k larger than the recommendation width: missing slots are padding, precision still divides by k.
    assert precision_at_k(recs, truth, 6) == pytest.approx((1 / 6 + 1 / 6) / 2)
    assert recall_at_k(recs, truth, 6) == pytest.approx(0.75)


def test_idcg_modes():
    recs = np.array([[1, 3]])
    truth = sp.csr_matrix(np.array([[0, 1, 0, 1, 1]], dtype=np.float32))
    l3, l4 = math.log2(3), math.log2(4)
    assert ndcg_at_k(recs, truth, 2) == pytest.approx(1.0)
    assert ndcg_at_k(recs, truth, 2, idcg="all") == pytest.approx((1 + 1 / l3) / (1 + 1 / l3 + 1 / l4))
    assert map_at_k(recs, truth, 2) == pytest.approx(1.0)  # divides by min(|truth|, k)
    assert recall_at_k(recs, truth, 2) == pytest.approx(2 / 3)
    with pytest.raises(DataError):
        ndcg_at_k(recs, truth, 2, idcg="bogus")  # type: ignore[arg-type]


def test_duplicates_padding_threshold_and_noncanonical_truth():
    recs = np.array([[2, 2, -1, 4], [-1, -1, -1, -1]])
    # Non-canonical truth: duplicate (0, 4) entries summed to 4; an explicit zero at (0, 2) is not relevant.
    coo = sp.coo_matrix(([0.0, 2.0, 2.0, 1.0, 5.0], ([0, 0, 0, 0, 1], [2, 4, 4, 1, 3])), shape=(2, 5))
    truth = sp.csr_matrix((coo.data, (coo.row, coo.col)), shape=coo.shape)
    truth_nc = sp.csr_matrix((coo.data, coo.col, [0, 4, 5]), shape=(2, 5))  # duplicates kept
    for t in (truth, truth_nc, coo):
        assert precision_at_k(recs, t, 4) == pytest.approx((1 / 4 + 0) / 2)
        assert precision_at_k(recs, t, 4, threshold=3.0) == pytest.approx((1 / 4 + 0) / 2)
        assert precision_at_k(recs, t, 4, threshold=10.0) != precision_at_k(recs, t, 4)
    assert math.isnan(precision_at_k(recs, truth, 4, threshold=10.0))
    assert truth_nc.nnz == 5  # caller's matrix untouched
    # Repeated item 2 is relevant with threshold 0: counted once.
    t0 = sp.csr_matrix(np.array([[0, 0, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=float))
    assert precision_at_k(recs, t0, 4) == pytest.approx(1 / 4)


def test_no_truth_gives_nan():
    recs = np.array([[0, 1], [1, 0]])
    truth = sp.csr_matrix((2, 3))
    assert math.isnan(precision_at_k(recs, truth, 2))
    assert all(math.isnan(v) for v in evaluate(recs, truth).values())


def test_evaluate_keys_and_consistency():
    rng = np.random.default_rng(7)
    recs, truth = _random_case(rng, n_users=80, n_items=40, width=10)
    ev = evaluate(recs, truth)
    assert list(ev) == [
        f"{m}@{k}" for k in (1, 5, 10) for m in ("precision", "recall", "ndcg", "map", "hit_rate")
    ]
    for k in (1, 5, 10):
        assert ev[f"precision@{k}"] == precision_at_k(recs, truth, k)
        assert ev[f"ndcg@{k}"] == ndcg_at_k(recs, truth, k)
        assert ev[f"map@{k}"] == map_at_k(recs, truth, k)
    assert isinstance(ev["precision@10"], float)


def test_input_errors():
    recs, truth = _hand_case()
    with pytest.raises(DataError):
        precision_at_k(recs[:2], truth, 3)  # row-count mismatch
    with pytest.raises(DataError):
        precision_at_k(np.array([[0, 6], [0, 1], [1, 2]]), truth, 2)  # item id out of range
    with pytest.raises(DataError):
        precision_at_k(np.array([[0, -2], [0, 1], [1, 2]]), truth, 2)
    with pytest.raises(DataError):
        precision_at_k(recs.astype(float), truth, 2)
    with pytest.raises(DataError):
        precision_at_k(recs[0], truth, 2)
    for bad_k in (0, -1, 2.5, True):
        with pytest.raises(DataError):
            precision_at_k(recs, truth, bad_k)
    with pytest.raises(DataError):
        evaluate(recs, truth, ks=())
    assert issubclass(DataError, ValueError)


def test_large_input_is_fast():
    rng = np.random.default_rng(0)
    n_users, n_items, per_user = 138_493, 27_278, 30
    cols = np.sort(rng.integers(0, n_items, size=(n_users, per_user)), axis=1)
    keep = np.ones_like(cols, dtype=bool)
    keep[:, 1:] = cols[:, 1:] != cols[:, :-1]
    counts = keep.sum(axis=1)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    truth = sp.csr_matrix(
        (np.ones(int(counts.sum()), np.float32), cols[keep], indptr), shape=(n_users, n_items)
    )
    recs = rng.integers(-1, n_items, size=(n_users, 10))
    t0 = time.perf_counter()
    p = precision_at_k(recs, truth, 10)
    t1 = time.perf_counter()
    evaluate(recs, truth, ks=(1, 5, 10))
    t2 = time.perf_counter()
    assert 0.0 <= p < 0.01
    assert t1 - t0 < 1.0, f"precision_at_k took {t1 - t0:.2f}s"
    assert t2 - t1 < 2.0, f"evaluate took {t2 - t1:.2f}s"


# ----------------------------------------------------------------------------------------------------
# baselines
# ----------------------------------------------------------------------------------------------------


def _train_small():
    # item popularity: item 2 -> 3 users, items 0, 4 -> 2 users (tie: 0 first), item 1 -> 1, item 3 -> 0
    dense = np.array(
        [
            [1, 0, 1, 0, 0],
            [1, 0, 1, 0, 1],
            [0, 1, 1, 0, 1],
            [0, 0, 0, 0, 0],
        ],
        dtype=np.float32,
    )
    return sp.csr_matrix(dense)


def test_popularity_small():
    train = _train_small()
    np.testing.assert_array_equal(
        popularity_recommend(train, 3, exclude_seen=False), np.tile([2, 0, 4], (4, 1))
    )
    got = popularity_recommend(train, 3)
    np.testing.assert_array_equal(got, [[4, 1, 3], [1, 3, -1], [0, 3, -1], [2, 0, 4]])
    np.testing.assert_array_equal(
        popularity_recommend(train, 7, exclude_seen=False)[0], [2, 0, 4, 1, 3, -1, -1]
    )
    np.testing.assert_array_equal(
        popularity_recommend(train, 2, users=np.array([3, 0, 3])), [[2, 0], [4, 1], [2, 0]]
    )
    # explicit zeros are not "seen" and do not count for popularity
    t2 = train.copy()
    t2.data[:] = 0.0
    np.testing.assert_array_equal(popularity_recommend(t2, 5), np.tile([0, 1, 2, 3, 4], (4, 1)))
    with pytest.raises(DataError):
        popularity_recommend(train, 0)
    with pytest.raises(DataError):
        popularity_recommend(train, 2, users=np.array([4]))


@pytest.mark.parametrize("seed", range(4))
def test_popularity_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items, k = 40, 30, 8
    dense = (rng.random((n_users, n_items)) < rng.uniform(0.05, 0.9)).astype(np.float32)
    train = sp.csr_matrix(dense)
    pop = (dense != 0).sum(axis=0)
    ranking = sorted(range(n_items), key=lambda i: (-pop[i], i))
    got = popularity_recommend(train, k)
    for u in range(n_users):
        expected = [i for i in ranking if dense[u, i] == 0][:k]
        expected += [-1] * (k - len(expected))
        assert got[u].tolist() == expected


def test_random_recommend():
    rng = np.random.default_rng(3)
    n_users, n_items, k = 300, 50, 10
    dense = rng.random((n_users, n_items)) < rng.uniform(0.0, 1.0, size=(n_users, 1))
    train = sp.csr_matrix(dense.astype(np.float32))
    recs = random_recommend(train, k, seed=1)
    assert recs.shape == (n_users, k)
    for u in range(n_users):
        row = [i for i in recs[u] if i >= 0]
        n_free = n_items - int(dense[u].sum())
        assert len(row) == min(k, n_free)
        assert len(set(row)) == len(row)
        assert not any(dense[u, i] for i in row)
        assert all(i == -1 for i in recs[u][len(row) :])
    np.testing.assert_array_equal(recs, random_recommend(train, k, seed=1))
    assert not np.array_equal(recs, random_recommend(train, k, seed=2))
    sub = random_recommend(train, k, seed=1, users=np.array([5, 7]), exclude_seen=False)
    assert sub.shape == (2, k) and (sub >= 0).all() and all(len(set(r)) == k for r in sub.tolist())
    # roughly uniform over items when nothing is excluded
    big = random_recommend(sp.csr_matrix((5000, n_items)), k, seed=0)
    counts = np.bincount(big.ravel(), minlength=n_items)
    assert counts.min() > 0.8 * counts.mean() and counts.max() < 1.2 * counts.mean()


def test_baselines_order_on_structured_data():
    # Items 0..9 are popular with everyone; held-out items are popular ones => popularity beats random.
    rng = np.random.default_rng(0)
    n_users, n_items = 500, 200
    p = np.r_[np.full(10, 0.5), np.full(n_items - 10, 0.02)]
    dense = rng.random((n_users, n_items)) < p
    held = dense & (rng.random(dense.shape) < 0.3)
    train = sp.csr_matrix((dense & ~held).astype(np.float32))
    test = sp.csr_matrix(held.astype(np.float32))
    pop = precision_at_k(popularity_recommend(train, 10), test, 10)
    rnd = precision_at_k(random_recommend(train, 10, seed=0), test, 10)
    assert pop > 3 * rnd
