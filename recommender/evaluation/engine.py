"""The engine's scorers in the evaluation: the coordinator's adapter registers them here."""

from __future__ import annotations

from recommender.evaluation.scorer import Scorer


def engine_scorers() -> list[Scorer]:
    """The engine's scorers (kind ``"engine"``), evaluated beside the baselines."""
    return []
