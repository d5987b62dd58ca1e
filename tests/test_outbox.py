"""The transactional outbox under the imports and the write layer, against the real PostGIS.

Every kind of write leaves exactly its events (count, types, ids); a write that fails leaves
neither row nor event; imports announce set-wise, one event per changed row, and a re-import
with no change announces nothing; every event parses as its contract and carries ids only.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import psycopg
import pytest

from cli.catalog import store_batched
from contracts.catalog import (
    ContributionRecord,
    ContributionWrite,
    MemberRecord,
    OrganisationRecord,
    ProjectRecord,
    ProjectWrite,
)
from contracts.errors import Forbidden, InvalidInput, NotFound
from contracts.events import EVENT_TYPES, Event
from contracts.users import UserPatch, UserRecord
from geo_engine import writes
from geo_engine.catalog import load as catalog_load
from geo_engine.jsonl import ImportRejected, Line
from geo_engine.outbox import append, read_events
from geo_engine.settings import UserSettings
from geo_engine.users.places import (
    UserBatch,
    UserImportError,
    choose_commune,
    import_users,
    move_user,
)
from geo_engine.writes import Actor

pytestmark = pytest.mark.geodata

REIMS, EPERNAY = "51454", "51230"
SETTINGS = UserSettings()


class Outbox:
    """The events written since the last look, in this test's transaction."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.seen = {e.event_id for e in read_events(conn)}

    def new(self) -> list[Event]:
        fresh = [e for e in read_events(self.conn) if e.event_id not in self.seen]
        self.seen.update(e.event_id for e in fresh)
        return fresh

    def types(self) -> Counter[str]:
        return Counter(e.type for e in self.new())


@pytest.fixture
def outbox(conn: psycopg.Connection) -> Outbox:
    return Outbox(conn)


def _lines(model: Any, raws: list[dict[str, Any]]) -> list[Line[Any]]:
    return [Line(n, model.model_validate(raw)) for n, raw in enumerate(raws, start=1)]


def _users(conn: psycopg.Connection, *ids: int, commune: str = REIMS) -> None:
    records = [UserRecord(id=i, commune=commune) for i in ids]
    import_users(conn, UserBatch.from_records(records), SETTINGS)


def _org(oid: int, name: str = "Ville") -> dict[str, Any]:
    return {"id": oid, "kind": "commune", "name": name}


def _project(pid: int, **more: Any) -> dict[str, Any]:
    return {
        "id": pid,
        "organisation_id": 1,
        "space": "territoires",
        "tool": "carte_participative",
        "title": f"Projet {pid}",
        "scope": {"kind": "territories", "territories": [{"level": "commune", "code": REIMS}]},
        **more,
    }


def _count(conn: psycopg.Connection, query: str) -> int:
    row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


# --------------------------------------------------------------------------------------------
# Imports


def test_organisation_import_announces_created_then_updated(
    conn: psycopg.Connection, outbox: Outbox
) -> None:
    raws = [_org(1), _org(2), _org(3)]
    assert catalog_load.store_organisations(conn, _lines(OrganisationRecord, raws)) == 3
    events = outbox.new()
    assert Counter(e.type for e in events) == {"organisation.created": 3}
    assert {e.model_dump()["organisation_id"] for e in events} == {1, 2, 3}
    assert catalog_load.store_organisations(conn, _lines(OrganisationRecord, raws)) == 0
    assert outbox.types() == {}
    raws[1] = _org(2, "Autre nom")
    assert catalog_load.store_organisations(conn, _lines(OrganisationRecord, raws)) == 1
    [event] = outbox.new()
    assert (event.type, event.model_dump()["organisation_id"]) == ("organisation.updated", 2)


def test_members_added_role_changed_removed(conn: psycopg.Connection, outbox: Outbox) -> None:
    _users(conn, 11, 12)
    catalog_load.store_organisations(conn, _lines(OrganisationRecord, [_org(1)]))
    outbox.new()
    members = [
        {"organisation_id": 1, "user_id": 11, "role": "admin"},
        {"organisation_id": 1, "user_id": 12},
    ]
    catalog_load.store_members(conn, _lines(MemberRecord, members))
    added = outbox.new()
    assert Counter(e.type for e in added) == {"member.added": 2}
    assert {(e.model_dump()["organisation_id"], e.model_dump()["user_id"]) for e in added} == {
        (1, 11),
        (1, 12),
    }
    catalog_load.store_members(conn, _lines(MemberRecord, members))
    assert outbox.types() == {}
    members[1]["role"] = "agent"
    catalog_load.store_members(conn, _lines(MemberRecord, members))
    assert outbox.types() == {"member.role_changed": 1}
    assert catalog_load.remove_member(conn, 1, 12)
    assert outbox.types() == {"member.removed": 1}
    assert not catalog_load.remove_member(conn, 1, 12)
    assert outbox.types() == {}


