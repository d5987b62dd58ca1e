"""The write endpoints: who may write what, what a refusal says, that writing the same thing
twice changes nothing (``written`` is 0 the second time), and that an id the caller does not
own answers exactly like one that does not exist (fault 4.3: no existence oracle)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from contracts.api import Written
from geo_engine import db
from geo_engine.outbox import read_events
from geo_engine.settings import DatabaseSettings
from tests.api_data import (
    assert_problem,
    member,
    organisation,
    project,
    territories,
    write,
)
from tests.conftest import token_for

pytestmark = pytest.mark.geodata

STAFF, ADMIN, AGENT, MEMBER, NOBODY, OTHER_ADMIN, LEAVER = 1, 2, 3, 4, 5, 6, 7
LYON_ORG, OTHER_ORG = 10, 20
PUBLIC_MAP, PRIVATE_MAP, CONSULTATION, PRIVATE_CONSULTATION = 100, 101, 102, 103
LYON = (4.8357, 45.7676)


@pytest.fixture(scope="module")
def world(api_db: DatabaseSettings) -> DatabaseSettings:
    lyon = territories(("commune", "69123"))
    write(
        api_db,
        users=[STAFF, ADMIN, AGENT, MEMBER, NOBODY, OTHER_ADMIN, LEAVER],
        organisations=[
            organisation(LYON_ORG, "Ville de Lyon", kind="commune", territory=("commune", "69123")),
            organisation(OTHER_ORG, "Association voisine"),
        ],
        members=[
            member(LYON_ORG, ADMIN, "admin"),
            member(LYON_ORG, AGENT, "agent"),
            member(LYON_ORG, MEMBER, "member"),
            member(OTHER_ORG, OTHER_ADMIN, "admin"),
        ],
        projects=[
            project(PUBLIC_MAP, LYON_ORG, lyon, tool="carte_participative", location=LYON),
            project(
                PRIVATE_MAP,
                OTHER_ORG,
                lyon,
                tool="carte_participative",
                visibility="private",
                location=LYON,
            ),
            project(CONSULTATION, LYON_ORG, lyon),
            project(PRIVATE_CONSULTATION, OTHER_ORG, lyon, visibility="private"),
        ],
    )
    return api_db


@pytest.fixture(scope="module")
def api(client: TestClient, world: DatabaseSettings) -> TestClient:
    return client


def _auth(user: int | None) -> dict[str, str]:
    if user is None:
        return {}
    return token_for(user, staff=user == STAFF)


def _post(api: TestClient, path: str, body: dict[str, Any], user: int | None) -> Any:
    return api.post(path, json=body, headers=_auth(user))


def _written(response: Any) -> int:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return Written.model_validate_json(response.text).written


def _create(api: TestClient, path: str, body: dict[str, Any], user: int | None) -> int:
    """POST without an id: the engine creates the record and answers the id it assigned."""
    response = _post(api, path, {k: v for k, v in body.items() if k != "id"}, user)
    assert _written(response) == 1
    assigned = Written.model_validate_json(response.text).id
    assert assigned is not None and 1 <= assigned < 2**53
    return assigned


def _assert_401(response: Any) -> None:
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


def _row(settings: DatabaseSettings, query: str, *params: Any) -> Any:
    with db.connect(settings) as conn:
        return conn.execute(query, params).fetchone()


# --------------------------------------------------------------------------------------------
# Organisations: staff only

ORG = {"id": 30, "kind": "association", "name": "Les amis du parc"}


def test_organisation_needs_a_token(api: TestClient) -> None:
    _assert_401(_post(api, "/v1/organisations", ORG, None))


@pytest.mark.parametrize("user", [ADMIN, NOBODY])
def test_organisation_needs_staff(api: TestClient, user: int) -> None:
    body = assert_problem(_post(api, "/v1/organisations", ORG, user), 403)
    assert "staff" in body["detail"]


def test_staff_create_an_organisation_once(api: TestClient, world: DatabaseSettings) -> None:
    body = {**ORG, "id": 31, "territory": {"level": "departement", "code": "69"}}
    assert _written(_post(api, "/v1/organisations", body, STAFF)) == 1
    assert _written(_post(api, "/v1/organisations", body, STAFF)) == 0
    assert _written(_post(api, "/v1/organisations", {**body, "name": "Autre"}, STAFF)) == 1
    row = _row(world, "SELECT name, territory_code FROM organisation WHERE id = 31")
    assert row == ("Autre", "69")


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({**ORG, "kind": "ville"}, "body.kind"),
        ({"id": 32, "kind": "association"}, "body.name"),
        ({**ORG, "id": 0}, "body.id"),
        ({**ORG, "name": ""}, "body.name"),
        ({**ORG, "colour": "red"}, "body.colour"),
        ({**ORG, "territory": {"level": "commune", "code": "abc"}}, "body.territory"),
        ({**ORG, "territory": {"level": "canton", "code": "12"}}, "body.territory.level"),
    ],
)
def test_invalid_organisation_is_a_422_naming_the_field(
    api: TestClient, body: dict[str, Any], named: str
) -> None:
    problem = assert_problem(_post(api, "/v1/organisations", body, STAFF), 422)
    assert named in problem["detail"], problem
    assert any(e["where"].startswith(named) for e in problem["errors"])


@pytest.mark.parametrize(
    ("territory", "words"),
    [
        ({"level": "commune", "code": "99999"}, ["territory", "commune", "99999"]),
        ({"level": "epci", "code": "123456789"}, ["territory", "epci", "123456789"]),
        ({"level": "region", "code": "99"}, ["territory", "region", "99"]),
    ],
)
def test_organisation_in_an_unknown_territory_is_a_422_naming_it(
    api: TestClient, world: DatabaseSettings, territory: dict[str, str], words: list[str]
) -> None:
    body = {**ORG, "id": 33, "territory": territory}
    problem = assert_problem(_post(api, "/v1/organisations", body, STAFF), 422)
    assert all(w in problem["detail"] for w in words), problem
    assert _row(world, "SELECT 1 FROM organisation WHERE id = 33") is None


def test_a_body_that_is_not_json_is_a_422(api: TestClient) -> None:
    response = api.post(
        "/v1/organisations",
        content=b"{not json",
        headers={**_auth(STAFF), "content-type": "application/json"},
    )
    assert_problem(response, 422)


# --------------------------------------------------------------------------------------------
# Members: staff or the organisation's admins


def test_member_needs_a_token(api: TestClient) -> None:
    _assert_401(_post(api, "/v1/members", {"organisation_id": LYON_ORG, "user_id": NOBODY}, None))


@pytest.mark.parametrize("user", [AGENT, MEMBER, NOBODY, OTHER_ADMIN])
def test_member_needs_an_admin_of_the_organisation(api: TestClient, user: int) -> None:
    body = {"organisation_id": LYON_ORG, "user_id": NOBODY}
    problem = assert_problem(_post(api, "/v1/members", body, user), 403)
    assert "admin" in problem["detail"] and str(LYON_ORG) in problem["detail"]


def test_an_admin_adds_a_member_who_then_sees_the_private_projects(
    api: TestClient, world: DatabaseSettings
) -> None:
    assert api.get(f"/v1/projects/{PRIVATE_CONSULTATION}", headers=_auth(AGENT)).status_code == 404
    body = {"organisation_id": OTHER_ORG, "user_id": AGENT}
    assert _written(_post(api, "/v1/members", body, OTHER_ADMIN)) == 1
    assert _written(_post(api, "/v1/members", body, OTHER_ADMIN)) == 0
    assert api.get(f"/v1/projects/{PRIVATE_CONSULTATION}", headers=_auth(AGENT)).status_code == 200
    promoted = {**body, "role": "agent"}
    assert _written(_post(api, "/v1/members", promoted, OTHER_ADMIN)) == 1
    role = _row(
        world,
        "SELECT role FROM organisation_member WHERE organisation_id = %s AND user_id = %s",
        OTHER_ORG,
        AGENT,
    )
    assert role == ("agent",)


def test_staff_add_members_anywhere(api: TestClient) -> None:
    body = {"organisation_id": LYON_ORG, "user_id": OTHER_ADMIN, "role": "member"}
    assert _written(_post(api, "/v1/members", body, STAFF)) == 1
    assert _written(_post(api, "/v1/members", body, STAFF)) == 0


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"organisation_id": LYON_ORG, "user_id": 424242}, "user_id"),
        ({"organisation_id": 424242, "user_id": NOBODY}, "organisation_id"),
        ({"organisation_id": LYON_ORG, "user_id": NOBODY, "role": "owner"}, "body.role"),
        ({"organisation_id": LYON_ORG}, "body.user_id"),
    ],
)
def test_invalid_member_is_a_422_naming_it(
    api: TestClient, body: dict[str, Any], named: str
) -> None:
    problem = assert_problem(_post(api, "/v1/members", body, STAFF), 422)
    assert named in problem["detail"], problem


# --------------------------------------------------------------------------------------------
# Projects: staff, or the organisation's admins and agents


def _project_body(project_id: int | None = None, **more: Any) -> dict[str, Any]:
    return {
        **({} if project_id is None else {"id": project_id}),
        "organisation_id": LYON_ORG,
        "space": "territoires",
        "tool": "consultation",
        "title": f"Projet {project_id}",
        "scope": {"kind": "territories", "territories": [{"level": "commune", "code": "69123"}]},
        **more,
    }


def test_project_needs_a_token(api: TestClient) -> None:
    _assert_401(_post(api, "/v1/projects", _project_body(200), None))


@pytest.mark.parametrize("user", [MEMBER, NOBODY, OTHER_ADMIN])
def test_project_needs_an_admin_or_agent_of_the_organisation(api: TestClient, user: int) -> None:
    problem = assert_problem(_post(api, "/v1/projects", _project_body(200), user), 403)
    assert "admin" in problem["detail"] and "agent" in problem["detail"]


@pytest.mark.parametrize("user", [ADMIN, AGENT, STAFF])
def test_project_written_once_and_readable(api: TestClient, user: int) -> None:
    body = _project_body(title=f"Projet de {user}", location={"lon": LYON[0], "lat": LYON[1]})
    project_id = _create(api, "/v1/projects", body, user)
    body = {**body, "id": project_id}
    assert _written(_post(api, "/v1/projects", body, user)) == 0
    read = api.get(f"/v1/projects/{project_id}")
    assert read.status_code == 200
    assert read.json()["properties"]["title"] == f"Projet de {user}"
    renamed = {**body, "title": "Nouveau titre"}
    assert _written(_post(api, "/v1/projects", renamed, user)) == 1
    assert api.get(f"/v1/projects/{project_id}").json()["properties"]["title"] == "Nouveau titre"


def test_a_private_project_written_by_an_agent_is_hidden_from_others(api: TestClient) -> None:
    project_id = _create(api, "/v1/projects", _project_body(visibility="private"), AGENT)
    assert api.get(f"/v1/projects/{project_id}", headers=_auth(MEMBER)).status_code == 200
    assert_problem(api.get(f"/v1/projects/{project_id}", headers=_auth(NOBODY)), 404)
    assert_problem(api.get(f"/v1/projects/{project_id}"), 404)


FREE_ID = 987654


@pytest.mark.parametrize("taken", [PRIVATE_CONSULTATION, PRIVATE_MAP, CONSULTATION + 100_000])
def test_another_organisations_project_id_answers_like_a_free_one(
    api: TestClient, world: DatabaseSettings, taken: int
) -> None:
    """Fault 4.3: an admin who names another organisation's project (private or public) gets
    the very bytes a free id gets, so private ids cannot be listed."""
    if taken == CONSULTATION + 100_000:  # a public project of the other organisation
        public_other = _project_body(taken, organisation_id=OTHER_ORG)
        assert _written(_post(api, "/v1/projects", public_other, STAFF)) in (0, 1)
    assert _row(world, "SELECT 1 FROM project WHERE id = %s", FREE_ID) is None
    hidden = _post(api, "/v1/projects", _project_body(taken), ADMIN)
    free = _post(api, "/v1/projects", _project_body(FREE_ID), ADMIN)
    assert_problem(hidden, 404)
    assert (hidden.status_code, hidden.headers["content-type"], hidden.content) == (
        free.status_code,
        free.headers["content-type"],
        free.content,
    )
    assert _row(world, "SELECT organisation_id FROM project WHERE id = %s", taken) == (OTHER_ORG,)
    assert _row(world, "SELECT 1 FROM project WHERE id = %s", FREE_ID) is None


def test_an_admin_updates_their_organisations_project_by_id(
    api: TestClient, world: DatabaseSettings
) -> None:
    project_id = _create(api, "/v1/projects", _project_body(), ADMIN)
    renamed = _project_body(project_id, title="Renommé")
    assert _written(_post(api, "/v1/projects", renamed, AGENT)) == 1
    assert _row(world, "SELECT title FROM project WHERE id = %s", project_id) == ("Renommé",)
    # Staff write with the imports' rules: a given free id is created as is.
    assert _written(_post(api, "/v1/projects", _project_body(211), STAFF)) == 1


BOWTIE = [[[4.8, 45.7], [4.9, 45.8], [4.9, 45.7], [4.8, 45.8], [4.8, 45.7]]]


@pytest.mark.parametrize(
    ("geometry", "words"),
    [
        ({"type": "Polygon", "coordinates": BOWTIE}, ["scope.geometry", "Self-intersection"]),
        (
            {"type": "Polygon", "coordinates": [[[4.8, 45.7], [4.9, 45.7], [4.9, 45.8]]]},
            ["scope.geometry", "not a readable"],
        ),
        ({"type": "Polygon", "coordinates": []}, ["scope.geometry", "empty"]),
        (
            {"type": "Polygon", "coordinates": [[[400, 45], [401, 45], [401, 46], [400, 45]]]},
            ["scope.geometry", "longitude, latitude"],
        ),
        ({"type": "Point", "coordinates": [4.8, 45.7]}, ["scope.area.geometry", "Polygon"]),
        ({"type": "Polygon"}, ["scope.area.geometry", "coordinates"]),
    ],
)
def test_an_invalid_area_is_a_422_with_the_reason(
    api: TestClient, world: DatabaseSettings, geometry: dict[str, Any], words: list[str]
) -> None:
    body = _project_body(scope={"kind": "area", "geometry": geometry}, title="Zone 206")
    problem = assert_problem(_post(api, "/v1/projects", body, ADMIN), 422)
    assert all(w in problem["detail"] for w in words), problem
    assert _row(world, "SELECT 1 FROM project WHERE title = 'Zone 206'") is None


def test_an_area_with_a_third_coordinate_is_not_a_server_error(api: TestClient) -> None:
    ring = [[4.8, 45.7, 170.0], [4.9, 45.7, 170.0], [4.9, 45.8, 170.0], [4.8, 45.7, 170.0]]
    body = _project_body(
        scope={"kind": "area", "geometry": {"type": "Polygon", "coordinates": [ring]}}
    )
    response = _post(api, "/v1/projects", body, ADMIN)
    assert response.status_code in (200, 422), response.text


@pytest.mark.parametrize(
    ("more", "words"),
    [
        (
            {
                "scope": {
                    "kind": "territories",
                    "territories": [{"level": "commune", "code": "99999"}],
                }
            },
            ["scope.territories", "99999"],
        ),
        (
            {"scope": {"kind": "territories", "territories": [{"level": "epci", "code": "12"}]}},
            ["body.scope.territories.territories.0", "not a epci code"],
        ),
        ({"tool": "sondage"}, ["body.tool"]),
        ({"themes": ["mobilite", "mobilite"]}, ["theme is listed more than once"]),
        ({"opens_at": "2026-03-01T09:00:00"}, ["body.opens_at", "time zone"]),
        (
            {"opens_at": "2026-03-10T09:00:00+01:00", "closes_at": "2026-03-01T09:00:00+01:00"},
            ["closes_at is before opens_at"],
        ),
        (
            {"scope": {"kind": "radius", "center": {"lon": 4.8, "lat": 45.7}, "radius_m": 0}},
            ["radius_m"],
        ),
        ({"location": {"lon": 4.8, "lat": 95}}, ["body.location", "latitude"]),
        ({"organisation_id": 424242}, []),  # not an admin of it: refused before any lookup
    ],
)
def test_an_invalid_project_is_refused_naming_the_field(
    api: TestClient, more: dict[str, Any], words: list[str]
) -> None:
    response = _post(api, "/v1/projects", _project_body(**more), ADMIN)
    status = 403 if "organisation_id" in more else 422
    problem = assert_problem(response, status)
    assert all(w in problem["detail"] for w in words), problem


def test_staff_writing_for_an_unknown_organisation_is_a_422(api: TestClient) -> None:
    body = _project_body(209, organisation_id=424242)
    problem = assert_problem(_post(api, "/v1/projects", body, STAFF), 422)
    assert "organisation_id" in problem["detail"] and "424242" in problem["detail"]


def test_changing_only_the_scope_is_a_write(api: TestClient, world: DatabaseSettings) -> None:
    location = {"lon": LYON[0], "lat": LYON[1]}
    body = _project_body(location=location)
    body["id"] = _create(api, "/v1/projects", body, ADMIN)
    wider = {
        **body,
        "scope": {
            "kind": "territories",
            "territories": [
                {"level": "commune", "code": "69123"},
                {"level": "commune", "code": "69266"},
            ],
        },
    }
    written = _written(_post(api, "/v1/projects", wider, ADMIN))
    read = api.get(f"/v1/projects/{body['id']}").json()
    codes = {t["code"] for t in read["properties"]["territories"]}
    assert codes == {"69123", "69266"}  # the change is stored...
    assert written == 1  # ...and must be told


# --------------------------------------------------------------------------------------------
# Contributions: any signed-in user, on a map they can see


def _contribution_body(contribution_id: int | None, project_id: int, **more: Any) -> dict[str, Any]:
    return {
        **({} if contribution_id is None else {"id": contribution_id}),
        "project_id": project_id,
        "category": "banc",
        "title": "Un banc ici",
        "location": {"lon": 4.836, "lat": 45.767},
        **more,
    }


def test_contribution_needs_a_token(api: TestClient) -> None:
    _assert_401(_post(api, "/v1/contributions", _contribution_body(300, PUBLIC_MAP), None))


def test_a_signed_in_user_contributes_once(api: TestClient, world: DatabaseSettings) -> None:
    body = _contribution_body(None, PUBLIC_MAP)
    body["id"] = _create(api, "/v1/contributions", body, NOBODY)
    assert _written(_post(api, "/v1/contributions", body, NOBODY)) == 0
    assert _row(world, "SELECT author_id FROM contribution WHERE id = %s", body["id"]) == (NOBODY,)
    own = {**body, "author_id": NOBODY}
    assert _written(_post(api, "/v1/contributions", own, NOBODY)) == 0
    nearby = api.get(
        "/v1/contributions/nearby",
        params={"lat": 45.767, "lon": 4.836, "radius_m": 100, "project_id": PUBLIC_MAP},
    )
    assert body["id"] in {f["id"] for f in nearby.json()["features"]}


def test_a_private_map_answers_like_a_missing_project(
    api: TestClient, world: DatabaseSettings
) -> None:
    hidden = _post(api, "/v1/contributions", _contribution_body(302, PRIVATE_MAP), NOBODY)
    missing = _post(api, "/v1/contributions", _contribution_body(302, 999999), NOBODY)
    assert_problem(hidden, 404)
    assert_problem(missing, 404)
    assert hidden.content == missing.content.replace(b"999999", str(PRIVATE_MAP).encode())
    assert _row(world, "SELECT 1 FROM contribution WHERE id = 302") is None
    # Its members may contribute.
    _create(api, "/v1/contributions", _contribution_body(None, PRIVATE_MAP), OTHER_ADMIN)


def test_a_contribution_on_a_project_that_is_not_a_map_is_a_422(api: TestClient) -> None:
    response = _post(api, "/v1/contributions", _contribution_body(None, CONSULTATION), NOBODY)
    problem = assert_problem(response, 422)
    assert "project_id" in problem["detail"] and "carte_participative" in problem["detail"]
    # A private one that is not a map is still just not there.
    hidden = _post(api, "/v1/contributions", _contribution_body(None, PRIVATE_CONSULTATION), NOBODY)
    assert_problem(hidden, 404)


def test_someone_elses_author_id_is_a_403(api: TestClient) -> None:
    body = _contribution_body(305, PUBLIC_MAP, author_id=ADMIN)
    problem = assert_problem(_post(api, "/v1/contributions", body, NOBODY), 403)
    assert "author_id" in problem["detail"]


def test_someone_elses_contribution_answers_like_a_free_id(
    api: TestClient, world: DatabaseSettings
) -> None:
    """Fault 4.3: naming someone else's contribution, even one on a private map the caller
    cannot see, answers the very bytes a free id gets, and changes nothing."""
    public_one = _create(api, "/v1/contributions", _contribution_body(None, PUBLIC_MAP), NOBODY)
    private_one = _create(
        api, "/v1/contributions", _contribution_body(None, PRIVATE_MAP), OTHER_ADMIN
    )
    assert _row(world, "SELECT 1 FROM contribution WHERE id = %s", FREE_ID) is None
    answers = [
        _post(
            api,
            "/v1/contributions",
            _contribution_body(taken, PUBLIC_MAP, title="Plus de banc"),
            MEMBER,
        )
        for taken in (public_one, private_one, FREE_ID)
    ]
    assert_problem(answers[0], 404)
    assert len({(a.status_code, a.headers["content-type"], a.content) for a in answers}) == 1
    rows = _row(
        world,
        "SELECT array_agg(title ORDER BY id) FROM contribution WHERE id IN (%s, %s, %s)",
        public_one,
        private_one,
        FREE_ID,
    )
    assert rows == (["Un banc ici", "Un banc ici"],)


def test_an_author_changes_their_contribution_by_id(
    api: TestClient, world: DatabaseSettings
) -> None:
    body = _contribution_body(None, PUBLIC_MAP)
    body["id"] = _create(api, "/v1/contributions", body, NOBODY)
    assert _written(_post(api, "/v1/contributions", {**body, "title": "Deux bancs"}, NOBODY)) == 1
    assert _row(world, "SELECT title FROM contribution WHERE id = %s", body["id"]) == (
        "Deux bancs",
    )


@pytest.mark.parametrize(
    ("more", "named"),
    [
        ({"location": {"lon": 4.8, "lat": 95}}, "body.location"),
        ({"location": {"lon": "x", "lat": 45}}, "body.location.lon"),
        ({"category": ""}, "body.category"),
        ({"title": "x" * 301}, "body.title"),
        ({"id": -1}, "body.id"),
    ],
)
def test_an_invalid_contribution_is_a_422_naming_the_field(
    api: TestClient, more: dict[str, Any], named: str
) -> None:
    body = _contribution_body(307, PUBLIC_MAP, **more)
    problem = assert_problem(_post(api, "/v1/contributions", body, NOBODY), 422)
    assert named in problem["detail"], problem


# --------------------------------------------------------------------------------------------
# Members leave; every API write leaves exactly its events, a refused one none


def _events(settings: DatabaseSettings) -> dict[str, Any]:
    with db.connect(settings) as conn:
        return {e.event_id: e for e in read_events(conn)}


def _new_events(settings: DatabaseSettings, before: dict[str, Any]) -> list[Any]:
    return [e for key, e in _events(settings).items() if key not in before]


def test_members_are_removed_by_an_admin_or_leave(api: TestClient, world: DatabaseSettings) -> None:
    before = _events(world)
    joining = {"organisation_id": LYON_ORG, "user_id": LEAVER}
    assert _written(_post(api, "/v1/members", joining, STAFF)) == 1
    path = f"/v1/members/{LYON_ORG}/{LEAVER}"
    assert_problem(api.delete(path, headers=_auth(NOBODY)), 403)
    assert_problem(api.delete(path), 401)
    assert _written(api.delete(path, headers=_auth(ADMIN))) == 1
    assert _written(api.delete(path, headers=_auth(ADMIN))) == 0
    assert _written(_post(api, "/v1/members", joining, STAFF)) == 1
    assert _written(api.delete(path, headers=_auth(LEAVER))) == 1  # a member leaves by themself
    assert [(e.type, e.organisation_id, e.user_id) for e in _new_events(world, before)] == [
        ("member.added", LYON_ORG, LEAVER),
        ("member.removed", LYON_ORG, LEAVER),
        ("member.added", LYON_ORG, LEAVER),
        ("member.removed", LYON_ORG, LEAVER),
    ]


def test_api_writes_leave_exactly_their_events(api: TestClient, world: DatabaseSettings) -> None:
    before = _events(world)
    bad_scope = {"kind": "territories", "territories": [{"level": "commune", "code": "99999"}]}
    assert_problem(_post(api, "/v1/projects", _project_body(scope=bad_scope), ADMIN), 422)
    assert_problem(_post(api, "/v1/projects", _project_body(FREE_ID), ADMIN), 404)
    assert_problem(_post(api, "/v1/organisations", ORG, ADMIN), 403)
    assert _new_events(world, before) == []
    project_id = _create(api, "/v1/projects", _project_body(tool="carte_participative"), AGENT)
    private = _project_body(project_id, tool="carte_participative", visibility="private")
    assert _written(_post(api, "/v1/projects", private, AGENT)) == 1
    contribution_id = _create(
        api, "/v1/contributions", _contribution_body(None, project_id), MEMBER
    )
    organisation_body = {**ORG, "id": 35}
    assert _written(_post(api, "/v1/organisations", organisation_body, STAFF)) == 1
    events = _new_events(world, before)
    assert sorted((e.type, e.model_dump().get("project_id")) for e in events) == [
        ("contribution.created", project_id),
        ("organisation.created", None),
        ("project.made_private", project_id),
        ("project.published", project_id),
        ("project.updated", project_id),
    ]
    created = next(e for e in events if e.type == "contribution.created")
    assert (created.contribution_id, created.author_id) == (contribution_id, MEMBER)
