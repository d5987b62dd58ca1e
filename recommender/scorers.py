"""Two scorers behind one interface: both are linear in the features, so a group's scores are a
few weighted sums of vectors and matrices, and each feature's contribution to a score is exact.

- The **weighted** scorer's weights live in a versioned TOML file the growth team edits
  (``recommender/weights/weighted-v1.toml`` by default, ``GEO_ENGINE_RECOMMENDER_WEIGHTS``).
- The **learned** ranker (:mod:`recommender.learned`) is a logistic regression over standardised
  features, which is the same form: weight = coefficient / scale, centre = the training mean.

score(u, i) = Σ_f weight_f · (x_f(u, i) − centre_f); contribution_f = weight_f · (x_f − centre_f).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from contracts.errors import InvalidInput
from recommender.features import FEATURES, GroupFeatures, Matrix

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "weighted-v1.toml"
MAX_WEIGHT = 1_000.0  # a feature's weight, either sign


@dataclass(frozen=True)
class LinearScorer:
    """``name`` (``weighted`` or ``learned``), ``version`` (of the file it came from),
    ``weights`` and ``centre`` per feature name (absent: 0)."""

    name: str
    version: str
    weights: Mapping[str, float]
    centre: Mapping[str, float] = field(default_factory=dict)

    def score(self, features: GroupFeatures) -> Matrix:
        """(users × candidates) float32 scores."""
        m, n_c = features.distance_km.shape
        total = np.zeros(n_c, dtype=np.float32)
        offset = 0.0
        for name, vector in features.item.items():
            w = self.weights.get(name, 0.0)
            if w:
                total += np.float32(w) * vector
                offset += w * self.centre.get(name, 0.0)
        scores = np.broadcast_to(total - np.float32(offset), (m, n_c)).copy()
        for name, matrix in features.pair.items():
            w = self.weights.get(name, 0.0)
            if w:
                scores += np.float32(w) * (matrix - np.float32(self.centre.get(name, 0.0)))
        return scores

    def contributions(
        self,
        features: GroupFeatures,
        users: npt.NDArray[np.intp],
        cols: npt.NDArray[np.intp],
    ) -> Matrix:
        """Each feature's share of the scores at (users[i], cols[i, j]): shape cols + (F,),
        in the order of :data:`recommender.features.FEATURES`."""
        out = np.zeros((*cols.shape, len(FEATURES)), dtype=np.float32)
        for f, name in enumerate(FEATURES):
            w = self.weights.get(name, 0.0)
            if w:
                values = features.value(name, users, cols)
                out[..., f] = w * (values - self.centre.get(name, 0.0))
        return out


def load_weighted(path: Path = DEFAULT_WEIGHTS) -> LinearScorer:
    """The weighted scorer of a TOML file: ``version = "…"`` and a ``[weights]`` table of
    feature name → number. Unknown feature names and non-numbers are refused (InvalidInput
    naming them): a typo must not silently weigh nothing. Absent features weigh 0."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise InvalidInput(f"weights file {path} does not exist") from None
    except IsADirectoryError:
        raise InvalidInput(f"weights file {path} is a directory") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"weights file {path} is not UTF-8 text") from None
    except OSError as error:
        raise InvalidInput(f"cannot read weights file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise InvalidInput(f"weights file {path} is not valid TOML: {error}") from None
    version = document.get("version")
    weights = document.get("weights")
    if not isinstance(version, str) or not version:
        raise InvalidInput(f"weights file {path}: 'version' must be a non-empty string")
    if not isinstance(weights, dict):
        raise InvalidInput(f"weights file {path}: a [weights] table is required")
    return LinearScorer("weighted", version, checked_weights(weights, f"weights file {path}"))


def checked_weights(weights: Mapping[str, object], source: str) -> dict[str, float]:
    """``weights`` as floats, or InvalidInput (its message starting with ``source``) naming
    the unknown feature names, the values that are not numbers, and those beyond
    ±:data:`MAX_WEIGHT`."""
    unknown = sorted(set(weights) - set(FEATURES))
    if unknown:
        raise InvalidInput(
            f"{source}: unknown features {', '.join(unknown)}; known: {', '.join(FEATURES)}"
        )
    bad = sorted(
        k for k, v in weights.items() if isinstance(v, bool) or not isinstance(v, int | float)
    )
    if bad:
        raise InvalidInput(f"{source}: weights must be numbers: {', '.join(bad)}")
    # Scores are float32 sums: a weight past this bound overflows them (and means nothing
    # when features lie in [0, 1]).
    huge = sorted(k for k, v in weights.items() if not abs(float(v)) <= MAX_WEIGHT)  # type: ignore[arg-type]
    if huge:
        raise InvalidInput(
            f"{source}: weights must be finite numbers between {-MAX_WEIGHT:g} and "
            f"{MAX_WEIGHT:g}: {', '.join(huge)}"
        )
    return {k: float(v) for k, v in weights.items()}  # type: ignore[arg-type]


def with_overrides(
    base: LinearScorer, overrides: Mapping[str, object], version: str
) -> LinearScorer:
    """``base`` with the weights of ``overrides`` replacing its own (the others kept), named
    ``version``; InvalidInput as :func:`checked_weights`."""
    changed = checked_weights(overrides, f"weights of {version}")
    return LinearScorer(base.name, version, {**base.weights, **changed}, base.centre)
