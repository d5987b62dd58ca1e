"""The inbox over HTTP: yourself or staff (anyone else: the 404 of a missing user), newest
first with signed cursors, read through the visibility rule again (a project made private
after the fan-out disappears for a non-member, not for a member), marked read idempotently,
clear 422s for bad parameters and bodies."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from consumers import fanout
from geo_engine import db
from geo_engine.settings import DatabaseSettings
from recommender.scorers import load_weighted
from tests import api_data as data
from tests.api_data import assert_problem
from tests.conftest import token_for

pytestmark = pytest.mark.geodata

STAFF, ALICE, BOB, CAROL, NOBODY = 1, 61, 62, 63, 626262
MAIRIE, CLUB = 7101, 7103
OPEN_PROJECTS = list(range(8101, 8106))  # five public projects on Bayonne
SECRETIVE = 8110  # public at fan-out, made private afterwards (BOB is a member of CLUB)
BAYONNE = "64102"


@pytest.fixture(scope="module")
def api(client: TestClient, api_db: DatabaseSettings) -> TestClient:
    data.write(
        api_db,
        users=[STAFF, ALICE, BOB, CAROL],
        organisations=[data.organisation(MAIRIE, "Mairie de Bayonne"), data.organisation(CLUB)],
        members=[data.member(CLUB, BOB)],
        projects=[
            *(
                data.project(p, MAIRIE, data.territories(("commune", BAYONNE)), title=f"P{p}")
                for p in OPEN_PROJECTS
            ),
            data.project(SECRETIVE, CLUB, data.territories(("commune", BAYONNE)), title="Club"),
        ],
    )
    relevance = fanout.Relevance.of(load_weighted(), 0.0)
    with db.connect(api_db) as conn:
        conn.execute(
            "INSERT INTO user_place (user_id, commune_code) SELECT unnest(%s::bigint[]), %s",
            ([ALICE, BOB], BAYONNE),
        )
        for p in [*OPEN_PROJECTS, SECRETIVE]:  # one transaction each: distinct created_at
            fanout.fan_out(conn, p, "published", relevance)
            conn.commit()
        conn.execute(
            """INSERT INTO meeting (id, project_id, kind, title, place, starts_at, ends_at)
               VALUES (1, %s, 'atelier', 'Atelier vélo', 'Maison des associations',
                       '2026-04-01T18:00:00+02:00', '2026-04-01T20:00:00+02:00')""",
            (OPEN_PROJECTS[0],),
        )
        fanout.fan_out(conn, OPEN_PROJECTS[0], "meeting_announced", relevance, meeting_id=1)
        conn.execute("UPDATE project SET visibility = 'private' WHERE id = %s", (SECRETIVE,))
        conn.commit()
    return client


def _get(api: TestClient, user: int, viewer: int | None = None, **params: Any) -> Any:
    headers = token_for(viewer if viewer is not None else user, staff=viewer == STAFF)
    return api.get(f"/v1/users/{user}/inbox", params=params, headers=headers)


def test_items_newest_first_with_their_reason(api: TestClient) -> None:
    body = _get(api, ALICE).json()
    assert body["user_id"] == ALICE
    ids = [(i["project_id"], i["kind"]) for i in body["items"]]
    # the meeting came last; then the projects in the reverse order of their fan-out.
    assert ids == [
        (OPEN_PROJECTS[0], "meeting_announced"),
        *((p, "published") for p in reversed(OPEN_PROJECTS)),
    ]
    first = body["items"][0]
    assert first["meeting"]["title"] == "Atelier vélo"
    assert first["meeting"]["cancelled"] is False
    item = body["items"][1]
    assert item["reason"] == "Concerne votre commune, Bayonne"
    assert item["level"] == "commune"
    assert item["organisation"] == "Mairie de Bayonne"
    assert item["title"] == f"P{OPEN_PROJECTS[-1]}"
    assert item["read"] is False and item["meeting"] is None
    assert body["unread"] == 6
    assert body["next_cursor"] is None


def test_made_private_after_the_fan_out_is_gone_for_a_non_member_only(
    api: TestClient, api_db: DatabaseSettings
) -> None:
    with db.connect(api_db) as conn:  # ALICE's row is there, written when it was public
        assert conn.execute(
            "SELECT count(*) FROM inbox WHERE user_id = %s AND project_id = %s", (ALICE, SECRETIVE)
        ).fetchone() == (1,)
    alice = _get(api, ALICE).json()
    assert SECRETIVE not in {i["project_id"] for i in alice["items"]}
    assert alice["unread"] == 6  # not counted either
    assert _get(api, ALICE, unread="true").json()["unread"] == 6
    bob = _get(api, BOB).json()
    assert SECRETIVE in {i["project_id"] for i in bob["items"]}
    assert bob["unread"] == 7
    # marking it read as ALICE touches nothing, and says nothing of it.
    marked = api.post(
        f"/v1/users/{ALICE}/inbox/read",
        json={"items": [{"project_id": SECRETIVE, "kind": "published"}]},
        headers=token_for(ALICE),
    )
    assert marked.json()["marked"] == 0


def test_pages_with_cursors(api: TestClient) -> None:
    seen: list[tuple[int, str]] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        body = _get(api, BOB, **params).json()
        seen += [(i["project_id"], i["kind"]) for i in body["items"]]
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    everything = [(i["project_id"], i["kind"]) for i in _get(api, BOB, limit=200).json()["items"]]
    assert seen == everything and len(seen) == 7
    # a cursor is worth nothing to another caller, nor tampered with.
    cursor = _get(api, BOB, limit=2).json()["next_cursor"]
    assert "to this caller" in assert_problem(_get(api, BOB, STAFF, cursor=cursor), 422)["detail"]
    assert_problem(_get(api, BOB, cursor=cursor[:-2] + "AA"), 422)
    assert_problem(_get(api, BOB, cursor="not-a-cursor"), 422)


def test_mark_read_is_idempotent_and_filters(api: TestClient) -> None:
    url = f"/v1/users/{CAROL}/inbox/read"
    assert api.post(url, json={"all": True}, headers=token_for(CAROL)).json() == {
        "marked": 0,
        "unread": 0,
    }
    url = f"/v1/users/{BOB}/inbox/read"
    body = {"items": [{"project_id": OPEN_PROJECTS[1], "kind": "published"}]}
    assert api.post(url, json=body, headers=token_for(BOB)).json() == {"marked": 1, "unread": 6}
    assert api.post(url, json=body, headers=token_for(BOB)).json() == {"marked": 0, "unread": 6}
    read = _get(api, BOB, unread="false").json()["items"]
    assert [(i["project_id"], i["read"]) for i in read] == [(OPEN_PROJECTS[1], True)]
    unread = _get(api, BOB, unread="true").json()["items"]
    assert OPEN_PROJECTS[1] not in {i["project_id"] for i in unread if i["kind"] == "published"}
    assert api.post(url, json={"all": True}, headers=token_for(BOB)).json() == {
        "marked": 6,
        "unread": 0,
    }


def test_only_yourself_or_staff(api: TestClient) -> None:
    assert _get(api, ALICE, STAFF).status_code == 200
    other = _get(api, ALICE, BOB)
    missing = _get(api, NOBODY, BOB)
    assert_problem(other, 404)
    assert other.content == missing.content
    assert_problem(api.get(f"/v1/users/{ALICE}/inbox"), 401)
    post = api.post(f"/v1/users/{ALICE}/inbox/read", json={"all": True}, headers=token_for(BOB))
    assert post.content == missing.content


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": "٣"}, "limit"),
        ({"unread": "maybe"}, "unread"),
    ],
)
def test_bad_parameters_are_422(api: TestClient, params: dict[str, Any], expected: str) -> None:
    assert expected in str(assert_problem(_get(api, ALICE, **params), 422))


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"all": True, "items": [{"project_id": 1, "kind": "published"}]},
        {"items": [{"project_id": 1, "kind": "gossip"}]},
        {"items": [{"project_id": 0, "kind": "published"}]},
        {"items": [{"project_id": 1, "kind": "published", "extra": 1}]},
        {"all": "yes please"},
    ],
)
def test_bad_bodies_are_422(api: TestClient, body: dict[str, Any]) -> None:
    response = api.post(f"/v1/users/{ALICE}/inbox/read", json=body, headers=token_for(ALICE))
    assert_problem(response, 422)
