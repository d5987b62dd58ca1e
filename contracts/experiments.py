"""Experiments of the growth team: what they are, and which variant a unit is in.

An experiment tests variants of one **surface** of the loop (``ranking``: the recommender's
scorer and weights, in the API and the digests' picks; ``digest``: the digests' size, picks,
subject line, or none at all; ``alerts``: the weekly budget and subject line, or none). Its
**unit** is the user or, because neighbours talk, the user's commune or EPCI (cluster
randomisation: every resident of a commune gets the same variant, and the analysis is done per
commune). A **holdout** variant gets none of its surface's mail: it measures the loop's effect.

Assignment is deterministic, with two independent hashes of the unit (:func:`bucket`, the same
function as ``experiment_bucket`` in PostgreSQL, migration 0009):

- the surface's **layer**: ``bucket("layer:<surface>", unit) % 100`` falls in the experiment's
  ``layer`` slice [lo, hi) or the unit is not in the experiment (it gets the defaults);
- the **variant**: ``bucket(salt, unit)`` against the variants' cumulative shares, in
  :data:`BUCKETS` steps.

A unit is in at most one experiment per surface: active experiments of one surface and unit
kind take disjoint slices (starting one that overlaps is refused), and experiments randomised
by different unit kinds never run (or pause) side by side on one surface, since their slices
would not exclude each other (``geo_engine/experiments.py``).
Overlapping-experiment layers follow Tang et al., "Overlapping Experiment Infrastructure"
(KDD 2010).
"""

from __future__ import annotations

import bisect
import hashlib
import math
import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Surface = Literal["ranking", "digest", "alerts"]
SURFACES: tuple[Surface, ...] = ("ranking", "digest", "alerts")
UnitKind = Literal["user", "commune", "epci"]
Status = Literal["draft", "running", "paused", "stopped"]
# Subject lines a variant may choose (consumers/mail/ templates); "standard" is the default.
TemplateVariant = Literal["standard", "question", "local"]

BUCKETS = 10_000  # variant resolution: shares are honoured to 1/10,000
LAYER_SLOTS = 100  # a surface's layer is cut in percents
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$", re.ASCII)  # anchored: pydantic searches

# Which overrides mean something on which surface: any other is refused, so a variant never
# silently changes nothing.
OVERRIDES_OF: dict[Surface, frozenset[str]] = {
    "ranking": frozenset({"scorer", "weights"}),
    "digest": frozenset({"digest_size", "digest_picks", "template"}),
    "alerts": frozenset({"weekly_budget", "template"}),
}


def bucket(salt: str, unit: str) -> int:
    """The unit's bucket in [0, 2**32): the first 32 bits of MD5(salt ":" unit), read big-endian.

    MD5 is used for spreading, not security: it is in every PostgreSQL, so the database assigns a
    whole round set-wise (``experiment_bucket(salt, unit)``) exactly as Python does one unit.
    """
    digest = hashlib.md5(f"{salt}:{unit}".encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:4], "big")


