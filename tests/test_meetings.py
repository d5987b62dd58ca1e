"""Public meetings: who may announce, change and cancel them, the events they write, their
``.ics``, the map's meetings in a box, the import (all or nothing), and that a private
project's meeting is, for a non-member, exactly a missing one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from icalendar import Calendar

from contracts.meetings import MeetingView
from geo_engine import db
from geo_engine.outbox import read_events
from geo_engine.settings import DatabaseSettings
from tests.api_data import assert_problem, member, organisation, project, territories, write
from tests.cli import run_cli, write_jsonl
from tests.conftest import token_for

pytestmark = pytest.mark.geodata

STAFF, ADMIN, AGENT, MEMBER, NOBODY, OTHER_ADMIN = 1, 2, 3, 4, 5, 6
LYON_ORG, OTHER_ORG = 10, 20
PUBLIC, PRIVATE = 100, 101
LYON = (4.8357, 45.7676)
LYON_BBOX = "4.7,45.7,4.95,45.85"


@pytest.fixture(scope="module")
def world(api_db: DatabaseSettings) -> DatabaseSettings:
    lyon = territories(("commune", "69123"))
    write(
        api_db,
        users=[STAFF, ADMIN, AGENT, MEMBER, NOBODY, OTHER_ADMIN],
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
            project(PUBLIC, LYON_ORG, lyon, title="Presqu'île apaisée", location=LYON),
            project(PRIVATE, OTHER_ORG, lyon, title="Projet interne", visibility="private"),
        ],
    )
    return api_db


@pytest.fixture(scope="module")
def api(client: TestClient, world: DatabaseSettings) -> TestClient:
    return client


def _auth(user: int | None) -> dict[str, str]:
    return {} if user is None else token_for(user, staff=user == STAFF)


def body(**changes: Any) -> dict[str, Any]:
    meeting: dict[str, Any] = {
        "kind": "reunion_publique",
        "title": "Réunion de quartier",
        "place": "Mairie du 1er arrondissement, 2 place Sathonay, Lyon",
        "location": {"lon": 4.8313, "lat": 45.7675},
        "starts_at": "2027-03-04T18:30:00+01:00",
        "ends_at": "2027-03-04T20:30:00+01:00",
    }
    meeting.update(changes)
    return meeting


def announce(api: TestClient, project_id: int, user: int | None, **changes: Any) -> int:
    response = api.post(
        f"/v1/projects/{project_id}/meetings", json=body(**changes), headers=_auth(user)
    )
    assert response.status_code == 201, response.text
    meeting_id = response.json()["id"]
    assert isinstance(meeting_id, int) and 1 <= meeting_id < 2**53
    return meeting_id


def events(settings: DatabaseSettings, meeting_id: int) -> list[str]:
    with db.connect(settings) as conn:
        return [e.type for e in read_events(conn) if getattr(e, "meeting_id", None) == meeting_id]


def test_an_admin_or_agent_announces_a_meeting_everyone_reads(
    api: TestClient, world: DatabaseSettings
) -> None:
    by_admin = announce(api, PUBLIC, ADMIN)
    by_agent = announce(api, PUBLIC, AGENT, kind="atelier", title="Atelier vélo")
    assert by_admin != by_agent
    answer = api.get(f"/v1/meetings/{by_admin}")
    assert answer.status_code == 200, answer.text
    view = MeetingView.model_validate(answer.json())
    assert view.project_id == PUBLIC and view.project_title == "Presqu'île apaisée"
    assert view.kind_label == "Réunion publique"
    assert view.starts_at == datetime(2027, 3, 4, 17, 30, tzinfo=UTC)  # 18:30 in Paris, winter
    assert view.location is not None and view.location.lon == pytest.approx(4.8313)
    assert view.cancelled_at is None and view.ics_url == f"/v1/meetings/{by_admin}.ics"
    assert events(world, by_admin) == ["meeting.announced"]
    with db.connect(world) as conn:
        announced = [e for e in read_events(conn) if getattr(e, "meeting_id", 0) == by_agent]
    assert [(e.project_id, e.organisation_id) for e in announced] == [(PUBLIC, LYON_ORG)]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("user", "status"), [(MEMBER, 403), (NOBODY, 403), (OTHER_ADMIN, 403), (None, 401)]
)
def test_others_may_not_announce(api: TestClient, user: int | None, status: int) -> None:
    response = api.post(f"/v1/projects/{PUBLIC}/meetings", json=body(), headers=_auth(user))
    assert_problem(response, status)


def test_bad_meetings_are_refused_with_the_reason(api: TestClient) -> None:
    cases = {
        "ends_at must be after starts_at": body(ends_at="2027-03-04T17:00:00+01:00"),
        "give a time zone": body(starts_at="2027-03-04T18:30:00"),
        "at most 7 days": body(ends_at="2027-04-04T18:30:00+01:00"),
        "longitude": body(location={"lon": 200, "lat": 45.7}),
        "reunion_publique": body(kind="concert"),
        "at most 200 characters": body(title="x" * 201),
        "year between 2000 and 2099": body(starts_at="0001-01-01T00:00:00+14:00"),
    }
    for reason, meeting in cases.items():
        response = api.post(f"/v1/projects/{PUBLIC}/meetings", json=meeting, headers=_auth(ADMIN))
        problem = assert_problem(response, 422)
        assert reason in response.text, (reason, problem)


def test_change_then_cancel(api: TestClient, world: DatabaseSettings) -> None:
    meeting_id = announce(api, PUBLIC, ADMIN)
    changed = body(title="Réunion de quartier (salle changée)", place="Salle Molière, Lyon")
    first = api.put(f"/v1/meetings/{meeting_id}", json=changed, headers=_auth(AGENT))
    assert first.status_code == 200, first.text
    assert first.json() == {"written": 1, "id": meeting_id}
    again = api.put(f"/v1/meetings/{meeting_id}", json=changed, headers=_auth(AGENT))
    assert again.json()["written"] == 0
    assert_problem(api.put(f"/v1/meetings/{meeting_id}", json=changed, headers=_auth(MEMBER)), 403)
    assert api.get(f"/v1/meetings/{meeting_id}").json()["place"] == "Salle Molière, Lyon"

    assert_problem(api.delete(f"/v1/meetings/{meeting_id}", headers=_auth(NOBODY)), 403)
    cancelled = api.delete(f"/v1/meetings/{meeting_id}", headers=_auth(ADMIN))
    assert cancelled.json() == {"written": 1, "id": meeting_id}
    assert api.delete(f"/v1/meetings/{meeting_id}", headers=_auth(ADMIN)).json()["written"] == 0
    assert api.get(f"/v1/meetings/{meeting_id}").json()["cancelled_at"] is not None
    assert_problem(api.put(f"/v1/meetings/{meeting_id}", json=changed, headers=_auth(ADMIN)), 409)
    listed = api.get("/v1/meetings", params={"bbox": LYON_BBOX}).json()
    assert meeting_id not in [f["id"] for f in listed["features"]]
    assert events(world, meeting_id) == [
        "meeting.announced",
        "meeting.updated",
        "meeting.cancelled",
    ]


def test_ics(api: TestClient) -> None:
    meeting_id = announce(api, PUBLIC, ADMIN, title="Balade du patrimoine", kind="balade_urbaine")
    first = api.get(f"/v1/meetings/{meeting_id}.ics")
    assert first.status_code == 200, first.text
    assert first.headers["content-type"].startswith("text/calendar")
    second = api.get(f"/v1/meetings/{meeting_id}.ics")
    calendars = [Calendar.from_ical(r.content) for r in (first, second)]
    events_ = [c.walk("VEVENT") for c in calendars]
    assert [len(e) for e in events_] == [1, 1]
    event = events_[0][0]
    assert str(event["UID"]) == str(events_[1][0]["UID"]) == f"meeting-{meeting_id}@geo-engine"
    assert event.decoded("DTSTART") == datetime(2027, 3, 4, 17, 30, tzinfo=UTC)
    assert event.decoded("DTEND") == datetime(2027, 3, 4, 19, 30, tzinfo=UTC)
    assert b"DTSTART:20270304T173000Z" in first.content
    assert str(event["SUMMARY"]) == "Balade urbaine : Balade du patrimoine"
    assert "place Sathonay" in str(event["LOCATION"])
    assert (event["GEO"].latitude, event["GEO"].longitude) == pytest.approx((45.7675, 4.8313))
    assert str(event["URL"]).endswith(f"/v1/meetings/{meeting_id}")


def test_map_lists_upcoming_meetings_in_the_box(api: TestClient) -> None:
    soon = announce(api, PUBLIC, ADMIN, title="Bientôt")
    elsewhere = announce(api, PUBLIC, ADMIN, location={"lon": 2.35, "lat": 48.85})
    unplaced = announce(api, PUBLIC, ADMIN, location=None)
    answer = api.get("/v1/meetings", params={"bbox": LYON_BBOX})
    assert answer.status_code == 200, answer.text
    features = answer.json()["features"]
    ids = [f["id"] for f in features]
    assert soon in ids and elsewhere not in ids and unplaced not in ids
    found = next(f for f in features if f["id"] == soon)
    assert found["geometry"] == {"type": "Point", "coordinates": [4.8313, 45.7675]}
    assert found["properties"]["title"] == "Bientôt"
    later = api.get("/v1/meetings", params={"bbox": LYON_BBOX, "from": "2027-03-05T00:00:00Z"})
    assert soon not in [f["id"] for f in later.json()["features"]]
    assert_problem(api.get("/v1/meetings", params={"bbox": LYON_BBOX, "from": "2027-03-05"}), 422)
    assert_problem(api.get("/v1/meetings", params={"bbox": "1,2,3"}), 422)
    far = {"bbox": LYON_BBOX, "from": "9999-12-31T23:59:59-14:00"}
    assert "year between" in assert_problem(api.get("/v1/meetings", params=far), 422)["detail"]


def test_a_private_projects_meeting_is_a_missing_one_for_non_members(api: TestClient) -> None:
    hidden = announce(api, PRIVATE, OTHER_ADMIN, title="Réunion interne")
    missing = hidden + 1 if hidden + 1 < 2**53 else hidden - 1
    for user in (None, NOBODY, ADMIN):
        for suffix in ("", ".ics"):
            shown = api.get(f"/v1/meetings/{hidden}{suffix}", headers=_auth(user))
            absent = api.get(f"/v1/meetings/{missing}{suffix}", headers=_auth(user))
            one, other = assert_problem(shown, 404), assert_problem(absent, 404)
            assert one["detail"].replace(str(hidden), "N") == other["detail"].replace(
                str(missing), "N"
            )
            assert "interne" not in shown.text
        listed = api.get("/v1/meetings", params={"bbox": LYON_BBOX}, headers=_auth(user))
        assert hidden not in [f["id"] for f in listed.json()["features"]]
        # Nor can they write it, nor announce on the project: the answer of a missing one.
        assert_problem(
            api.put(f"/v1/meetings/{hidden}", json=body(), headers=_auth(user)),
            401 if user is None else 404,
        )
        if user is not None:
            refused = api.post(f"/v1/projects/{PRIVATE}/meetings", json=body(), headers=_auth(user))
            assert assert_problem(refused, 404)["detail"] == f"no project {PRIVATE}"
    member_view = api.get(f"/v1/meetings/{hidden}", headers=_auth(OTHER_ADMIN))
    assert member_view.status_code == 200 and member_view.json()["title"] == "Réunion interne"
    listed = api.get("/v1/meetings", params={"bbox": LYON_BBOX}, headers=_auth(OTHER_ADMIN))
    assert hidden in [f["id"] for f in listed.json()["features"]]


@pytest.mark.slow
def test_import_all_or_nothing(world: DatabaseSettings, tmp_path: Path) -> None:
    env = {"GEO_ENGINE_DATABASE_URL": world.database_url}
    good = {"id": 7001, "project_id": PUBLIC, **body(title="Atelier importé", kind="atelier")}
    bad = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            good,
            {**good, "id": 7002, "project_id": 999_999},
            {**good, "id": 7003, "ends_at": "2027-03-04T10:00:00+01:00"},
            "{not json",
        ],
    )
    refused = run_cli("meetings", "import", str(bad), env=env)
    assert refused.returncode == 2, refused.stderr
    assert "bad.jsonl:3:" in refused.stderr and "ends_at must be after starts_at" in refused.stderr
    assert "bad.jsonl:4:" in refused.stderr
    with db.connect(world) as conn:
        assert conn.execute("SELECT count(*) FROM meeting WHERE id = 7001").fetchone() == (0,)

    missing_project = write_jsonl(
        tmp_path / "ref.jsonl", [good, {**good, "id": 7002, "project_id": 999_999}]
    )
    refused = run_cli("meetings", "import", str(missing_project), env=env)
    assert refused.returncode == 2
    assert "ref.jsonl:2: project_id: no project 999999" in refused.stderr
    with db.connect(world) as conn:
        assert conn.execute("SELECT count(*) FROM meeting WHERE id = 7001").fetchone() == (0,)

    ok = write_jsonl(tmp_path / "ok.jsonl", [good])
    done = run_cli("meetings", "import", str(ok), env=env)
    assert done.returncode == 0, done.stderr
    assert "1 meetings imported, 1 rows written" in done.stdout
    again = run_cli("meetings", "import", str(ok), env=env)
    assert "0 rows written" in again.stdout
    assert events(world, 7001) == ["meeting.announced"]
    moved = write_jsonl(tmp_path / "moved.jsonl", [{**good, "project_id": PRIVATE}])
    refused = run_cli("meetings", "import", str(moved), env=env)
    assert "moved.jsonl:1: id: meeting 7001 belongs to project 100, not 101" in refused.stderr
