"""Recommendations as the API and the command line give them."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RecommendationView(BaseModel):
    """One recommended project: its ``score`` under the scorer named in the list (before
    re-ranking: MMR and the exposure floor may order the list otherwise), the French
    ``reasons`` a citizen reads, and each feature's ``contributions`` to the score (the
    features are documented in recommender/features.py; zero ones are left out)."""

    project_id: int
    score: float
    reasons: list[str] = Field(
        examples=[["Concerne votre commune, Bayonne", "À 2,3 km de chez vous"]]
    )
    contributions: dict[str, float] = Field(examples=[{"level:commune": 3.0, "proximity": 1.1}])


class RecommendationList(BaseModel):
    """The best ``k`` open or upcoming projects for ``user_id``, in the order served, and the
    scorer that ranked
    them (``weighted`` or ``learned``) with its version."""

    user_id: int
    scorer: str
    version: str
    recommendations: list[RecommendationView]
