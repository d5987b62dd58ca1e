"""Ranking metrics as small pure functions over named arrays.

The ranking of each user is ``top`` (n_users × K item indices, best first, ``-1`` where fewer
than K items were ranked). ``hits`` (n_users × K bool) marks the ranked items that are
relevant, ``n_relevant`` (n_users) counts each user's relevant items. Every per-user metric
returns one value per user (NaN where undefined); :func:`bootstrap_ci` turns them into a mean's
95% interval.

Definitions (as in recommenders-team/recommenders' python_evaluation.py, binary relevance):

* recall@k = |top-k ∩ relevant| / min(k, |relevant|)
* NDCG@k = DCG@k / IDCG@k, DCG@k = Σ_{j<k} hit_j / log2(j + 2), IDCG@k over min(k, |relevant|)
* hit@k = 1 when at least one relevant item is in the top k
* out_of_scope@k = share of the top k the user could not vote on (undefined for a user whose
  location is unknown)
* coverage@k = share of the ranked catalogue found in at least one user's top k
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """(n × k) column indices of the k best finite scores of each row, best first; ties go to
    the lower column; ``-1`` where a row has fewer than k finite scores. Linear in the row
    length: the k-th value by partition, then only k columns sorted."""
    n, m = scores.shape
    k_eff = min(k, m)
    if k_eff == 0:
        return np.full((n, k), -1, dtype=np.int64)
    kth = -np.partition(-scores, k_eff - 1, axis=1)[:, k_eff - 1 : k_eff]
    above = scores > kth
    tied = scores == kth
    room = k_eff - above.sum(axis=1, keepdims=True)
    chosen = above | (tied & (np.cumsum(tied, axis=1) <= room))  # lowest tied columns first
    columns = np.nonzero(chosen)[1].reshape(n, k_eff)  # ascending within each row
    order = np.argsort(-np.take_along_axis(scores, columns, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(columns, order, axis=1)
    finite = np.isfinite(np.take_along_axis(scores, top, axis=1))
    top = np.where(finite, top, -1)
    if k_eff < k:
        top = np.hstack([top, np.full((n, k - k_eff), -1, dtype=top.dtype)])
    return top.astype(np.int64)


def hits_of(top: np.ndarray, relevant: scipy.sparse.csr_matrix) -> np.ndarray:
    """(n × K) bool: ``top[u, j]`` is one of user u's relevant items (columns of ``relevant``)."""
    dense = relevant.toarray() > 0 if relevant.shape[1] else np.zeros(relevant.shape, bool)
    safe = np.where(top >= 0, top, 0)
    return np.take_along_axis(dense, safe, axis=1) & (top >= 0)


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """|top-k ∩ relevant| / min(k, |relevant|); NaN for a user with nothing relevant."""
    found = hits[:, :k].sum(axis=1).astype(np.float64)
    denominator = np.minimum(k, n_relevant).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, found / denominator, np.nan)


def ndcg_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """NDCG@k with binary relevance; NaN for a user with nothing relevant."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
    dcg = (hits[:, :k] * discounts[: hits[:, :k].shape[1]]).sum(axis=1)
    ideal_cum = np.concatenate([[0.0], np.cumsum(discounts)])
    idcg = ideal_cum[np.minimum(k, n_relevant)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(idcg > 0, dcg / idcg, np.nan)


def hit_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """1.0 when a relevant item is in the top k; NaN for a user with nothing relevant."""
    hit = hits[:, :k].any(axis=1).astype(np.float64)
    return np.where(n_relevant > 0, hit, np.nan)


def out_of_scope_at_k(
    top: np.ndarray, eligible: np.ndarray, located: np.ndarray, k: int
) -> np.ndarray:
    """Share of the (ranked part of the) top k the user could not vote on. ``eligible`` is
    (n × n_columns) bool; ``located`` (n) says whether the user's location is known: NaN where
    it is not, or where nothing was ranked."""
    head = top[:, :k]
    ranked = head >= 0
    safe = np.where(ranked, head, 0)
    outside = ~np.take_along_axis(eligible, safe, axis=1) & ranked
    count = ranked.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = outside.sum(axis=1) / count
    return np.where(located & (count > 0), share, np.nan)


def coverage_at_k(top: np.ndarray, n_columns: int, k: int) -> float:
    """Share of the n_columns ranked items that appear in at least one user's top k."""
    if n_columns == 0:
        return float("nan")
    shown = np.unique(top[:, :k])
    return float((shown >= 0).sum() / n_columns)


def coverage_by_group(top: np.ndarray, column_group: Sequence[str], k: int) -> dict[str, float]:
    """For each group (a district), the share of its items in at least one user's top k."""
    shown = set(np.unique(top[:, :k]).tolist()) - {-1}
    totals: dict[str, int] = {}
    found: dict[str, int] = {}
    for column, group in enumerate(column_group):
        totals[group] = totals.get(group, 0) + 1
        found[group] = found.get(group, 0) + (column in shown)
    return {group: found[group] / totals[group] for group in sorted(totals)}


def mean(values: np.ndarray) -> float | None:
    """The mean over defined values, ``None`` when none is defined."""
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else None


def bootstrap_weights(n_users: int, seed: int, resamples: int = 1000) -> np.ndarray:
    """(resamples × n_users) float32: how many times each user is drawn in each resample of the
    users with replacement, seeded. Drawn once per task, shared by its scorers and metrics (the
    scorers are compared on the same resamples)."""
    rng = np.random.default_rng(seed)
    if n_users == 0:
        return np.zeros((resamples, 0), dtype=np.float32)
    draws = rng.integers(0, n_users, size=(resamples, n_users))
    draws += (np.arange(resamples) * n_users)[:, None]
    counts = np.bincount(draws.ravel(), minlength=resamples * n_users)
    return counts.reshape(resamples, n_users).astype(np.float32)


def bootstrap_ci(
    values: np.ndarray,
    seed: int,
    resamples: int = 1000,
    level: float = 0.95,
    weights: np.ndarray | None = None,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean over users, resampling users with replacement
    (``weights`` from :func:`bootstrap_weights`, else drawn from ``seed``); undefined (NaN)
    values are left out of each resample's mean. ``None`` when no value is defined."""
    defined = ~np.isnan(values)
    if not defined.any():
        return None
    if weights is None:
        weights = bootstrap_weights(len(values), seed, resamples)
    mask = defined.astype(np.float32)
    counts = weights @ mask
    sums = weights @ np.where(defined, values, 0.0).astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (sums / counts)[counts > 0].astype(np.float64)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    # float32 sums: keep the interval within the values' own range
    low = max(float(low), float(np.nanmin(values)))
    high = min(float(high), float(np.nanmax(values)))
    return low, high


def summarise(
    per_user: Mapping[str, np.ndarray], weights: np.ndarray
) -> tuple[dict[str, float | None], dict[str, list[float] | None]]:
    """Each metric's mean and its bootstrap 95% interval over the resamples ``weights``."""
    means = {name: mean(values) for name, values in per_user.items()}
    cis: dict[str, list[float] | None] = {}
    for name, values in per_user.items():
        ci = bootstrap_ci(values, 0, weights=weights)
        cis[name] = None if ci is None else [ci[0], ci[1]]
    return means, cis
