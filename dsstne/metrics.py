"""Ranking metrics for top-k recommendations, and popularity / random baselines.

Conventions shared by every metric:

* ``recommendations`` is an integer array ``[n_users, width]`` of item ids in rank order (column 0 is the
  top recommendation). Entries ``-1`` mean "no item" (padding) and never count as hits. Only the first ``k``
  columns are used; if ``width < k`` the missing columns count as padding. A repeated item in one row counts
  only at its first (best) rank.
* ``truth`` is a sparse ``n_users x n_items`` matrix of held-out relevant items (csr preferred; any scipy
  sparse matrix/array or dense 2-D array is converted). With ``threshold=None`` every stored non-zero value is
  relevant; otherwise an entry is relevant when its value is ``>= threshold``. Duplicates are summed first.
* Every metric is averaged over the users that have at least one relevant item; users without relevant items
  are skipped (they neither help nor hurt). If no user has a relevant item the result is ``nan``.
* Precision divides by ``k`` (padding included), so a model that cannot fill ``k`` slots is penalised.

All metrics are vectorised (no per-user Python loops): 138k users x k=10 against 4M truth entries take
about 0.2 s.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from dsstne.errors import DataError

__all__ = [
    "evaluate",
    "hit_rate_at_k",
    "map_at_k",
    "ndcg_at_k",
    "popularity_recommend",
    "precision_at_k",
    "random_recommend",
    "recall_at_k",
]

IdcgMode = Literal["min", "all"]


# ----------------------------------------------------------------------------------------------------
# metrics
# ----------------------------------------------------------------------------------------------------


def precision_at_k(recommendations: Any, truth: Any, k: int, *, threshold: float | None = None) -> float:
    """Mean over users with relevant items of ``hits in top k / k``.

    Args:
        recommendations: ``[n_users, width]`` item ids in rank order, ``-1`` = no item.
        truth: ``n_users x n_items`` sparse matrix of relevant items.
        k: cutoff, >= 1.
        threshold: if given, only truth values ``>= threshold`` are relevant (default: any non-zero).

    Returns:
        The mean precision@k (``nan`` if no user has a relevant item).

    Raises:
        DataError: on mismatched rows, out-of-range item ids or a bad ``k``.

    """
    hits, n_rel = _hits(recommendations, truth, k, threshold)
    return _mean(hits.sum(axis=1) / k, n_rel)


def recall_at_k(recommendations: Any, truth: Any, k: int, *, threshold: float | None = None) -> float:
    """Mean over users with relevant items of ``hits in top k / |relevant items|``.

    Args:
        recommendations: ``[n_users, width]`` item ids in rank order, ``-1`` = no item.
        truth: ``n_users x n_items`` sparse matrix of relevant items.
        k: cutoff, >= 1.
        threshold: if given, only truth values ``>= threshold`` are relevant (default: any non-zero).

    Returns:
        The mean recall@k (``nan`` if no user has a relevant item).

    Raises:
        DataError: on mismatched rows, out-of-range item ids or a bad ``k``.

    """
    hits, n_rel = _hits(recommendations, truth, k, threshold)
    return _mean(hits.sum(axis=1) / np.maximum(n_rel, 1), n_rel)


def ndcg_at_k(
    recommendations: Any, truth: Any, k: int, *, threshold: float | None = None, idcg: IdcgMode = "min"
) -> float:
    """Mean over users with relevant items of binary-gain NDCG@k.

    ``DCG = sum over hit ranks r (1-based) of 1 / log2(r + 1)``. The ideal DCG places relevant items at
    ranks ``1..m``: with ``idcg="min"`` (standard, default) ``m = min(|relevant|, k)``, so a perfect top-k
    scores 1; with ``idcg="all"`` ``m = |relevant|``, as the original DSSTNE's encoder report computes it
    (values are lower for users with more than ``k`` relevant items).

    Args:
        recommendations: ``[n_users, width]`` item ids in rank order, ``-1`` = no item.
        truth: ``n_users x n_items`` sparse matrix of relevant items.
        k: cutoff, >= 1.
        threshold: if given, only truth values ``>= threshold`` are relevant (default: any non-zero).
        idcg: ``"min"`` or ``"all"``, see above.

    Returns:
        The mean NDCG@k (``nan`` if no user has a relevant item).

    Raises:
        DataError: on mismatched rows, out-of-range item ids, a bad ``k`` or a bad ``idcg``.

    """
    hits, n_rel = _hits(recommendations, truth, k, threshold)
    return _mean(_ndcg_rows(hits, n_rel, idcg), n_rel)


def map_at_k(recommendations: Any, truth: Any, k: int, *, threshold: float | None = None) -> float:
    """Mean over users with relevant items of AP@k.

    ``AP@k = (sum over hit ranks r <= k of precision@r) / min(|relevant|, k)``.

    Args:
        recommendations: ``[n_users, width]`` item ids in rank order, ``-1`` = no item.
        truth: ``n_users x n_items`` sparse matrix of relevant items.
        k: cutoff, >= 1.
        threshold: if given, only truth values ``>= threshold`` are relevant (default: any non-zero).

    Returns:
        The MAP@k (``nan`` if no user has a relevant item).

    Raises:
        DataError: on mismatched rows, out-of-range item ids or a bad ``k``.

    """
    hits, n_rel = _hits(recommendations, truth, k, threshold)
    return _mean(_ap_rows(hits, n_rel), n_rel)


def hit_rate_at_k(recommendations: Any, truth: Any, k: int, *, threshold: float | None = None) -> float:
    """Share of users with relevant items that have at least one hit in the top ``k``.

    Args:
        recommendations: ``[n_users, width]`` item ids in rank order, ``-1`` = no item.
        truth: ``n_users x n_items`` sparse matrix of relevant items.
        k: cutoff, >= 1.
        threshold: if given, only truth values ``>= threshold`` are relevant (default: any non-zero).

    Returns:
        The hit rate@k (``nan`` if no user has a relevant item).

    Raises:
        DataError: on mismatched rows, out-of-range item ids or a bad ``k``.

    """
    hits, n_rel = _hits(recommendations, truth, k, threshold)
    return _mean(hits.any(axis=1).astype(np.float64), n_rel)


def evaluate(
    recommendations: Any,
    truth: Any,
    ks: Iterable[int] = (1, 5, 10),
    *,
    threshold: float | None = None,
    idcg: IdcgMode = "min",
) -> dict[str, float]:
    """All metrics at every cutoff in ``ks``, computing the hits once.

    Args:
        recommendations: ``[n_users, width]`` item ids in rank order, ``-1`` = no item.
        truth: ``n_users x n_items`` sparse matrix of relevant items.
        ks: cutoffs, each >= 1.
        threshold: if given, only truth values ``>= threshold`` are relevant (default: any non-zero).
        idcg: NDCG normalisation, see :func:`ndcg_at_k`.

    Returns:
        ``{"precision@k", "recall@k", "ndcg@k", "map@k", "hit_rate@k"}`` for every ``k`` (in the order of
        ``ks``), each a mean over users with at least one relevant item (``nan`` if there are none).

    Raises:
        DataError: on mismatched rows, out-of-range item ids or a bad cutoff.

    """
    ks = [_check_k(k) for k in ks]
    if not ks:
        raise DataError("ks must hold at least one cutoff")
    _check_idcg(idcg)
    hits_all, n_rel = _hits(recommendations, truth, max(ks), threshold)
    out: dict[str, float] = {}
    for k in ks:
        hits = hits_all[:, :k]
        n_hits = hits.sum(axis=1)
        out[f"precision@{k}"] = _mean(n_hits / k, n_rel)
        out[f"recall@{k}"] = _mean(n_hits / np.maximum(n_rel, 1), n_rel)
        out[f"ndcg@{k}"] = _mean(_ndcg_rows(hits, n_rel, idcg), n_rel)
        out[f"map@{k}"] = _mean(_ap_rows(hits, n_rel), n_rel)
        out[f"hit_rate@{k}"] = _mean((n_hits > 0).astype(np.float64), n_rel)
    return out


# ----------------------------------------------------------------------------------------------------
# baselines
# ----------------------------------------------------------------------------------------------------


def popularity_recommend(
    train: Any, k: int, *, exclude_seen: bool = True, users: np.ndarray | None = None
) -> np.ndarray:
    """Top-``k`` most popular items for every user.

    Popularity is the number of users with a non-zero training entry for the item; ties go to the lower
    item id.

    Args:
        train: ``n_users x n_items`` sparse matrix of training interactions (non-zero = seen).
        k: number of recommendations per user, >= 1.
        exclude_seen: skip each user's own training items (default ``True``).
        users: row ids to recommend for (default: all rows, in order).

    Returns:
        int64 array ``[len(users), k]`` of item ids in rank order, padded with ``-1`` when a user has fewer
        than ``k`` candidate items.

    Raises:
        DataError: on a bad ``k`` or out-of-range ``users``.

    """
    k = _check_k(k)
    x = _seen_matrix(train)
    n_items = x.shape[1]
    rows = _check_users(users, x.shape[0])
    popularity = np.bincount(x.indices, minlength=n_items)
    ranking = np.argsort(-popularity, kind="stable")
    out = np.full((rows.size, k), -1, dtype=np.int64)
    if not exclude_seen:
        top = ranking[:k]
        out[:, : top.size] = top
        return out
    rank_of = np.empty(n_items, dtype=np.int64)
    rank_of[ranking] = np.arange(n_items)
    sub = x[rows] if users is not None else x
    counts = np.diff(sub.indptr)
    row_of = np.repeat(np.arange(rows.size, dtype=np.int64), counts)
    ranks = rank_of[sub.indices]
    # Only seen ranks below k + (seen count) can push the k-th free rank; sort those per row.
    keep = ranks < k + counts[row_of]
    packed = np.sort(row_of[keep] * n_items + ranks[keep])
    seen_row = packed // n_items
    indptr = np.zeros(rows.size + 1, dtype=np.int64)
    np.cumsum(np.bincount(seen_row, minlength=rows.size), out=indptr[1:])
    targets = np.broadcast_to(np.arange(k, dtype=np.int64), (rows.size, k))
    free_rank = _nth_free(indptr, packed - seen_row * n_items, targets, n_items)
    ok = free_rank < n_items
    out[ok] = ranking[free_rank[ok]]
    return out


def random_recommend(
    train: Any, k: int, seed: int = 0, *, exclude_seen: bool = True, users: np.ndarray | None = None
) -> np.ndarray:
    """``k`` distinct items drawn uniformly at random for every user (the chance baseline).

    Args:
        train: ``n_users x n_items`` sparse matrix of training interactions (non-zero = seen).
        k: number of recommendations per user, >= 1.
        seed: random seed (same seed, same output).
        exclude_seen: draw only among each user's unseen items (default ``True``).
        users: row ids to recommend for (default: all rows, in order).

    Returns:
        int64 array ``[len(users), k]`` of item ids, padded with ``-1`` when a user has fewer than ``k``
        candidate items.

    Raises:
        DataError: on a bad ``k`` or out-of-range ``users``.

    """
    k = _check_k(k)
    x = _seen_matrix(train)
    n_items = x.shape[1]
    rows = _check_users(users, x.shape[0])
    rng = np.random.default_rng(seed)
    n = rows.size
    if exclude_seen:
        sub = x[rows] if users is not None else x
        indptr = sub.indptr.astype(np.int64)
        seen = sub.indices.astype(np.int64)
    else:
        indptr = np.zeros(n + 1, dtype=np.int64)
        seen = np.zeros(0, dtype=np.int64)
    n_free = n_items - np.diff(indptr)
    take = np.minimum(n_free, k)
    pos = np.full((n, k), -1, dtype=np.int64)

    # Rows with few free items: a random permutation of all of them.
    small = np.flatnonzero(n_free <= 4 * k)
    if small.size:
        width = int(n_free[small].max())
        if width > 0:
            keys = rng.random((small.size, width))
            keys[np.arange(width)[None, :] >= n_free[small][:, None]] = np.inf
            perm = np.argsort(keys, axis=1)[:, :k]
            valid = np.arange(perm.shape[1])[None, :] < take[small][:, None]
            block = np.where(valid, perm, -1)
            pos[small, : block.shape[1]] = block
    # Other rows: draw with replacement and redraw rows that got a repeat (rare when n_free > 4k).
    todo = np.flatnonzero(n_free > 4 * k)
    while todo.size:
        draw = np.floor(rng.random((todo.size, k)) * n_free[todo][:, None]).astype(np.int64)
        np.minimum(draw, n_free[todo][:, None] - 1, out=draw)
        srt = np.sort(draw, axis=1)
        repeat = (srt[:, 1:] == srt[:, :-1]).any(axis=1)
        pos[todo[~repeat]] = draw[~repeat]
        todo = todo[repeat]

    out = _nth_free(indptr, seen, np.maximum(pos, 0), n_items)
    out[pos < 0] = -1
    return out


# ----------------------------------------------------------------------------------------------------
# internals
# ----------------------------------------------------------------------------------------------------


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise DataError(f"k must be an integer >= 1, got {k!r}")
    return int(k)


def _check_idcg(idcg: str) -> None:
    if idcg not in ("min", "all"):
        raise DataError(f"idcg must be 'min' or 'all', got {idcg!r}")


def _check_users(users: np.ndarray | None, n_users: int) -> np.ndarray:
    if users is None:
        return np.arange(n_users, dtype=np.int64)
    rows = np.asarray(users)
    if rows.ndim != 1 or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
        raise DataError("users must be a 1-D array of integer row ids")
    rows = rows.astype(np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= n_users):
        raise DataError(f"users must lie in [0, {n_users}), got ids from {rows.min()} to {rows.max()}")
    return rows


def _as_csr(matrix: Any, name: str) -> sp.csr_matrix:
    """Return a canonical csr (sorted, duplicates summed), copying if needed; the input is never modified."""
    if sp.issparse(matrix):
        m = sp.csr_matrix(matrix)
    else:
        arr = np.asarray(matrix)
        if arr.ndim != 2:
            raise DataError(f"{name} must be a 2-D sparse matrix, got shape {arr.shape}")
        m = sp.csr_matrix(arr)
    if not m.has_canonical_format:
        m = m.copy()
        m.sum_duplicates()
    return m


def _seen_matrix(train: Any) -> sp.csr_matrix:
    """Canonical csr holding only the non-zero entries of ``train``."""
    x = _as_csr(train, "train")
    if x.nnz and not np.all(x.data != 0):
        x = x.copy()
        x.eliminate_zeros()
    return x


def _hits(recommendations: Any, truth: Any, k: Any, threshold: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Boolean hits ``[n_users, k]`` (first occurrence of a relevant item) and relevant counts per user."""
    k = _check_k(k)
    t = _as_csr(truth, "truth")
    n_users, n_items = t.shape
    recs = np.asarray(recommendations)
    if recs.ndim != 2:
        raise DataError(f"recommendations must be a 2-D [n_users, k] array, got shape {recs.shape}")
    if recs.size and not np.issubdtype(recs.dtype, np.integer):
        raise DataError(f"recommendations must hold integer item ids, got dtype {recs.dtype}")
    if recs.shape[0] != n_users:
        raise DataError(f"recommendations has {recs.shape[0]} rows but truth has {n_users} users")
    r = np.full((n_users, k), -1, dtype=np.int64)
    width = min(k, recs.shape[1])
    r[:, :width] = recs[:, :width]
    if r.size and (r.min() < -1 or r.max() >= n_items):
        raise DataError(f"recommended item ids must lie in [0, {n_items}) or be -1, got {r.min()}..{r.max()}")

    # Relevant entries as sorted keys row * n_items + item.
    relevant = t.data != 0 if threshold is None else t.data >= threshold
    row_of = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(t.indptr))
    keys = row_of[relevant] * n_items + t.indices[relevant]
    n_rel = np.bincount(row_of[relevant], minlength=n_users)

    valid = r >= 0
    if k > 1:  # repeated items count only at their first rank
        order = np.argsort(r, axis=1, kind="stable")
        srt = np.take_along_axis(r, order, axis=1)
        repeat = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
        if repeat.any():
            rr, cc = np.nonzero(repeat)
            valid[rr, order[rr, cc + 1]] = False
    query = np.arange(n_users, dtype=np.int64)[:, None] * n_items + r
    if keys.size == 0:
        return np.zeros_like(valid), n_rel
    pos = np.searchsorted(keys, query)
    np.minimum(pos, keys.size - 1, out=pos)
    hits = valid & (keys[pos] == query)
    return hits, n_rel


