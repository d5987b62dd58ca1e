"""The growth report on the hand-computed log of tests/growth_log.py: every count and rate
below is worked out in that module's docstring."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime

import psycopg
import pytest

from contracts.errors import InvalidInput
from contracts.experiments import Experiment, ExperimentSpec
from contracts.growth import Report, VariantMetrics
from geo_engine import experiments
from growth import report
from tests.growth_log import SINCE, U1, UNTIL, Places, at, write_log

pytestmark = pytest.mark.geodata


@pytest.fixture
def logged(conn: psycopg.Connection) -> Iterator[tuple[psycopg.Connection, Experiment, Places]]:
    experiment, places = write_log(conn)
    yield conn, experiment, places


def _variant(found: Report, name: str) -> VariantMetrics:
    return next(v for v in found.variants if v.variant == name)


def test_experiment_funnel_and_rates(logged: tuple[psycopg.Connection, Experiment, Places]) -> None:
    conn, experiment, _ = logged
    found = report.build_report(conn, experiment, SINCE, UNTIL)
    assert [v.variant for v in found.variants] == ["control", "treatment"]

    control = _variant(found, "control")
    assert (control.units, control.users) == (2, 2)
    funnel = control.funnel
    assert (funnel.sent, funnel.alerts_sent, funnel.digests_sent) == (4, 1, 3)
    assert (funnel.opened, funnel.clicked, funnel.participated, funnel.unsubscribed) == (3, 2, 1, 1)
    assert (control.open_rate.numerator, control.open_rate.denominator) == (3, 4)
    assert control.open_rate.rate == 0.75
    assert control.click_rate.rate == 0.5
    assert (control.participation_rate.numerator, control.participation_rate.denominator) == (1, 2)
    # Any participation after the entry, clicked or not: u1 (11-04) and u2 (11-12, past the
    # click's 7 days but a participation all the same).
    any_rate = control.any_participation_rate
    assert (any_rate.numerator, any_rate.denominator) == (2, 2)
    assert control.unsubscribe_rate.rate == 0.5
    assert (control.return_7d.numerator, control.return_7d.denominator) == (2, 2)
    assert (control.return_30d.denominator, control.return_30d.rate) == (0, None)

    treatment = _variant(found, "treatment")
    assert (treatment.units, treatment.users) == (3, 3)
    funnel = treatment.funnel
    assert (funnel.sent, funnel.alerts_sent, funnel.digests_sent) == (4, 0, 4)
    assert (funnel.opened, funnel.clicked, funnel.participated, funnel.unsubscribed) == (2, 2, 2, 1)
    assert treatment.open_rate.rate == 0.5
    assert treatment.click_rate.rate == 0.5
    assert (treatment.participation_rate.numerator, treatment.participation_rate.denominator) == (
        1,
        3,
    )
    assert (treatment.unsubscribe_rate.numerator, treatment.unsubscribe_rate.denominator) == (1, 3)
    # u3 (after clicks) and u4 (11-12, without a click); u5 none.
    any_rate = treatment.any_participation_rate
    assert (any_rate.numerator, any_rate.denominator) == (2, 3)
    assert (treatment.return_7d.numerator, treatment.return_7d.denominator) == (2, 3)


def test_experiment_comparison_srm_and_verdict(
    logged: tuple[psycopg.Connection, Experiment, Places],
) -> None:
    conn, experiment, _ = logged
    found = report.build_report(conn, experiment, SINCE, UNTIL)
    assert found.baseline == "control"
    assert found.sample_ratio is not None
    assert found.sample_ratio.observed_units == {"control": 2, "treatment": 3}
    assert found.sample_ratio.chi2 == pytest.approx(0.2)
    assert found.sample_ratio.p_value == pytest.approx(0.6547, abs=1e-4)
    assert not found.sample_ratio.mismatch
    by_metric = {d.metric: d for d in found.differences}
    assert set(by_metric) == {
        "open_rate",
        "click_rate",
        "participation_rate",
        "any_participation_rate",
        "unsubscribe_rate",
        "return_7d",
        "return_30d",
    }
    # 2/4 − 2/4 per mail, over users as clusters; 1/3 − 1/2 per user (Newcombe).
    assert by_metric["click_rate"].difference == pytest.approx(0.0)
    assert by_metric["click_rate"].method.startswith("méthode delta")
    assert by_metric["participation_rate"].difference == pytest.approx(1 / 3 - 1 / 2)
    assert by_metric["participation_rate"].method.startswith("Newcombe")
    assert by_metric["return_30d"].difference is None
    assert not any(d.significant for d in found.differences)
    assert found.winner is None
    assert found.verdict.startswith("Pas de gagnant")


def test_daily_series_sum_to_the_funnel(
    logged: tuple[psycopg.Connection, Experiment, Places],
) -> None:
    conn, experiment, _ = logged
    found = report.build_report(conn, experiment, SINCE, UNTIL)
    control = {p.day: p for p in found.daily if p.variant == "control"}
    # Paris days: m1 sent 09:00 on 11-02, opened 10:00 and clicked 10:01 the same day; u1's
    # participation on 11-04; u2's unsubscribe on 11-20.
    assert (control[date(2026, 11, 2)].sent, control[date(2026, 11, 2)].clicked) == (1, 1)
    assert control[date(2026, 11, 4)].participated == 1
    assert control[date(2026, 11, 20)].unsubscribed == 1
    for v in found.variants:
        points = [p for p in found.daily if p.variant == v.variant]
        assert sum(p.sent for p in points) == v.funnel.sent
        assert sum(p.opened for p in points) == v.funnel.opened
        assert sum(p.clicked for p in points) == v.funnel.clicked
        assert sum(p.participated for p in points) == v.funnel.participated
        assert sum(p.unsubscribed for p in points) == v.funnel.unsubscribed


def test_cohorts_and_coverage(logged: tuple[psycopg.Connection, Experiment, Places]) -> None:
    conn, experiment, places = logged
    found = report.build_report(conn, experiment, SINCE, UNTIL)
    # u2 signed up Tuesday 11-03 (week of Monday 11-02), u4 Tuesday 11-10 (week of 11-09).
    cohorts = [
        (c.cohort, c.variant, c.users, c.return_7d.numerator, c.return_7d.denominator)
        for c in found.cohorts
    ]
    assert cohorts == [
        (date(2026, 11, 2), "control", 1, 1, 1),
        (date(2026, 11, 9), "treatment", 1, 1, 1),
    ]
    sizes = {c.key: (c.communes, c.reached) for c in found.coverage if c.scope == "taille"}
    # A (u1, u2 engaged), B (u3 engaged), C (u4 engaged), D (u5 not).
    assert sizes == {
        "<500": (1, 1),
        "500-1999": (1, 1),
        "2000-9999": (1, 0),
        "10000-49999": (0, 0),
        ">=50000": (1, 1),
    }
    xxl = [c for c in found.coverage if c.scope == "epci_xxl"]
    assert [(c.key, c.communes, c.reached, c.small_communes, c.small_reached) for c in xxl] == [
        (places.epci, 3, 2, 2, 2)
    ]
    assert xxl[0].share == pytest.approx(2 / 3)
    labels = [c.label for c in found.coverage if c.scope == "taille"]
    assert labels[0] == "moins de 500 habitants"


def test_everyone(logged: tuple[psycopg.Connection, Experiment, Places]) -> None:
    conn, _, _ = logged
    found = report.build_report(conn, None, SINCE, UNTIL)
    (tous,) = found.variants
    assert (tous.variant, tous.units, tous.users) == ("tous", 6, 6)
    # u5's m8 counts for everyone; m0 (before the period) never.
    assert (tous.funnel.sent, tous.funnel.opened, tous.funnel.clicked) == (10, 6, 5)
    assert tous.funnel.participated == 3
    assert (tous.participation_rate.numerator, tous.participation_rate.denominator) == (2, 6)
    assert (tous.unsubscribe_rate.numerator, tous.return_7d.numerator) == (2, 2)
    assert tous.return_7d.denominator == 2
    assert found.differences == [] and found.sample_ratio is None and found.winner is None
    assert found.verdict.startswith("Aucune expérience")


def test_a_shorter_period_counts_less(
    logged: tuple[psycopg.Connection, Experiment, Places],
) -> None:
    conn, experiment, _ = logged
    # Up to 11-04 00:00 UTC: control has m1, m4; u1's participation (11-04 10:00) is later.
    found = report.build_report(conn, experiment, SINCE, at(11, 4, 0))
    control = _variant(found, "control")
    assert (control.funnel.sent, control.funnel.clicked, control.funnel.participated) == (2, 2, 0)
    assert control.participation_rate.numerator == 0
    assert _variant(found, "treatment").users == 0  # u3 first exposed on 11-04 08:00


def test_areas(logged: tuple[psycopg.Connection, Experiment, Places]) -> None:
    conn, _, places = logged
    communes = {a.code: a for a in report.areas(conn, "commune", SINCE, UNTIL)}
    a = communes[places.a]
    assert (a.users, a.engaged, a.participated, a.rate) == (2, 2, 1, 0.5)
    c = communes[places.c]  # u4 (participation without a click) and u6 (click only)
    assert (c.users, c.engaged, c.participated, c.rate) == (2, 2, 0, 0.0)
    epcis = {a.code: a for a in report.areas(conn, "epci", SINCE, UNTIL)}
    xxl = epcis[places.epci]
    assert (xxl.users, xxl.engaged, xxl.participated) == (4, 3, 2)


def test_first_exposure_decides(logged: tuple[psycopg.Connection, Experiment, Places]) -> None:
    conn, experiment, _ = logged
    found = report.build_report(conn, experiment, SINCE, UNTIL)
    assert _variant(found, "control").users == 2  # u1 logged in treatment later stays control
    conn.execute(
        "DELETE FROM experiment_exposure WHERE user_id = %s AND variant = 'control'", (U1,)
    )
    moved = report.build_report(conn, experiment, SINCE, UNTIL)
    assert _variant(moved, "control").users == 1
    assert _variant(moved, "treatment").users == 4


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        (UNTIL, SINCE, "must be before"),
        (SINCE.replace(tzinfo=None), UNTIL, "time zone"),
        (datetime(2024, 1, 1, tzinfo=SINCE.tzinfo), UNTIL, "longer than"),
    ],
)
def test_bad_periods(
    conn: psycopg.Connection, since: datetime, until: datetime, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        report.build_report(conn, None, since, until)


def test_parse_instant() -> None:
    assert report.parse_instant("2026-11-02", "since").isoformat() == "2026-11-02T00:00:00+01:00"
    assert report.parse_instant("2026-11-02T08:00Z", "x").isoformat() == "2026-11-02T08:00:00+00:00"
    for bad in ("hier", "2026-13-01", "２０２６-11-01"):
        with pytest.raises(InvalidInput, match="since"):
            report.parse_instant(bad, "since")


def _experiment(conn: psycopg.Connection, spec: dict[str, object]) -> Experiment:
    created = experiments.create(conn, ExperimentSpec.model_validate(spec))
    return experiments.transition(conn, created.spec.name, "start", at(11, 1, 0))


def test_a_clear_difference_wins(conn: psycopg.Connection) -> None:
    experiment = _experiment(
        conn,
        {
            "name": "gagnant",
            "surface": "digest",
            "variants": [
                {"name": "control", "share": 0.5},
                {"name": "treatment", "share": 0.5, "overrides": {"template": "question"}},
            ],
        },
    )
    # 200 users per variant, one digest each on 11-02; 40 clicks in control (i % 5 = 0), 120
    # in treatment (i % 5 < 3): click-through 20 % against 60 %, +40 points.
    conn.execute(
        """WITH u AS (SELECT i, 9300000 + i AS id,
                             CASE WHEN i <= 200 THEN 'control' ELSE 'treatment' END AS variant
                      FROM generate_series(1, 400) AS i),
                a AS (INSERT INTO app_user (id, created_at) SELECT id, %(old)s FROM u),
                e AS (INSERT INTO experiment_exposure
                          (experiment_id, user_id, variant, unit, ref, exposed_at)
                      SELECT %(experiment)s, id, variant, id::text, 'd:' || id, %(sent)s FROM u),
                m AS (INSERT INTO mail_delivery (key, user_id, kind, message_id, sent_at)
                      SELECT 'd:' || id, id, 'digest', '<d' || id || '@t>', %(sent)s FROM u)
           INSERT INTO engagement_event (event_id, user_id, kind, project_id, notification,
                                         occurred_at)
           SELECT gen_random_uuid(), id, 'clicked', 101, 'd:' || id, %(click)s
           FROM u
           WHERE (variant = 'control' AND i %% 5 = 0) OR (variant = 'treatment' AND i %% 5 < 3)
        """,
        {
            "old": at(1, 1, 0),
            "experiment": experiment.id,
            "sent": at(11, 2, 8),
            "click": at(11, 2, 9),
        },
    )
    found = report.build_report(conn, experiment, SINCE, UNTIL)
    clicks = next(d for d in found.differences if d.metric == "click_rate")
    assert clicks.difference == pytest.approx(0.4)
    assert clicks.significant and clicks.ci_low is not None and clicks.ci_low > 0.3
    assert found.sample_ratio is not None and not found.sample_ratio.mismatch
    assert found.winner == "treatment"
    assert found.verdict.startswith(
        "« treatment » l'emporte sur « control » pour le taux de clic : +40,00 points"
    )
    # The same figures on participation: nobody took part, nothing to call.
    quiet = report.build_report(conn, experiment, SINCE, UNTIL, primary="participation_rate")
    assert quiet.winner is None


def test_commune_units_with_a_holdout(conn: psycopg.Connection) -> None:
    experiment = _experiment(
        conn,
        {
            "name": "voisins",
            "surface": "digest",
            "unit": "commune",
            "variants": [
                {"name": "control", "share": 0.5},
                {"name": "sans-lettre", "share": 0.5, "holdout": True},
            ],
        },
    )
    communes = [
        r[0] for r in conn.execute("SELECT code FROM commune ORDER BY code LIMIT 6").fetchall()
    ]
    # Two users per commune; the first three communes in control (a digest each, one
    # participation after a click per commune), the last three held out (an inbox click and a
    # participation in one commune).
    rows = [
        (9400000 + 10 * c + k, code, "control" if c < 3 else "sans-lettre")
        for c, code in enumerate(communes)
        for k in range(2)
    ]
    cur = conn.cursor()
    cur.executemany(
        "INSERT INTO app_user (id, created_at) VALUES (%s, %s)",
        [(u, at(1, 1, 0)) for u, _, _ in rows],
    )
    cur.executemany(
        "INSERT INTO user_place (user_id, commune_code) VALUES (%s, %s)",
        [(u, code) for u, code, _ in rows],
    )
    cur.executemany(
        """INSERT INTO experiment_exposure (experiment_id, user_id, variant, unit, ref,
                                            exposed_at) VALUES (%s, %s, %s, %s, %s, %s)""",
        [(experiment.id, u, v, code, f"d:{u}", at(11, 2, 8)) for u, code, v in rows],
    )
    control = [u for u, _, v in rows if v == "control"]
    cur.executemany(
        """INSERT INTO mail_delivery (key, user_id, kind, message_id, sent_at)
           VALUES (%s, %s, 'digest', %s, %s)""",
        [(f"d:{u}", u, f"<d{u}@t>", at(11, 2, 8, 0, 1)) for u in control],
    )
    clickers = [(u, f"d:{u}") for u in control[::2]] + [(rows[6][0], None)]
    cur.executemany(
        """INSERT INTO engagement_event (event_id, user_id, kind, project_id, notification,
                                         occurred_at)
           VALUES (gen_random_uuid(), %s, %s, 7, %s, %s)""",
        [(u, "clicked", key, at(11, 2, 9)) for u, key in clickers]
        + [(u, "participated", None, at(11, 3, 9)) for u, _ in clickers],
    )
    found = report.build_report(conn, experiment, SINCE, UNTIL)
    kept, held = found.variants
    assert (kept.units, kept.users, kept.funnel.sent, kept.funnel.participated) == (3, 6, 6, 3)
    assert kept.participation_rate.rate == 0.5
    assert (held.holdout, held.units, held.users, held.funnel.sent) == (True, 3, 6, 0)
    assert held.open_rate.rate is None
    assert (held.participation_rate.numerator, held.participation_rate.denominator) == (1, 6)
    # Only per-user metrics against a holdout, at the level of communes.
    assert {d.metric for d in found.differences} == {
        "participation_rate",
        "any_participation_rate",
        "unsubscribe_rate",
        "return_7d",
        "return_30d",
    }
    participation = next(d for d in found.differences if d.metric == "participation_rate")
    assert participation.method == "méthode delta, grappes : commune"
    assert participation.difference == pytest.approx(1 / 6 - 1 / 2)
    assert found.sample_ratio is not None
    assert found.sample_ratio.observed_units == {"control": 3, "sans-lettre": 3}
