"""The ranking surface's experiments: which scorer ranks for a user in a running experiment.

A variant's overrides (:class:`contracts.experiments.Overrides`) name a ``scorer``
(``weighted``: the weights file; ``learned``: the trained ranker) and ``weights`` merged over
that scorer's weights (the weights file when no scorer is named). A variant that overrides
nothing ranks with the engine's configured scorer: it is a control. Scorers are built once per
experiment and variant (a running experiment's variants never change) and shared by threads.

A variant whose scorer cannot be built (a weight for an unknown feature, no trained ranker on
this machine) ranks its users with the default and logs no exposure for them: the analysis
never counts users who did not get their variant; the refusal is logged once.

The exposure of a ranking is one per user and UTC day (:func:`exposure_ref`), whether the
ranking was served by the API or chose a digest's picks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from contracts.errors import InvalidInput
from contracts.experiments import ExperimentSpec, Overrides
from geo_engine import experiments
from recommender.scorers import (
    DEFAULT_WEIGHTS,
    LinearScorer,
    checked_weights,
    load_weighted,
    with_overrides,
)

log = logging.getLogger(__name__)
ASSIGN_CHUNK = 5_000  # users per experiments.assignments statement
RANKER_FILE = "ranker.skops"  # the learned ranker in the model directory (recommend train)


def exposure_ref(at: datetime) -> str:
    """``ranking:<UTC day>`` of the aware instant ``at``: one exposure per user and day."""
    return f"ranking:{at.astimezone(UTC).date().isoformat()}"


@dataclass
class RankingVariants:
    """The scorers of the ranking surface: ``default`` for users in no experiment (and
    controls), the weighted scorer's file and the learned ranker's (None: none on this
    machine) for the variants that name them."""

    default: LinearScorer
    weights_file: Path = DEFAULT_WEIGHTS
    learned_file: Path | None = None
    _built: dict[tuple[int, str], LinearScorer | None] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def of(cls, default: LinearScorer, weights_file: Path, model_dir: Path) -> RankingVariants:
        """The variants over ``default``, the weights file, and the learned ranker
        ``ranker.skops`` in ``model_dir`` when ``recommend train`` wrote one there."""
        ranker = model_dir / RANKER_FILE
        return cls(default, weights_file, ranker if ranker.is_file() else None)

    def scorer_of(self, assignment: experiments.Assignment) -> LinearScorer | None:
        """The scorer of ``assignment``'s variant (built once), or None when it cannot be
        built (its users then get the default, unexposed)."""
        key = (assignment.experiment_id, assignment.variant.name)
        with self._lock:
            if key in self._built:
                return self._built[key]
        try:
            scorer = self._build(assignment.variant.overrides, f"{key[0]}/{key[1]}")
        except InvalidInput as refused:
            log.warning("ranking experiment %s: variant %s refused: %s", *key, refused)
            scorer = None
        with self._lock:
            self._built[key] = scorer
        return scorer

    def _build(self, overrides: Overrides, label: str) -> LinearScorer:
        if overrides.scorer is None and overrides.weights is None:
            return self.default
        if overrides.scorer == "learned":
            if self.learned_file is None:
                raise InvalidInput("no trained ranker on this machine")
            from recommender.model_file import load  # noqa: PLC0415 (skops only when used)

            base = load(self.learned_file).scorer()
        else:
            base = load_weighted(self.weights_file)
        return (
            base
            if overrides.weights is None
            else with_overrides(base, overrides.weights, f"{base.version}+{label}")
        )

    def for_users(
        self, conn: psycopg.Connection, users: Sequence[int]
    ) -> dict[int, tuple[experiments.Assignment, LinearScorer]]:
        """user id → (assignment, scorer) for the users of ``users`` in a running ranking
        experiment whose variant could be built; the others are absent (the default)."""
        out: dict[int, tuple[experiments.Assignment, LinearScorer]] = {}
        for begin in range(0, len(users), ASSIGN_CHUNK):
            found = experiments.assignments(conn, "ranking", users[begin : begin + ASSIGN_CHUNK])
            for user, assignment in found.items():
                scorer = self.scorer_of(assignment)
                if scorer is not None:
                    out[user] = (assignment, scorer)
        return out


def check_spec(spec: ExperimentSpec) -> ExperimentSpec:
    """``spec`` when every variant's weights name known features with finite numbers;
    InvalidInput naming the variant and the features otherwise. The API and the command line
    check this before storing an experiment: at run time such a variant would rank with the
    default and never count."""
    for variant in spec.variants:
        if variant.overrides.weights is not None:
            checked_weights(variant.overrides.weights, f"variant {variant.name}'s weights")
    return spec
