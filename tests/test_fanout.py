"""Fan-out against the real territories: who gets an inbox row for a project event, with what
reason, level and priority; idempotence by the inbox key; the scheduled passes (closing soon,
meeting reminders). Every test writes in a transaction rolled back."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from consumers import fanout
from consumers.settings import LoopSettings
from contracts.errors import InvalidInput, NotFound
from contracts.events import MeetingAnnounced, ProjectPublished, ProjectResultsPublished
from geo_engine.catalog import load as catalog_load
from tests.api_data import _lines, member, national, organisation, project, territories

pytestmark = pytest.mark.geodata

BAYONNE, ANGLET, PARIS = "64102", "64024", "75056"
PAYS_BASQUE = "200067106"
ORG, PRIVATE_ORG = 7001, 7002
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

# user id -> (commune, notifications, interests)
USERS: dict[int, tuple[str, dict[str, Any], list[str]]] = {
    1: (BAYONNE, {}, []),
    2: (ANGLET, {}, []),
    3: (PARIS, {}, []),  # outside the Pays Basque; follows ORG
    4: (BAYONNE, {"muted_spaces": ["territoires"]}, []),
    5: (BAYONNE, {"muted_tools": ["consultation"]}, []),
    6: (BAYONNE, {"muted_themes": ["mobilite"]}, []),
    7: (BAYONNE, {"frequency": "off"}, ["mobilite"]),  # off: still the inbox
    8: (BAYONNE, {}, []),  # member of PRIVATE_ORG
    9: (BAYONNE, {}, []),  # asked for less of mobilite (recommendation_feedback)
}


def _setup(conn: psycopg.Connection, projects: list[Any]) -> None:
    for uid, (commune, notifications, interests) in USERS.items():
        conn.execute(
            "INSERT INTO app_user (id, notifications, interests) VALUES (%s, %s, %s)",
            (uid, json.dumps(notifications), interests),
        )
        conn.execute(
            "INSERT INTO user_place (user_id, commune_code) VALUES (%s, %s)", (uid, commune)
        )
    catalog_load.store_organisations(
        conn,
        _lines([organisation(ORG, "Mairie de Bayonne"), organisation(PRIVATE_ORG)]),
        "test",
    )
    catalog_load.store_members(conn, _lines([member(PRIVATE_ORG, 8)]), "test")
    catalog_load.store_projects(conn, _lines(projects), "test")
    conn.execute("INSERT INTO follow (user_id, organisation_id) VALUES (3, %s)", (ORG,))
    conn.execute(
        "INSERT INTO recommendation_feedback (user_id, kind, theme) "
        "VALUES (9, 'less_of_theme', 'mobilite')"
    )


def _rows(conn: psycopg.Connection, project_id: int) -> dict[int, tuple[Any, ...]]:
    rows = conn.execute(
        """SELECT user_id, kind, level, priority, relevance, reason, event_id, meeting_id,
                  lead_days
           FROM inbox WHERE project_id = %s""",
        (project_id,),
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


def _relevance(threshold: float = 0.0) -> fanout.Relevance:
    from recommender.scorers import load_weighted

    return fanout.Relevance.of(load_weighted(), threshold)


def _published(project_id: int, org: int = ORG) -> ProjectPublished:
    return ProjectPublished(
        event_id=uuid.uuid4(), occurred_at=NOW, project_id=project_id, organisation_id=org
    )


def test_a_commune_project_reaches_its_residents_once_with_their_reason(
    conn: psycopg.Connection,
) -> None:
    _setup(conn, [project(101, ORG, territories(("commune", BAYONNE)), themes=["mobilite"])])
    handle = fanout.handler(LoopSettings())
    event = _published(101)
    handle(conn, [event])
    first = _rows(conn, 101)
    # 4, 5, 6 muted the space, the tool, the theme; 9's score is 3 (commune) - 3 (less of
    # mobilite) = 0, not above the threshold; 2 lives in Anglet; 3 follows ORG from Paris.
    assert set(first) == {1, 3, 7, 8}
    kind, level, priority, relevance, reason, event_id, meeting, lead = first[1]
    assert (kind, level, priority, meeting, lead) == ("published", 0, 1, 0, 0)
    assert reason == "Concerne votre commune, Bayonne"
    assert event_id == event.event_id
    assert relevance == pytest.approx(3.0)
    # 7 declared mobilite: 3.0 + 1.2; frequency off is no filter for the inbox.
    assert first[7][3] == pytest.approx(4.2)
    # the follower outside the territory: level -1, the follow as reason.
    assert first[3][1] == fanout.FOLLOWER
    assert first[3][4] == "Proposé par une organisation que vous suivez : Mairie de Bayonne"
    # handled again (a redelivery, another event of the same project): nothing added.
    handle(conn, [event, _published(101)])
    assert _rows(conn, 101) == first


def test_intercommunality_reason_and_results_kind(conn: psycopg.Connection) -> None:
    _setup(conn, [project(102, ORG, territories(("epci", PAYS_BASQUE)))])
    fanout.handler()(
        conn,
        [
            ProjectResultsPublished(
                event_id=uuid.uuid4(), occurred_at=NOW, project_id=102, organisation_id=ORG
            )
        ],
    )
    rows = _rows(conn, 102)
    assert rows[2][0] == "results"
    assert rows[2][1] == 2  # LEVELS.index("epci")
    assert rows[2][4].startswith("Concerne votre intercommunalité, ")
    assert "Pays Basque" in rows[2][4]
    # the follower in Paris is in no audience of ORG's but follows it: reached.
    assert rows[3][1] == fanout.FOLLOWER


def test_a_private_project_reaches_its_members_only(conn: psycopg.Connection) -> None:
    _setup(
        conn,
        [project(103, PRIVATE_ORG, territories(("commune", BAYONNE)), visibility="private")],
    )
    conn.execute("INSERT INTO follow (user_id, organisation_id) VALUES (2, %s)", (PRIVATE_ORG,))
    fanout.handler()(conn, [_published(103, PRIVATE_ORG)])
    # not the residents of Bayonne who are not members, not the follower who is not a member.
    assert set(_rows(conn, 103)) == {8}


def test_a_project_made_private_before_handling_reaches_members_only(
    conn: psycopg.Connection,
) -> None:
    _setup(conn, [project(104, PRIVATE_ORG, territories(("commune", BAYONNE)))])
    conn.execute("UPDATE project SET visibility = 'private' WHERE id = 104")
    fanout.handler()(conn, [_published(104, PRIVATE_ORG)])
    assert set(_rows(conn, 104)) == {8}


def test_the_relevance_threshold_filters(conn: psycopg.Connection) -> None:
    _setup(conn, [project(105, ORG, national(), themes=["mobilite"])])
    # national: 0.5; 7 declared mobilite: 0.5 + 1.2 = 1.7; 3 follows ORG: 0.5 + 1.0.
    fanout.handler(LoopSettings(relevance_threshold=1.6))(conn, [_published(105)])
    assert set(_rows(conn, 105)) == {7}
    conn.execute("DELETE FROM inbox")
    fanout.handler(LoopSettings(relevance_threshold=1.0))(conn, [_published(105)])
    assert set(_rows(conn, 105)) == {3, 7}
    conn.execute("DELETE FROM inbox")
    fanout.handler()(conn, [_published(105)])
    national_rows = _rows(conn, 105)
    assert set(national_rows) == {1, 2, 3, 7, 8}  # not the muted, not 9 (0.5 - 3)
    assert national_rows[1][4] == "Concerne toute la France"
    assert national_rows[3][1] == 7  # in the audience: the territory's level, not the follow


def test_an_unknown_project_is_refused_for_the_dead_letters(conn: psycopg.Connection) -> None:
    _setup(conn, [])
    with pytest.raises(NotFound, match="project 999999 does not exist"):
        fanout.handler()(conn, [_published(999_999)])
    with pytest.raises(InvalidInput, match="does not handle"):
        fanout.handler()(
            conn,
            [
                ProjectPublished.model_construct(
                    event_id=uuid.uuid4(),
                    type="project.closed",
                    version=1,
                    occurred_at=NOW,
                    project_id=1,
                    organisation_id=1,
                )
            ],
        )


def _meeting(conn: psycopg.Connection, mid: int, pid: int, starts: datetime) -> None:
    conn.execute(
        """INSERT INTO meeting (id, project_id, kind, title, place, starts_at, ends_at)
           VALUES (%s, %s, 'reunion_publique', 'Réunion', 'Salle des fêtes', %s, %s)""",
        (mid, pid, starts, starts + timedelta(hours=2)),
    )


def test_a_meeting_announced_is_fanned_out_with_its_meeting(conn: psycopg.Connection) -> None:
    _setup(conn, [project(106, ORG, territories(("commune", BAYONNE)))])
    _meeting(conn, 1, 106, NOW + timedelta(days=10))
    _meeting(conn, 2, 106, NOW + timedelta(days=12))
    conn.execute("UPDATE meeting SET cancelled_at = now() WHERE id = 2")
    events = [
        MeetingAnnounced(
            event_id=uuid.uuid4(),
            occurred_at=NOW,
            meeting_id=m,
            project_id=106,
            organisation_id=ORG,
        )
        for m in (1, 2)
    ]
    fanout.handler()(conn, events)
    rows = conn.execute(
        "SELECT DISTINCT kind, meeting_id FROM inbox WHERE project_id = 106"
    ).fetchall()
    assert rows == [("meeting_announced", 1)]  # the cancelled one gives nothing
    with pytest.raises(NotFound, match="meeting 3"):
        fanout.handler()(
            conn,
            [
                MeetingAnnounced(
                    event_id=uuid.uuid4(),
                    occurred_at=NOW,
                    meeting_id=3,
                    project_id=106,
                    organisation_id=ORG,
                )
            ],
        )


def test_closing_soon_puts_civic_deadlines_of_ones_commune_first(
    conn: psycopg.Connection,
) -> None:
    c = (NOW + timedelta(days=2)).isoformat()
    _setup(
        conn,
        [
            project(107, ORG, territories(("commune", BAYONNE)), tool="votation", closes_at=c),
            project(108, ORG, territories(("epci", PAYS_BASQUE)), tool="votation", closes_at=c),
            project(109, ORG, territories(("commune", BAYONNE)), tool="boite_a_idees", closes_at=c),
            project(
                110,
                ORG,
                territories(("commune", BAYONNE)),
                tool="votation",
                closes_at=(NOW + timedelta(days=20)).isoformat(),
            ),
        ],
    )
    added = fanout.closing_soon(conn, NOW, 3)
    assert added > 0
    assert _rows(conn, 107)[1][:3] == ("closing_soon", 0, 2)  # own commune, a vote
    assert _rows(conn, 108)[1][:3] == ("closing_soon", 2, 1)  # the intercommunality's
    assert _rows(conn, 109)[1][:3] == ("closing_soon", 0, 1)  # not a civic deadline
    assert _rows(conn, 110) == {}  # closes in 20 days
    assert fanout.closing_soon(conn, NOW, 3) == 0  # once per (user, project)
    with pytest.raises(InvalidInput, match="time zone"):
        fanout.closing_soon(conn, NOW.replace(tzinfo=None), 3)


def test_meeting_reminders_once_per_lead(conn: psycopg.Connection) -> None:
    _setup(conn, [project(111, ORG, territories(("commune", BAYONNE)))])
    _meeting(conn, 11, 111, NOW + timedelta(days=5))  # within 7 days, not within 1
    _meeting(conn, 12, 111, NOW + timedelta(hours=12))  # within 1 day: that reminder only
    _meeting(conn, 13, 111, NOW + timedelta(days=3))
    conn.execute("UPDATE meeting SET cancelled_at = now() WHERE id = 13")
    _meeting(conn, 14, 111, NOW - timedelta(hours=1))  # started: nothing
    assert fanout.meeting_reminders(conn, NOW, (7, 1)) > 0
    found = conn.execute(
        """SELECT DISTINCT meeting_id, lead_days FROM inbox
           WHERE kind = 'meeting_reminder' ORDER BY 1"""
    ).fetchall()
    assert found == [(11, 7), (12, 1)]
    assert fanout.meeting_reminders(conn, NOW, (7, 1)) == 0
    # a day later, meeting 11 is 4 days away still: its 7-day reminder is not sent twice.
    assert fanout.meeting_reminders(conn, NOW + timedelta(days=1), (7, 1)) == 0
    # four days later it is within a day: the 1-day reminder.
    assert fanout.meeting_reminders(conn, NOW + timedelta(days=4, hours=1), (7, 1)) > 0
    assert conn.execute(
        "SELECT count(DISTINCT lead_days) FROM inbox WHERE meeting_id = 11"
    ).fetchone() == (2,)


def test_the_worker_is_on_the_project_stream(conn: psycopg.Connection) -> None:
    worker = fanout.worker()
    assert (worker.name, worker.stream) == ("fanout", "project")
    assert worker.types == {
        "project.published",
        "project.made_public",
        "project.results_published",
        "meeting.announced",
    }
