"""Every read endpoint of the HTTP API against the real France, with data committed once in the
module's own database: answers are checked against expectations computed independently (the
raw tables, a haversine, tile arithmetic), and every refusal is an RFC 9457 problem document."""

from __future__ import annotations

import json
import math
import random
import time
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import Point, shape

from api.deps import MAX_BBOX_DEG2, MAX_NEARBY, MAX_PAGE, MAX_RADIUS_M, MAX_ZOOM
from contracts.api import (
    CommuneDetail,
    ContributionCollection,
    ProjectCollection,
    ProjectDetail,
)
from contracts.territories import Location
from geo_engine import db
from geo_engine.settings import DatabaseSettings
from tests.api_data import (
    GEOJSON,
    MVT,
    assert_problem,
    contribution,
    decode_mvt,
    feature_ids,
    haversine_m,
    member,
    national,
    organisation,
    pixel_in_tile,
    project,
    radius,
    square,
    tamper_cursor,
    territories,
    tile_bounds,
    tile_of,
    walk_pages,
    write,
)
from tests.cli import run_cli
from tests.conftest import TEST_SECRET, token_for

# Every test here reads the world below, even those that name only the client: without
# usefixtures, a test run alone (-k) would see an empty database.
pytestmark = [pytest.mark.geodata, pytest.mark.usefixtures("world")]

HOTEL_DE_VILLE = (2.3522, 48.8566)  # Paris (lon, lat)
LYON_HOTEL_DE_VILLE = (4.8357, 45.7676)
LYON_EPCI = "200046977"  # Métropole de Lyon
PAPEETE = (-149.57, -17.53)

ADMIN_LYON, MEMBER_PARIS, NOBODY = 1, 2, 3
LYON_ORG, PARIS_ORG, MAP_ORG = 1, 2, 3

# Commune projects of Lyon: id -> concerns_via (None: must not concern Lyon).
LYON_CASES: dict[int, str | None] = {
    101: "commune",
    102: "epci",
    103: "departement",
    104: "region",
    105: "national",
    106: "area",  # a square inside Lyon
    107: "radius",  # a radius around the Hôtel de Ville de Lyon
    108: None,  # Villeurbanne
    109: None,  # Isère
    110: None,  # a square in Paris
    111: "commune",  # private to the Ville de Lyon
    112: "commune",  # commune and département: the narrowest wins
    113: "area",  # a square centred in Villeurbanne that overlaps Lyon
    114: None,  # a radius around Marseille
    115: "national",  # private to the Ville de Paris
    116: "national",  # placed in Papeete, still national
}
PARIS_PUBLIC = range(1000, 1240)
PARIS_PRIVATE = range(1240, 1250)
MAP_PUBLIC, MAP_PRIVATE = 1300, 1301


def _paris_point(rng: random.Random) -> tuple[float, float]:
    return (
        round(HOTEL_DE_VILLE[0] + rng.uniform(-0.15, 0.15), 6),
        round(HOTEL_DE_VILLE[1] + rng.uniform(-0.1, 0.1), 6),
    )


@pytest.fixture(scope="module")
def world(api_db: DatabaseSettings) -> DatabaseSettings:
    rng = random.Random(20260301)
    lyon = [("commune", "69123")]
    projects = [
        project(101, LYON_ORG, territories(*lyon)),
        project(102, LYON_ORG, territories(("epci", LYON_EPCI))),
        project(103, LYON_ORG, territories(("departement", "69"))),
        project(104, LYON_ORG, territories(("region", "84"))),
        project(105, LYON_ORG, national()),
        project(106, LYON_ORG, square(4.83, 45.75, 0.005)),
        project(107, LYON_ORG, radius(*LYON_HOTEL_DE_VILLE, 300)),
        project(108, LYON_ORG, territories(("commune", "69266"))),
        project(109, LYON_ORG, territories(("departement", "38"))),
        project(110, LYON_ORG, square(2.34, 48.86, 0.01)),
        project(111, LYON_ORG, territories(*lyon), visibility="private", title="Secret lyonnais"),
        project(112, LYON_ORG, territories(*lyon, ("departement", "69"))),
        project(113, LYON_ORG, square(4.88, 45.77, 0.03)),
        project(114, LYON_ORG, radius(5.3698, 43.2965, 5000)),
        project(115, PARIS_ORG, national(), visibility="private"),
        project(
            116,
            PARIS_ORG,
            national(),
            location=PAPEETE,
            title="Projet polynesien",
        ),
    ]
    for pid in PARIS_PUBLIC:
        projects.append(
            project(pid, PARIS_ORG, territories(("commune", "75056")), location=_paris_point(rng))
        )
    for pid in PARIS_PRIVATE:
        projects.append(
            project(
                pid,
                PARIS_ORG,
                territories(("commune", "75056")),
                location=_paris_point(rng),
                visibility="private",
                title=f"Projet confidentiel {pid}",
            )
        )
    projects += [
        project(
            MAP_PUBLIC,
            MAP_ORG,
            radius(*HOTEL_DE_VILLE, 3000),
            tool="carte_participative",
            title="Carte des bancs",
        ),
        project(
            MAP_PRIVATE,
            PARIS_ORG,
            radius(*HOTEL_DE_VILLE, 3000),
            tool="carte_participative",
            visibility="private",
            title="Carte interne",
        ),
    ]
    contributions = []
    for n in range(60):
        where = (
            round(HOTEL_DE_VILLE[0] + rng.uniform(-0.02, 0.02), 6),
            round(HOTEL_DE_VILLE[1] + rng.uniform(-0.015, 0.015), 6),
        )
        target = MAP_PUBLIC if n < 45 else MAP_PRIVATE
        contributions.append(
            contribution(5000 + n, target, where, title=f"Banc {n}", author_id=NOBODY)
        )
    write(
        api_db,
        users=[ADMIN_LYON, MEMBER_PARIS, NOBODY],
        organisations=[
            organisation(LYON_ORG, "Ville de Lyon", kind="commune", territory=lyon[0]),
            organisation(PARIS_ORG, "Ville de Paris", kind="commune", territory=None),
            organisation(MAP_ORG, "Association des cartes"),
        ],
        members=[member(LYON_ORG, ADMIN_LYON, "admin"), member(PARIS_ORG, MEMBER_PARIS)],
        projects=projects,
        contributions=contributions,
    )
    return api_db


