"""From a ranking to what a citizen reads: each recommendation's French reasons and its
features' contributions (:mod:`recommender.reasons` writes the sentences)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse

from recommender.facts import Items, Users
from recommender.features import FEATURES
from recommender.ranking import Ranked
from recommender.reasons import reasons


@dataclass(frozen=True)
class Recommendation:
    """One recommendation: ``project_id``, ``score``, French ``reasons`` and each feature's
    ``contributions`` (name → share of the score; zero ones left out)."""

    project_id: int
    score: float
    reasons: list[str]
    contributions: dict[str, float]


def co_participated_title(
    items: Items, users: Users, user: int, item: int, matrix: sparse.csr_matrix | None
) -> str | None:
    """Title of the project the user took part in that is most co-participated with ``item``."""
    if matrix is None:
        return None
    history = users.history[user].indices
    if not len(history):
        return None
    sims = np.asarray(matrix[history, item].toarray()).ravel()
    best = int(np.argmax(sims))
    return items.titles[history[best]] if sims[best] > 0 else None


def explain(
    items: Items,
    users: Users,
    ranked: Ranked,
    row: int,
    matrix: sparse.csr_matrix | npt.NDArray[np.float32] | None,
    min_contribution: float = 0.25,
) -> list[Recommendation]:
    """The recommendations of ``ranked``'s row ``row``, best first."""
    user = int(ranked.users[row])
    out: list[Recommendation] = []
    for j, item in enumerate(ranked.items[row]):
        if item < 0:
            break
        contrib = ranked.contributions[row, j]
        co = co_participated_title(
            items, users, user, int(item), sparse.csr_matrix(matrix) if matrix is not None else None
        )
        out.append(
            Recommendation(
                project_id=int(items.ids[item]),
                score=round(float(ranked.scores[row, j]), 4),
                reasons=reasons(
                    items,
                    int(item),
                    contrib,
                    place_names=users.place_names[user],
                    distance_km=float(ranked.distance_km[row, j]),
                    interests=users.interests[user],
                    co_participated_title=co,
                    min_contribution=min_contribution,
                ),
                contributions={
                    FEATURES[f]: round(float(v), 4) for f, v in enumerate(contrib) if v != 0
                },
            )
        )
    return out
