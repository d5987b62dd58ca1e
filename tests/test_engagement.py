"""The recommender's reads of follows, engagement and feedback: set-wise, aligned, complete,
and as the write layer stored them (each test rolled back)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest

from contracts.engagement import EngagementKind, EngagementWrite, FeedbackKind, FeedbackWrite
from contracts.themes import Theme
from geo_engine import engagement, writes
from geo_engine.catalog import load as catalog_load
from geo_engine.jsonl import Line
from geo_engine.writes import Actor
from tests import api_data as data

pytestmark = pytest.mark.geodata

U1, U2, U3, OUTSIDER = 901, 902, 903, 904
ORG, CLUB = 9101, 9102
P1, P2, P3 = 9201, 9202, 9203


@pytest.fixture
def ground(conn: psycopg.Connection) -> psycopg.Connection:
    conn.execute("INSERT INTO app_user (id) SELECT unnest(%s::bigint[])", ([U1, U2, U3, OUTSIDER],))
    catalog_load.store_organisations(
        conn, [Line(1, data.organisation(ORG)), Line(2, data.organisation(CLUB))], "test"
    )
    catalog_load.store_members(conn, [Line(1, data.member(CLUB, U2))], "test")
    projects = [
        data.project(P1, ORG, data.national(), themes=["sport", "culture"]),
        data.project(P2, ORG, data.national()),
        data.project(P3, CLUB, data.national(), visibility="private"),
    ]
    catalog_load.store_projects(conn, [Line(i, p) for i, p in enumerate(projects, 1)], "test")
    return conn


def _engage(conn: psycopg.Connection, user: int, project: int, kind: str) -> None:
    writes.record_engagement(
        conn,
        Actor(user_id=user),
        user,
        EngagementWrite(project_id=project, kind=EngagementKind(kind)),
    )


def test_user_signals_return_each_users_engagement_organisations_and_feedback(
    ground: psycopg.Connection,
) -> None:
    conn = ground
    _engage(conn, U1, P1, "click")
    _engage(conn, U1, P1, "click")
    _engage(conn, U1, P1, "participation")
    _engage(conn, U2, P3, "click")
    _engage(conn, U3, P2, "click")
    writes.follow(conn, Actor(user_id=U1), U1, ORG)
    writes.follow(conn, Actor(user_id=U2), U2, CLUB)
    writes.follow(conn, Actor(user_id=U2), U2, ORG)
    writes.give_feedback(
        conn, Actor(user_id=U1), U1, FeedbackWrite(kind=FeedbackKind.NOT_MY_COMMUNE, project_id=P2)
    )
    writes.give_feedback(
        conn, Actor(user_id=U2), U2, FeedbackWrite(kind=FeedbackKind.LESS_OF_THEME, project_id=P1)
    )

    s = engagement.user_signals(conn, [U2, U1, U1, 123456789])  # repeats and unknowns ignored
    click, took_part = engagement.CLICK, engagement.PARTICIPATION
    assert list(zip(s.e_user, s.e_project, s.e_kind, s.e_count, strict=True)) == [
        (U1, P1, took_part, 1),
        (U1, P1, click, 2),
        (U2, P3, click, 1),
    ]
    assert np.all(s.e_last > datetime(2020, 1, 1, tzinfo=UTC).timestamp())
    assert list(zip(s.o_user, s.o_organisation, s.o_followed, s.o_member, strict=True)) == [
        (U1, ORG, True, False),
        (U2, ORG, True, False),
        (U2, CLUB, True, True),
    ]
    themes = engagement.THEMES
    kinds = engagement.FEEDBACK_KINDS
    assert list(zip(s.f_user, s.f_kind, s.f_project, s.f_theme, strict=True)) == [
        (U1, kinds.index(FeedbackKind.NOT_MY_COMMUNE), P2, engagement.NO_THEME),
        (U2, kinds.index(FeedbackKind.LESS_OF_THEME), 0, themes.index(Theme.CULTURE)),
        (U2, kinds.index(FeedbackKind.LESS_OF_THEME), 0, themes.index(Theme.SPORT)),
    ]
    # Membership alone counts too; a user with nothing has empty arrays.
    conn.execute("DELETE FROM follow WHERE user_id = %s", (U2,))
    s = engagement.user_signals(conn, [U2])
    assert list(zip(s.o_organisation, s.o_followed, s.o_member, strict=True)) == [
        (CLUB, False, True)
    ]
    empty = engagement.user_signals(conn, [OUTSIDER])
    assert empty.e_user.size == empty.o_user.size == empty.f_user.size == 0
    assert empty.e_user.dtype == np.int64 and empty.f_theme.dtype == np.int16


def test_project_participants_count_distinct_participants_aligned_with_the_input(
    ground: psycopg.Connection,
) -> None:
    conn = ground
    for user in (U1, U2, U3):
        _engage(conn, user, P1, "participation")
        _engage(conn, user, P1, "participation")  # counted up, still one participant
    _engage(conn, U1, P2, "participation")
    _engage(conn, U2, P2, "click")  # a click is no participation
    counts = engagement.project_participants(conn, [P2, 424242, P1, P3, P1])
    assert counts.tolist() == [1, 0, 3, 0, 3]
    assert engagement.project_participants(conn, []).size == 0


def test_interactions_stream_every_engagement_in_chunks(ground: psycopg.Connection) -> None:
    conn = ground
    now = datetime.now(UTC)
    rng = np.random.default_rng(7)
    users = rng.choice([U1, U2, U3, OUTSIDER], size=5000)
    projects = rng.choice([P1, P2, P3], size=5000)
    kinds = rng.choice(["click", "participation"], size=5000)
    days = rng.integers(0, 60, size=5000)
    conn.execute(
        """INSERT INTO engagement (user_id, project_id, kind, first_at, last_at, count)
           SELECT u, p, k, %s - make_interval(days => d), %s - make_interval(days => d), 1
           FROM unnest(%s::int8[], %s::int8[], %s::text[], %s::int[]) AS r(u, p, k, d)
           ON CONFLICT DO NOTHING""",
        (now, now, users.tolist(), projects.tolist(), kinds.tolist(), days.tolist()),
    )
    expected = conn.execute(
        """SELECT user_id, project_id, kind = 'click', last_at >= %s FROM engagement
           ORDER BY 1, 2, 3""",
        (now - timedelta(days=30),),
    ).fetchall()
    assert 10 < len(expected) <= 24

    got_u, got_p, got_k = engagement.interactions(conn)
    assert sorted(zip(got_u.tolist(), got_p.tolist(), got_k.tolist(), strict=True)) == [
        (u, p, engagement.CLICK if click else engagement.PARTICIPATION)
        for u, p, click, _ in expected
    ]
    recent = engagement.interactions(conn, now - timedelta(days=30))
    assert len(recent[0]) == sum(1 for *_, fresh in expected if fresh) < len(expected)

    chunks = list(engagement.iter_interactions(conn, None, chunk_rows=5))
    assert [len(c[0]) for c in chunks[:-1]] == [5] * (len(chunks) - 1)
    assert sum(len(c[0]) for c in chunks) == len(expected)
    assert np.array_equal(np.concatenate([c[0] for c in chunks]), got_u)


def test_interactions_of_an_empty_table_are_empty(conn: psycopg.Connection) -> None:
    users, projects, kinds = engagement.interactions(conn)
    assert users.size == projects.size == kinds.size == 0
