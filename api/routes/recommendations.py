"""Recommendations over HTTP: the user themself or staff; anyone else gets the answer of a
missing user."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from api.deps import UserIdPath, ViewerDep
from api.problems import documented
from api.routes.writes import PoolDep, actor
from contracts.recommendations import RecommendationList, RecommendationView
from contracts.values import Integer
from geo_engine import writes
from recommender.service import Recommender

router = APIRouter(
    prefix="/v1/users", tags=["recommendations"], responses=documented(401, 404, 422)
)


def _recommender(request: Request) -> Recommender:
    recommender: Recommender = request.app.state.recommender
    return recommender


RecommenderDep = Annotated[Recommender, Depends(_recommender)]
K = Annotated[int, Query(ge=1, le=100, description="how many, at most 100"), Integer]


@router.get("/{user_id}/recommendations", response_model=RecommendationList)
def recommendations(
    user_id: UserIdPath,
    viewer: ViewerDep,
    pool: PoolDep,
    recommender: RecommenderDep,
    k: K = 10,
) -> RecommendationList:
    """The ``k`` open projects that most concern you, best first, each with its reasons in
    French and each feature's contribution to its score. Projects you joined or dismissed are
    left out; private projects only reach their organisation's members. A user in a running
    ranking experiment is ranked by their variant's scorer (named in ``version``)."""
    with pool.connection() as conn:
        writes.get_user(conn, actor(viewer), user_id)  # yourself or staff, else 404
        served = recommender.serve(
            conn, user_id, k, datetime.now(UTC), seen=viewer.user_id == user_id
        )
    return RecommendationList(
        user_id=user_id,
        scorer=served.scorer.name,
        version=served.scorer.version,
        recommendations=[RecommendationView(**asdict(r)) for r in served.recommendations],
    )