PROJECT_CHANGES: list[tuple[dict[str, Any], dict[str, int]]] = [
    ({"title": "Autre titre"}, {"project.updated": 1}),
    ({"visibility": "private"}, {"project.updated": 1, "project.made_private": 1}),
    ({"closes_at": "2026-09-01T18:00:00+02:00"}, {"project.updated": 1, "project.closing": 1}),
    ({"status": "closed"}, {"project.updated": 1, "project.closed": 1}),
    ({"status": "results"}, {"project.updated": 1, "project.results_published": 1}),
    (
        {"scope": {"kind": "radius", "center": {"lon": 4.03, "lat": 49.25}, "radius_m": 2000}},
        {"project.updated": 1},
    ),
]


@pytest.mark.parametrize(("change", "expected"), PROJECT_CHANGES)
def test_project_changes_announce_their_transitions(
    conn: psycopg.Connection, outbox: Outbox, change: dict[str, Any], expected: dict[str, int]
) -> None:
    catalog_load.store_organisations(conn, _lines(OrganisationRecord, [_org(1)]))
    catalog_load.store_projects(conn, _lines(ProjectRecord, [_project(7)]))
    assert outbox.types() == {"organisation.created": 1, "project.published": 1}
    assert catalog_load.store_projects(conn, _lines(ProjectRecord, [_project(7, **change)])) == 1
    events = outbox.new()
    assert Counter(e.type for e in events) == expected
    assert {(e.model_dump()["project_id"], e.model_dump()["organisation_id"]) for e in events} == {
        (7, 1)
    }
    catalog_load.store_projects(conn, _lines(ProjectRecord, [_project(7, **change)]))
    assert outbox.types() == {}  # the same again: no change, no event


def test_a_private_project_made_public_and_status_steps(
    conn: psycopg.Connection, outbox: Outbox
) -> None:
    catalog_load.store_organisations(conn, _lines(OrganisationRecord, [_org(1)]))
    first = _project(8, visibility="private", status="upcoming")
    catalog_load.store_projects(conn, _lines(ProjectRecord, [first]))
    outbox.new()
    steps = [
        ({"visibility": "public", "status": "open"}, {"project.made_public": 1}),
        (
            {"visibility": "public", "status": "open", "closes_at": "2026-06-01T18:00:00Z"},
            {"project.closing": 1},
        ),
        # Another closing date is announced again; the same one is not.
        (
            {"visibility": "public", "status": "open", "closes_at": "2026-06-15T18:00:00Z"},
            {"project.closing": 1},
        ),
        (
            {"visibility": "public", "status": "closed", "closes_at": "2026-06-15T18:00:00Z"},
            {"project.closed": 1},
        ),
        (
            {"visibility": "private", "status": "results", "closes_at": "2026-06-15T18:00:00Z"},
            {"project.made_private": 1, "project.results_published": 1},
        ),
    ]
    for change, transitions in steps:
        catalog_load.store_projects(conn, _lines(ProjectRecord, [_project(8, **change)]))
        assert outbox.types() == {"project.updated": 1, **transitions}, change


def test_contributions_created_then_updated(conn: psycopg.Connection, outbox: Outbox) -> None:
    _users(conn, 21)
    catalog_load.store_organisations(conn, _lines(OrganisationRecord, [_org(1)]))
    catalog_load.store_projects(conn, _lines(ProjectRecord, [_project(7)]))
    outbox.new()
    raws = [
        {"id": 500, "project_id": 7, "category": "banc", "location": {"lon": 4.03, "lat": 49.25}},
        {
            "id": 501,
            "project_id": 7,
            "category": "arbre",
            "author_id": 21,
            "location": {"lon": 4.04, "lat": 49.26},
        },
    ]
    catalog_load.store_contributions(conn, _lines(ContributionRecord, raws))
    events = outbox.new()
    assert Counter(e.type for e in events) == {"contribution.created": 2}
    assert {(e.model_dump()["contribution_id"], e.model_dump()["author_id"]) for e in events} == {
        (500, None),
        (501, 21),
    }
    catalog_load.store_contributions(conn, _lines(ContributionRecord, raws))
    assert outbox.types() == {}
    raws[0]["title"] = "Un banc cassé"
    catalog_load.store_contributions(conn, _lines(ContributionRecord, raws))
    assert outbox.types() == {"contribution.updated": 1}