@pytest.fixture(scope="module")
def places(world: DatabaseSettings) -> dict[int, tuple[float, float, bool, int]]:
    """Project id -> (lon, lat, public, organisation) read from the table, not through the API."""
    with db.connect(world) as conn:
        rows = conn.execute(
            """SELECT id, ST_X(place), ST_Y(place), visibility = 'public', organisation_id
               FROM project WHERE place IS NOT NULL"""
        ).fetchall()
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


@pytest.fixture(scope="module")
def contribution_places(world: DatabaseSettings) -> dict[int, tuple[float, float, bool]]:
    with db.connect(world) as conn:
        rows = conn.execute(
            """SELECT c.id, ST_X(c.geom), ST_Y(c.geom), p.visibility = 'public'
               FROM contribution c JOIN project p ON p.id = c.project_id"""
        ).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def _visible(public: bool, org: int, viewer: int | None) -> bool:
    memberships = {ADMIN_LYON: {LYON_ORG}, MEMBER_PARIS: {PARIS_ORG}}
    return public or org in memberships.get(viewer or 0, set())


def _headers(viewer: int | None) -> dict[str, str]:
    return {} if viewer is None else token_for(viewer)


# --------------------------------------------------------------------------------------------
# Health and territories


def test_health(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert str(body["postgis"]).startswith("3.")


def test_locate_paris_town_hall_is_the_cli_answer(
    client: TestClient, api_db: DatabaseSettings
) -> None:
    response = client.get("/v1/territories/locate", params={"lat": 48.8566, "lon": 2.3522})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    Location.model_validate(body)
    assert body["commune"]["code"] == "75056"
    assert body["arrondissement"]["code"] == "75104"
    assert body["epci"]["code"] == "200054781"
    assert (body["departement"]["code"], body["region"]["code"]) == ("75", "11")
    cli = run_cli(
        "geo", "locate", "48.8566", "2.3522", env={"GEO_ENGINE_DATABASE_URL": api_db.database_url}
    )
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == body


def test_locate_outside_any_commune_is_a_404_problem(client: TestClient) -> None:
    body = assert_problem(client.get("/v1/territories/locate?lat=46.0&lon=-5.0"), 404)
    assert "46.0" in body["detail"] and "-5.0" in body["detail"]


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("lat=95&lon=2", "lat"),
        ("lat=-90.5&lon=2", "lat"),
        ("lat=48&lon=abc", "lon"),
        ("lat=48&lon=181", "lon"),
        ("lat=nan&lon=2", "lat"),
        ("lat=48&lon=inf", "lon"),
        ("lon=2", "lat"),
    ],
)
def test_locate_refuses_invalid_coordinates(client: TestClient, query: str, named: str) -> None:
    body = assert_problem(client.get(f"/v1/territories/locate?{query}"), 422)
    assert named in body["detail"]


def test_commune_with_its_chain(client: TestClient) -> None:
    response = client.get("/v1/territories/communes/69123")
    assert response.status_code == 200
    body = CommuneDetail.model_validate_json(response.text)
    assert (body.code, body.name) == ("69123", "Lyon")
    assert body.epci is not None and body.epci.code == LYON_EPCI
    assert (body.departement.code, body.region.code) == ("69", "84")
    assert "69001" in body.postal_codes
    assert body.geometry is None


def test_commune_outline_is_a_geojson_multipolygon(client: TestClient) -> None:
    response = client.get("/v1/territories/communes/75056", params={"geometry": "true"})
    assert response.status_code == 200
    geometry = response.json()["geometry"]
    assert geometry["type"] == "MultiPolygon"
    outline = shape(geometry)
    assert outline.is_valid
    assert outline.covers(Point(*HOTEL_DE_VILLE))
    assert not outline.covers(Point(*LYON_HOTEL_DE_VILLE))


