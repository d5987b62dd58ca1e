"""``catalog_load``: organisations, members, projects and contributions against the real France.

Each kind round-trips; bad references are named by line and field and write nothing; a drawn
area must be a valid polygon; a radius becomes a polygon of the right area; a project's place is
its location, else a point inside its scope; storing the same records again writes nothing.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from contracts.catalog import ContributionRecord, MemberRecord, OrganisationRecord, ProjectRecord
from geo_engine.catalog.load import (
    store_contributions,
    store_members,
    store_organisations,
    store_projects,
)
from geo_engine.jsonl import ImportRejected, Line

pytestmark = pytest.mark.geodata

REIMS, PARIS, SAINT_DENIS_REUNION = "51454", "75056", "97411"
GRAND_REIMS = "200067213"
REIMS_CENTRE = {"lon": 4.0317, "lat": 49.2583}
NOWHERE_COMMUNE = "99999"  # well formed, no such commune


def _commune(code: str) -> dict[str, str]:
    return {"level": "commune", "code": code}


def _territories(*refs: dict[str, str]) -> dict[str, Any]:
    return {"kind": "territories", "territories": list(refs)}


EPCI_GRAND_REIMS = {"level": "epci", "code": GRAND_REIMS}
ORGS = [
    {"id": 1, "kind": "commune", "name": "Ville de Reims", "territory": _commune(REIMS)},
    {"id": 2, "kind": "epci", "name": "CU du Grand Reims", "territory": EPCI_GRAND_REIMS},
    {"id": 3, "kind": "association", "name": "Collectif vélo Reims"},
]


def _lines(model: Any, raws: list[dict[str, Any]]) -> list[Line[Any]]:
    return [Line(n, model.model_validate(raw)) for n, raw in enumerate(raws, start=1)]


def _users(conn: psycopg.Connection, *ids: int) -> None:
    conn.execute(
        "INSERT INTO app_user (id) SELECT unnest(%s::bigint[])",
        (list(ids),),
    )


def _count(conn: psycopg.Connection, table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608 - fixed names
    assert row is not None
    return int(row[0])


def _project(pid: int, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": pid,
        "organisation_id": 1,
        "space": "territoires",
        "tool": "consultation",
        "title": f"Projet {pid}",
        "scope": _territories(_commune(REIMS)),
    }
    return {**base, **fields}


@pytest.fixture
def orgs(conn: psycopg.Connection) -> psycopg.Connection:
    """``conn`` with the three organisations and users 1 to 3 stored."""
    assert store_organisations(conn, _lines(OrganisationRecord, ORGS)) == 3
    _users(conn, 1, 2, 3)
    return conn


def test_organisations_and_members_round_trip(orgs: psycopg.Connection) -> None:
    conn = orgs
    rows = conn.execute(
        "SELECT id, kind, name, territory_level, territory_code FROM organisation ORDER BY id"
    ).fetchall()
    assert rows == [
        (1, "commune", "Ville de Reims", "commune", REIMS),
        (2, "epci", "CU du Grand Reims", "epci", GRAND_REIMS),
        (3, "association", "Collectif vélo Reims", None, None),
    ]
    members = [
        {"organisation_id": 1, "user_id": 1, "role": "admin"},
        {"organisation_id": 1, "user_id": 2, "role": "agent"},
        {"organisation_id": 3, "user_id": 2},
    ]
    assert store_members(conn, _lines(MemberRecord, members)) == 3
    assert conn.execute(
        "SELECT organisation_id, user_id, role FROM organisation_member ORDER BY 1, 2"
    ).fetchall() == [(1, 1, "admin"), (1, 2, "agent"), (3, 2, "member")]

    # The same records again write nothing; a changed role writes one row.
    assert store_organisations(conn, _lines(OrganisationRecord, ORGS)) == 0
    assert store_members(conn, _lines(MemberRecord, members)) == 0
    members[2]["role"] = "admin"
    assert store_members(conn, _lines(MemberRecord, members)) == 1


def test_projects_round_trip(orgs: psycopg.Connection) -> None:
    conn = orgs
    opens = datetime(2026, 3, 1, 9, tzinfo=UTC)
    area = {
        "type": "Polygon",
        "coordinates": [
            [[4.02, 49.25], [4.04, 49.25], [4.04, 49.26], [4.02, 49.26], [4.02, 49.25]]
        ],
    }
    raws = [
        _project(
            1,
            tool="carte_participative",
            themes=["mobilite", "securite"],
            visibility="private",
            status="open",
            opens_at=opens.isoformat(),
            closes_at=datetime(2026, 6, 1, tzinfo=UTC).isoformat(),
            location=REIMS_CENTRE,
        ),
        _project(
            2,
            organisation_id=2,
            scope=_territories(_commune(REIMS), EPCI_GRAND_REIMS),
        ),
        _project(3, scope={"kind": "radius", "center": REIMS_CENTRE, "radius_m": 800}),
        _project(4, scope={"kind": "area", "geometry": area}),
        _project(5, organisation_id=3, space="loi", tool="petition", scope={"kind": "national"}),
    ]
    lines = _lines(ProjectRecord, raws)
    assert store_projects(conn, lines) == 5

    row = conn.execute(
        """SELECT organisation_id, space, tool, title, themes, visibility, status, opens_at,
                  closes_at, results_at, scope_kind, ST_X(location), ST_Y(location)
           FROM project WHERE id = 1"""
    ).fetchone()
    assert row == (
        1,
        "territoires",
        "carte_participative",
        "Projet 1",
        ["mobilite", "securite"],
        "private",
        "open",
        opens,
        datetime(2026, 6, 1, tzinfo=UTC),
        None,
        "territories",
        REIMS_CENTRE["lon"],
        REIMS_CENTRE["lat"],
    )
    assert conn.execute(
        "SELECT project_id, level, code FROM project_territory ORDER BY 1, 2"
    ).fetchall() == [(1, "commune", REIMS), (2, "commune", REIMS), (2, "epci", GRAND_REIMS)]
    kinds = conn.execute("SELECT id, scope_kind FROM project ORDER BY id").fetchall()
    assert kinds == [
        (1, "territories"),
        (2, "territories"),
        (3, "radius"),
        (4, "area"),
        (5, "national"),
    ]
    radius = conn.execute("SELECT radius_m FROM project_area WHERE project_id = 3").fetchone()
    assert radius == (800.0,)
    same_area = conn.execute(
        """SELECT ST_Equals(geom, ST_SetSRID(ST_GeomFromGeoJSON(%s), 4326)), radius_m
           FROM project_area WHERE project_id = 4""",
        (json.dumps(area),),
    ).fetchone()
    assert same_area == (True, None)

    # The same records again write nothing, scopes included.
    assert store_projects(conn, lines) == 0
    assert _count(conn, "project_territory") == 3
    assert _count(conn, "project_area") == 2


def test_contributions_round_trip(orgs: psycopg.Connection) -> None:
    conn = orgs
    store_projects(conn, _lines(ProjectRecord, [_project(1, tool="carte_participative")]))
    raws = [
        {
            "id": 10,
            "project_id": 1,
            "category": "Voirie",
            "title": "Nid-de-poule",
            "location": {"lon": 4.03, "lat": 49.25},
            "author_id": 2,
        },
        {"id": 11, "project_id": 1, "category": "Éclairage", "location": REIMS_CENTRE},
    ]
    lines = _lines(ContributionRecord, raws)
    assert store_contributions(conn, lines) == 2
    assert conn.execute(
        """SELECT id, project_id, category, title, author_id, ST_X(geom), ST_Y(geom),
                  ST_AsText(geog::geometry) = ST_AsText(geom)
           FROM contribution ORDER BY id"""
    ).fetchall() == [
        (10, 1, "Voirie", "Nid-de-poule", 2, 4.03, 49.25, True),
        (11, 1, "Éclairage", "", None, REIMS_CENTRE["lon"], REIMS_CENTRE["lat"], True),
    ]
    assert store_contributions(conn, lines) == 0


def _rejected(call: Any) -> list[str]:
    with pytest.raises(ImportRejected) as caught:
        call()
    return caught.value.errors


def test_bad_references_are_named_and_write_nothing(orgs: psycopg.Connection) -> None:
    conn = orgs
    store_projects(
        conn,
        _lines(ProjectRecord, [_project(1, tool="carte_participative"), _project(2)]),
    )
    before = {t: _count(conn, t) for t in ("organisation", "organisation_member", "project")}
    before["contribution"] = _count(conn, "contribution")

    # Each store_* leaves its staging tables behind when it rejects: a savepoint per call.
    def attempt(call: Any) -> list[str]:
        conn.execute("SAVEPOINT attempt")
        try:
            return _rejected(call)
        finally:
            conn.execute("ROLLBACK TO SAVEPOINT attempt")

    errors = attempt(
        lambda: store_organisations(
            conn,
            _lines(
                OrganisationRecord,
                [
                    {
                        "id": 7,
                        "kind": "commune",
                        "name": "Ok",
                        "territory": {"level": "commune", "code": PARIS},
                    },
                    {
                        "id": 8,
                        "kind": "commune",
                        "name": "Nowhere",
                        "territory": {"level": "commune", "code": NOWHERE_COMMUNE},
                    },
                ],
            ),
            "orgs.jsonl",
        )
    )
    assert errors == [f"orgs.jsonl:2: territory: no commune with code {NOWHERE_COMMUNE}"]

    errors = attempt(
        lambda: store_members(
            conn,
            _lines(
                MemberRecord,
                [
                    {"organisation_id": 1, "user_id": 3},
                    {"organisation_id": 99, "user_id": 1},
                    {"organisation_id": 1, "user_id": 424242},
                ],
            ),
            "members.jsonl",
        )
    )
    assert errors == [
        "members.jsonl:2: organisation_id: no organisation 99",
        "members.jsonl:3: user_id: no user 424242",
    ]

    unknown_commune = _territories(_commune(REIMS), _commune(NOWHERE_COMMUNE))
    errors = attempt(
        lambda: store_projects(
            conn,
            _lines(
                ProjectRecord,
                [_project(3), _project(4, organisation_id=99), _project(5, scope=unknown_commune)],
            ),
            "projects.jsonl",
        )
    )
    assert errors == [
        "projects.jsonl:2: organisation_id: no organisation 99",
        f"projects.jsonl:3: scope.territories: no commune with code {NOWHERE_COMMUNE}",
    ]

    point = {"lon": 4.03, "lat": 49.25}
    errors = attempt(
        lambda: store_contributions(
            conn,
            _lines(
                ContributionRecord,
                [
                    {"id": 1, "project_id": 1, "category": "Voirie", "location": point},
                    {"id": 2, "project_id": 2, "category": "Voirie", "location": point},
                    {"id": 3, "project_id": 77, "category": "Voirie", "location": point},
                    {
                        "id": 4,
                        "project_id": 1,
                        "category": "Voirie",
                        "location": point,
                        "author_id": 5,
                    },
                ],
            ),
            "contributions.jsonl",
        )
    )
    assert errors == [
        "contributions.jsonl:2: project_id: project 2 is a consultation, not a carte_participative",
        "contributions.jsonl:3: project_id: no project 77",
        "contributions.jsonl:4: author_id: no user 5",
    ]
    after = {t: _count(conn, t) for t in before}
    assert after == before


def test_a_bow_tie_area_is_rejected_with_its_reason(orgs: psycopg.Connection) -> None:
    bow_tie = {
        "type": "Polygon",
        "coordinates": [[[4.0, 49.2], [4.1, 49.3], [4.1, 49.2], [4.0, 49.3], [4.0, 49.2]]],
    }
    lines = _lines(
        ProjectRecord, [_project(1), _project(2, scope={"kind": "area", "geometry": bow_tie})]
    )
    errors = _rejected(lambda: store_projects(orgs, lines, "projects.jsonl"))
    assert len(errors) == 1
    assert errors[0].startswith("projects.jsonl:2: scope.geometry: invalid polygon: ")
    assert "Self-intersection" in errors[0]
    assert _count(orgs, "project") == 0


@pytest.mark.parametrize(
    ("center", "radius_m"),
    [
        (REIMS_CENTRE, 500.0),
        (REIMS_CENTRE, 20_000.0),
        ({"lon": 55.45, "lat": -20.88}, 3_000.0),  # Saint-Denis, La Réunion
        ({"lon": 2.35, "lat": 48.85}, 150_000.0),
    ],
)
def test_a_radius_becomes_a_polygon_of_its_area(
    orgs: psycopg.Connection, center: dict[str, float], radius_m: float
) -> None:
    scope = {"kind": "radius", "center": center, "radius_m": radius_m}
    store_projects(orgs, _lines(ProjectRecord, [_project(1, scope=scope)]))
    row = orgs.execute(
        """SELECT ST_Area(geom::geography), radius_m, GeometryType(geom),
                  ST_Covers(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326))
           FROM project_area WHERE project_id = 1""",
        (center["lon"], center["lat"]),
    ).fetchone()
    assert row is not None
    area, stored_radius, kind, covers_center = row
    assert area == pytest.approx(math.pi * radius_m**2, rel=0.02)
    assert (stored_radius, kind, covers_center) == (radius_m, "MULTIPOLYGON", True)


def test_place_is_the_location_else_a_point_of_the_scope(orgs: psycopg.Connection) -> None:
    conn = orgs
    paris_point = {"lon": 2.3522, "lat": 48.8566}
    area = {
        "type": "Polygon",
        "coordinates": [
            [[4.02, 49.25], [4.04, 49.25], [4.04, 49.26], [4.02, 49.26], [4.02, 49.25]]
        ],
    }
    raws = [
        _project(1, location=paris_point),  # a location wins, even outside the scope
        _project(2),
        _project(3, organisation_id=2, scope=_territories(EPCI_GRAND_REIMS)),
        _project(4, scope=_territories(_commune(SAINT_DENIS_REUNION), _commune(REIMS))),
        _project(5, scope={"kind": "radius", "center": REIMS_CENTRE, "radius_m": 2000}),
        _project(6, scope={"kind": "area", "geometry": area}),
        _project(7, space="loi", scope={"kind": "national"}),
    ]
    store_projects(conn, _lines(ProjectRecord, raws))
    places = dict(
        conn.execute(
            """SELECT p.id, CASE p.id
                 WHEN 1 THEN ST_Equals(p.place, ST_SetSRID(ST_MakePoint(%s, %s), 4326))
                 WHEN 2 THEN ST_Covers(c.geom, p.place)
                 WHEN 3 THEN ST_Covers(e.geom, p.place)
                 WHEN 4 THEN ST_Covers(r.geom, p.place)
                 WHEN 5 THEN ST_Equals(p.place, ST_SetSRID(ST_MakePoint(%s, %s), 4326))
                 WHEN 6 THEN ST_Covers(a.geom, p.place)
                 WHEN 7 THEN p.place IS NULL END
               FROM project p
               CROSS JOIN (SELECT geom FROM commune WHERE code = %s) c
               CROSS JOIN (SELECT geom FROM epci WHERE siren = %s) e
               CROSS JOIN (SELECT geom FROM commune WHERE code = %s) r
               LEFT JOIN project_area a ON a.project_id = p.id""",
            (
                paris_point["lon"],
                paris_point["lat"],
                REIMS_CENTRE["lon"],
                REIMS_CENTRE["lat"],
                REIMS,
                GRAND_REIMS,
                SAINT_DENIS_REUNION,  # the first territory listed
            ),
        ).fetchall()
    )
    assert places == dict.fromkeys(range(1, 8), True)
    geog = conn.execute(
        "SELECT count(*) FROM project WHERE place_geog IS NOT NULL AND place IS NOT NULL"
    ).fetchone()
    assert geog == (6,)
