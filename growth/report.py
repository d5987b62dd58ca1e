"""The growth report: the loop's figures per experiment variant (or for everyone), their
differences with intervals, the sample-ratio check, daily series, sign-up cohorts, coverage of
communes; and the participation rate per commune or EPCI for the dashboard's map.

**Who is counted.** With an experiment: the users it exposed (``experiment_exposure``), each
in the variant of their **first exposure**, entered at that instant; a randomised unit (user,
commune or EPCI) is counted once. Without one: every user signed up before ``until``
(``variant`` = ``"tous"``), entered at their sign-up. A user's outcomes count from their
**start** = the later of their entry and ``since``, up to ``until`` (exclusive).

**The figures** (each a :class:`~contracts.growth.Proportion`):

- ``funnel``: mails (``mail_delivery``, alerts and digests) sent in [start, until); of them
  ``opened`` (open pixel, ``notification.opened`` or a click on one of their links, before
  ``until``), ``clicked`` (a person followed one of their links), ``participated`` (one of
  their clicks was followed by a participation in the same project within 7 days);
  ``unsubscribed``: users who unsubscribed in [start, until).
- ``open_rate`` = opened mails / mails sent; ``click_rate`` (click-through) = clicked mails /
  mails sent. Per mail: a holdout, which gets no mail of its surface, has none (None).
- ``participation_rate`` = users with a click (from a mail or the inbox) in [start, until)
  followed by a participation in the same project within 7 days (and before ``until``) /
  users; ``any_participation_rate`` = users with any participation in [start, until), after a
  click or not / users: the loop's effect against a holdout, which cannot click a mail it never
  got; ``unsubscribe_rate`` = users who unsubscribed / users. Per user: these compare a
  holdout with the others.
- ``return_7d`` / ``return_30d`` = users with an open, a click or a participation in (entry,
  entry + 7 / 30 days] / users whose entry is in [since, until − 7 / 30 days] (the window
  wholly observed). The sign-up cohorts use the same rule from the sign-up.

**Comparisons** (:mod:`growth.stats`): every variant against the **baseline** (the variant
named ``control``, else the first that is not a holdout), on every metric (a holdout, or a
comparison with one, on per-user metrics only). Per-user metrics of a user-randomised
experiment use Newcombe's interval; per-mail metrics (mails cluster in users) and every metric
of a commune- or EPCI-randomised experiment use the delta method over the randomised units. A
**winner** is named only when no sample-ratio mismatch is flagged and the primary metric's
interval excludes 0 in its favour (lower is better for ``unsubscribe_rate``).

Everything is computed set-wise in PostgreSQL (``metrics_*.sql``), through temporary tables
dropped at the transaction's end.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
from psycopg.rows import dict_row

from contracts.errors import InvalidInput
from contracts.experiments import Experiment
from contracts.growth import (
    AreaRate,
    CohortReturn,
    Coverage,
    DailyPoint,
    Difference,
    Funnel,
    Metric,
    Proportion,
    Report,
    SampleRatio,
    VariantMetrics,
)
from geo_engine.db import load_sql
from growth import stats

METRICS: tuple[Metric, ...] = get_args(Metric)
# metric → (numerator, denominator) columns of metrics_units.sql
RATIO: dict[Metric, tuple[str, str]] = {
    "open_rate": ("opened", "sent"),
    "click_rate": ("clicked", "sent"),
    "participation_rate": ("participants", "users"),
    "any_participation_rate": ("any_participants", "users"),
    "unsubscribe_rate": ("unsubscribers", "users"),
    "return_7d": ("return_7d_num", "return_7d_den"),
    "return_30d": ("return_30d_num", "return_30d_den"),
}
PER_MAIL: frozenset[Metric] = frozenset({"open_rate", "click_rate"})
LOWER_IS_BETTER: frozenset[Metric] = frozenset({"unsubscribe_rate"})
LABELS: dict[Metric, str] = {
    "open_rate": "taux d'ouverture",
    "click_rate": "taux de clic",
    "participation_rate": "taux de participation",
    "any_participation_rate": "taux de participation toutes origines",
    "unsubscribe_rate": "taux de désabonnement",
    "return_7d": "retour à 7 jours",
    "return_30d": "retour à 30 jours",
}
EVERYONE = "tous"
CLUSTERS = {"user": "utilisateur", "commune": "commune", "epci": "EPCI"}
MAX_PERIOD = timedelta(days=400)
DEFAULT_PERIOD = timedelta(days=30)
EARLIEST_YEAR, LATEST_YEAR = 1970, 9000
PARIS = ZoneInfo("Europe/Paris")

_PREPARE = [
    (name, load_sql("growth", f"metrics_{part}.sql"))
    for name, part in (
        ("growth_people", "people"),
        ("growth_event", "events"),
        ("growth_click", "clicks"),
        ("growth_mail", "mails"),
        ("growth_user", "users"),
    )
]
_UNITS = load_sql("growth", "metrics_units.sql")
_DAILY = load_sql("growth", "metrics_daily.sql")
_COHORTS = load_sql("growth", "metrics_cohorts.sql")
_COVERAGE = load_sql("growth", "metrics_coverage.sql")
_AREAS = load_sql("growth", "metrics_areas.sql")


def check_period(since: datetime, until: datetime) -> None:
    """InvalidInput unless both instants carry a time zone, ``since`` < ``until`` and the
    period is at most 400 days."""
    for name, value in (("since", since), ("until", until)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidInput(f"{name} {value.isoformat()} needs a time zone (e.g. +01:00 or Z)")
    if since >= until:
        raise InvalidInput(
            f"since ({since.isoformat()}) must be before until ({until.isoformat()})"
        )
    if until - since > MAX_PERIOD:
        raise InvalidInput(f"the period is longer than {MAX_PERIOD.days} days: shorten it")


def default_period(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The last 30 days up to ``now`` (default: the current instant)."""
    until = now or datetime.now(UTC)
    return until - DEFAULT_PERIOD, until


