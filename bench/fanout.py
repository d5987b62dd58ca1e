"""Fan-out at scale: a public Métropole du Grand Paris project (about 540,000 users of five
million) and a public national one (five million), inbox rows written and committed.

On ``<database>_bench_audience`` (France, ``users`` fixture users, 100,000 projects; see
bench/audience.py). Two projects and their organisation are added and committed, then each
project is fanned out ``RUNS`` times through ``consumers.fanout.fan_out``: the clock runs over
the one ``INSERT … SELECT`` and its commit; the rows are deleted and the inbox vacuumed between
runs (not timed). Projects, organisation and rows are removed at the end, whatever happens.
The figure is the best run; the first is reported beside it.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from bench.audience import GRAND_PARIS, audience_database
from consumers.fanout import Relevance, fan_out
from consumers.settings import LoopSettings
from geo_engine import db
from geo_engine.settings import DatabaseSettings, GeoSettings
from recommender.scorers import load_weighted

RUNS = 2


def _add_projects(conn: psycopg.Connection) -> tuple[int, int, int]:
    """A public Grand Paris project and a public national one (themed, as most are), with
    fresh ids, committed: (grand_paris, national, organisation)."""
    row = conn.execute(
        "SELECT (SELECT coalesce(max(id), 0) + 1 FROM project),"
        " (SELECT coalesce(max(id), 0) + 1 FROM organisation)"
    ).fetchone()
    assert row is not None
    grand_paris, national, org = row[0], row[0] + 1, row[1]
    conn.execute(
        "INSERT INTO organisation (id, kind, name) VALUES (%s, 'association', 'Bench fan-out')",
        (org,),
    )
    conn.execute(
        """INSERT INTO project (id, organisation_id, space, tool, title, visibility, status,
                                scope_kind, themes)
           VALUES (%s, %s, 'territoires', 'consultation', 'Grand Paris', 'public', 'open',
                   'territories', '{mobilite}'),
                  (%s, %s, 'loi', 'consultation', 'National', 'public', 'open', 'national',
                   '{mobilite,logement}')""",
        (grand_paris, org, national, org),
    )
    conn.execute(
        "INSERT INTO project_territory (project_id, level, code) VALUES (%s, 'epci', %s)",
        (grand_paris, GRAND_PARIS),
    )
    conn.commit()
    return grand_paris, national, org


def _clean(database: DatabaseSettings, projects: tuple[int, ...]) -> None:
    with db.connect(database, autocommit=True) as conn:
        conn.execute("DELETE FROM inbox WHERE project_id = ANY (%s)", (list(projects),))
        conn.execute("VACUUM inbox")


def fanout_figures(database: DatabaseSettings) -> dict[str, Any]:
    relevance = Relevance.of(load_weighted(), LoopSettings().relevance_threshold)
    with db.connect(database) as conn:
        grand_paris, national, org = _add_projects(conn)
        figures: dict[str, Any] = {}
        try:
            for name, project in (("grand_paris", grand_paris), ("national", national)):
                times, rows = [], set()
                for _ in range(RUNS):
                    _clean(database, (project,))
                    t = time.perf_counter()
                    rows.add(fan_out(conn, project, "published", relevance))
                    conn.commit()
                    times.append(time.perf_counter() - t)
                assert len(rows) == 1, rows
                figures[f"{name}_s"] = round(min(times), 3)
                figures[f"{name}_first_s"] = round(times[0], 3)
                figures[f"{name}_rows"] = rows.pop()
        finally:
            conn.rollback()
            _clean(database, (grand_paris, national))
            conn.execute("DELETE FROM project WHERE id IN (%s, %s)", (grand_paris, national))
            conn.execute("DELETE FROM organisation WHERE id = %s", (org,))
            conn.commit()
        users = conn.execute("SELECT count(*) FROM user_place").fetchone()
        assert users is not None
        figures["users"] = users[0]
    return figures


def run_fanout(settings: DatabaseSettings, geo: GeoSettings, users: int, seed: int) -> Any:
    """The figures of the fan-out benchmark (see the module's docstring)."""
    return fanout_figures(audience_database(settings, geo, users, seed))