def _mean(values: np.ndarray, n_rel: np.ndarray) -> float:
    mask = n_rel > 0
    if not mask.any():
        return float("nan")
    return float(np.mean(values[mask]))


def _ndcg_rows(hits: np.ndarray, n_rel: np.ndarray, idcg: str) -> np.ndarray:
    _check_idcg(idcg)
    k = hits.shape[1]
    m = np.minimum(n_rel, k) if idcg == "min" else n_rel
    disc = 1.0 / np.log2(np.arange(2, max(k, int(m.max(initial=0))) + 2, dtype=np.float64))
    cum = np.concatenate([[0.0], np.cumsum(disc)])
    dcg = hits @ disc[:k]
    ideal = cum[m]
    return np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)


def _ap_rows(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    k = hits.shape[1]
    prec = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    total = (prec * hits).sum(axis=1)
    return total / np.maximum(np.minimum(n_rel, k), 1)


def _nth_free(indptr: np.ndarray, seen: np.ndarray, targets: np.ndarray, n_values: int) -> np.ndarray:
    """Return, per row ``u``, the ``targets[u, j]``-th (0-based) value of ``[0, n_values)`` not seen by ``u``.

    ``seen`` holds each row's distinct values in increasing order (``indptr`` delimits the rows). With the
    row's seen values ``s_0 < s_1 < ...`` and ``t_i = s_i - i`` (free values below ``s_i``, non-decreasing),
    the ``j``-th free value is ``j + #{i : t_i <= j}``. Results ``>= n_values`` mean there is no such value.
    """
    n = indptr.size - 1
    counts = np.diff(indptr)
    starts = indptr[:-1].astype(np.int64)
    local = np.arange(seen.size, dtype=np.int64) - np.repeat(starts, counts)
    base = n_values + 1
    keys = np.repeat(np.arange(n, dtype=np.int64), counts) * base + (seen.astype(np.int64) - local)
    query = np.arange(n, dtype=np.int64)[:, None] * base + targets
    below = np.searchsorted(keys, query, side="right") - starts[:, None]
    return targets + below
