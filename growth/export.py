"""The growth report as tables: the same figures for the terminal (``geo-engine growth
report``, rich tables) and for CSV files, one per table, with French headings.

Values stay raw (rates and differences as fractions, None for "nothing to divide"): the
terminal formats them (:func:`shown`), CSV writes them as they are (empty for None).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from contracts.growth import Proportion, Report
from growth.report import LABELS

Value = str | int | float | bool | date | None


@dataclass(frozen=True)
class Table:
    """``name`` (its CSV file's stem), ``title`` (French), ``columns`` and ``rows``;
    ``percent`` names the columns holding fractions shown as percents."""

    name: str
    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Value]]
    percent: frozenset[str] = frozenset()


def _rate(p: Proportion) -> float | None:
    return p.rate


def tables(report: Report) -> list[Table]:
    """The report's tables: variantes, comparaisons, srm (with an experiment), quotidien,
    cohortes, couverture."""
    rates = (
        "ouverture",
        "clic",
        "participation",
        "participation toutes origines",
        "désabonnement",
        "retour 7 j",
        "retour 30 j",
    )
    out = [
        Table(
            "variantes",
            "Variantes",
            (
                "variante",
                "holdout",
                "unités",
                "utilisateurs",
                "envoyés",
                "alertes",
                "lettres",
                "ouverts",
                "cliqués",
                "participations",
                "désabonnés",
                *rates,
            ),
            [
                (
                    v.variant,
                    v.holdout,
                    v.units,
                    v.users,
                    v.funnel.sent,
                    v.funnel.alerts_sent,
                    v.funnel.digests_sent,
                    v.funnel.opened,
                    v.funnel.clicked,
                    v.funnel.participated,
                    v.funnel.unsubscribed,
                    _rate(v.open_rate),
                    _rate(v.click_rate),
                    _rate(v.participation_rate),
                    _rate(v.any_participation_rate),
                    _rate(v.unsubscribe_rate),
                    _rate(v.return_7d),
                    _rate(v.return_30d),
                )
                for v in report.variants
            ],
            frozenset(rates),
        )
    ]
    if report.experiment is not None:
        out.append(
            Table(
                "comparaisons",
                f"Comparaisons avec « {report.baseline} »",
                (
                    "métrique",
                    "variante",
                    "référence",
                    "différence",
                    "IC bas",
                    "IC haut",
                    "p",
                    "significatif",
                    "méthode",
                ),
                [
                    (
                        LABELS[d.metric],
                        d.variant,
                        d.baseline,
                        d.difference,
                        d.ci_low,
                        d.ci_high,
                        d.p_value,
                        d.significant,
                        d.method,
                    )
                    for d in report.differences
                ],
                frozenset({"différence", "IC bas", "IC haut"}),
            )
        )
    if report.sample_ratio is not None:
        ratio = report.sample_ratio
        out.append(
            Table(
                "srm",
                "Équilibre de l'échantillon (SRM)",
                ("variante", "part prévue", "unités observées", "chi2", "p", "déséquilibre"),
                [
                    (
                        name,
                        share,
                        ratio.observed_units.get(name, 0),
                        ratio.chi2,
                        ratio.p_value,
                        ratio.mismatch,
                    )
                    for name, share in ratio.expected_shares.items()
                ],  # fmt: skip
                frozenset({"part prévue"}),
            )
        )
    out.append(
        Table(
            "quotidien",
            "Série quotidienne (jours de Paris)",
            ("jour", "variante", "envoyés", "ouverts", "cliqués", "participations", "désabonnés"),
            [
                (p.day, p.variant, p.sent, p.opened, p.clicked, p.participated, p.unsubscribed)
                for p in report.daily
            ],
        )
    )
    out.append(
        Table(
            "cohortes",
            "Cohortes d'inscription (semaine ISO)",
            ("semaine", "variante", "inscrits", "retour 7 j", "retour 30 j"),
            [
                (c.cohort, c.variant, c.users, _rate(c.return_7d), _rate(c.return_30d))
                for c in report.cohorts
            ],
            frozenset({"retour 7 j", "retour 30 j"}),
        )
    )
    out.append(
        Table(
            "couverture",
            "Couverture des communes (au moins un habitant engagé)",
            (
                "portée",
                "clé",
                "libellé",
                "communes",
                "atteintes",
                "part",
                "petites communes",
                "petites atteintes",
            ),
            [
                (
                    c.scope,
                    c.key,
                    c.label,
                    c.communes,
                    c.reached,
                    c.share,
                    c.small_communes,
                    c.small_reached,
                )
                for c in report.coverage
            ],  # fmt: skip
            frozenset({"part"}),
        )
    )
    return out


def shown(value: Value, percent: bool = False) -> str:
    """A value as the terminal shows it, in French: fractions as percents with a decimal
    comma, booleans as oui/non, None as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, float):
        text = f"{100 * value:.1f} %" if percent else f"{value:.4g}"
        return text.replace(".", ",")
    return str(value)


def write_csv(table: Table, directory: Path) -> Path:
    """``directory/<name>.csv`` (UTF-8, comma-separated, a header row): raw values, booleans
    as oui/non (as the tables say), None empty. Returns the path."""
    path = directory / f"{table.name}.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(table.columns)
        for row in table.rows:
            writer.writerow(
                ["" if v is None else shown(v) if isinstance(v, bool) else v for v in row]
            )
    return path
