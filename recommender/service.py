"""The recommender as the API and the command line use it: the configured scorer and the
co-participation model, loaded once, then rankings on demand."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from contracts.errors import InvalidInput
from geo_engine import experiments
from recommender.coparticipation_index import CoParticipationIndex
from recommender.explain import Recommendation
from recommender.ground import FactsCache, recommend_for_user
from recommender.scorers import LinearScorer, load_weighted
from recommender.settings import RecommenderSettings
from recommender.variants import RANKER_FILE as RANKER_FILE  # where recommend train writes
from recommender.variants import RankingVariants, exposure_ref

COPARTICIPATION_FILE = "coparticipation.npz"


@dataclass(frozen=True)
class Served:
    """A ranking as served: the ``scorer`` that ranked it (a ranking experiment's variant or
    the configured one) and the recommendations."""

    scorer: LinearScorer
    recommendations: list[Recommendation]


@dataclass(frozen=True)
class Recommender:
    """``settings``, the ``scorer`` they name, the co-participation model when
    ``recommend train`` has written one in ``settings.model_dir``, and the ranking
    experiments' scorers (``variants``)."""

    settings: RecommenderSettings
    scorer: LinearScorer
    coparticipation: CoParticipationIndex | None
    cache: FactsCache = field(default_factory=FactsCache)
    variants: RankingVariants | None = None

    @classmethod
    def load(cls, settings: RecommenderSettings) -> Recommender:
        """InvalidInput when the weights file or the learned model is missing or refused."""
        if settings.scorer == "weighted":
            scorer = load_weighted(settings.weights)
        else:
            from recommender.model_file import load  # noqa: PLC0415 (skops only when used)

            scorer = load(settings.model_dir / RANKER_FILE).scorer()
        co_path = settings.model_dir / COPARTICIPATION_FILE
        co = CoParticipationIndex.load(co_path) if co_path.is_file() else None
        variants = RankingVariants.of(scorer, settings.weights, settings.model_dir)
        return cls(settings, scorer, co, FactsCache(ttl_s=settings.facts_ttl_s), variants)

    def for_user(self, conn: psycopg.Connection, user_id: int, k: int) -> list[Recommendation]:
        """The top ``k`` (1..settings.k_max) for ``user_id`` by the configured scorer (no
        experiment, nothing logged: the command line's view); see ground.recommend_for_user."""
        return self._rank(conn, user_id, k, self.scorer)

    def serve(
        self, conn: psycopg.Connection, user_id: int, k: int, now: datetime, *, seen: bool = True
    ) -> Served:
        """:meth:`for_user` as served at ``now`` (aware): ranked by the user's ranking
        experiment's variant when they are in a running one; when the user sees it themself
        (``seen``; not staff looking), its exposure is logged (``ranking:<UTC day>``, once per
        user and day) on ``conn``, committed with the caller's transaction."""
        self._check(user_id, k)
        scorer = self.scorer
        if self.variants is not None:
            found = self.variants.for_users(conn, [user_id]).get(user_id)
            if found is not None:
                assignment, scorer = found
                if seen:
                    experiments.log_exposures(conn, [(user_id, assignment, exposure_ref(now))], now)
        return Served(scorer, self._rank(conn, user_id, k, scorer))

    def _check(self, user_id: int, k: int) -> None:
        if not 0 <= user_id < 2**63:  # app_user.id is a bigint
            raise InvalidInput(f"user id must be between 0 and {2**63 - 1}, not {user_id}")
        if not 1 <= k <= self.settings.k_max:
            raise InvalidInput(f"k must be between 1 and {self.settings.k_max}, not {k}")

    def _rank(
        self, conn: psycopg.Connection, user_id: int, k: int, scorer: LinearScorer
    ) -> list[Recommendation]:
        self._check(user_id, k)
        return recommend_for_user(
            conn, user_id, scorer, self.settings.ranking(k), self.coparticipation, self.cache
        )
