"""The one visibility rule, as a property: a private project never reaches a non-member.

Hypothesis draws worlds of organisations, users, memberships and projects (public or private,
scoped to a commune of the Rhône, a radius or a drawn area there, or national; some of them
participatory maps with contributions). Each world is committed in the module's database with
ids of its own and placed around a commune of its own; then every viewer (anonymous and each
user, some with the staff claim, which widens nothing) calls every read endpoint, and what they
see must be exactly what the rule allows: public, or of an organisation they belong to.

The same worlds check the reusable geography (migration 0003): the users are placed in the
spot's commune, their homes on the spot's points; a candidate set (project_candidates) never
holds a project its viewer may not see, and an audience (project_audience) never holds a user
who may not see the project.

Worlds accumulate (nothing is deleted): checks are exact over the example's own ids, and every
id of any other world that shows up must be visible to the viewer as well.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from contracts.api import ContributionCollection, ProjectCollection, ProjectDetail
from geo_engine import audience, db
from geo_engine.settings import ApiSettings, DatabaseSettings
from recommender.ground import recommend_for_user
from recommender.ranking import RankingConfig
from recommender.scorers import load_weighted
from tests.api_data import (
    assert_problem,
    contribution,
    decode_mvt,
    member,
    national,
    organisation,
    project,
    radius,
    square,
    territories,
    tile_bounds,
    tile_of,
    walk_pages,
    write,
)
from tests.conftest import token_for
from tests.tile_invalidation import invalidate, tile_settings, wait_until_caching

pytestmark = pytest.mark.geodata

ROLES = ("admin", "agent", "member")
POINTS_PER_SPOT = 12
NEARBY_M = 1_500  # every point of a spot is within 400 m of its centre
BOX_DEG = 0.02


@dataclass(frozen=True)
class Spot:
    code: str  # the commune every project of the example concerns
    center: tuple[float, float]
    points: list[tuple[float, float]]  # inside the commune, within 400 m of the centre


@dataclass(frozen=True)
class ProjectPlan:
    org: int  # index into the world's organisations
    private: bool
    scope: str  # territories | radius | area | national | national-placed
    point: int
    size: int  # radius (m) or half side (1e-4 degrees)
    is_map: bool
    contributions: tuple[int, ...]  # points


@dataclass(frozen=True)
class World:
    n_orgs: int
    n_users: int
    memberships: tuple[tuple[int, int, str], ...]  # user index, org index, role
    staff: tuple[bool, ...]
    projects: tuple[ProjectPlan, ...]


project_plans = st.builds(
    ProjectPlan,
    org=st.integers(0, 4),
    private=st.booleans(),
    scope=st.sampled_from(["territories", "radius", "area", "national", "national-placed"]),
    point=st.integers(0, POINTS_PER_SPOT - 1),
    size=st.integers(30, 400),
    is_map=st.booleans(),
    contributions=st.lists(st.integers(0, POINTS_PER_SPOT - 1), max_size=3).map(tuple),
)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    n_orgs = draw(st.integers(2, 5))
    n_users = draw(st.integers(3, 8))
    memberships = draw(
        st.lists(
            st.tuples(
                st.integers(0, n_users - 1), st.integers(0, n_orgs - 1), st.sampled_from(ROLES)
            ),
            max_size=2 * n_users,
            unique_by=lambda m: (m[0], m[1]),
        )
    )
    staff = draw(st.lists(st.booleans(), min_size=n_users, max_size=n_users))
    plans = draw(st.lists(project_plans, min_size=2, max_size=9))
    plans = [
        ProjectPlan(p.org % n_orgs, p.private, p.scope, p.point, p.size, p.is_map, p.contributions)
        for p in plans
    ]
    return World(n_orgs, n_users, tuple(memberships), tuple(staff), tuple(plans))


@dataclass
class Registry:
    """Everything committed so far, across examples, as the rule needs it."""

    counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    projects: dict[int, tuple[int, bool, tuple[float, float] | None]] = field(
        default_factory=dict
    )  # id -> (organisation, public, place)
    contributions: dict[int, int] = field(default_factory=dict)  # id -> project
    memberships: dict[int, set[int]] = field(default_factory=dict)  # user -> organisations

    def visible(self, project_id: int, viewer: int | None) -> bool:
        org, public, _ = self.projects[project_id]
        return public or org in self.memberships.get(viewer or 0, set())


@pytest.fixture(scope="module")
def spots(api_db: DatabaseSettings) -> list[Spot]:
    """The 40 most populated communes of the Rhône (Lyon first), with points inside each."""
    with db.connect(api_db) as conn:
        rows = conn.execute(
            """
            WITH c AS (
                SELECT code, geom, ST_PointOnSurface(geom) AS s, population FROM commune
                WHERE departement_code = '69' AND geom IS NOT NULL
                ORDER BY population DESC, code LIMIT 40
            )
            SELECT code, ST_X(s), ST_Y(s), (
                SELECT array_agg(ARRAY[ST_X(g.geom), ST_Y(g.geom)] ORDER BY g.path)
                FROM ST_Dump(ST_GeneratePoints(
                    ST_Intersection(c.geom, ST_Buffer(c.s::geography, 400)::geometry),
                    %s, 42)) AS g)
            FROM c ORDER BY population DESC, code""",
            (POINTS_PER_SPOT,),
        ).fetchall()
    assert rows[0][0] == "69123"
    return [
        Spot(code, (lon, lat), [(round(p[0], 6), round(p[1], 6)) for p in points])
        for code, lon, lat, points in rows
    ]


@pytest.fixture(scope="module")
def client(api_db: DatabaseSettings, api_settings: ApiSettings) -> Iterator[TestClient]:
    """The API in-process, its tile cache on a channel of its own, caching from the start."""
    app = create_app(api_db, api_settings, tile_settings=tile_settings("visibility"))
    with TestClient(app) as test_client:
        wait_until_caching(test_client)
        yield test_client


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry()


def _title(project_id: int) -> str:
    return f"Titre<{project_id}>"


def _contribution_title(contribution_id: int) -> str:
    return f"Contribution<{contribution_id}>"


@dataclass
class Example:
    """One world written with ids of its own: what the checks compare against."""

    spot: Spot
    users: list[int]
    staff: dict[int, bool]
    orgs: list[int]
    members: dict[int, set[int]]
    projects: dict[int, tuple[int, bool, tuple[float, float] | None]]
    contributions: dict[int, tuple[int, tuple[float, float]]]
    scopes: dict[int, tuple[str, tuple[float, float]]]  # project -> (scope, its spot point)
    homes: dict[int, tuple[float, float]]  # user -> home point

    def visible(self, viewer: int | None) -> set[int]:
        mine = self.members.get(viewer or 0, set())
        return {p for p, (org, public, _) in self.projects.items() if public or org in mine}

    def placed(self) -> set[int]:
        return {p for p, (_, _, place) in self.projects.items() if place is not None}

    def place(self, project_id: int) -> tuple[float, float]:
        where = self.projects[project_id][2]
        assert where is not None
        return where


def _write_world(
    api_db: DatabaseSettings, registry: Registry, spots: list[Spot], w: World
) -> Example:
    k = next(registry.counter)
    base = k * 10_000
    spot = spots[k % len(spots)]
    users = [base + i + 1 for i in range(w.n_users)]
    orgs = [base + i + 1 for i in range(w.n_orgs)]
    members: dict[int, set[int]] = {}
    for u, o, _role in w.memberships:
        members.setdefault(users[u], set()).add(orgs[o])
    projects: dict[int, tuple[int, bool, tuple[float, float] | None]] = {}
    contributions: dict[int, tuple[int, tuple[float, float]]] = {}
    scopes: dict[int, tuple[str, tuple[float, float]]] = {}
    homes = {u: spot.points[i % POINTS_PER_SPOT] for i, u in enumerate(users)}
    records = []
    contribution_records = []
    for i, plan in enumerate(w.projects):
        pid = base + 100 + i
        lon, lat = spot.points[plan.point]
        scope: dict[str, Any]
        location: tuple[float, float] | None = (lon, lat)
        if plan.scope == "territories":
            scope = territories(("commune", spot.code))
        elif plan.scope == "radius":
            scope = radius(lon, lat, plan.size)
        elif plan.scope == "area":
            scope = square(lon, lat, plan.size / 10_000 / 4)
        else:
            scope = national()
            if plan.scope == "national":
                location = None
        records.append(
            project(
                pid,
                orgs[plan.org],
                scope,
                title=_title(pid),
                location=location,
                visibility="private" if plan.private else "public",
                tool="carte_participative" if plan.is_map else "consultation",
            )
        )
        projects[pid] = (orgs[plan.org], not plan.private, location)
        scopes[pid] = (plan.scope, (lon, lat))
        if plan.is_map:
            for j, point in enumerate(plan.contributions):
                cid = base + 1000 + 10 * i + j
                where = spot.points[point]
                contributions[cid] = (pid, where)
                contribution_records.append(
                    contribution(cid, pid, where, title=_contribution_title(cid))
                )
    write(
        api_db,
        users=users,
        organisations=[organisation(o) for o in orgs],
        members=[member(orgs[o], users[u], role) for u, o, role in w.memberships],
        projects=records,
        contributions=contribution_records,
    )
    with db.connect(api_db) as conn:
        for user, (hlon, hlat) in homes.items():
            conn.execute(
                """INSERT INTO user_place (user_id, commune_code, home)
                   VALUES (%s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326))""",
                (user, spot.code, hlon, hlat),
            )
        conn.commit()
    registry.projects.update(projects)
    registry.contributions.update({c: p for c, (p, _) in contributions.items()})
    for user, mine in members.items():
        registry.memberships.setdefault(user, set()).update(mine)
    staff = dict(zip(users, w.staff, strict=True))
    return Example(spot, users, staff, orgs, members, projects, contributions, scopes, homes)


def _check_ids(
    seen: set[int],
    example_ids: set[int],
    expected: set[int],
    registry: Registry,
    viewer: int | None,
    what: str,
) -> None:
    leaked = {p for p in seen if p in registry.projects and not registry.visible(p, viewer)}
    assert not leaked, f"{what}: viewer {viewer} sees private projects {sorted(leaked)}"
    unknown = seen - set(registry.projects)
    assert not unknown, f"{what}: ids nobody wrote {sorted(unknown)}"
    assert seen & example_ids == expected, (
        f"{what}: viewer {viewer}: missing {sorted(expected - seen)}, "
        f"extra {sorted((seen & example_ids) - expected)}"
    )


def _tile(client: TestClient, z: int, x: int, y: int, headers: dict[str, str]) -> bytes:
    """The projects tile as a viewer sees it: the public layer, which must be the anonymous
    tile byte for byte with the same ETag and 304 (whoever warmed the cache, whatever the
    viewer's memberships), then the viewer's own uncached private layer (a tile's layers
    merge)."""
    url = f"/v1/tiles/projects/{z}/{x}/{y}.mvt"
    public = client.get(url, headers=headers)
    assert public.status_code == 200, public.text
    assert public.headers["cache-control"].startswith("public")
    anonymous = client.get(url)
    assert public.content == anonymous.content
    assert public.headers["etag"] == anonymous.headers["etag"]
    again = client.get(url, headers={**headers, "If-None-Match": public.headers["etag"]})
    assert again.status_code == 304
    assert client.get(url, headers={"If-None-Match": public.headers["etag"]}).status_code == 304
    data: bytes = public.content
    if headers:
        private = client.get(f"/v1/tiles/projects-private/{z}/{x}/{y}.mvt", headers=headers)
        assert private.status_code == 200, private.text
        assert private.headers["cache-control"] == "private, no-store"
        assert "etag" not in private.headers
        data += private.content
    return data


def _views(client: TestClient, ex: Example, registry: Registry, viewer: int | None) -> None:
    headers = {} if viewer is None else token_for(viewer, staff=ex.staff[viewer])
    lon, lat = ex.spot.center
    example_ids = set(ex.projects)
    visible = ex.visible(viewer)
    placed = ex.placed()
    visible_contributions = {c for c, (p, _) in ex.contributions.items() if p in visible}

    # Nearby projects.
    response = client.get(
        "/v1/projects/nearby",
        params={"lat": lat, "lon": lon, "radius_m": NEARBY_M, "limit": 100},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    body = ProjectCollection.model_validate_json(response.text)
    assert len(body.features) < 100
    seen = {f.id for f in body.features}
    _check_ids(seen, example_ids, visible & placed, registry, viewer, "nearby")

    # Nearby contributions.
    response = client.get(
        "/v1/contributions/nearby",
        params={"lat": lat, "lon": lon, "radius_m": NEARBY_M, "limit": 100},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    contributions = ContributionCollection.model_validate_json(response.text)
    assert len(contributions.features) < 100
    seen_c = {f.id for f in contributions.features}
    hidden = {c for c in seen_c if not registry.visible(registry.contributions[c], viewer)}
    assert not hidden, f"viewer {viewer} sees contributions of private maps {sorted(hidden)}"
    assert seen_c & set(ex.contributions) == visible_contributions

    # A box, every page.
    box = f"{lon - BOX_DEG},{lat - BOX_DEG},{lon + BOX_DEG},{lat + BOX_DEG}"
    pages = walk_pages(client, "/v1/projects", {"bbox": box, "limit": 7}, headers)
    ids = [f["id"] for page in pages for f in page]
    assert len(ids) == len(set(ids))
    _check_ids(set(ids), example_ids, visible & placed, registry, viewer, "bbox")

    # What concerns the commune, every page: every project of the example does.
    url = f"/v1/territories/communes/{ex.spot.code}/projects"
    pages = walk_pages(client, url, {"limit": 10}, headers)
    ids = [f["id"] for page in pages for f in page]
    assert len(ids) == len(set(ids))
    _check_ids(set(ids), example_ids, visible, registry, viewer, "commune")

    # One by one: a hidden project answers exactly like one that never existed.
    missing_id = max(example_ids) + 1
    missing = client.get(f"/v1/projects/{missing_id}", headers=headers)
    assert_problem(missing, 404)
    for pid in sorted(example_ids):
        response = client.get(f"/v1/projects/{pid}", headers=headers)
        if pid in visible:
            assert response.status_code == 200, response.text
            detail = ProjectDetail.model_validate_json(response.text)
            assert detail.id == pid
            assert detail.properties.visibility == ("public" if ex.projects[pid][1] else "private")
        else:
            assert response.status_code == 404
            assert response.headers["content-type"] == missing.headers["content-type"]
            assert set(response.headers) == set(missing.headers)
            assert response.content == missing.content.replace(
                str(missing_id).encode(), str(pid).encode()
            )

    # Street-level tiles (zoom 16, where the engine stops grouping close features): ids,
    # titles, contributions, the public layer (cached) and the viewer's private one together.
    z = 16
    tiles = {tile_of(*ex.place(p), z) for p in placed}
    tiles |= {tile_of(*where, z) for _, where in ex.contributions.values()}
    tile_ids: set[int] = set()
    tile_contributions: set[int] = set()
    data_of: dict[tuple[int, int], bytes] = {}
    for x, y in sorted(tiles):
        data = _tile(client, z, x, y, headers)
        data_of[(x, y)] = data
        layers = decode_mvt(data)
        if "projects" in layers:
            tile_ids |= {int(str(f.properties["id"])) for f in layers["projects"].features}
        if "contributions" in layers:
            tile_contributions |= {
                int(str(f.properties["id"])) for f in layers["contributions"].features
            }
    _check_ids(tile_ids, example_ids, visible & placed, registry, viewer, "tile z16")
    assert tile_contributions & set(ex.contributions) == visible_contributions
    assert all(registry.visible(registry.contributions[c], viewer) for c in tile_contributions)
    for pid in placed:
        data = data_of[tile_of(*ex.place(pid), z)]
        assert (_title(pid).encode() in data) == (pid in visible), (pid, viewer)
    for cid, (_, where) in ex.contributions.items():
        data = data_of[tile_of(*where, z)]
        assert (_contribution_title(cid).encode() in data) == (cid in visible_contributions)

    # The cluster tile holding the Rhône: counts add up to what the viewer may see.
    z = 6
    x, y = tile_of(lon, lat, z)
    layers = decode_mvt(_tile(client, z, x, y, headers))
    clusters = layers["project_clusters"].features if "project_clusters" in layers else []
    alone = layers["projects"].features if "projects" in layers else []
    total = sum(int(str(f.properties["count"])) for f in clusters) + len(alone)
    minlon, minlat, maxlon, maxlat = tile_bounds(z, x, y)
    expected_total = sum(
        1
        for p, (_, _, place) in registry.projects.items()
        if place is not None
        and minlon <= place[0] <= maxlon
        and minlat <= place[1] <= maxlat
        and registry.visible(p, viewer)
    )
    assert total == expected_total, (viewer, total, expected_total)


WEIGHTED = load_weighted()


def _geography(api_db: DatabaseSettings, ex: Example, registry: Registry) -> None:
    """Candidates and audiences, straight from the SQL functions through geo_engine.audience."""
    with db.connect(api_db) as conn:
        for viewer in [None, *ex.users]:
            got = audience.candidates(conn, [ex.spot.code], viewer=viewer)
            seen = set(got.project_id.tolist())
            # Every project of the example concerns the spot's commune.
            _check_ids(seen, set(ex.projects), ex.visible(viewer), registry, viewer, "candidates")
        for pid, (org, public, _) in ex.projects.items():
            reached: set[int] = set()
            for ids, _levels in audience.audience(conn, pid):
                reached |= set(ids.tolist())
            leaked = {u for u in reached if not registry.visible(pid, u)}
            assert not leaked, f"audience of {pid} holds users who may not see it: {leaked}"
            allowed = {u for u in ex.users if public or org in ex.members.get(u, set())}
            scope, centre = ex.scopes[pid]
            if scope in ("radius", "area"):
                # At least every allowed user whose home is the centre of the circle or square.
                assert {u for u in allowed if ex.homes[u] == centre} <= reached, pid
                assert reached & set(ex.users) <= allowed
            else:
                assert reached & set(ex.users) == allowed, (pid, scope)
        # Recommendations: everything the ranking may touch comes through the same rule.
        for viewer in ex.users:
            ranked = recommend_for_user(conn, viewer, WEIGHTED, RankingConfig(k=100))
            leaked = {r.project_id for r in ranked if not registry.visible(r.project_id, viewer)}
            assert not leaked, f"recommended to {viewer} who may not see them: {leaked}"


@pytest.mark.slow
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(world=worlds())
def test_a_private_project_never_reaches_a_non_member(
    client: TestClient,
    api_db: DatabaseSettings,
    spots: list[Spot],
    registry: Registry,
    world: World,
) -> None:
    example = _write_world(api_db, registry, spots, world)
    # The public tiles' cache is kept by the outbox's events, as in production (a spot comes
    # back every 40 worlds, its tiles cached by an earlier one).
    invalidate(client, api_db)
    for viewer in [None, *example.users]:
        _views(client, example, registry, viewer)
    _geography(api_db, example, registry)


def test_the_worlds_held_private_projects_seen_by_members(registry: Registry) -> None:
    """The property above was not vacuous: private projects were written, and members saw them."""
    private = [p for p, (_, public, _) in registry.projects.items() if not public]
    assert private
    assert any(
        org in registry.memberships.get(user, set())
        for _, (org, public, _) in registry.projects.items()
        if not public
        for user in registry.memberships
    )
