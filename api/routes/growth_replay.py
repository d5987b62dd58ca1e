"""``POST /v1/growth/replay``: the offline replay of candidate weights (growth/replay.py), for
staff only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from api.deps import StaffDep
from api.problems import documented
from api.routes.writes import PoolDep
from contracts.growth import ReplayReport
from growth import replay as engine
from recommender.scorers import load_weighted
from recommender.service import Recommender

router = APIRouter(prefix="/v1/growth", tags=["growth"], responses=documented(401, 403, 422))

Weight = Annotated[float, Field(allow_inf_nan=False)]


class ReplayRequest(BaseModel):
    """Candidate ``weights`` (feature → weight, merged over the current weights file; unknown
    features are refused), the propensities' ``eta``, and the digests mailed in
    [``since``, ``until``) (default: the 28 days before now; with a time zone)."""

    model_config = ConfigDict(extra="forbid")

    weights: Annotated[dict[str, Weight], Field(max_length=100)]
    eta: Annotated[float, Field(ge=0, le=10, allow_inf_nan=False)] = 1.0
    clip: Annotated[float, Field(ge=1, le=1000, allow_inf_nan=False)] = 10.0
    ndcg_at: Annotated[int, Field(ge=1, le=1000)] = 10
    resamples: Annotated[int, Field(ge=10, le=100_000)] = 1000
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 0
    since: datetime | None = None
    until: datetime | None = None


@router.post("/replay", response_model=ReplayReport)
def replay(body: ReplayRequest, request: Request, _staff: StaffDep, pool: PoolDep) -> ReplayReport:
    """Replay the digests' logged clicks under the current weights and the candidate: clicks
    per list by inverse propensity with bootstrap intervals, NDCG, team-draft interleaving and
    a verdict in French. 422 naming unknown features or numbers that are not finite."""
    recommender: Recommender = request.app.state.recommender
    current = load_weighted(recommender.settings.weights)
    candidate = engine.candidate_scorer(current, body.weights)
    since, until = engine.window(body.since, body.until, datetime.now(UTC))
    params = engine.ReplayParams(
        eta=body.eta,
        clip=body.clip,
        ndcg_at=body.ndcg_at,
        resamples=body.resamples,
        seed=body.seed,
    )
    with pool.connection() as conn:
        return engine.replay(
            conn, current, candidate, since, until, params, recommender.coparticipation
        )
