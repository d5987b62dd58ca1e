"""What the growth team reads: the loop's metrics per variant and over time, comparisons with
confidence intervals, the sample-ratio check, return cohorts, coverage of communes, and the
offline replay of candidate weights. The API (``/v1/growth``), the dashboard (``/growth``) and
``geo-engine growth report`` all show these shapes.

Rates are proportions (``numerator`` of ``denominator``; ``rate`` None when nothing to divide).
Intervals are two-sided 95 % unless said otherwise.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from contracts.experiments import Experiment

Metric = Literal[
    "open_rate",
    "click_rate",
    "participation_rate",
    "any_participation_rate",
    "unsubscribe_rate",
    "return_7d",
    "return_30d",
]


class _Shape(BaseModel):
    model_config = ConfigDict(frozen=True)


class Proportion(_Shape):
    numerator: int
    denominator: int
    rate: float | None


class Funnel(_Shape):
    """Mails sent → opened → clicked → participated (a click followed by a participation in the
    same project within 7 days); ``unsubscribed`` beside it."""

    sent: int
    alerts_sent: int
    digests_sent: int
    opened: int
    clicked: int
    participated: int
    unsubscribed: int


class VariantMetrics(_Shape):
    """One variant (or, with no experiment, ``variant`` = ``"tous"``: everyone): its exposed
    ``units`` (users, communes or EPCIs) and ``users``, its funnel and rates."""

    variant: str
    holdout: bool
    units: int
    users: int
    funnel: Funnel
    open_rate: Proportion
    click_rate: Proportion
    participation_rate: Proportion
    # Users who took part in anything after their entry, clicked or not: the loop's effect
    # against a holdout, which cannot click a mail it never got.
    any_participation_rate: Proportion
    unsubscribe_rate: Proportion
    return_7d: Proportion
    return_30d: Proportion


class Difference(_Shape):
    """``variant`` − ``baseline`` on ``metric`` (absolute, in rate points), its interval and
    p-value by ``method``; ``significant`` when the interval excludes 0 at the report's level."""

    metric: Metric
    variant: str
    baseline: str
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    significant: bool
    method: str


class SampleRatio(_Shape):
    """The sample-ratio-mismatch check: units per variant against the shares (χ² goodness of
    fit); ``mismatch`` when p < ``threshold`` (assignment or logging is broken)."""

    expected_shares: dict[str, float]
    observed_units: dict[str, int]
    chi2: float | None
    p_value: float | None
    threshold: float
    mismatch: bool


class DailyPoint(_Shape):
    """One local day of one variant."""

    day: date
    variant: str
    sent: int
    opened: int
    clicked: int
    participated: int
    unsubscribed: int


class CohortReturn(_Shape):
    """Users who signed up in the ISO week starting ``cohort`` and came back (opened, clicked or
    participated) within 7 and 30 days of signing up."""

    cohort: date
    variant: str
    users: int
    return_7d: Proportion
    return_30d: Proportion


class Coverage(_Shape):
    """Communes with at least one engaged resident (a click or a participation in the period),
    among communes with at least one resident user: per commune size class (``scope`` =
    ``"taille"``, ``key`` the class) or per XXL EPCI (``scope`` = ``"epci_xxl"``, ``key`` its
    SIREN; ``small_*`` for its communes under 2,000 inhabitants)."""

    scope: Literal["taille", "epci_xxl"]
    key: str
    label: str
    communes: int
    reached: int
    share: float | None
    small_communes: int | None = None
    small_reached: int | None = None


class AreaRate(_Shape):
    """The participation rate of one commune (INSEE code) or EPCI (SIREN), for the choropleth."""

    code: str
    users: int
    engaged: int
    participated: int
    rate: float | None


class Report(_Shape):
    """The figures for ``[since, until)``: of one experiment (its exposed units only) or, when
    ``experiment`` is None, of everyone. ``winner`` is a variant only when it beats the
    baseline significantly on the primary metric and no SRM is flagged; ``verdict`` says why
    in French."""

    experiment: Experiment | None
    since: datetime
    until: datetime
    generated_at: datetime
    baseline: str | None
    primary_metric: Metric
    variants: list[VariantMetrics]
    differences: list[Difference]
    sample_ratio: SampleRatio | None
    daily: list[DailyPoint]
    cohorts: list[CohortReturn]
    coverage: list[Coverage]
    winner: str | None
    verdict: str


class ReplayArm(_Shape):
    """A ranker's projected figures on the logged engagement: inverse-propensity estimate of
    clicks per list and its bootstrap interval, mean NDCG against the logged clicks (None when
    no list was clicked); ``version`` of its weights, ``clipped``: propensity ratios cut at the
    report's ``clip``."""

    name: str
    clicks_per_list: float
    ci_low: float
    ci_high: float
    ndcg: float | None
    version: str = ""
    clipped: int = 0


class ReplayReport(_Shape):
    """The offline replay of candidate weights against the current ones: inverse-propensity
    estimates of clicks per list (position-based propensities) and a team-draft interleaving
    preference, over ``lists`` logged lists.

    ``difference`` is candidate − current in clicks per list, with its bootstrap interval;
    ``eta`` the propensities' exponent (p(k) = k^−eta), ``clip`` the largest ratio counted;
    ``ndcg_at`` the cut of NDCG; ``unscored_items``: logged items the rankers could not score
    (no longer visible to everyone, or deleted), placed last by both; ``resamples`` and
    ``seed`` of the bootstrap and the interleaving's coin; digests sent in [since, until)."""

    method: str
    lists: int
    clicks: int
    current: ReplayArm
    candidate: ReplayArm
    difference: float
    ci_low: float
    ci_high: float
    interleaving_wins: int
    interleaving_losses: int
    interleaving_ties: int
    interleaving_p_value: float | None
    verdict: str
    eta: float = 1.0
    clip: float = 10.0
    ndcg_at: int = 10
    unscored_items: int = 0
    resamples: int = 0
    seed: int = 0
    since: datetime | None = None
    until: datetime | None = None
