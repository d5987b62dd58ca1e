"""The engagement worker's batch, on a real PostgreSQL: every kind recorded once, clicks and
participations counted where the recommender reads them, dismissals as feedback."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import psycopg
import pytest

from consumers.engagement import WORKER, handle
from contracts.errors import NotFound
from contracts.events import Event, parse_event
from geo_engine import db
from geo_engine.settings import DatabaseSettings
from tests import streams_data

U1, U2 = streams_data.USERS[:2]
P1, P2, _ = streams_data.PROJECTS


@pytest.fixture(scope="module")
def ground_db(make_database: Callable[..., DatabaseSettings]) -> DatabaseSettings:
    return streams_data.ground(make_database)


@pytest.fixture
def conn(ground_db: DatabaseSettings) -> Iterator[psycopg.Connection]:
    with db.connect(ground_db) as connection:
        yield connection
        connection.rollback()


def event(type_: str, at: datetime | None = None, **ids: object) -> Event:
    return parse_event(
        {
            "event_id": uuid.uuid4(),
            "type": type_,
            "version": 1,
            "occurred_at": at or datetime(2026, 11, 29, 12, tzinfo=UTC),
            **ids,
        }
    )


def test_each_kind_lands_where_it_belongs(conn: psycopg.Connection) -> None:
    batch = [
        event("notification.opened", user_id=U1, notification="digest:1:daily:2026-11-29"),
        event("notification.clicked", user_id=U1, project_id=P1, notification="k"),
        event("notification.clicked", user_id=U1, project_id=P1),
        event("project.participated", user_id=U2, project_id=P1),
        event("recommendation.dismissed", user_id=U2, project_id=P2),
        event("notification.unsubscribed", user_id=U2),
    ]
    handle(conn, batch)
    kinds = conn.execute(
        "SELECT kind, count(*) FROM engagement_event GROUP BY kind ORDER BY kind"
    ).fetchall()
    assert kinds == [
        ("clicked", 2),
        ("dismissed", 1),
        ("opened", 1),
        ("participated", 1),
        ("unsubscribed", 1),
    ]
    counted = conn.execute(
        "SELECT user_id, project_id, kind, count FROM engagement ORDER BY user_id, kind"
    ).fetchall()
    assert counted == [(U1, P1, "click", 2), (U2, P1, "participation", 1)]
    feedback = conn.execute("SELECT user_id, kind, project_id FROM recommendation_feedback")
    assert feedback.fetchall() == [(U2, "not_interested", P2)]
    # The same events again (a replay that slipped past consumed_event) count nothing twice.
    handle(conn, batch)
    assert conn.execute("SELECT count(*) FROM engagement_event").fetchone() == (6,)
    row = conn.execute("SELECT count FROM engagement WHERE kind = 'click'").fetchone()
    assert row == (2,)


def test_a_later_click_counts_up_and_moves_last_at(conn: psycopg.Connection) -> None:
    early = datetime(2026, 11, 1, tzinfo=UTC)
    late = datetime(2026, 11, 20, tzinfo=UTC)
    handle(conn, [event("notification.clicked", at=early, user_id=U1, project_id=P2)])
    handle(conn, [event("notification.clicked", at=late, user_id=U1, project_id=P2)])
    row = conn.execute(
        "SELECT count, first_at, last_at FROM engagement WHERE user_id = %s AND project_id = %s",
        (U1, P2),
    ).fetchone()
    assert row == (2, early, late)


def test_a_month_without_a_partition_gets_one(conn: psycopg.Connection) -> None:
    far = datetime(2031, 3, 15, tzinfo=UTC)
    handle(conn, [event("notification.opened", at=far, user_id=U1, notification="x")])
    row = conn.execute(
        "SELECT tableoid::regclass::text FROM engagement_event WHERE occurred_at = %s", (far,)
    ).fetchone()
    assert row == ("engagement_event_2031_03",)


def test_an_unknown_project_is_refused_and_an_erased_user_left_out(
    conn: psycopg.Connection,
) -> None:
    with pytest.raises(NotFound, match="no project 999999"):
        handle(conn, [event("notification.clicked", user_id=U1, project_id=999_999)])
    conn.rollback()
    handle(conn, [event("notification.clicked", user_id=999_998, project_id=P1)])
    assert conn.execute("SELECT count(*) FROM engagement_event").fetchone() == (0,)


def test_the_worker_reads_the_engagement_stream_for_the_loops_kinds() -> None:
    assert WORKER.stream == "engagement"
    assert WORKER.types == {
        "notification.opened",
        "notification.clicked",
        "project.participated",
        "recommendation.dismissed",
        "notification.unsubscribed",
    }
