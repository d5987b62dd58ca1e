"""``fixtures.catalog`` on the real France: seeded, about 5% private, contributions only on
participatory maps and inside communes, every named territory exists, members live nearby, and
the JSON Lines files read back into the same records.

One catalogue of 2,000 projects is generated per module, on a connection whose 20,000 users
(added here) are rolled back at the end.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime, time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from contracts.catalog import (
    ContributionRecord,
    Level,
    MemberRecord,
    OrganisationKind,
    OrganisationRecord,
    ProjectRecord,
    Space,
    Status,
    Tool,
    Visibility,
)
from fixtures.catalog import REFERENCE_DATE, Catalog, generate_catalog, write_catalog
from geo_engine import db
from geo_engine.catalog import load as catalog_load
from geo_engine.jsonl import Line, read_records
from geo_engine.settings import DatabaseSettings

pytestmark = pytest.mark.geodata

PROJECTS = 2_000
USERS = 20_000
FIRST_USER = 7_000_001  # clear of the ids other tests use


@pytest.fixture(scope="module")
def with_users(france_db: DatabaseSettings) -> Iterator[psycopg.Connection]:
    """A connection to France with USERS users living in communes drawn by population, rolled
    back at the end of the module."""
    with db.connect(france_db) as conn:
        rows = conn.execute(
            "SELECT code, population FROM commune WHERE geom IS NOT NULL ORDER BY code"
        ).fetchall()
        weights = np.array([r[1] for r in rows], dtype=float)
        drawn = np.random.default_rng(0).choice(len(rows), size=USERS, p=weights / weights.sum())
        ids = range(FIRST_USER, FIRST_USER + USERS)
        with conn.cursor() as cur:
            with cur.copy("COPY app_user (id) FROM STDIN") as copy:
                for user in ids:
                    copy.write_row((user,))
            with cur.copy("COPY user_place (user_id, commune_code) FROM STDIN") as copy:
                for user, i in zip(ids, drawn.tolist(), strict=True):
                    copy.write_row((user, rows[i][0]))
        yield conn
        conn.rollback()


@pytest.fixture(scope="module")
def catalog(with_users: psycopg.Connection) -> Catalog:
    return generate_catalog(with_users, PROJECTS, seed=5)


@pytest.fixture
def stored(with_users: psycopg.Connection, catalog: Catalog) -> Iterator[psycopg.Connection]:
    """The catalogue stored through ``catalog_load``, undone after the test."""
    conn = with_users
    conn.execute("SAVEPOINT stored")
    catalog_load.store_organisations(conn, catalog.organisations)
    catalog_load.store_members(conn, catalog.members)
    catalog_load.store_projects(conn, catalog.projects)
    catalog_load.store_contributions(conn, catalog.contributions)
    yield conn
    conn.execute("ROLLBACK TO SAVEPOINT stored")


def _dumped(catalog: Catalog) -> list[list[Any]]:
    return [
        [(n, r.model_dump()) for n, r in lines]
        for lines in (
            catalog.organisations,
            catalog.members,
            catalog.projects,
            catalog.contributions,
        )
    ]


@pytest.mark.slow
def test_same_seed_same_catalog(with_users: psycopg.Connection, catalog: Catalog) -> None:
    again = generate_catalog(with_users, PROJECTS, seed=5)
    assert _dumped(again) == _dumped(catalog)
    other = generate_catalog(with_users, PROJECTS, seed=6)
    assert _dumped(other) != _dumped(catalog)
    titles = [line.record.title for line in catalog.projects]
    other_titles = [line.record.title for line in other.projects]
    assert sum(a != b for a, b in zip(titles, other_titles, strict=True)) > PROJECTS // 2
    small = generate_catalog(with_users, 40, seed=5, contributions=7)
    assert len(small.projects) == 40 and len(small.contributions) in (0, 7)
    assert generate_catalog(with_users, 0, seed=5) == Catalog([], [], [], [])


def test_sizes_and_shares(catalog: Catalog) -> None:
    projects = [line.record for line in catalog.projects]
    assert [p.id for p in projects] == list(range(1, PROJECTS + 1))
    assert len(catalog.contributions) == 10 * PROJECTS
    private = sum(p.visibility == Visibility.PRIVATE for p in projects) / PROJECTS
    assert 0.035 < private < 0.065
    maps = sum(p.tool == Tool.CARTE_PARTICIPATIVE for p in projects) / PROJECTS
    assert 0.07 < maps < 0.14
    kinds = Counter(line.record.kind for line in catalog.organisations)
    assert set(kinds) == set(OrganisationKind)
    assert kinds[OrganisationKind.EPCI] >= 179  # every XXL intercommunalité
    statuses = Counter(p.status for p in projects)
    assert all(statuses[s] > PROJECTS * 0.05 for s in Status), statuses
    scopes = Counter(p.scope.kind for p in projects)
    assert scopes["territories"] > scopes["radius"] > 0 and scopes["area"] > 0
    assert scopes["national"] > 0


def test_records_are_consistent(catalog: Catalog) -> None:
    organisations = {line.record.id: line.record for line in catalog.organisations}
    reference = datetime.combine(REFERENCE_DATE, time.max)  # the end of "today"
    for line in catalog.projects:
        p = line.record
        org = organisations[p.organisation_id]
        assert 1 <= len(p.themes) <= 3
        assert p.opens_at is not None and p.closes_at is not None
        opens = p.opens_at.replace(tzinfo=None)
        assert 2025 <= opens.year <= 2027
        if p.status == Status.UPCOMING:
            assert opens > reference
        elif p.status == Status.RESULTS:
            assert p.results_at is not None and p.results_at.replace(tzinfo=None) <= reference
        if org.kind == OrganisationKind.PARLEMENTAIRE:
            assert (p.space, p.scope.kind) == (Space.LOI, "national")
            assert p.tool in {Tool.CONSULTATION, Tool.DEBAT, Tool.VOTATION, Tool.PETITION}
        elif org.kind in (OrganisationKind.ASSOCIATION, OrganisationKind.ENTREPRISE):
            assert p.space == Space.IDEES
        else:
            assert p.space == Space.TERRITOIRES and p.scope.kind != "national"
        if p.tool == Tool.CARTE_PARTICIPATIVE:
            assert p.location is not None


def test_only_maps_that_opened_get_contributions(catalog: Catalog) -> None:
    projects = {line.record.id: line.record for line in catalog.projects}
    per_project = Counter(line.record.project_id for line in catalog.contributions)
    for project_id in per_project:
        assert projects[project_id].tool == Tool.CARTE_PARTICIPATIVE
        assert projects[project_id].status != Status.UPCOMING
    # Heavy-tailed: the busiest map has several times the average.
    assert max(per_project.values()) > 3 * len(catalog.contributions) / len(per_project)
    authored = sum(line.record.author_id is not None for line in catalog.contributions)
    assert 0.75 < authored / len(catalog.contributions) < 0.95


def test_the_catalog_stores_and_its_territories_exist(
    stored: psycopg.Connection, catalog: Catalog
) -> None:
    conn = stored
    counts = conn.execute(
        """SELECT (SELECT count(*) FROM organisation), (SELECT count(*) FROM project),
                  (SELECT count(*) FROM contribution), (SELECT count(*) FROM organisation_member)"""
    ).fetchone()
    expected = (len(catalog.organisations), PROJECTS, len(catalog.contributions))
    assert counts == (*expected, len(catalog.members))
    missing = conn.execute(
        """SELECT count(*) FROM project_territory pt WHERE NOT EXISTS (
               SELECT 1 FROM territory t WHERE t.level = pt.level AND t.code = pt.code)"""
    ).fetchone()
    assert missing == (0,)
    # Every territorial project is placed inside one of its territories (or its area).
    outside = conn.execute(
        """SELECT p.id FROM project p
           WHERE p.scope_kind = 'territories' AND NOT EXISTS (
               SELECT 1 FROM project_territory pt
               JOIN territory t ON t.level = pt.level AND t.code = pt.code
               WHERE pt.project_id = p.id AND ST_DWithin(t.geom, p.place, 1e-6))"""
    ).fetchall()
    assert outside == []
    # Every contribution lies in a commune, within 8 km of its map's place.
    stray = conn.execute(
        """SELECT c.id FROM contribution c JOIN project p ON p.id = c.project_id
           WHERE NOT EXISTS (SELECT 1 FROM commune_piece cp WHERE ST_Covers(cp.geom, c.geom))
              OR ST_Distance(c.geog, p.place_geog) > 8000"""
    ).fetchall()
    assert stray == []
    # Storing the same catalogue again writes nothing.
    assert catalog_load.store_projects(conn, catalog.projects) == 0
    assert catalog_load.store_contributions(conn, catalog.contributions) == 0


def test_members_live_near_their_organisation(stored: psycopg.Connection) -> None:
    """A commune's members live there when it has enough users."""
    rows = stored.execute(
        """WITH users_in AS (SELECT commune_code, count(*) AS n FROM user_place
                             GROUP BY commune_code)
           SELECT count(*) FILTER (WHERE up.commune_code = o.territory_code), count(*)
           FROM organisation o
           JOIN users_in ui ON ui.commune_code = o.territory_code AND ui.n >= 40
           JOIN organisation_member m ON m.organisation_id = o.id
           JOIN user_place up ON up.user_id = m.user_id
           WHERE o.kind = 'commune'"""
    ).fetchone()
    assert rows is not None
    at_home, total = rows
    assert total > 100 and at_home == total
    roles = dict(
        stored.execute("SELECT role, count(*) FROM organisation_member GROUP BY role").fetchall()
    )
    without_admin = stored.execute(
        """SELECT count(*) FROM organisation o WHERE NOT EXISTS (SELECT 1 FROM organisation_member m
           WHERE m.organisation_id = o.id AND m.role = 'admin')"""
    ).fetchone()
    assert without_admin == (0,)
    assert roles["member"] > roles["agent"] > 0


def test_jsonl_reads_back_into_the_same_records(catalog: Catalog, tmp_path: Path) -> None:
    paths = write_catalog(catalog, tmp_path)
    parts: list[tuple[str, type[Any], Any, list[Line[Any]]]] = [
        ("organisations", OrganisationRecord, lambda r: r.id, catalog.organisations),
        ("members", MemberRecord, lambda r: (r.organisation_id, r.user_id), catalog.members),
        ("projects", ProjectRecord, lambda r: r.id, catalog.projects),
        ("contributions", ContributionRecord, lambda r: r.id, catalog.contributions),
    ]
    for name, model, key, lines in parts:
        again = read_records(paths[name], model, key)
        assert [(n, r.model_dump()) for n, r in again] == [(n, r.model_dump()) for n, r in lines], (
            name
        )
    assert {p.name for p in tmp_path.iterdir()} == {
        "organisations.jsonl",
        "members.jsonl",
        "projects.jsonl",
        "contributions.jsonl",
    }
    assert Level.COMMUNE in {
        line.record.territory.level for line in catalog.organisations if line.record.territory
    }
