"""The recommender as the API and the command line use it: the configured scorer and the
co-participation model, loaded once, then rankings on demand."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from contracts.errors import InvalidInput
from recommender.coparticipation_index import CoParticipationIndex
from recommender.explain import Recommendation
from recommender.ground import FactsCache, recommend_for_user
from recommender.scorers import LinearScorer, load_weighted
from recommender.settings import RecommenderSettings

COPARTICIPATION_FILE = "coparticipation.npz"
RANKER_FILE = "ranker.skops"


@dataclass(frozen=True)
class Recommender:
    """``settings``, the ``scorer`` they name, and the co-participation model when
    ``recommend train`` has written one in ``settings.model_dir``."""

    settings: RecommenderSettings
    scorer: LinearScorer
    coparticipation: CoParticipationIndex | None
    cache: FactsCache = field(default_factory=FactsCache)

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
        return cls(settings, scorer, co, FactsCache(ttl_s=settings.facts_ttl_s))

    def for_user(self, conn: psycopg.Connection, user_id: int, k: int) -> list[Recommendation]:
        """The top ``k`` (1..settings.k_max) for ``user_id``; see ground.recommend_for_user."""
        if not 0 <= user_id < 2**63:  # app_user.id is a bigint
            raise InvalidInput(f"user id must be between 0 and {2**63 - 1}, not {user_id}")
        if not 1 <= k <= self.settings.k_max:
            raise InvalidInput(f"k must be between 1 and {self.settings.k_max}, not {k}")
        return recommend_for_user(
            conn, user_id, self.scorer, self.settings.ranking(k), self.coparticipation, self.cache
        )