def test_a_large_import_announces_one_event_per_changed_row(
    conn: psycopg.Connection, outbox: Outbox
) -> None:
    """Set-wise: 3,000 organisations in three batches (the CLI's store_batched) are 3,000
    events; storing them again is none; changing 250 of them is 250."""
    raws = [_org(i, f"Organisation {i}") for i in range(1, 3001)]
    written = store_batched(
        conn, catalog_load.store_organisations, _lines(OrganisationRecord, raws), "f", 1000
    )
    assert written == 3000
    assert outbox.types() == {"organisation.created": 3000}
    store_batched(
        conn, catalog_load.store_organisations, _lines(OrganisationRecord, raws), "f", 1000
    )
    assert outbox.types() == {}
    for raw in raws[::12]:
        raw["name"] += " (nouveau nom)"
    store_batched(
        conn, catalog_load.store_organisations, _lines(OrganisationRecord, raws), "f", 1000
    )
    assert outbox.types() == {"organisation.updated": 250}


def test_a_rejected_import_leaves_neither_rows_nor_events(
    conn: psycopg.Connection, outbox: Outbox
) -> None:
    catalog_load.store_organisations(conn, _lines(OrganisationRecord, [_org(1)]))
    outbox.new()
    projects = [_project(7), _project(8, organisation_id=999), _project(9)]
    with pytest.raises(ImportRejected, match="organisation_id"):
        store_batched(
            conn, catalog_load.store_projects, _lines(ProjectRecord, projects), "p.jsonl", 1
        )
    # store_batched rolled back the rejected batch only: the caller (the CLI) rolls back the
    # rest; what stays until then is rows and events of the good batches, together.
    assert _count(conn, "SELECT count(*) FROM project") == 2
    assert outbox.types() == {"project.published": 2}


def test_user_import_registers_then_announces_moves_and_preferences(
    conn: psycopg.Connection, outbox: Outbox
) -> None:
    records = [
        UserRecord(id=31, commune=REIMS),
        UserRecord(id=32, home={"lon": 4.0317, "lat": 49.2583}),
        UserRecord(id=33, postal_code="51100"),
    ]
    import_users(conn, UserBatch.from_records(records), SETTINGS)
    events = outbox.new()
    assert Counter(e.type for e in events) == {"user.registered": 3}
    assert {e.model_dump()["user_id"] for e in events} == {31, 32, 33}
    import_users(conn, UserBatch.from_records(records), SETTINGS)
    assert outbox.types() == {}  # a re-import with no change announces nothing
    changed = [
        UserRecord(id=31, commune=EPERNAY),  # moved
        UserRecord(id=32, home={"lon": 4.0317, "lat": 49.2583}, interests=["culture"]),
        records[2],
    ]
    import_users(conn, UserBatch.from_records(changed), SETTINGS)
    events = outbox.new()
    assert sorted((e.type, e.model_dump()["user_id"]) for e in events) == [
        ("user.moved", 31),
        ("user.preferences_changed", 32),
    ]
    move_user(conn, UserRecord(id=32, commune=EPERNAY), SETTINGS)
    assert outbox.types() == {"user.moved": 1}
    move_user(conn, UserRecord(id=32, commune=EPERNAY), SETTINGS)
    assert outbox.types() == {}


def test_choosing_among_candidates_is_a_move(conn: psycopg.Connection, outbox: Outbox) -> None:
    import_users(conn, UserBatch.from_records([UserRecord(id=34, postal_code="51430")]), SETTINGS)
    outbox.new()
    row = conn.execute("SELECT candidate_communes FROM user_place WHERE user_id = 34").fetchone()
    assert row is not None and row[0] is not None and len(row[0]) > 1
    choose_commune(conn, 34, row[0][0])
    assert outbox.types() == {"user.moved": 1}


def test_a_rejected_user_import_leaves_neither_rows_nor_events(
    conn: psycopg.Connection, outbox: Outbox
) -> None:
    records = [UserRecord(id=35, commune=REIMS), UserRecord(id=36, commune="99999")]
    with pytest.raises(UserImportError):
        import_users(conn, UserBatch.from_records(records), SETTINGS)
    assert _count(conn, "SELECT count(*) FROM app_user WHERE id IN (35, 36)") == 0
    assert outbox.types() == {}


# --------------------------------------------------------------------------------------------
# The write layer (what the API calls)

STAFF, ADMIN, AUTHOR, STRANGER = Actor(1, staff=True), Actor(41), Actor(42), Actor(43)


@pytest.fixture
def world(conn: psycopg.Connection, outbox: Outbox) -> None:
    _users(conn, 1, 41, 42, 43)
    catalog_load.store_organisations(conn, _lines(OrganisationRecord, [_org(1), _org(2)]))
    member = MemberRecord(organisation_id=1, user_id=41, role="admin")
    catalog_load.store_members(conn, [Line(1, member)])
    catalog_load.store_projects(
        conn,
        _lines(ProjectRecord, [_project(7), _project(8, organisation_id=2, visibility="private")]),
    )
    outbox.new()