def parse_instant(text: str, name: str) -> datetime:
    """An ISO 8601 date (``2026-11-02``: its midnight) or date and time between 1970 and 9000;
    without an offset it is Paris time (the report's days are Paris days), and a Paris time the
    clocks skip is refused. InvalidInput naming ``name`` otherwise."""
    value = text.strip()
    example = "e.g. 2026-11-02 or 2026-11-02T08:00Z"
    if not value.isascii() or len(value) > 40:
        raise InvalidInput(f"{name}: {text!r} is not a date ({example})")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{name}: {text!r} is not a date ({example})") from None
    # Far dates overflow the period's arithmetic (and mean nothing for the loop).
    if not EARLIEST_YEAR <= parsed.year < LATEST_YEAR:
        raise InvalidInput(f"{name}: {text!r} must lie between {EARLIEST_YEAR} and {LATEST_YEAR}")
    if parsed.tzinfo is not None:
        return parsed
    local = parsed.replace(tzinfo=PARIS)
    if local.astimezone(UTC).astimezone(PARIS).replace(tzinfo=None) != parsed:
        raise InvalidInput(
            f"{name}: {text!r} does not exist in Paris time (the clocks jump forward then): "
            "give an offset"
        )
    return local


def _prepare(
    conn: psycopg.Connection, experiment_id: int | None, since: datetime, until: datetime
) -> None:
    params = {"experiment": experiment_id, "since": since, "until": until}
    # Within one outer transaction a second report finds the first one's tables.
    conn.execute("DROP TABLE IF EXISTS " + ", ".join(f"pg_temp.{n}" for n, _ in _PREPARE))
    for name, statement in _PREPARE:
        conn.execute(statement, params)
        conn.execute(f"ANALYZE {name}")


def _proportion(numerator: int, denominator: int) -> Proportion:
    return Proportion(
        numerator=numerator,
        denominator=denominator,
        rate=numerator / denominator if denominator else None,
    )


