"""Re-ranking of a group's scores: diversity by maximal marginal relevance, and an exposure
floor for what concerns the user's own place.

MMR (Carbonell & Goldstein, 1998): pick, one slot at a time, the candidate maximising
λ·relevance − (1 − λ)·max similarity to what is already picked, relevance being the score
min-max normalised over the user's pool (the best ``pool`` candidates). Similarity between two
projects: 0.4 same organisation + 0.3 same tool + 0.3 Jaccard of their themes.

Exposure floor: a small commune's projects must not vanish under a metropole's hundreds. When
none of the user's top k concerns their own place (a floor level: commune, arrondissement, a
drawn area or circle touching it) although one is eligible, the best such candidate takes the
last slot. All users of a group are handled together, k steps of array operations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recommender.facts import Items, level_index
from recommender.features import Matrix

FLOOR_LEVELS: tuple[str, ...] = ("commune", "arrondissement", "area", "radius")

Cols = npt.NDArray[np.intp]


@dataclass(frozen=True)
class Diversity:
    """What tells a group's candidates apart: organisation and tool codes, themes (float32
    one-hot), each over the candidates' columns."""

    organisation: npt.NDArray[np.int64]
    tool: npt.NDArray[np.int64]
    themes: Matrix

    @classmethod
    def of(cls, items: Items, candidates: npt.NDArray[np.int64]) -> Diversity:
        _, tool = np.unique(np.asarray(items.tool, dtype=object)[candidates], return_inverse=True)
        return cls(
            items.organisation[candidates],
            tool.astype(np.int64),
            items.themes[candidates].astype(np.float32),
        )

    def similarity(self, a: Cols, b: Cols) -> Matrix:
        """Similarity of column a[i] to each column b[i, j]: shape of ``b``."""
        themes_a, themes_b = self.themes[a], self.themes[b]  # (m, T), (m, P, T)
        inter = np.einsum("mt,mpt->mp", themes_a, themes_b)
        union = themes_a.sum(axis=1)[:, None] + themes_b.sum(axis=2) - inter
        jaccard = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        sim: Matrix = (
            0.4 * (self.organisation[a][:, None] == self.organisation[b])
            + 0.3 * (self.tool[a][:, None] == self.tool[b])
            + 0.3 * jaccard
        ).astype(np.float32)
        return sim


def top_k(scores: Matrix, k: int) -> Cols:
    """The columns of the k best finite scores per row, best first; -1 pads rows with fewer.
    Ties break by column, so the order of the input never matters beyond the columns' own."""
    m, n = scores.shape
    k_eff = min(k, n)
    out = np.full((m, k), -1, dtype=np.intp)
    if k_eff == 0:
        return out
    part = (
        np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
        if k_eff < n
        else np.tile(np.arange(n), (m, 1))
    )
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    chosen = np.take_along_axis(part, order, axis=1)
    finite = np.isfinite(np.take_along_axis(vals, order, axis=1))
    out[:, :k_eff] = np.where(finite, chosen, -1)
    return out


def mmr(scores: Matrix, diversity: Diversity, k: int, lam: float, pool: int) -> Cols:
    """Columns picked by MMR per row (m × k, -1 padded). ``lam`` = 1 is plain top-k."""
    if lam >= 1.0:
        return top_k(scores, k)
    candidates = top_k(scores, max(pool, k))  # (m, P), -1 padded
    m, p = candidates.shape
    valid = candidates >= 0
    safe = np.where(valid, candidates, 0)
    s = np.where(valid, np.take_along_axis(scores, safe, axis=1), np.nan)
    lo, hi = (
        np.nanmin(np.where(valid, s, np.inf), axis=1),
        np.nanmax(np.where(valid, s, -np.inf), axis=1),
    )
    span = np.where(hi > lo, hi - lo, 1.0)
    relevance = np.where(valid, (s - lo[:, None]) / span[:, None], -np.inf)
    max_sim = np.zeros((m, p), dtype=np.float32)
    taken = ~valid
    out = np.full((m, k), -1, dtype=np.intp)
    rows = np.arange(m)
    for slot in range(k):
        value = np.where(taken, -np.inf, lam * relevance - (1 - lam) * max_sim)
        best = np.argmax(value, axis=1)
        ok = np.isfinite(value[rows, best])
        out[:, slot] = np.where(ok, candidates[rows, best], -1)
        taken[rows[ok], best[ok]] = True
        picked = safe[rows, best]
        max_sim = np.maximum(max_sim, diversity.similarity(picked, safe))
    return out


def exposure_floor(cols: Cols, scores: Matrix, levels: npt.NDArray[np.int64]) -> Cols:
    """``cols`` with, for each row holding no floor-level candidate although an eligible one
    exists (finite score), the best such candidate in the last filled slot. ``levels``: (n_c,)
    shared by the rows, or (m, n_c)."""
    floor = np.broadcast_to(np.isin(levels, [level_index(w) for w in FLOOR_LEVELS]), scores.shape)
    if not floor.any() or cols.shape[1] == 0:
        return cols
    safe = np.where(cols >= 0, cols, 0)
    has_floor = ((cols >= 0) & np.take_along_axis(floor, safe, axis=1)).any(axis=1)
    floor_scores = np.where(floor, scores, -np.inf)
    best = np.argmax(floor_scores, axis=1)
    eligible = np.isfinite(floor_scores[np.arange(len(cols)), best])
    fix = ~has_floor & eligible
    if not fix.any():
        return cols
    out = cols.copy()
    filled = (cols >= 0).sum(axis=1)
    k = cols.shape[1]
    slot = np.where(filled < k, filled, k - 1)
    out[np.flatnonzero(fix), slot[fix]] = best[fix]
    return out