def test_commune_without_an_epci(client: TestClient) -> None:
    body = CommuneDetail.model_validate_json(client.get("/v1/territories/communes/29155").text)
    assert body.epci is None and body.departement.code == "29"


def test_unknown_commune_is_a_404_problem(client: TestClient) -> None:
    assert "99999" in assert_problem(client.get("/v1/territories/communes/99999"), 404)["detail"]
    assert_problem(client.get("/v1/territories/communes/99999/projects"), 404)


def test_places_by_name_or_postal_code(client: TestClient) -> None:
    def names(q: str, limit: int = 3) -> list[str]:
        answer = client.get("/v1/territories/places", params={"q": q, "limit": limit})
        assert answer.status_code == 200, answer.text
        return [f"{p['name']} ({p['departement']})" for p in answer.json()["places"]]

    assert names("Paris", 1) == ["Paris (75)"]
    assert names("  PARIS ") == names("paris")
    assert names("paris")[1:] == ["Parisot (81)", "Parisot (82)"]  # then the most populous
    assert names("l'hay les roses", 1) == ["L'Haÿ-les-Roses (94)"]
    assert names("saint-étienne", 1) == ["Saint-Étienne (42)"]
    assert names("ETIENNE", 1) == ["Saint-Étienne (42)"]  # a word of the name
    assert names("75011") == ["Paris (75)"]
    assert names("Zzyzxville") == []
    [place] = client.get("/v1/territories/places", params={"q": "paris", "limit": 1}).json()[
        "places"
    ]
    located = client.get(
        "/v1/territories/locate", params={"lat": place["lat"], "lon": place["lon"]}
    ).json()
    assert located["commune"]["code"] == "75056"  # the point is inside the commune


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"q": "!!!"}, "no letter or digit"),
        ({"q": ""}, "q"),
        ({"q": "x" * 101}, "q"),
        ({"q": "paris", "limit": "0"}, "limit"),
        ({"q": "paris", "limit": "٣"}, "limit"),
    ],
)
def test_places_refuses_what_it_cannot_search(
    client: TestClient, params: dict[str, str], named: str
) -> None:
    body = assert_problem(client.get("/v1/territories/places", params=params), 422)
    assert named in json.dumps(body), body


@pytest.mark.parametrize("code", ["abc", "1234", "123456", "2C001"])
def test_malformed_commune_code_is_a_422_problem(client: TestClient, code: str) -> None:
    body = assert_problem(client.get(f"/v1/territories/communes/{code}"), 422)
    assert "insee" in body["detail"]
    assert_problem(client.get(f"/v1/territories/communes/{code}/projects"), 422)


# --------------------------------------------------------------------------------------------
# Nearby