def _project_write(**more: Any) -> ProjectWrite:
    raw = _project(1, **more)
    del raw["id"]
    return ProjectWrite.model_validate({**raw, **more})


@pytest.mark.usefixtures("world")
def test_every_layer_write_leaves_its_events(conn: psycopg.Connection, outbox: Outbox) -> None:
    written = writes.write_organisation(conn, STAFF, OrganisationRecord(**_org(3)))
    assert written.written == 1 and outbox.types() == {"organisation.created": 1}
    writes.add_member(conn, ADMIN, MemberRecord(organisation_id=1, user_id=42))
    assert outbox.types() == {"member.added": 1}
    created = writes.write_project(conn, ADMIN, _project_write())
    assert created.id is not None and outbox.types() == {"project.published": 1}
    closed = _project_write(status="closed").model_copy(update={"id": created.id})
    writes.write_project(conn, ADMIN, closed)
    assert outbox.types() == {"project.updated": 1, "project.closed": 1}
    contribution = ContributionWrite(
        project_id=7, category="banc", location={"lon": 4.03, "lat": 49.25}
    )
    placed = writes.write_contribution(conn, AUTHOR, contribution)
    [event] = outbox.new()
    assert event.model_dump() | {"event_id": None, "occurred_at": None} == {
        "event_id": None,
        "occurred_at": None,
        "type": "contribution.created",
        "version": 1,
        "contribution_id": placed.id,
        "project_id": 7,
        "author_id": 42,
    }
    writes.remove_member(conn, AUTHOR, 1, 42)  # a member leaves
    assert outbox.types() == {"member.removed": 1}
    writes.register_user(conn, Actor(44), UserRecord(id=44, commune=REIMS), SETTINGS)
    assert outbox.types() == {"user.registered": 1}
    writes.update_user(conn, Actor(44), 44, UserPatch(commune=EPERNAY), SETTINGS)
    assert outbox.types() == {"user.moved": 1}
    both = UserPatch(postal_code="51100", interests=["culture"], timezone="Europe/Paris")
    writes.update_user(conn, Actor(44), 44, both, SETTINGS)
    assert outbox.types() == {"user.moved": 1, "user.preferences_changed": 1}
    writes.update_user(conn, Actor(44), 44, both, SETTINGS)
    assert outbox.types() == {}


@pytest.mark.usefixtures("world")
def test_a_refused_layer_write_leaves_neither_rows_nor_events(
    conn: psycopg.Connection, outbox: Outbox
) -> None:
    before = _count(conn, "SELECT count(*) FROM project")
    with pytest.raises(Forbidden):
        writes.write_project(conn, STRANGER, _project_write())
    with pytest.raises(NotFound):
        writes.write_project(conn, ADMIN, _project_write().model_copy(update={"id": 8}))
    bad_scope = {"kind": "territories", "territories": [{"level": "commune", "code": "99999"}]}
    with pytest.raises(InvalidInput, match="99999"):
        writes.write_project(conn, ADMIN, _project_write(scope=bad_scope))
    with pytest.raises(InvalidInput, match="no French commune"):
        writes.register_user(
            conn, Actor(45), UserRecord(id=45, home={"lon": -30.0, "lat": 45.0}), SETTINGS
        )
    assert _count(conn, "SELECT count(*) FROM project") == before
    assert _count(conn, "SELECT count(*) FROM app_user WHERE id = 45") == 0
    assert outbox.types() == {}


def test_a_write_that_fails_after_its_events_leaves_neither(
    conn: psycopg.Connection, outbox: Outbox
) -> None:
    """The layer's transaction: a failure after the rows and their events were inserted
    (here a project of an organisation deleted meanwhile) undoes both."""
    catalog_load.store_organisations(conn, _lines(OrganisationRecord, [_org(1)]))
    outbox.new()
    with pytest.raises(psycopg.errors.ForeignKeyViolation), conn.transaction():
        catalog_load.store_organisations(conn, _lines(OrganisationRecord, [_org(5)]))
        append(conn, "organisation.updated", organisation_id=5)
        conn.execute("INSERT INTO organisation_member VALUES (5, 424242, 'admin')")
    assert _count(conn, "SELECT count(*) FROM organisation WHERE id = 5") == 0
    assert outbox.types() == {}


def test_events_carry_ids_only() -> None:
    """Every contract: the common fields and ids, nothing a person could be known by."""
    common = {"event_id", "type", "version", "occurred_at"}
    for name, model in EVENT_TYPES.items():
        fields = set(model.model_fields) - common
        # ``notification`` is a mail's idempotency key, itself made of ids and a date.
        assert fields and all(f.endswith("_id") or f == "notification" for f in fields), name
        assert name.split(".")[0] in {
            "organisation",
            "member",
            "project",
            "contribution",
            "user",
            "meeting",
            "notification",
            "recommendation",
        }
