"""Known answers of the reusable geography on the real territories: who a project reaches
(``project_audience``) and what concerns a commune (``project_candidates``), through
geo_engine.audience. Every test writes its users and projects in a transaction rolled back.

The property that neither ever leaks a private project is in test_api_visibility.py.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import psycopg
import pytest

from geo_engine import audience
from geo_engine.catalog import load as catalog_load
from geo_engine.db import load_sql
from tests.api_data import (
    _lines,
    contribution,
    member,
    national,
    organisation,
    project,
    radius,
    square,
    territories,
)

pytestmark = pytest.mark.geodata

GRAND_PARIS = "200054781"
ORG, PRIVATE_ORG = 7001, 7002
MEMBER = 9001
LYON_HOTEL_DE_VILLE = (4.8357, 45.7676)

# user id -> (commune, arrondissement, home (lon, lat) or None)
USERS: dict[int, tuple[str, str | None, tuple[float, float] | None]] = {
    9001: ("75056", "75115", (2.2920, 48.8412)),  # Paris 15e
    9002: ("75056", "75120", (2.4010, 48.8635)),  # Paris 20e
    9003: ("75056", None, None),  # Paris, placed by commune code: arrondissement unknown
    9004: ("92012", None, (2.2400, 48.8350)),  # Boulogne-Billancourt (Grand Paris)
    9005: ("91027", None, None),  # Athis-Mons, Essonne but in the Grand Paris
    9006: ("95018", None, None),  # Argenteuil, Val-d'Oise but in the Grand Paris
    9007: ("95127", None, None),  # Cergy: Val-d'Oise, not in the Grand Paris
    9008: ("77284", None, None),  # Meaux
    # Lyon: 200 m and 2.5 km from the Hôtel de Ville
    9010: ("69123", None, (4.8357, 45.7694)),
    9011: ("69123", None, (4.8357, 45.7451)),
}
PENDING = 9020  # a shared postal code, no choice made yet


def _place_users(conn: psycopg.Connection) -> None:
    ids = [*USERS, PENDING]
    conn.execute("INSERT INTO app_user (id) SELECT unnest(%s::bigint[])", (ids,))
    for uid, (commune, arrondissement, home) in USERS.items():
        lon, lat = home or (None, None)
        conn.execute(
            """INSERT INTO user_place (user_id, commune_code, arrondissement_code, home)
               VALUES (%s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326))""",
            (uid, commune, arrondissement, lon, lat),
        )
    conn.execute(
        """INSERT INTO user_place (user_id, candidate_communes, postal_code)
           VALUES (%s, ARRAY['91027', '91432'], '91200')""",
        (PENDING,),
    )


def _write(conn: psycopg.Connection, projects: list[Any]) -> None:
    catalog_load.store_organisations(
        conn, _lines([organisation(ORG), organisation(PRIVATE_ORG)]), "test"
    )
    catalog_load.store_members(conn, _lines([member(PRIVATE_ORG, MEMBER)]), "test")
    catalog_load.store_projects(conn, _lines(projects), "test")


@pytest.fixture
def world(conn: psycopg.Connection) -> psycopg.Connection:
    _place_users(conn)
    _write(
        conn,
        [
            project(1, ORG, territories(("epci", GRAND_PARIS))),
            project(2, ORG, territories(("arrondissement", "75115"))),
            project(3, ORG, radius(*LYON_HOTEL_DE_VILLE, 1000)),
            project(4, ORG, national()),
            project(5, PRIVATE_ORG, territories(("epci", GRAND_PARIS)), visibility="private"),
            project(6, ORG, territories(("commune", "75056"), ("departement", "75"))),
            project(7, ORG, square(2.30, 48.84, 0.01)),  # around the 15e
            project(8, ORG, territories(("arrondissement", "69383"))),  # Lyon 3e, no outline
        ],
    )
    return conn


def _audience(conn: psycopg.Connection, project_id: int) -> dict[int, str]:
    """Users of our world reached by the project -> level word (others are ignored)."""
    out: dict[int, str] = {}
    for ids, levels in audience.audience(conn, project_id):
        for uid, level in zip(ids.tolist(), levels.tolist(), strict=True):
            assert uid not in out, f"user {uid} twice"
            out[uid] = audience.LEVELS[level]
    return {u: v for u, v in out.items() if u in USERS or u == PENDING}


def test_a_grand_paris_project_reaches_its_communes_only(world: psycopg.Connection) -> None:
    assert _audience(world, 1) == dict.fromkeys((9001, 9002, 9003, 9004, 9005, 9006), "epci")


def test_a_private_project_reaches_its_members_only(world: psycopg.Connection) -> None:
    assert _audience(world, 5) == {MEMBER: "epci"}


def test_an_arrondissement_project_reaches_it_and_the_unknown_of_its_commune(
    world: psycopg.Connection,
) -> None:
    assert _audience(world, 2) == {9001: "arrondissement", 9003: "arrondissement"}
    # Lyon has no arrondissement outlines: every Lyon user's arrondissement is unknown.
    assert _audience(world, 8) == {9010: "arrondissement", 9011: "arrondissement"}


def test_a_radius_reaches_the_homes_inside(world: psycopg.Connection) -> None:
    assert _audience(world, 3) == {9010: "radius"}
    assert _audience(world, 7) == {9001: "area"}


def test_national_reaches_every_placed_user_but_the_pending(world: psycopg.Connection) -> None:
    assert _audience(world, 4) == dict.fromkeys(USERS, "national")


def test_the_narrowest_level_wins(world: psycopg.Connection) -> None:
    assert _audience(world, 6) == dict.fromkeys((9001, 9002, 9003), "commune")


def test_a_missing_project_reaches_nobody(world: psycopg.Connection) -> None:
    assert list(audience.audience(world, 999_999)) == []


def test_candidates_of_communes(world: psycopg.Connection) -> None:
    asked = ["75056", "92012", "95127", "69123", "99999"]
    got = audience.candidates(world, asked)
    assert got.communes == asked
    assert got.of("75056") == {
        1: "epci",
        2: "arrondissement",
        4: "national",
        6: "commune",
        7: "area",
    }
    assert got.of("92012") == {1: "epci", 4: "national"}  # the square stops short of it
    assert got.of("95127") == {4: "national"}
    assert got.of("69123") == {3: "radius", 4: "national", 8: "arrondissement"}
    assert got.of("99999") == {4: "national"}  # unknown: only what concerns every commune
    # National projects come once, not once per commune.
    assert np.count_nonzero(got.commune == -1) == 1
    assert np.isnan(got.distance_m).all()
    # The member sees the private one too.
    assert audience.candidates(world, ["92012"], viewer=MEMBER).of("92012") == {
        1: "epci",
        4: "national",
        5: "epci",
    }
    assert len(audience.candidates(world, ["99999"])) == 0


def test_candidate_distances_from_home(world: psycopg.Connection) -> None:
    home = USERS[9011][2]  # Lyon, 2.5 km south of the Hôtel de Ville
    assert home is not None
    got = audience.candidates(world, ["69123"], home=home)
    distance = dict(zip(got.project_id.tolist(), got.distance_m.tolist(), strict=True))
    # Radius 1 km around a point 2.5 km away: about 1.5 km to its edge.
    assert 1_450 < distance[3] < 1_550
    assert np.isnan(distance[4]) and np.isnan(distance[8])  # no location, no area
    inside = audience.candidates(world, ["69123"], home=LYON_HOTEL_DE_VILLE)
    assert dict(zip(inside.project_id.tolist(), inside.distance_m.tolist(), strict=True))[3] == 0


def _plan(conn: psycopg.Connection, query: str, params: Any = None) -> dict[str, Any]:
    row = conn.execute(f"EXPLAIN (FORMAT JSON) {query}", params).fetchone()
    assert row is not None
    plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
    return plan[0]["Plan"]  # type: ignore[no-any-return]


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(n for child in plan.get("Plans", []) for n in _nodes(child))]


def test_both_functions_are_inlined_so_rows_stream(world: psycopg.Connection) -> None:
    """A set-returning SQL function that is not inlined is run to the end into a tuplestore
    before its first row: an audience of millions would sit in memory (Function Scan)."""
    for name, query in (
        ("project_audience", "SELECT * FROM project_audience(4)"),
        ("project_candidates", "SELECT * FROM project_candidates(ARRAY['75056'], NULL, NULL)"),
    ):
        functions = {n.get("Function Name") for n in _nodes(_plan(world, query))}
        assert name not in functions


def test_a_national_audience_reads_no_index_but_user_place(world: psycopg.Connection) -> None:
    """The territorial branch of a national project is cut by its one-time filter: the plan
    of a national audience reads user_place once, and no branch of another kind runs."""
    world.execute("ANALYZE user_place")
    row = world.execute(
        "EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM project_audience(4)"
    ).fetchone()
    assert row is not None
    nodes = _nodes(row[0][0]["Plan"])
    scans = [n for n in nodes if n.get("Relation Name") == "user_place"]
    assert scans and sum(1 for n in scans if n.get("Actual Loops", 0) > 0) == 1


NEARBY_CONTRIBUTIONS = load_sql("geo_engine.catalog.sql", "nearby_contributions.sql")


def test_nearby_contributions_of_a_hidden_map_read_none_of_its_rows(
    world: psycopg.Connection,
) -> None:
    """Fault 4.8: for a private map the viewer may not see, the visibility of the map is asked
    first and no contribution row is read, as for a map that does not exist."""
    lon, lat = 2.30, 48.84
    _write(
        world,
        [
            project(
                20,
                PRIVATE_ORG,
                square(lon, lat, 0.01),
                tool="carte_participative",
                visibility="private",
            ),
        ],
    )
    catalog_load.store_contributions(
        world,
        _lines([contribution(30_000 + i, 20, (lon + i * 1e-4, lat)) for i in range(50)]),
        "test",
    )
    world.execute("ANALYZE contribution")

    def rows_read(project_id: int, viewer: int | None) -> tuple[int, int]:
        params = {
            "lon": lon,
            "lat": lat,
            "radius_m": 2000,
            "limit": 100,
            "viewer": viewer,
            "project_id": project_id,
        }
        row = world.execute(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {NEARBY_CONTRIBUTIONS}", params
        ).fetchone()
        assert row is not None
        nodes = _nodes(row[0][0]["Plan"])
        scans = [n for n in nodes if n.get("Relation Name") == "contribution"]
        assert scans
        read = sum(n.get("Actual Rows", 0) * n.get("Actual Loops", 0) for n in scans)
        answer = world.execute(NEARBY_CONTRIBUTIONS, params).fetchone()
        assert answer is not None
        return read, len(json.loads(answer[0])["features"])

    assert rows_read(20, MEMBER) == (50, 50)  # the member: every row read and answered
    assert rows_read(20, None) == (0, 0)  # anonymous: not one row of the hidden map read
    assert rows_read(20, 9002) == (0, 0)  # a signed-in non-member: the same
    assert rows_read(999_999, None) == (0, 0)  # a missing map: the same work


def test_nearby_contributions_of_every_map_walk_the_index_nearest_first(
    world: psycopg.Connection,
) -> None:
    """Without a map, the nearest contributions come from a KNN walk of idx_contribution_geog
    that stops after ``limit`` rows, whatever the size of the table: a materialised point made
    the planner read and check every contribution instead (seconds among a million)."""
    lon, lat = 5.37, 43.30
    _write(world, [project(21, ORG, square(lon, lat, 0.5), tool="carte_participative")])
    catalog_load.store_contributions(
        world,
        _lines(
            [
                contribution(40_000 + i, 21, (lon + (i % 60) * 1e-3, lat + (i // 60) * 1e-3))
                for i in range(3000)
            ]
        ),
        "test",
    )
    world.execute("ANALYZE contribution")
    params = {
        "lon": lon,
        "lat": lat,
        "radius_m": 5000,
        "limit": 20,
        "viewer": None,
        "project_id": None,
    }
    row = world.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {NEARBY_CONTRIBUTIONS}", params).fetchone()
    assert row is not None
    nodes = _nodes(row[0][0]["Plan"])
    scans = [n for n in nodes if n.get("Relation Name") == "contribution"]
    assert [n["Node Type"] for n in scans] == ["Index Scan"], scans
    assert scans[0]["Index Name"] == "idx_contribution_geog"
    assert scans[0]["Actual Rows"] * scans[0]["Actual Loops"] <= 20
    answer = world.execute(NEARBY_CONTRIBUTIONS, params).fetchone()
    assert answer is not None
    distances = [f["properties"]["distance_m"] for f in json.loads(answer[0])["features"]]
    assert len(distances) == 20 and distances == sorted(distances)
