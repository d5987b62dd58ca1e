"""Audiences and candidate sets at the scale of the fan-out and of the daily planning step.

On ``<database>_bench_audience`` (France, ``users`` fixture users, ``PROJECTS`` fixture projects,
committed once per size through `geo-engine fixtures load`, then vacuumed), inside a
transaction that is rolled back: a public project on the Métropole du Grand Paris and a public
national project are added, then the clock runs over streaming every user id of each audience
to this process (``geo_engine.audience.audience``: binary COPY, numpy records), and over the
candidates of all communes at once for an anonymous viewer (``geo_engine.audience.candidates``).
Each is run ``RUNS`` times; the figure is the best run, the first run is reported beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import psycopg

from geo_engine import db
from geo_engine.audience import audience, candidates
from geo_engine.settings import DatabaseSettings, GeoSettings

PROJECTS = 100_000
GRAND_PARIS = "200054781"  # SIREN of the Métropole du Grand Paris
RUNS = 3


def audience_database(
    settings: DatabaseSettings, geo: GeoSettings, users: int, seed: int
) -> DatabaseSettings:
    """``<database>_bench_audience`` with France, ``users`` users and ``PROJECTS`` projects."""
    from bench.runner import fixture_database

    return fixture_database(
        settings,
        geo,
        "_bench_audience",
        "--contributions",
        "0",
        users=users,
        projects=PROJECTS,
        seed=seed,
    )


def _add_projects(conn: psycopg.Connection) -> tuple[int, int]:
    """A public Grand Paris project and a public national one, with fresh ids (uncommitted)."""
    row = conn.execute(
        "SELECT coalesce(max(id), 0) + 1 FROM project UNION ALL "
        "SELECT coalesce(max(id), 0) + 1 FROM organisation"
    ).fetchall()
    grand_paris, national, org = row[0][0], row[0][0] + 1, row[1][0]
    conn.execute(
        "INSERT INTO organisation (id, kind, name) VALUES (%s, 'association', 'Bench')", (org,)
    )
    conn.execute(
        """INSERT INTO project (id, organisation_id, space, tool, title, visibility, status,
                                scope_kind)
           VALUES (%s, %s, 'territoires', 'consultation', 'Grand Paris', 'public', 'open',
                   'territories'),
                  (%s, %s, 'loi', 'consultation', 'National', 'public', 'open', 'national')""",
        (grand_paris, org, national, org),
    )
    conn.execute(
        "INSERT INTO project_territory (project_id, level, code) VALUES (%s, 'epci', %s)",
        (grand_paris, GRAND_PARIS),
    )
    return grand_paris, national


def _best(run: Callable[[], int]) -> tuple[float, float, int]:
    """(best seconds, first seconds, rows) over RUNS runs; every run must give the same rows."""
    times, counts = [], set()
    for _ in range(RUNS):
        t = time.perf_counter()
        counts.add(run())
        times.append(time.perf_counter() - t)
    assert len(counts) == 1, counts
    return min(times), times[0], counts.pop()


def audience_figures(conn: psycopg.Connection) -> dict[str, Any]:
    grand_paris, national = _add_projects(conn)

    def stream(project: int) -> Callable[[], int]:
        def run() -> int:
            n = 0
            for ids, _levels in audience(conn, project):
                n += len(ids)
            return n

        return run

    communes = [r[0] for r in conn.execute("SELECT code FROM commune ORDER BY code").fetchall()]
    gp_s, gp_first, gp_rows = _best(stream(grand_paris))
    nat_s, nat_first, nat_rows = _best(stream(national))
    cand_s, cand_first, cand_rows = _best(lambda: len(candidates(conn, communes)))
    sample = candidates(conn, communes)
    return {
        "grand_paris_s": round(gp_s, 3),
        "grand_paris_first_s": round(gp_first, 3),
        "grand_paris_rows": gp_rows,
        "national_s": round(nat_s, 3),
        "national_first_s": round(nat_first, 3),
        "national_rows": nat_rows,
        "candidates_all_communes_s": round(cand_s, 3),
        "candidates_all_communes_first_s": round(cand_first, 3),
        "candidates_rows": cand_rows,
        "candidates_national_rows": int(np.count_nonzero(sample.commune == -1)),
        "communes": len(communes),
        "users": conn.execute("SELECT count(*) FROM user_place").fetchone()[0],  # type: ignore[index]
        "projects": conn.execute("SELECT count(*) FROM project").fetchone()[0],  # type: ignore[index]
    }


def run_audience(
    settings: DatabaseSettings, geo: GeoSettings, users: int, seed: int
) -> dict[str, Any]:
    database = audience_database(settings, geo, users, seed)
    with db.connect(database) as conn:
        try:
            return audience_figures(conn)
        finally:
            conn.rollback()