class _Arm:
    """One variant's per-unit rows of metrics_units.sql, as arrays by column."""

    def __init__(self, name: str, holdout: bool, rows: Sequence[dict[str, Any]]) -> None:
        self.name, self.holdout = name, holdout
        self.units = len(rows)
        columns = [c for c in rows[0] if c not in ("variant", "unit")] if rows else []
        self.columns = {c: np.array([int(r[c]) for r in rows], dtype=np.int64) for c in columns}

    def total(self, column: str) -> int:
        values = self.columns.get(column)
        return int(values.sum()) if values is not None else 0

    def arrays(self, metric: Metric) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        numerator, denominator = RATIO[metric]
        empty = np.zeros(0, dtype=np.int64)
        return self.columns.get(numerator, empty), self.columns.get(denominator, empty)

    def metrics(self, everyone: bool) -> VariantMetrics:
        users = self.total("users")
        return VariantMetrics(
            variant=self.name,
            holdout=self.holdout,
            units=users if everyone else self.units,
            users=users,
            funnel=Funnel(
                sent=self.total("sent"),
                alerts_sent=self.total("alerts"),
                digests_sent=self.total("digests"),
                opened=self.total("opened"),
                clicked=self.total("clicked"),
                participated=self.total("participated"),
                unsubscribed=self.total("unsubscribers"),
            ),
            **{m: _proportion(self.total(RATIO[m][0]), self.total(RATIO[m][1])) for m in METRICS},
        )


def baseline_of(experiment: Experiment) -> str:
    """The variant named ``control`` if any, else the first that is not a holdout."""
    names = [v.name for v in experiment.spec.variants]
    if "control" in names:
        return "control"
    return next(v.name for v in experiment.spec.variants if not v.holdout)


def _difference(metric: Metric, arm: _Arm, base: _Arm, unit: str, level: float) -> Difference:
    if unit == "user" and metric not in PER_MAIL:
        estimate = stats.newcombe(
            arm.total(RATIO[metric][0]),
            arm.total(RATIO[metric][1]),
            base.total(RATIO[metric][0]),
            base.total(RATIO[metric][1]),
            level,
        )
    else:
        estimate = stats.delta_difference(
            *arm.arrays(metric), *base.arrays(metric), level, CLUSTERS[unit]
        )
    return Difference(
        metric=metric,
        variant=arm.name,
        baseline=base.name,
        difference=estimate.difference,
        ci_low=estimate.ci_low,
        ci_high=estimate.ci_high,
        p_value=estimate.p_value,
        significant=estimate.excludes_zero(),
        method=estimate.method,
    )


def _favours(difference: Difference) -> bool:
    """The variant is significantly better than the baseline on the metric."""
    if not difference.significant or difference.difference is None:
        return False
    lower = difference.metric in LOWER_IS_BETTER
    return difference.difference < 0 if lower else difference.difference > 0


def _french(value: float, digits: int = 2) -> str:
    return f"{value:+.{digits}f}".replace(".", ",")


def _percent(level: float) -> str:
    return f"{100 * level:g} %".replace(".", ",")


def verdict(
    experiment: Experiment | None,
    baseline: str | None,
    primary: Metric,
    differences: Sequence[Difference],
    sample_ratio: SampleRatio | None,
    level: float,
) -> tuple[str | None, str]:
    """(winner, verdict in French) for a report of ``experiment`` whose ``differences`` are
    against ``baseline``: no winner under a sample-ratio mismatch; else the challenger that
    beats the baseline significantly on ``primary`` (the largest such difference), or the
    baseline when every challenger measured is significantly worse."""
    label = LABELS[primary]
    if experiment is None or baseline is None:
        return None, "Aucune expérience choisie : chiffres de l'ensemble des utilisateurs."
    if sample_ratio is not None and sample_ratio.mismatch:
        return None, (
            "Déséquilibre d'échantillon (SRM) : la répartition des unités entre variantes "
            f"s'écarte des parts prévues (p = {sample_ratio.p_value:.2g} < "
            f"{sample_ratio.threshold:g}). L'affectation ou la journalisation des expositions "
            "est défaillante : aucun gagnant n'est désigné."
        )
    contenders = [d for d in differences if d.metric == primary]
    measured = [d for d in contenders if d.difference is not None]
    winners = sorted((d for d in contenders if _favours(d)), key=lambda d: -abs(d.difference or 0))
    if winners:
        best = winners[0]
        assert best.difference is not None and best.ci_low is not None and best.ci_high is not None
        return best.variant, (
            f"« {best.variant} » l'emporte sur « {baseline} » pour le {label} : "
            f"{_french(100 * best.difference)} points (IC {_percent(level)} : "
            f"{_french(100 * best.ci_low)} à {_french(100 * best.ci_high)})."
        )
    if measured and all(d.significant for d in measured):
        return baseline, (
            f"« {baseline} » (référence) l'emporte : chaque autre variante fait "
            f"significativement moins bien sur le {label}."
        )
    if not measured:
        return None, f"Pas de gagnant : pas assez de données pour comparer le {label}."
    return None, (
        f"Pas de gagnant : aucune variante ne diffère significativement de « {baseline} » "
        f"sur le {label} (l'intervalle à {_percent(level)} contient 0)."
    )