class Overrides(BaseModel):
    """What a variant changes; absent fields keep the engine's settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scorer: Literal["weighted", "learned"] | None = None
    weights: dict[str, float] | None = Field(
        default=None,
        description="feature → weight, over the weighted scorer's file (recommender/weights)",
    )
    digest_size: int | None = Field(default=None, ge=1, le=50, description="items per digest")
    digest_picks: int | None = Field(
        default=None, ge=0, le=20, description="recommender picks added to each digest"
    )
    template: TemplateVariant | None = Field(default=None, description="the subject line")
    weekly_budget: int | None = Field(
        default=None, ge=0, le=100, description="instant alerts per user and week"
    )

    @field_validator("weights")
    @classmethod
    def _finite(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None:
            bad = sorted(k for k, v in value.items() if not math.isfinite(v))
            if bad:
                raise ValueError(f"weights must be finite numbers: {', '.join(bad)}")
        return value

    def given(self) -> frozenset[str]:
        return frozenset(self.model_dump(exclude_none=True))


class Variant(BaseModel):
    """``name`` (lower-case slug), ``share`` of the experiment's units (0 < share ≤ 1),
    ``holdout`` (gets none of the surface's mail; digest and alerts only), ``overrides``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=NAME.pattern, description="e.g. control, treatment")]
    share: Annotated[float, Field(gt=0, le=1)]
    holdout: bool = False
    overrides: Overrides = Overrides()


class ExperimentSpec(BaseModel):
    """An experiment as the growth team writes it (``growth experiment create``, ``POST
    /v1/growth/experiments``). Shares add up to 1; the layer slice is [lo, hi) in percents of
    the surface's units; ``salt`` defaults to the name (change it to re-randomise)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=NAME.pattern)]
    description: Annotated[str, Field(max_length=2000)] = ""
    surface: Surface
    unit: UnitKind = "user"
    salt: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    layer: tuple[int, int] = (0, LAYER_SLOTS)
    variants: Annotated[list[Variant], Field(min_length=2, max_length=10)]

    @model_validator(mode="after")
    def _coherent(self) -> ExperimentSpec:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must differ: {', '.join(names)}")
        total = math.fsum(v.share for v in self.variants)
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"variant shares must add up to 1, not {total:g}")
        edges = [0, *cumulative_edges(self.variants)]
        empty = [
            v.name
            for v, lo, hi in zip(self.variants, edges, edges[1:], strict=False)
            if hi - lo < 1
        ]
        if empty:
            raise ValueError(
                f"variant {', '.join(empty)} would get no unit: each share must be at least "
                f"1/{BUCKETS}"
            )
        lo, hi = self.layer
        if not 0 <= lo < hi <= LAYER_SLOTS:
            raise ValueError(f"layer must be [lo, hi) with 0 <= lo < hi <= {LAYER_SLOTS}")
        allowed = OVERRIDES_OF[self.surface]
        for v in self.variants:
            extra = sorted(v.overrides.given() - allowed)
            if extra:
                raise ValueError(
                    f"variant {v.name}: {', '.join(extra)} do nothing on the {self.surface} "
                    f"surface (it takes {', '.join(sorted(allowed))})"
                )
            if v.holdout and self.surface == "ranking":
                raise ValueError("a holdout is for the digest or alerts surface, not ranking")
        return self

    @property
    def salt_or_name(self) -> str:
        return self.salt or self.name


class Experiment(BaseModel):
    """A stored experiment: its spec, id, status and when it changed."""

    model_config = ConfigDict(frozen=True)

    id: int
    spec: ExperimentSpec
    status: Status
    created_at: datetime
    started_at: datetime | None = None
    stopped_at: datetime | None = None

    def variant_of(self, unit: str) -> Variant | None:
        """The unit's variant, or None when the unit falls outside the layer slice. Same rule as
        ``experiments_assigned.sql`` (the precedence between experiments is applied there)."""
        lo, hi = self.spec.layer
        if not lo <= bucket(f"layer:{self.spec.surface}", unit) % LAYER_SLOTS < hi:
            return None
        return variant_at(self.spec.variants, bucket(self.spec.salt_or_name, unit) % BUCKETS)


def variant_at(variants: list[Variant], position: int) -> Variant:
    """The variant whose cumulative share interval [start, end) in BUCKETS steps holds
    ``position``; the last variant takes what rounding leaves."""
    return variants[bisect.bisect_right(cumulative_edges(variants), position)]


def cumulative_edges(variants: list[Variant]) -> list[int]:
    """The variants' upper edges in BUCKETS steps (the last is BUCKETS): the cumulative shares,
    rounded, so rounding never moves an edge by more than half a step (the SQL's input)."""
    edges, total = [], 0.0
    for v in variants[:-1]:
        total += v.share
        edges.append(round(total * BUCKETS))
    return [*edges, BUCKETS]
