"""The ranking stages after the candidates: features, exclusions, scorer, re-ranking, reasons.

For each group of users sharing candidates (:class:`facts.CandidateGroup`):

1. features of all its users × candidates (:mod:`recommender.features`);
2. exclusions: what the user already took part in, what they dismissed, and projects of a
   ballot they have filled (a citizen who used all their votes gets no more of that budget);
3. the scorer (:mod:`recommender.scorers`);
4. re-ranking: MMR diversity, then the exposure floor (:mod:`recommender.rerank`);
5. contributions of every feature to each kept score, and the reasons' features: the (up to
   three) features contributing at least ``min_contribution``, largest first, as indices into
   :data:`features.FEATURES`; :mod:`recommender.reasons` puts them in French.

Everything is array operations over the group; nothing loops over (user, project) pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse

from recommender.facts import NOT_CANDIDATE, CandidateGroup, Items, Users
from recommender.features import GroupFeatures, budget_full, group_features
from recommender.reasons import MAX_REASONS
from recommender.rerank import Diversity, exposure_floor, mmr
from recommender.scorers import LinearScorer


@dataclass(frozen=True)
class RankingConfig:
    """``k`` recommendations per user; MMR's ``mmr_lambda`` (1 = no diversity) over a pool of
    the ``mmr_pool`` best; ``exposure_floor`` on or off; ``min_contribution`` a feature needs to
    give a reason."""

    k: int = 10
    mmr_lambda: float = 0.8
    mmr_pool: int = 40
    exposure_floor: bool = True
    min_contribution: float = 0.25


@dataclass(frozen=True)
class Ranked:
    """Top-k per user. ``users``: int64 rows of :class:`Users` (m). ``items``: (m, k) int64
    rows of :class:`Items`, best first, -1 padding. ``scores``: (m, k) float32 (NaN padding).
    ``contributions``: (m, k, F) float32. ``reason_features``: (m, k, 3) int16 indices into
    FEATURES, -1 padding. ``distance_km``: (m, k) float32, NaN unknown."""

    users: npt.NDArray[np.int64]
    items: npt.NDArray[np.int64]
    scores: npt.NDArray[np.float32]
    contributions: npt.NDArray[np.float32]
    reason_features: npt.NDArray[np.int16]
    distance_km: npt.NDArray[np.float32]


def exclusions(items: Items, users: Users, group: CandidateGroup) -> npt.NDArray[np.bool_]:
    """(users × candidates) True where the candidate may not be recommended."""
    rows = group.users.astype(np.intp)
    c = group.items
    joined = (users.history[rows][:, c] >= 1.0).toarray()
    dismissed = (users.dismissed[rows][:, c] > 0).toarray()
    excluded: npt.NDArray[np.bool_] = joined | dismissed | budget_full(items, users, group)
    if group.places is not None:
        excluded |= group.user_levels() == NOT_CANDIDATE
    return excluded


def score_group(
    items: Items,
    users: Users,
    group: CandidateGroup,
    scorer: LinearScorer,
    coparticipation: sparse.csr_matrix | npt.NDArray[np.float32] | None = None,
) -> tuple[GroupFeatures, npt.NDArray[np.float32]]:
    """Stages 1-3: the group's features and scores (users × candidates), -inf where excluded."""
    features = group_features(items, users, group, coparticipation)
    scores = scorer.score(features)
    scores[exclusions(items, users, group)] = -np.inf
    return features, scores


def rank_group(
    items: Items,
    users: Users,
    group: CandidateGroup,
    scorer: LinearScorer,
    config: RankingConfig,
    coparticipation: sparse.csr_matrix | npt.NDArray[np.float32] | None = None,
    scored: tuple[GroupFeatures, npt.NDArray[np.float32]] | None = None,
) -> Ranked:
    """The top ``config.k`` of one group (see the module's stages); ``scored`` is
    :func:`score_group`'s answer when the caller already has it."""
    features, scores = scored or score_group(items, users, group, scorer, coparticipation)
    diversity = Diversity.of(items, group.items)
    cols = mmr(scores, diversity, config.k, config.mmr_lambda, config.mmr_pool)
    if config.exposure_floor:
        cols = exposure_floor(cols, scores, group.user_levels())
    m = len(group.users)
    local = np.arange(m, dtype=np.intp)
    valid = cols >= 0
    safe = np.where(valid, cols, 0)
    contributions = scorer.contributions(features, local, safe)
    contributions[~valid] = 0.0
    picked = np.take_along_axis(scores, safe, axis=1)
    order = np.argsort(-contributions, axis=2, kind="stable")[..., :MAX_REASONS]
    strong = np.take_along_axis(contributions, order, axis=2) >= config.min_contribution
    return Ranked(
        users=group.users.astype(np.int64),
        items=np.where(valid, group.items[safe], -1).astype(np.int64),
        scores=np.where(valid, picked, np.nan).astype(np.float32),
        contributions=contributions,
        reason_features=np.where(strong, order, -1).astype(np.int16),
        distance_km=np.where(valid, features.distance_km[local[:, None], safe], np.nan).astype(
            np.float32
        ),
    )