def build_report(
    conn: psycopg.Connection,
    experiment: Experiment | None,
    since: datetime,
    until: datetime,
    *,
    level: float = 0.95,
    primary: Metric = "click_rate",
) -> Report:
    """The figures of ``experiment`` (None: everyone) over [since, until) (module docstring
    for every definition). InvalidInput for a period :func:`check_period` refuses, a level
    outside (0, 1) or an unknown primary metric. Runs in its own transaction block (a savepoint
    when the caller is in a transaction) and writes nothing but temporary tables."""
    check_period(since, until)
    if not 0 < level < 1:
        raise InvalidInput(f"level must be between 0 and 1 (e.g. 0.95), not {level}")
    if primary not in METRICS:
        raise InvalidInput(f"primary must be one of {', '.join(METRICS)}, not {primary!r}")
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        _prepare(conn, experiment.id if experiment else None, since, until)
        units = cur.execute(_UNITS).fetchall()
        daily = cur.execute(_DAILY).fetchall()
        cohorts = cur.execute(_COHORTS, {"since": since, "until": until}).fetchall()
        coverage = cur.execute(_COVERAGE).fetchall()

    if experiment is None:
        arms = [_Arm(EVERYONE, False, units)]
        baseline: str | None = None
    else:
        arms = [
            _Arm(v.name, v.holdout, [r for r in units if r["variant"] == v.name])
            for v in experiment.spec.variants
        ]
        baseline = baseline_of(experiment)

    differences: list[Difference] = []
    sample_ratio: SampleRatio | None = None
    if experiment is not None and baseline is not None:
        base = next(a for a in arms if a.name == baseline)
        for arm in arms:
            if arm is base:
                continue
            for metric in METRICS:
                if (arm.holdout or base.holdout) and metric in PER_MAIL:
                    continue
                differences.append(_difference(metric, arm, base, experiment.spec.unit, level))
        sample_ratio = stats.sample_ratio(
            {a.name: a.units for a in arms}, {v.name: v.share for v in experiment.spec.variants}
        )
    winner, said = verdict(experiment, baseline, primary, differences, sample_ratio, level)
    return Report(
        experiment=experiment,
        since=since,
        until=until,
        generated_at=datetime.now(UTC),
        baseline=baseline,
        primary_metric=primary,
        variants=[a.metrics(experiment is None) for a in arms],
        differences=differences,
        sample_ratio=sample_ratio,
        daily=[DailyPoint(**r) for r in daily],
        cohorts=[
            CohortReturn(
                cohort=r["cohort"],
                variant=r["variant"],
                users=r["users"],
                return_7d=_proportion(r["return_7d_num"], r["return_7d_den"]),
                return_30d=_proportion(r["return_30d_num"], r["return_30d_den"]),
            )
            for r in cohorts
        ],
        coverage=[
            Coverage(
                scope=r["scope"],
                key=r["key"],
                label=r["label"],
                communes=r["communes"],
                reached=r["reached"],
                share=r["reached"] / r["communes"] if r["communes"] else None,
                small_communes=r["small_communes"],
                small_reached=r["small_reached"],
            )
            for r in coverage
        ],
        winner=winner,
        verdict=said,
    )


AreaLevel = Literal["commune", "epci"]


def areas(
    conn: psycopg.Connection, level: AreaLevel, since: datetime, until: datetime
) -> list[AreaRate]:
    """Per commune (INSEE code) or EPCI (SIREN) with at least one placed user: its users
    (signed up before ``until``), those engaged in [since, until) (a click or a
    participation), those who took part after a click within 7 days, and ``rate`` =
    participated / users. InvalidInput for another level or a bad period."""
    check_period(since, until)
    if level not in ("commune", "epci"):
        raise InvalidInput(f"level must be commune or epci, not {level!r}")
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        _prepare(conn, None, since, until)
        rows = cur.execute(_AREAS, {"level": level}).fetchall()
    return [
        AreaRate(
            code=r["code"],
            users=r["users"],
            engaged=r["engaged"],
            participated=r["participated"],
            rate=r["participated"] / r["users"] if r["users"] else None,
        )
        for r in rows
    ]
