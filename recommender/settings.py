"""The recommender's settings (environment prefix ``GEO_ENGINE_RECOMMENDER_``, and ``.env``), and
the offline evaluation's (prefix ``GEO_ENGINE_``: ``GEO_ENGINE_REALDATA_DIR`` sits beside
``GEO_ENGINE_GEODATA_DIR``).

Built by the caller and passed in; nothing is read at import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.errors import InvalidInput
from geo_engine.settings import shared_folder
from recommender.ranking import RankingConfig
from recommender.scorers import DEFAULT_WEIGHTS


class RecommenderSettings(BaseSettings):
    """Which scorer ranks, with what, and how the list is re-ranked."""

    model_config = SettingsConfigDict(
        env_prefix="GEO_ENGINE_RECOMMENDER_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    scorer: Literal["weighted", "learned"] = Field(
        default="weighted", description="the transparent weighted scorer or the learned ranker"
    )
    weights: Path = Field(default=DEFAULT_WEIGHTS, description="the weighted scorer's TOML file")
    model_dir: Path = Field(
        default=Path("var/recommender"),
        description="where `recommend train` writes the learned ranker and the co-participation "
        "model, and where the engine reads them",
    )
    k_max: int = Field(
        default=100, ge=1, le=1000, description="most recommendations one call may ask"
    )
    mmr_lambda: float = Field(
        default=0.8, ge=0.0, le=1.0, description="MMR's relevance weight (1: no diversity)"
    )
    mmr_pool: int = Field(default=40, ge=1, le=1000, description="candidates MMR picks among")
    exposure_floor: bool = Field(
        default=True, description="keep a slot for a project of the user's own place"
    )
    facts_ttl_s: float = Field(
        default=60.0,
        ge=0.0,
        description="seconds a process keeps a project's facts (participants, texts) "
        "between requests",
    )
    min_contribution: float = Field(
        default=0.25, ge=0.0, description="contribution a feature needs to give a reason"
    )

    def ranking(self, k: int) -> RankingConfig:
        """The ranking configuration for ``k`` recommendations."""
        return RankingConfig(
            k=k,
            mmr_lambda=self.mmr_lambda,
            mmr_pool=self.mmr_pool,
            exposure_floor=self.exposure_floor,
            min_contribution=self.min_contribution,
        )


def _default_realdata_dir() -> Path | None:
    return shared_folder("realdata")


class EvaluationSettings(BaseSettings):
    """The offline evaluation on real participatory-budgeting ballots (Pabulib)."""

    model_config = SettingsConfigDict(
        env_prefix="GEO_ENGINE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    realdata_dir: Path | None = Field(
        default_factory=_default_realdata_dir,
        description="folder of Pabulib city-edition folders (see shared/realdata/README.md)",
    )
    test_share: float = Field(
        default=0.2, gt=0, lt=1, description="share of each edition's voters held out for testing"
    )
    bootstrap_resamples: int = Field(
        default=1000, ge=10, le=100_000, description="resamples of the test users for the 95% CIs"
    )

    def require_realdata_dir(self) -> Path:
        if self.realdata_dir is None:
            raise InvalidInput(
                "no participation data: set GEO_ENGINE_REALDATA_DIR to the shared/realdata folder"
            )
        if not self.realdata_dir.is_dir():
            raise InvalidInput(f"GEO_ENGINE_REALDATA_DIR={self.realdata_dir} is not a folder")
        return self.realdata_dir