def _nearby(
    client: TestClient, lon: float, lat: float, viewer: int | None = None, **params: Any
) -> dict[str, Any]:
    response = client.get(
        "/v1/projects/nearby",
        params={"lat": lat, "lon": lon, **params},
        headers=_headers(viewer),
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == GEOJSON
    ProjectCollection.model_validate_json(response.text)
    body: dict[str, Any] = response.json()
    return body


def _assert_rfc7946_points(collection: dict[str, Any]) -> None:
    assert collection["type"] == "FeatureCollection"
    for feature in collection["features"]:
        assert feature["type"] == "Feature"
        assert feature["id"] == feature["properties"]["id"]
        geometry = feature["geometry"]
        assert geometry["type"] == "Point"
        lon, lat = geometry["coordinates"]
        assert -180 <= lon <= 180 and -90 <= lat <= 90


@pytest.mark.parametrize("viewer", [None, MEMBER_PARIS, NOBODY])
def test_nearby_projects_are_the_visible_ones_within_the_radius_nearest_first(
    client: TestClient,
    places: dict[int, tuple[float, float, bool, int]],
    viewer: int | None,
) -> None:
    radius_m = 4_000
    body = _nearby(client, *HOTEL_DE_VILLE, viewer, radius_m=radius_m, limit=MAX_NEARBY)
    _assert_rfc7946_points(body)
    features = body["features"]
    distances = [f["properties"]["distance_m"] for f in features]
    assert distances == sorted(distances)
    seen = set()
    for feature in features:
        pid = feature["id"]
        lon, lat, public, org = places[pid]
        assert feature["geometry"]["coordinates"] == pytest.approx([lon, lat], abs=1e-6)
        assert _visible(public, org, viewer)
        expected = haversine_m(*HOTEL_DE_VILLE, lon, lat)
        assert feature["properties"]["distance_m"] <= radius_m
        assert feature["properties"]["distance_m"] == pytest.approx(expected, rel=0.005, abs=0.2)
        seen.add(pid)
    assert len(features) < MAX_NEARBY, "the radius must hold fewer projects than the limit"
    # Everything visible and clearly inside the radius is there; nothing clearly outside is.
    for pid, (lon, lat, public, org) in places.items():
        d = haversine_m(*HOTEL_DE_VILLE, lon, lat)
        if _visible(public, org, viewer) and d < radius_m * 0.995:
            assert pid in seen, (pid, d)
        if d > radius_m * 1.005:
            assert pid not in seen, (pid, d)
    private_seen = seen & set(PARIS_PRIVATE)
    assert bool(private_seen) == (viewer == MEMBER_PARIS)


def test_nearby_limit_keeps_the_nearest(
    client: TestClient, places: dict[int, tuple[float, float, bool, int]]
) -> None:
    body = _nearby(client, 2.30, 48.87, radius_m=MAX_RADIUS_M, limit=7)
    assert len(body["features"]) == 7
    kept = {f["id"] for f in body["features"]}
    worst = max(f["properties"]["distance_m"] for f in body["features"])
    for pid, (lon, lat, public, _org) in places.items():
        d = haversine_m(2.30, 48.87, lon, lat)
        if public and pid not in kept:
            assert d >= worst * 0.995, (pid, d, worst)


def test_nearby_with_nothing_around_is_an_empty_collection(client: TestClient) -> None:
    assert _nearby(client, -1.0, 46.0, radius_m=1000) == {
        "type": "FeatureCollection",
        "features": [],
    }


@pytest.mark.parametrize("viewer", [None, MEMBER_PARIS])
def test_nearby_contributions(
    client: TestClient,
    contribution_places: dict[int, tuple[float, float, bool]],
    viewer: int | None,
) -> None:
    radius_m = 1_200
    response = client.get(
        "/v1/contributions/nearby",
        params={"lat": HOTEL_DE_VILLE[1], "lon": HOTEL_DE_VILLE[0], "radius_m": radius_m},
        headers=_headers(viewer),
    )
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == GEOJSON
    ContributionCollection.model_validate_json(response.text)
    body = response.json()
    _assert_rfc7946_points(body)
    distances = [f["properties"]["distance_m"] for f in body["features"]]
    assert distances == sorted(distances)
    assert len(distances) <= 20  # the default limit
    seen = {f["id"] for f in body["features"]}
    for feature in body["features"]:
        lon, lat, public = contribution_places[feature["id"]]
        assert public or viewer == MEMBER_PARIS
        expected = haversine_m(*HOTEL_DE_VILLE, lon, lat)
        assert feature["properties"]["distance_m"] == pytest.approx(expected, rel=0.005, abs=0.2)
        assert feature["properties"]["distance_m"] <= radius_m
    # All 20 are the nearest visible ones.
    worst = max(distances)
    for cid, (lon, lat, public) in contribution_places.items():
        if (public or viewer == MEMBER_PARIS) and cid not in seen:
            assert haversine_m(*HOTEL_DE_VILLE, lon, lat) >= worst * 0.995


def test_nearby_contributions_of_one_map(client: TestClient) -> None:
    params = {"lat": HOTEL_DE_VILLE[1], "lon": HOTEL_DE_VILLE[0], "radius_m": 5000, "limit": 100}
    response = client.get(
        "/v1/contributions/nearby",
        params={**params, "project_id": MAP_PRIVATE},
        headers=token_for(MEMBER_PARIS),
    )
    ids = feature_ids(response.json())
    assert len(ids) == 15 and all(
        f["properties"]["project_id"] == MAP_PRIVATE for f in response.json()["features"]
    )
    hidden = client.get("/v1/contributions/nearby", params={**params, "project_id": MAP_PRIVATE})
    assert hidden.status_code == 200 and hidden.json()["features"] == []
    public = client.get("/v1/contributions/nearby", params={**params, "project_id": MAP_PUBLIC})
    assert len(public.json()["features"]) == 45


# --------------------------------------------------------------------------------------------
# Bounding box and pagination

PARIS_BOX = (2.2, 48.75, 2.51, 48.96)


def _expected_in_box(
    places: dict[int, tuple[float, float, bool, int]],
    box: tuple[float, float, float, float],
    viewer: int | None,
) -> set[int]:
    minlon, minlat, maxlon, maxlat = box
    return {
        pid
        for pid, (lon, lat, public, org) in places.items()
        if minlon <= lon <= maxlon and minlat <= lat <= maxlat and _visible(public, org, viewer)
    }


def _sql_in_box(world: DatabaseSettings, box: tuple[float, float, float, float]) -> set[int]:
    with db.connect(world) as conn:
        rows = conn.execute(
            """SELECT id FROM project WHERE visibility = 'public'
               AND ST_Intersects(place, ST_MakeEnvelope(%s, %s, %s, %s, 4326))""",
            box,
        ).fetchall()
    return {r[0] for r in rows}


@pytest.mark.parametrize(("viewer", "limit"), [(None, 37), (MEMBER_PARIS, 50), (NOBODY, 500)])
def test_bbox_pages_walk_every_project_once(
    client: TestClient,
    world: DatabaseSettings,
    places: dict[int, tuple[float, float, bool, int]],
    viewer: int | None,
    limit: int,
) -> None:
    bbox = ",".join(map(str, PARIS_BOX))
    pages = walk_pages(client, "/v1/projects", {"bbox": bbox, "limit": limit}, _headers(viewer))
    ids = [f["id"] for page in pages for f in page]
    assert len(ids) == len(set(ids)), "a project is on two pages"
    assert ids == sorted(ids)
    assert all(len(page) == limit for page in pages[:-1])
    assert len(pages[-1]) <= limit
    expected = _expected_in_box(places, PARIS_BOX, viewer)
    assert set(ids) == expected
    if viewer is None:
        assert set(ids) == _sql_in_box(world, PARIS_BOX)
    assert len(expected) > 200
    for page in pages:
        ProjectCollection.model_validate({"type": "FeatureCollection", "features": page})
        for feature in page:
            lon, lat = feature["geometry"]["coordinates"]
            assert PARIS_BOX[0] <= lon <= PARIS_BOX[2] and PARIS_BOX[1] <= lat <= PARIS_BOX[3]


def _first_cursor(client: TestClient, viewer: int | None) -> str:
    bbox = ",".join(map(str, PARIS_BOX))
    response = client.get(
        "/v1/projects", params={"bbox": bbox, "limit": 10}, headers=_headers(viewer)
    )
    cursor = response.json()["next_cursor"]
    assert isinstance(cursor, str)
    return cursor


@pytest.mark.parametrize(
    "forge",
    [
        lambda c: tamper_cursor(c, 1),
        lambda c: tamper_cursor(c, 10**30),
        lambda c: c[:-1] + ("A" if c[-1] != "A" else "B"),
        lambda c: "not-a-cursor",
        lambda c: "é",
        lambda c: "",
        lambda c: "MTAwMA",  # "1000", no signature
    ],
    ids=["other-id", "huge-id", "flipped", "garbage", "non-ascii", "empty", "unsigned"],
)
def test_a_forged_cursor_is_refused(client: TestClient, forge: Any) -> None:
    cursor = forge(_first_cursor(client, None))
    response = client.get(
        "/v1/projects", params={"bbox": ",".join(map(str, PARIS_BOX)), "cursor": cursor}
    )
    assert "cursor" in assert_problem(response, 422)["detail"]


@pytest.mark.parametrize(
    ("owner", "thief"),
    [(None, MEMBER_PARIS), (MEMBER_PARIS, None), (MEMBER_PARIS, NOBODY), (NOBODY, MEMBER_PARIS)],
)
def test_a_cursor_is_worth_nothing_to_another_viewer(
    client: TestClient, owner: int | None, thief: int | None
) -> None:
    cursor = _first_cursor(client, owner)
    params = {"bbox": ",".join(map(str, PARIS_BOX)), "cursor": cursor}
    body = assert_problem(client.get("/v1/projects", params=params, headers=_headers(thief)), 422)
    assert "cursor" in body["detail"]
    ok = client.get("/v1/projects", params=params, headers=_headers(owner))
    assert ok.status_code == 200


# --------------------------------------------------------------------------------------------
# What concerns a commune


@pytest.mark.parametrize(("viewer", "limit"), [(None, 3), (ADMIN_LYON, 2), (MEMBER_PARIS, 100)])
def test_commune_projects_through_the_hierarchy(
    client: TestClient, viewer: int | None, limit: int
) -> None:
    pages = walk_pages(
        client, "/v1/territories/communes/69123/projects", {"limit": limit}, _headers(viewer)
    )
    features = [f for page in pages for f in page]
    ids = [f["id"] for f in features]
    assert len(ids) == len(set(ids)) and ids == sorted(ids)
    via = {f["id"]: f["properties"]["concerns_via"] for f in features}
    expected = {
        pid: reason
        for pid, reason in LYON_CASES.items()
        if reason is not None
        and (pid not in (111, 115) or (pid, viewer) in ((111, ADMIN_LYON), (115, MEMBER_PARIS)))
    }
    # Paris projects and maps do not concern Lyon; the private ones only their members.
    assert via == expected
    for page in pages:
        ProjectCollection.model_validate({"type": "FeatureCollection", "features": page})
    national_feature = next(f for f in features if f["id"] == 105)
    assert national_feature["geometry"] is None
    assert national_feature["properties"]["scope"] == "national"


def test_a_commune_far_from_everything_has_the_national_projects_only(client: TestClient) -> None:
    response = client.get("/v1/territories/communes/29155/projects")
    assert response.status_code == 200
    via = {f["id"]: f["properties"]["concerns_via"] for f in response.json()["features"]}
    assert via == {105: "national", 116: "national"}
    assert "next_cursor" not in response.json()


def test_commune_cursor_is_bound_to_the_viewer(client: TestClient) -> None:
    url = "/v1/territories/communes/69123/projects"
    cursor = client.get(url, params={"limit": 2}).json()["next_cursor"]
    response = client.get(url, params={"limit": 2, "cursor": cursor}, headers=token_for(NOBODY))
    assert_problem(response, 422)
    tampered = tamper_cursor(cursor, 0)
    assert_problem(client.get(url, params={"limit": 2, "cursor": tampered}), 422)


# --------------------------------------------------------------------------------------------
# One project


def test_project_by_id_with_its_scope(client: TestClient) -> None:
    response = client.get("/v1/projects/113")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == GEOJSON
    detail = ProjectDetail.model_validate_json(response.text)
    assert detail.properties.scope == "area"
    assert detail.properties.area is not None
    assert detail.properties.area["type"] == "MultiPolygon"
    assert shape(detail.properties.area).covers(Point(4.88, 45.77))
    assert detail.geometry is not None
    radius_detail = ProjectDetail.model_validate_json(client.get("/v1/projects/107").text)
    assert radius_detail.properties.radius_m == 300
    assert radius_detail.geometry is not None
    assert radius_detail.geometry.coordinates == pytest.approx(list(LYON_HOTEL_DE_VILLE))
    named = ProjectDetail.model_validate_json(client.get("/v1/projects/112").text)
    assert {(t["level"], t["code"], t["name"]) for t in named.properties.territories} == {
        ("commune", "69123", "Lyon"),
        ("departement", "69", "Rhône"),
    }


def test_a_private_project_answers_like_a_missing_one(client: TestClient) -> None:
    missing = client.get("/v1/projects/999999")
    hidden = client.get("/v1/projects/111", headers=token_for(MEMBER_PARIS))
    body = assert_problem(hidden, 404)
    assert assert_problem(missing, 404)["detail"].replace("999999", "111") == body["detail"]
    assert hidden.content == missing.content.replace(b"999999", b"111")
    assert client.get("/v1/projects/111", headers=token_for(ADMIN_LYON)).status_code == 200


# --------------------------------------------------------------------------------------------
# Tiles


def _tile(
    client: TestClient, layer: str, z: int, x: int, y: int, viewer: int | None = None
) -> bytes:
    """The tile as ``viewer`` sees it: for projects, the public layer (the same for everyone)
    followed by a signed-in viewer's ``projects-private`` layer (a tile's layers merge)."""
    response = client.get(f"/v1/tiles/{layer}/{z}/{x}/{y}.mvt", headers=_headers(viewer))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == MVT
    # Public layers are the same for every caller: cacheable by anyone (api/tile_cache.py).
    assert response.headers["cache-control"].startswith("public")
    assert response.headers["etag"].startswith('"')
    data: bytes = response.content
    if layer == "projects" and viewer is not None:
        mine = client.get(f"/v1/tiles/projects-private/{z}/{x}/{y}.mvt", headers=_headers(viewer))
        assert mine.status_code == 200, mine.text
        assert mine.headers["cache-control"] == "private, no-store"
        data += mine.content
    return data


def test_communes_tiles(client: TestClient) -> None:
    x, y = tile_of(*HOTEL_DE_VILLE, 12)
    data = _tile(client, "communes", 12, x, y)
    assert b"communes" in data and b"Paris" in data
    layers = decode_mvt(data)
    assert set(layers) == {"communes"}
    codes = {f.properties["code"] for f in layers["communes"].features}
    assert "75056" in codes
    assert all(f.kind == 3 for f in layers["communes"].features)
    x, y = tile_of(*HOTEL_DE_VILLE, 6)
    departements = decode_mvt(_tile(client, "communes", 6, x, y))
    assert {"75", "92", "93", "94"} <= {
        f.properties["code"] for f in departements["departements"].features
    }
    # Départements up to zoom 8, communes from zoom 9.
    assert set(decode_mvt(_tile(client, "communes", 8, *tile_of(*HOTEL_DE_VILLE, 8)))) == {
        "departements"
    }
    assert set(decode_mvt(_tile(client, "communes", 9, *tile_of(*HOTEL_DE_VILLE, 9)))) == {
        "communes"
    }


@pytest.mark.parametrize("viewer", [None, MEMBER_PARIS])
def test_projects_tile_at_street_level(
    client: TestClient, places: dict[int, tuple[float, float, bool, int]], viewer: int | None
) -> None:
    z = 14
    # A tile holding a private project and a public one.
    public_tiles = {tile_of(*places[p][:2], z) for p in PARIS_PUBLIC}
    pid = next(p for p in PARIS_PRIVATE if tile_of(*places[p][:2], z) in public_tiles)
    x, y = tile_of(*places[pid][:2], z)
    data = _tile(client, "projects", z, x, y, viewer)
    title = f"Projet confidentiel {pid}".encode()
    assert (title in data) == (viewer == MEMBER_PARIS)
    layers = decode_mvt(data)
    assert "projects" in layers
    minlon, minlat, maxlon, maxlat = tile_bounds(z, x, y)
    expected = {
        p
        for p, (plon, plat, public, org) in places.items()
        if minlon < plon < maxlon and minlat < plat < maxlat and _visible(public, org, viewer)
    }
    got = {int(str(f.properties["id"])) for f in layers["projects"].features}
    inside = {p for p in got if p in places and minlon < places[p][0] < maxlon}
    assert {p for p in inside if minlat < places[p][1] < maxlat} == expected
    for feature in layers["projects"].features:
        fid = int(str(feature.properties["id"]))
        ((px, py),) = feature.points()
        ex, ey = pixel_in_tile(places[fid][0], places[fid][1], z, x, y)
        assert abs(px - ex) <= 1 and abs(py - ey) <= 1, (fid, (px, py), (ex, ey))
        assert isinstance(feature.properties["title"], str)
    # From zoom 14 the contributions come too, not before.
    assert "contributions" in decode_mvt(
        _tile(client, "projects", 14, *tile_of(*HOTEL_DE_VILLE, 14))
    )
    assert "contributions" not in decode_mvt(
        _tile(client, "projects", 13, *tile_of(*HOTEL_DE_VILLE, 13))
    )


def _cluster_total(data: bytes) -> int:
    """Projects in a tile: clusters count theirs, a project alone in its cell counts one."""
    layers = decode_mvt(data)
    assert set(layers) <= {"project_clusters", "projects"}
    clusters = layers["project_clusters"].features if "project_clusters" in layers else []
    alone = layers["projects"].features if "projects" in layers else []
    assert all(int(str(f.properties["count"])) > 1 for f in clusters)
    return sum(int(str(f.properties["count"])) for f in clusters) + len(alone)


def _placed_in(
    places: dict[int, tuple[float, float, bool, int]],
    bounds: tuple[float, float, float, float],
    viewer: int | None,
) -> int:
    minlon, minlat, maxlon, maxlat = bounds
    return sum(
        1
        for lon, lat, public, org in places.values()
        if minlon <= lon <= maxlon and minlat <= lat <= maxlat and _visible(public, org, viewer)
    )


@pytest.mark.parametrize("viewer", [None, MEMBER_PARIS, ADMIN_LYON])
def test_cluster_counts_are_the_visible_projects_counted_once(
    client: TestClient, places: dict[int, tuple[float, float, bool, int]], viewer: int | None
) -> None:
    # The Paris projects straddle two zoom-6 tiles (48.92 N is the edge between them): each
    # tile counts its own projects only, so the two add up to every project once.
    z = 6
    x, y = tile_of(*HOTEL_DE_VILLE, z)
    totals = {}
    for row in (y - 1, y):
        total = _cluster_total(_tile(client, "projects", z, x, row, viewer))
        assert total == _placed_in(places, tile_bounds(z, x, row), viewer)
        totals[row] = total
    assert totals[y - 1] > 0 and totals[y] > 200
    minlon, minlat, maxlon, _ = tile_bounds(z, x, y)
    both = (minlon, minlat, maxlon, tile_bounds(z, x, y - 1)[3])
    assert sum(totals.values()) == _placed_in(places, both, viewer)


# Found with the tiles' former 64-pixel margin: transformed to 4326, the grown envelope of a
# tile of the first or last column wrapped around the antimeridian (1/1/0 became lon
# -177..-2.8, so every European project was missing from it). Kept as a regression test.
@pytest.mark.parametrize(("z", "x", "y"), [(1, 1, 0), (2, 0, 2)])
def test_cluster_tiles_at_the_antimeridian_columns(
    client: TestClient,
    places: dict[int, tuple[float, float, bool, int]],
    z: int,
    x: int,
    y: int,
) -> None:
    expected = _placed_in(places, tile_bounds(z, x, y), None)
    assert expected > 0
    assert _cluster_total(_tile(client, "projects", z, x, y)) == expected


# --------------------------------------------------------------------------------------------
# Bounds: over them is 422, with a problem document naming what is wrong

NEAR = f"lat={HOTEL_DE_VILLE[1]}&lon={HOTEL_DE_VILLE[0]}"
BOX = ",".join(map(str, PARIS_BOX))


@pytest.mark.parametrize(
    ("url", "named"),
    [
        (f"/v1/projects/nearby?{NEAR}&radius_m={MAX_RADIUS_M + 1}", "radius_m"),
        (f"/v1/projects/nearby?{NEAR}&radius_m=0", "radius_m"),
        (f"/v1/projects/nearby?{NEAR}&radius_m=-5", "radius_m"),
        (f"/v1/projects/nearby?{NEAR}&limit={MAX_NEARBY + 1}", "limit"),
        (f"/v1/projects/nearby?{NEAR}&limit=0", "limit"),
        ("/v1/projects/nearby?lat=91&lon=2", "lat"),
        ("/v1/projects/nearby?lat=48&lon=x", "lon"),
        (f"/v1/contributions/nearby?{NEAR}&radius_m={MAX_RADIUS_M * 2}", "radius_m"),
        (f"/v1/contributions/nearby?{NEAR}&limit={MAX_NEARBY + 1}", "limit"),
        (f"/v1/contributions/nearby?{NEAR}&project_id=0", "project_id"),
        ("/v1/projects?bbox=0,40,3,43", "larger than"),  # 9 square degrees
        ("/v1/projects?bbox=2,48,3", "four numbers"),
        ("/v1/projects?bbox=2,48,3,49,5", "four numbers"),
        ("/v1/projects?bbox=3,48,2,49", "min must be below max"),
        ("/v1/projects?bbox=2,49,3,48", "min must be below max"),
        ("/v1/projects?bbox=2,48,2,49", "min must be below max"),
        ("/v1/projects?bbox=179.5,48,181,49", "maxlon"),
        ("/v1/projects?bbox=2,-91,3,-90", "minlat"),
        ("/v1/projects?bbox=nan,48,3,49", "minlon"),
        ("/v1/projects?bbox=2,48,inf,49", "maxlon"),
        ("/v1/projects?bbox=2,48,3,abc", "not a number"),
        ("/v1/projects", "bbox"),
        (f"/v1/projects?bbox={BOX}&limit={MAX_PAGE + 1}", "limit"),
        (f"/v1/projects?bbox={BOX}&limit=0", "limit"),
        (f"/v1/projects?bbox={BOX}&cursor={'A' * 201}", "cursor"),
        (f"/v1/territories/communes/69123/projects?limit={MAX_PAGE + 1}", "limit"),
        (f"/v1/tiles/projects/{MAX_ZOOM + 1}/0/0.mvt", "z"),
        ("/v1/tiles/projects/-1/0/0.mvt", "z"),
        ("/v1/tiles/projects/3/8/0.mvt", "x and y must be below 8"),
        ("/v1/tiles/communes/3/0/8.mvt", "x and y must be below 8"),
        ("/v1/tiles/communes/0/1/0.mvt", "x and y must be below 1"),
        ("/v1/tiles/projects/5/-1/0.mvt", "x"),
        ("/v1/tiles/roads/5/0/0.mvt", "layer"),
        ("/v1/projects/0", "project_id"),
        ("/v1/projects/abc", "project_id"),
        (f"/v1/projects/{2**63}", "project_id"),
    ],
)
def test_out_of_bounds_is_a_422_problem_naming_it(client: TestClient, url: str, named: str) -> None:
    body = assert_problem(client.get(url), 422)
    assert named in body["detail"], body


def test_bbox_at_the_bound_is_accepted(client: TestClient) -> None:
    side = math.sqrt(MAX_BBOX_DEG2)
    response = client.get("/v1/projects", params={"bbox": f"1,46,{1 + side},{46 + side}"})
    assert response.status_code == 200


def test_unknown_route_is_a_404_problem(client: TestClient) -> None:
    assert_problem(client.get("/v1/nothing"), 404)
    assert_problem(client.post("/v1/projects/nearby"), 405)


def test_a_405_says_which_methods_are_allowed(client: TestClient) -> None:
    response = client.post("/v1/projects/nearby")
    assert_problem(response, 405)
    assert response.headers.get("allow") == "GET"


# --------------------------------------------------------------------------------------------
# Authentication: a token that is present but wrong is refused, never read as anonymous


def _jwt(claims: dict[str, Any], secret: str = TEST_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


NOW = int(time.time())
BAD_AUTHORIZATIONS = {
    "expired": f"Bearer {_jwt({'sub': '2', 'exp': NOW - 60})}",
    "wrong-signature": f"Bearer {_jwt({'sub': '2', 'exp': NOW + 600}, 'x' * 40)}",
    "missing-sub": f"Bearer {_jwt({'exp': NOW + 600})}",
    "missing-exp": f"Bearer {_jwt({'sub': '2'})}",
    "sub-not-integer": f"Bearer {_jwt({'sub': 'alice', 'exp': NOW + 600})}",
    "sub-zero": f"Bearer {_jwt({'sub': '0', 'exp': NOW + 600})}",
    "sub-as-number": f"Bearer {_jwt({'sub': 2, 'exp': NOW + 600})}",
    "staff-not-bool": f"Bearer {_jwt({'sub': '2', 'exp': NOW + 600, 'staff': 'yes'})}",
    "hs512": f"Bearer {_jwt({'sub': '2', 'exp': NOW + 600}, TEST_SECRET * 2, 'HS512')}",
    "not-a-jwt": "Bearer abc.def.ghi",
    "basic": "Basic x",
    "bearer-without-token": "Bearer",
}


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATIONS.values(), ids=BAD_AUTHORIZATIONS)
@pytest.mark.parametrize(
    "url",
    [
        f"/v1/projects/nearby?{NEAR}",
        "/v1/projects/1000",
        f"/v1/projects?bbox={BOX}",
        "/v1/tiles/projects/14/8298/5636.mvt",
    ],
)
def test_a_bad_token_is_a_401_problem(client: TestClient, url: str, authorization: str) -> None:
    response = client.get(url, headers={"Authorization": authorization})
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "token" in body["detail"]


def test_a_bad_token_on_a_write_is_a_401_problem(client: TestClient) -> None:
    response = client.post(
        "/v1/organisations",
        json={"id": 77, "kind": "association", "name": "X"},
        headers={"Authorization": BAD_AUTHORIZATIONS["expired"]},
    )
    assert_problem(response, 401)
    assert "expired" in response.json()["detail"]


def test_valid_token_of_an_unknown_user_is_an_ordinary_viewer(client: TestClient) -> None:
    response = client.get(f"/v1/projects/nearby?{NEAR}", headers=token_for(987654))
    assert response.status_code == 200


def test_every_project_answer_is_valid_against_the_contracts(client: TestClient) -> None:
    """A broad sweep: the shapes PostgreSQL builds match the documented models."""
    for pid in [*LYON_CASES, 116, MAP_PUBLIC, MAP_PRIVATE, 1000, PARIS_PRIVATE[0]]:
        for viewer in (None, ADMIN_LYON, MEMBER_PARIS):
            response = client.get(f"/v1/projects/{pid}", headers=_headers(viewer))
            if response.status_code == 200:
                ProjectDetail.model_validate_json(response.text)
            else:
                assert_problem(response, 404)
