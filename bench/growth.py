"""The growth team's reads at ``size`` users: assignment, the report and the choropleth's areas.

On ``<database>_bench_growth`` (France, ``size`` fixture users and ``PROJECTS`` projects,
committed once per size through `geo-engine fixtures load --no-engagement`), in one
transaction rolled back at the end: the demo's digest experiment by commune
(:data:`fixtures.growth_history.DEMO`) is started and ``DAYS`` days of its history simulated
(:func:`fixtures.growth_history.simulate`: about 0.6 digest per user and day, with opens,
clicks, participations and unsubscribes), then, timed: ``assign_s`` (every user's variant on
the digest surface, by chunks, as a digest round does; ``assign_users_per_s``),
``report_s`` (:func:`growth.report.build_report` of the experiment over the period),
``report_everyone_s`` (the same for everyone), ``areas_commune_s`` and ``areas_epci_s``
(:func:`growth.report.areas`). ``simulate_s`` and the rows written are reported too.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from fixtures.growth_history import demo_experiment, simulate
from geo_engine import db, experiments
from geo_engine.settings import DatabaseSettings, GeoSettings
from growth.report import areas, build_report

PROJECTS = 2_000
DAYS = 28
CHUNK = 5_000  # users per assignment statement, as consumers/digest.py


def run_growth(
    settings: DatabaseSettings, geo: GeoSettings, size: int, seed: int
) -> dict[str, Any]:
    from bench.runner import fixture_database

    database = fixture_database(
        settings, geo, "_bench_growth", "--no-engagement", users=size, projects=PROJECTS, seed=seed
    )
    figures: dict[str, Any] = {"days": DAYS}
    # Now: the fixtures' sign-ups are spread over the weeks before their load, and the history
    # starts from each user's sign-up.
    at = datetime.now(UTC)
    since = at.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=DAYS)
    until = since + timedelta(days=DAYS)
    with db.connect(database) as conn:
        started = time.perf_counter()
        experiment = demo_experiment(conn, since)
        figures["users_assigned"] = simulate(conn, experiment, DAYS, at, seed)
        conn.execute("ANALYZE experiment_exposure, mail_delivery, engagement_event")
        figures["simulate_s"] = round(time.perf_counter() - started, 2)
        row = conn.execute("SELECT count(*) FROM mail_delivery").fetchone()
        figures["mails"] = row[0] if row else 0
        users = [r[0] for r in conn.execute("SELECT id FROM app_user ORDER BY id").fetchall()]
        started = time.perf_counter()
        assigned = sum(
            len(experiments.assignments(conn, "digest", users[i : i + CHUNK]))
            for i in range(0, len(users), CHUNK)
        )
        figures["assign_s"] = round(time.perf_counter() - started, 2)
        figures["assign_users_per_s"] = round(assigned / figures["assign_s"])
        for name, step in (
            ("report_s", lambda: build_report(conn, experiment, since, until)),
            ("report_everyone_s", lambda: build_report(conn, None, since, until)),
            ("areas_commune_s", lambda: areas(conn, "commune", since, until)),
            ("areas_epci_s", lambda: areas(conn, "epci", since, until)),
        ):
            started = time.perf_counter()
            step()
            figures[name] = round(time.perf_counter() - started, 2)
        conn.rollback()
    return figures
