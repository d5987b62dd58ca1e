"""Instant alerts against the real PostGIS and a real SMTP server: quiet hours in the user's
zone, the weekly budget where civic deadlines come first, visibility checked at render, and
exactly one mail per item across a crash."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from consumers.alerts import alert_key, alert_round
from consumers.settings import LoopSettings
from geo_engine import db
from geo_engine.catalog import load as catalog_load
from geo_engine.jsonl import Line
from geo_engine.settings import DatabaseSettings
from tests.api_data import member
from tests.test_digest_support import (
    Collector,
    FailingSender,
    SmtpSender,
    TinyComposer,
    add_inbox,
    add_projects,
    add_users,
    items_of,
    smtp,
)

__all__ = ["smtp"]  # the fixture, imported to be found

NOON = datetime(2026, 6, 3, 10, tzinfo=UTC)  # 12:00 in Paris


@pytest.fixture
def loop_conn(clone_france: Callable[[], DatabaseSettings]) -> Iterator[psycopg.Connection]:
    with db.connect(clone_france()) as conn:
        yield conn


def alerted(conn: psycopg.Connection) -> list[tuple[int, int, bool, bool]]:
    return [
        (r[0], r[1], r[2], r[3])
        for r in conn.execute(
            """SELECT user_id, project_id, alerted_at IS NOT NULL, overflow_at IS NOT NULL
               FROM inbox ORDER BY user_id, project_id"""
        )
    ]


def test_budget_keeps_its_last_slot_for_a_civic_deadline(
    loop_conn: psycopg.Connection, smtp: tuple[Collector, int]
) -> None:
    collector, port = smtp
    conn = loop_conn
    add_projects(conn, 1, range(1, 10))
    add_users(conn, [100], frequency="instant")
    for p in (1, 2, 3, 4):  # news
        add_inbox(conn, 100, p, NOON - timedelta(hours=5 - p))
    add_inbox(conn, 100, 5, NOON - timedelta(minutes=1), kind="closing_soon", priority=2)
    conn.commit()
    settings, composer = LoopSettings(weekly_budget=3), TinyComposer()

    counts = alert_round(conn, NOON, SmtpSender(port), settings, composer)
    # The deadline first, then one news item; the last slot waits for a deadline.
    assert (counts.sent, counts.overflowed) == (2, 3)
    assert sorted(p for m in collector.messages for p, _ in items_of(m)) == [1, 5]
    assert alerted(conn) == [
        (100, 1, True, False),
        (100, 2, False, True),
        (100, 3, False, True),
        (100, 4, False, True),
        (100, 5, True, False),
    ]

    # Later in the week: a news item overflows, a deadline takes the kept slot, the next
    # deadline finds the budget spent.
    later = NOON + timedelta(days=2)
    add_inbox(conn, 100, 6, later - timedelta(minutes=3))
    add_inbox(conn, 100, 7, later - timedelta(minutes=2), kind="closing_soon", priority=2)
    add_inbox(conn, 100, 8, later - timedelta(minutes=1), kind="closing_soon", priority=2)
    conn.commit()
    counts = alert_round(conn, later, SmtpSender(port), settings, composer)
    assert (counts.sent, counts.overflowed) == (1, 2)
    assert [r for r in alerted(conn) if r[1] >= 6] == [
        (100, 6, False, True),
        (100, 7, True, False),
        (100, 8, False, True),
    ]
    # Seven days after the first mails, the budget is free again.
    week_on = NOON + timedelta(days=7, minutes=1)
    add_inbox(conn, 100, 9, week_on - timedelta(minutes=1))
    conn.commit()
    assert alert_round(conn, week_on, SmtpSender(port), settings, composer).sent == 1
    assert len(collector.messages) == 4


def test_quiet_hours_hold_alerts_in_the_users_own_zone(
    loop_conn: psycopg.Connection, smtp: tuple[Collector, int]
) -> None:
    collector, port = smtp
    conn = loop_conn
    add_projects(conn, 1, [1])
    add_users(conn, [200], frequency="instant")  # Paris, default 22:00–08:00
    add_users(conn, [201], commune="98818", frequency="instant")  # Nouméa, UTC+11
    add_users(conn, [202], frequency="instant", quiet_hours={"start": "08:00", "end": "08:00"})
    night = datetime(2026, 6, 3, 21, 30, tzinfo=UTC)  # 23:30 Paris, 08:30 Nouméa
    for user in (200, 201, 202):
        add_inbox(conn, user, 1, night - timedelta(hours=1))
    conn.commit()
    settings, composer = LoopSettings(), TinyComposer()

    alert_round(conn, night, SmtpSender(port), settings, composer)
    assert sorted(int(str(m["To"]).split("-")[1].split("@")[0]) for m in collector.messages) == [
        201,
        202,
    ]
    assert conn.execute(
        "SELECT alerted_at, overflow_at FROM inbox WHERE user_id = 200"
    ).fetchone() == (None, None)
    # 07:59 in Paris: still quiet; 08:00: sent.
    morning = datetime(2026, 6, 4, 5, 59, tzinfo=UTC)
    assert alert_round(conn, morning, SmtpSender(port), settings, composer).sent == 0
    assert (
        alert_round(conn, morning + timedelta(minutes=1), SmtpSender(port), settings, composer).sent
        == 1
    )
    assert len(collector.messages) == 3


def test_a_project_made_private_since_fan_out_is_not_sent(
    loop_conn: psycopg.Connection, smtp: tuple[Collector, int]
) -> None:
    collector, port = smtp
    conn = loop_conn
    add_projects(conn, 1, [1, 2])
    add_users(conn, [300, 301], frequency="instant")
    catalog_load.store_members(conn, [Line(1, member(1, 301))], "test")
    for user in (300, 301):
        add_inbox(conn, user, 1, NOON - timedelta(hours=1))
        add_inbox(conn, user, 2, NOON - timedelta(hours=1))
    conn.execute("UPDATE project SET visibility = 'private' WHERE id = 1")
    conn.commit()

    counts = alert_round(conn, NOON, SmtpSender(port), LoopSettings(), TinyComposer())
    assert (counts.sent, counts.withheld) == (3, 1)
    got = sorted((str(m["To"]), p) for m in collector.messages for p, _ in items_of(m))
    assert [p for to, p in got if "300" in to] == [2]
    assert [p for to, p in got if "301" in to] == [1, 2]
    # Withheld, and never tried again: alerted_at set, no delivery claimed.
    assert conn.execute(
        """SELECT i.alerted_at IS NOT NULL, d.key FROM inbox i LEFT JOIN mail_delivery d
           ON d.key = 'alert:300:1:published:0:0' WHERE i.user_id = 300 AND i.project_id = 1"""
    ).fetchone() == (True, None)
    assert (
        alert_round(
            conn, NOON + timedelta(hours=1), SmtpSender(port), LoopSettings(), TinyComposer()
        ).sent
        == 0
    )
    assert len(collector.messages) == 3


def test_a_crash_before_smtp_resends_once_with_the_same_message_id(
    loop_conn: psycopg.Connection, smtp: tuple[Collector, int]
) -> None:
    collector, port = smtp
    conn = loop_conn
    add_projects(conn, 1, [1])
    add_users(conn, [400], frequency="instant")
    add_users(conn, [401], frequency="daily")
    add_users(conn, [402], frequency="instant", email=False)
    for user in (400, 401, 402):
        add_inbox(conn, user, 1, NOON - timedelta(hours=1))
    conn.commit()
    composer = TinyComposer()

    with pytest.raises(ConnectionRefusedError):
        alert_round(conn, NOON, FailingSender(), LoopSettings(), composer)
    conn.rollback()
    key = alert_key((400, 1, "published", 0, 0))
    assert conn.execute("SELECT key, sent_at FROM mail_delivery").fetchall() == [(key, None)]
    # Within the lease nothing is re-sent (the claim may be on its way); after it, once.
    assert (
        alert_round(
            conn, NOON + timedelta(minutes=5), SmtpSender(port), LoopSettings(), composer
        ).sent
        == 0
    )
    counts = alert_round(
        conn, NOON + timedelta(minutes=11), SmtpSender(port), LoopSettings(), composer
    )
    assert (counts.sent, counts.recovered) == (1, 1)
    assert (
        alert_round(
            conn, NOON + timedelta(minutes=30), SmtpSender(port), LoopSettings(), composer
        ).sent
        == 0
    )
    assert [str(m["Message-ID"]) for m in collector.messages] == [composer.message_id(key)]
    row = conn.execute("SELECT sent_at IS NOT NULL, attempts FROM mail_delivery").fetchone()
    assert row == (True, 1)
