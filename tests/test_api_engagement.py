"""Follows, engagement and feedback over HTTP: the user themself or staff, on projects that user
can see (a private one answers byte for byte as a missing one), idempotent repeats with no
second event, clear 422s for bad bodies."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from geo_engine import db
from geo_engine.settings import DatabaseSettings
from tests import api_data as data
from tests.api_data import Outbox, assert_problem
from tests.conftest import token_for

pytestmark = pytest.mark.geodata

STAFF, ALICE, BOB, NOBODY = 1, 61, 62, 626262
MAIRIE, ASSO, SECRET_CLUB = 7101, 7102, 7103
PUBLIC, THEMELESS, PRIVATE, MISSING = 8101, 8102, 8103, 8199
BAYONNE = "64102"


@pytest.fixture(scope="module")
def api(client: TestClient, api_db: DatabaseSettings) -> TestClient:
    data.write(
        api_db,
        users=[STAFF, ALICE, BOB],
        organisations=[
            data.organisation(
                MAIRIE, "Mairie de Bayonne", kind="commune", territory=("commune", BAYONNE)
            ),
            data.organisation(ASSO),
            data.organisation(SECRET_CLUB),
        ],
        members=[data.member(SECRET_CLUB, BOB)],
        projects=[
            data.project(
                PUBLIC,
                MAIRIE,
                data.territories(("commune", BAYONNE)),
                themes=["mobilite", "environnement"],
            ),
            data.project(THEMELESS, ASSO, data.national()),
            data.project(
                PRIVATE, SECRET_CLUB, data.national(), visibility="private", themes=["culture"]
            ),
        ],
    )
    return client


@pytest.fixture
def outbox(api: TestClient, api_db: DatabaseSettings) -> Outbox:
    return Outbox(api_db)


def _auth(user: int | None) -> dict[str, str]:
    return {} if user is None else token_for(user, staff=user == STAFF)


def _feedback(api: TestClient, user: int, body: dict[str, Any], as_: int | None = None) -> Any:
    return api.post(f"/v1/users/{user}/feedback", json=body, headers=_auth(as_ or user))


def _rows(api_db: DatabaseSettings, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with db.connect(api_db) as conn:
        return conn.execute(query, params).fetchall()


def test_not_interested_is_stored_once_and_announced_once(
    api: TestClient, api_db: DatabaseSettings, outbox: Outbox
) -> None:
    body = {"kind": "not_interested", "project_id": PUBLIC}
    first = _feedback(api, ALICE, body)
    assert first.status_code == 201, first.text
    stored = first.json()
    assert stored["created"] == 1
    assert [(r["user_id"], r["kind"], r["project_id"], r["theme"]) for r in stored["feedback"]] == [
        (ALICE, "not_interested", PUBLIC, None)
    ]
    events = outbox.new()
    assert [(e.type, e.user_id, e.project_id) for e in events] == [
        ("user.feedback_given", ALICE, PUBLIC)
    ]
    again = _feedback(api, ALICE, body)
    assert again.status_code == 200, again.text
    assert again.json()["created"] == 0
    assert again.json()["feedback"] == stored["feedback"]
    assert outbox.types() == {}
    assert _rows(
        api_db, "SELECT count(*) FROM recommendation_feedback WHERE user_id = %s", ALICE
    ) == [(1,)]


def test_less_of_theme_mutes_a_theme_or_every_theme_of_a_project(
    api: TestClient, api_db: DatabaseSettings, outbox: Outbox
) -> None:
    one = _feedback(api, BOB, {"kind": "less_of_theme", "theme": "mobilite"})
    assert one.status_code == 201, one.text
    assert [(r["project_id"], r["theme"]) for r in one.json()["feedback"]] == [(None, "mobilite")]
    assert outbox.types() == {"user.feedback_given": 1}
    # The project's themes: mobilité (already muted) and environnement (new).
    both = _feedback(api, BOB, {"kind": "less_of_theme", "project_id": PUBLIC})
    assert both.status_code == 201, both.text
    assert both.json()["created"] == 1
    assert sorted(r["theme"] for r in both.json()["feedback"]) == ["environnement", "mobilite"]
    assert outbox.types() == {"user.feedback_given": 1}
    assert sorted(
        _rows(
            api_db,
            "SELECT theme FROM recommendation_feedback WHERE user_id = %s AND kind = %s",
            BOB,
            "less_of_theme",
        )
    ) == [("environnement",), ("mobilite",)]
    assert _feedback(api, BOB, {"kind": "less_of_theme", "project_id": PUBLIC}).status_code == 200
    # A project without themes has nothing to mute: told, not a 500.
    assert_problem(_feedback(api, BOB, {"kind": "less_of_theme", "project_id": THEMELESS}), 422)
    assert outbox.types() == {}


def test_a_private_project_answers_as_a_missing_one(api: TestClient, outbox: Outbox) -> None:
    for kind in ("not_interested", "not_my_commune", "less_of_theme"):
        hidden = _feedback(api, ALICE, {"kind": kind, "project_id": PRIVATE})
        missing = _feedback(api, ALICE, {"kind": kind, "project_id": MISSING})
        assert_problem(hidden, 404)
        assert_problem(missing, 404)
        assert hidden.content == missing.content.replace(b"8199", b"8103")
        hidden_feedback = hidden.content
        hidden = api.post(
            f"/v1/users/{ALICE}/engagements",
            json={"project_id": PRIVATE, "kind": "click"},
            headers=_auth(ALICE),
        )
        missing = api.post(
            f"/v1/users/{ALICE}/engagements",
            json={"project_id": MISSING, "kind": "click"},
            headers=_auth(ALICE),
        )
        assert hidden.status_code == missing.status_code == 404
        assert hidden.content == missing.content.replace(b"8199", b"8103")
    # Staff acting for Alice get the same: it is Alice's view that counts.
    staff = _feedback(api, ALICE, {"kind": "not_interested", "project_id": PRIVATE}, STAFF)
    assert staff.content == hidden_feedback
    # Bob, a member of the club, may.
    assert _feedback(api, BOB, {"kind": "not_interested", "project_id": PRIVATE}).status_code == 201
    assert outbox.types() == {"user.feedback_given": 1}


def test_only_the_user_or_staff_and_the_same_answer_as_a_missing_user(
    api: TestClient, outbox: Outbox
) -> None:
    body = {"kind": "less_of_theme", "theme": "sport"}
    other = _feedback(api, ALICE, body, BOB)
    missing = api.post(f"/v1/users/{NOBODY}/feedback", json=body, headers=_auth(BOB))
    assert_problem(other, 404)
    assert other.content == missing.content
    assert_problem(api.post(f"/v1/users/{ALICE}/feedback", json=body), 401)
    # Staff may act for Alice, not for a user that does not exist.
    assert _feedback(api, ALICE, body, STAFF).status_code == 201
    assert_problem(api.post(f"/v1/users/{NOBODY}/feedback", json=body, headers=_auth(STAFF)), 404)
    assert outbox.types() == {"user.feedback_given": 1}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"kind": "not_interested"}, "needs project_id"),
        ({"kind": "not_my_commune", "project_id": PUBLIC, "theme": "sport"}, "project_id only"),
        ({"kind": "less_of_theme"}, "one of theme or project_id"),
        ({"kind": "less_of_theme", "theme": "sport", "project_id": PUBLIC}, "one of theme"),
        ({"kind": "less_of_theme", "theme": "cuisine"}, "theme"),
        ({"kind": "bof", "project_id": PUBLIC}, "kind"),
        ({"kind": "not_interested", "project_id": "١٢"}, "project_id"),
        ({"kind": "not_interested", "project_id": 0}, "project_id"),
        ({"kind": "not_interested", "project_id": PUBLIC, "extra": 1}, "extra"),
    ],
)
def test_bad_feedback_bodies_are_422_saying_what_is_wrong(
    api: TestClient, body: dict[str, Any], says: str, outbox: Outbox
) -> None:
    problem = assert_problem(_feedback(api, ALICE, body), 422)
    assert says in str(problem), problem
    assert outbox.types() == {}


def test_follow_and_unfollow(api: TestClient, api_db: DatabaseSettings, outbox: Outbox) -> None:
    url = f"/v1/users/{ALICE}/follows/{MAIRIE}"
    first = api.put(url, headers=_auth(ALICE))
    assert first.status_code == 201, first.text
    assert (first.json()["organisation_id"], first.json()["created"]) == (MAIRIE, True)
    events = outbox.new()
    assert [(e.type, e.user_id, e.organisation_id) for e in events] == [
        ("organisation.followed", ALICE, MAIRIE)
    ]
    again = api.put(url, headers=_auth(ALICE))
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["created_at"] == first.json()["created_at"]
    assert outbox.types() == {}
    assert_problem(api.put(url, headers=_auth(BOB)), 404)
    assert_problem(api.put(f"/v1/users/{ALICE}/follows/999999", headers=_auth(ALICE)), 404)
    assert_problem(api.put(f"/v1/users/{ALICE}/follows/abc", headers=_auth(ALICE)), 422)
    assert outbox.types() == {}
    gone = api.delete(url, headers=_auth(ALICE))
    assert gone.status_code == 200 and gone.json()["written"] == 1
    assert outbox.types() == {"organisation.unfollowed": 1}
    assert api.delete(url, headers=_auth(ALICE)).json()["written"] == 0
    assert outbox.types() == {}
    assert _rows(api_db, "SELECT count(*) FROM follow WHERE user_id = %s", ALICE) == [(0,)]


def test_engagement_counts_up_and_is_announced_the_first_time(
    api: TestClient, outbox: Outbox
) -> None:
    url = f"/v1/users/{BOB}/engagements"
    first = api.post(url, json={"project_id": PUBLIC, "kind": "click"}, headers=_auth(BOB))
    assert first.status_code == 201, first.text
    assert first.json()["count"] == 1
    events = outbox.new()
    assert [(e.type, e.user_id, e.project_id) for e in events] == [
        ("user.engagement_recorded", BOB, PUBLIC)
    ]
    second = api.post(url, json={"project_id": PUBLIC, "kind": "click"}, headers=_auth(BOB))
    assert second.status_code == 200
    assert second.json()["count"] == 2
    assert second.json()["first_at"] == first.json()["first_at"]
    assert second.json()["last_at"] >= first.json()["last_at"]
    assert outbox.types() == {}
    took_part = api.post(
        url, json={"project_id": PRIVATE, "kind": "participation"}, headers=_auth(BOB)
    )
    assert took_part.status_code == 201, took_part.text
    assert outbox.types() == {"user.engagement_recorded": 1}
    bad = api.post(url, json={"project_id": PUBLIC, "kind": "like"}, headers=_auth(BOB))
    assert "kind" in str(assert_problem(bad, 422))
    assert_problem(api.post(url, json={"kind": "click"}, headers=_auth(BOB)), 422)
    assert outbox.types() == {}
