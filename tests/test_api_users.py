"""Users over HTTP: register, read, change; the user themself or staff, with the import's rules;
no answer tells another user's existence; each write leaves exactly its events."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from contracts.users import UserView
from geo_engine import db
from geo_engine.settings import DatabaseSettings
from tests.api_data import Outbox, assert_problem
from tests.conftest import token_for

pytestmark = pytest.mark.geodata

STAFF, ALICE, BOB, CAROL, NOBODY = 1, 51, 52, 53, 424242
EIFFEL = {"lon": 2.294481, "lat": 48.858370}  # Paris 7e


@pytest.fixture(scope="module")
def api(client: TestClient, api_db: DatabaseSettings) -> TestClient:
    with db.connect(api_db) as conn:
        conn.execute("INSERT INTO app_user (id) VALUES (%s)", (STAFF,))
        conn.commit()
    return client


@pytest.fixture
def outbox(api: TestClient, api_db: DatabaseSettings) -> Outbox:
    return Outbox(api_db)


def _auth(user: int | None) -> dict[str, str]:
    return {} if user is None else token_for(user, staff=user == STAFF)


def _register(api: TestClient, body: dict[str, Any], user: int | None) -> Any:
    return api.post("/v1/users", json=body, headers=_auth(user))


def _view(response: Any, status: int = 200) -> UserView:
    assert response.status_code == status, response.text
    return UserView.model_validate_json(response.text)


def test_a_user_registers_with_a_home_point_stored_coarsened(
    api: TestClient, outbox: Outbox
) -> None:
    body = {
        "id": ALICE,
        "home": EIFFEL,
        "interests": ["mobilite", "culture"],
        "notifications": {"email": True, "push": True, "frequency": "daily"},
    }
    view = _view(_register(api, body, ALICE), 201)
    assert (view.commune, view.arrondissement, view.commune_name) == ("75056", "75107", "Paris")
    assert view.home is not None and (view.home.lon, view.home.lat) != (
        EIFFEL["lon"],
        EIFFEL["lat"],
    )
    assert abs(view.home.lat - EIFFEL["lat"]) < 0.001 and abs(view.home.lon - EIFFEL["lon"]) < 0.002
    assert view.interests == ["mobilite", "culture"]
    assert view.notifications.frequency == "daily"
    assert (view.timezone, view.effective_timezone) == (None, "Europe/Paris")
    events = outbox.new()
    assert [(e.type, e.user_id) for e in events] == [("user.registered", ALICE)]
    assert _view(api.get(f"/v1/users/{ALICE}", headers=_auth(ALICE))) == view
    # Registering twice is a conflict, told to the user themself only.
    assert_problem(_register(api, body, ALICE), 409)
    assert outbox.types() == {}


def test_registering_someone_else_is_refused_before_any_lookup(
    api: TestClient, outbox: Outbox
) -> None:
    existing = _register(api, {"id": ALICE, "commune": "51454"}, CAROL)
    missing = _register(api, {"id": NOBODY, "commune": "51454"}, CAROL)
    assert_problem(existing, 403)
    assert existing.content == missing.content
    assert_problem(_register(api, {"id": CAROL, "commune": "51454"}, None), 401)
    assert outbox.types() == {}


def test_staff_register_anyone_with_a_postal_code_left_pending(
    api: TestClient, outbox: Outbox
) -> None:
    view = _view(_register(api, {"id": BOB, "postal_code": "51430"}, STAFF), 201)
    assert view.commune is None and view.candidates is not None and len(view.candidates) > 1
    assert outbox.types() == {"user.registered": 1}
    # Bob settles by naming his commune.
    chosen = view.candidates[0]
    settled = _view(api.patch(f"/v1/users/{BOB}", json={"commune": chosen}, headers=_auth(BOB)))
    assert (settled.commune, settled.candidates) == (chosen, None)
    assert outbox.types() == {"user.moved": 1}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"id": CAROL, "commune": "99999"}, ["unknown INSEE code", "99999"]),
        ({"id": CAROL, "postal_code": "00000"}, ["unknown postal code"]),
        ({"id": CAROL, "home": {"lon": -30.0, "lat": 45.0}}, ["no French commune"]),
        ({"id": CAROL}, ["exactly one of home, commune or postal_code"]),
        ({"id": CAROL, "commune": "51454", "postal_code": "51100"}, ["exactly one"]),
        ({"id": CAROL, "commune": "51454", "timezone": "Mars/Olympus"}, ["unknown time zone"]),
        ({"id": CAROL, "commune": "51454", "interests": ["jardinage"]}, ["body.interests"]),
        ({"id": CAROL, "commune": "51454", "colour": "red"}, ["body.colour"]),
    ],
)
def test_invalid_registrations_are_422_and_write_nothing(
    api: TestClient, outbox: Outbox, body: dict[str, Any], words: list[str]
) -> None:
    problem = assert_problem(_register(api, body, CAROL), 422)
    assert all(w in problem["detail"] for w in words), problem
    assert_problem(api.get(f"/v1/users/{CAROL}", headers=_auth(CAROL)), 404)
    assert outbox.types() == {}


def test_reading_or_changing_another_user_answers_like_a_missing_one(
    api: TestClient, outbox: Outbox
) -> None:
    _register(api, {"id": CAROL, "commune": "51454"}, CAROL)
    outbox.new()
    for method, body in (("GET", None), ("PATCH", {"interests": ["culture"]})):
        other = api.request(method, f"/v1/users/{CAROL}", json=body, headers=_auth(ALICE))
        missing = api.request(method, f"/v1/users/{NOBODY}", json=body, headers=_auth(ALICE))
        staff_missing = api.request(method, f"/v1/users/{NOBODY}", json=body, headers=_auth(STAFF))
        assert_problem(other, 404)
        assert other.content == missing.content == staff_missing.content
        assert other.headers["content-type"] == missing.headers["content-type"]
        assert_problem(api.request(method, f"/v1/users/{CAROL}", json=body), 401)
    assert _view(api.get(f"/v1/users/{CAROL}", headers=_auth(STAFF))).commune == "51454"
    assert _view(api.get(f"/v1/users/{CAROL}", headers=_auth(CAROL))).interests == []
    assert outbox.types() == {}


def test_patch_moves_and_changes_preferences_with_their_events(
    api: TestClient, outbox: Outbox
) -> None:
    _register(api, {"id": 54, "commune": "51454"}, 54)
    outbox.new()
    headers = _auth(54)
    moved = _view(api.patch("/v1/users/54", json={"home": EIFFEL}, headers=headers))
    assert (moved.commune, moved.arrondissement) == ("75056", "75107")
    assert outbox.types() == {"user.moved": 1}
    prefs = {"interests": ["environnement"], "timezone": "America/Cayenne"}
    changed = _view(api.patch("/v1/users/54", json=prefs, headers=headers))
    assert (changed.interests, changed.timezone, changed.effective_timezone) == (
        ["environnement"],
        "America/Cayenne",
        "America/Cayenne",
    )
    assert changed.commune == "75056"  # an absent place is kept
    assert outbox.types() == {"user.preferences_changed": 1}
    assert _view(api.patch("/v1/users/54", json=prefs, headers=headers)) == changed
    assert outbox.types() == {}  # nothing differed: nothing announced
    back = _view(api.patch("/v1/users/54", json={"timezone": None}, headers=headers))
    assert (back.timezone, back.effective_timezone) == (None, "Europe/Paris")
    assert outbox.types() == {"user.preferences_changed": 1}
    staff = _view(api.patch("/v1/users/54", json={"commune": "51230"}, headers=_auth(STAFF)))
    assert staff.commune == "51230"
    assert outbox.types() == {"user.moved": 1}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"commune": "51454", "postal_code": "51100"}, ["at most one"]),
        ({"commune": "99999"}, ["unknown INSEE code"]),
        ({"home": {"lon": 200, "lat": 45}}, ["body.home"]),
        ({"interests": None}, ["interests cannot be null"]),
        ({"timezone": "Europe/Lutece"}, ["unknown time zone"]),
        ({"id": 99}, ["body.id"]),
    ],
)
def test_invalid_patches_are_422_and_change_nothing(
    api: TestClient, outbox: Outbox, body: dict[str, Any], words: list[str]
) -> None:
    _register(api, {"id": 55, "commune": "51454"}, 55)
    outbox.new()
    before = api.get("/v1/users/55", headers=_auth(55)).content
    problem = assert_problem(api.patch("/v1/users/55", json=body, headers=_auth(55)), 422)
    assert all(w in problem["detail"] for w in words), problem
    assert api.get("/v1/users/55", headers=_auth(55)).content == before
    assert outbox.types() == {}
