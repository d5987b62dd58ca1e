"""Digests against the real PostGIS and a real SMTP server: one per user and local period,
across the 23- and 25-hour days of Paris; items in exactly one digest; visibility re-checked at
render; a crash between claim and SMTP re-sends once with the same Message-ID."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from consumers import periods
from consumers.alerts import Rendered
from consumers.content import Item
from consumers.digest import arrange, digest_key, digest_round, recommender_picks
from consumers.settings import LoopSettings
from geo_engine import db
from geo_engine.settings import DatabaseSettings
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

__all__ = ["smtp"]

SETTINGS = LoopSettings(digest_size=50)


@pytest.fixture
def loop_conn(clone_france: Callable[[], DatabaseSettings]) -> Iterator[psycopg.Connection]:
    with db.connect(clone_france()) as conn:
        yield conn


def user_of(mail: object) -> int:
    return int(str(mail["To"]).split("-")[1].split("@")[0])  # type: ignore[index]


@pytest.mark.slow
@pytest.mark.parametrize("day", [date(2026, 3, 29), date(2026, 10, 25)])
def test_hourly_rounds_across_a_dst_day_send_one_digest_per_local_day(
    loop_conn: psycopg.Connection, smtp: tuple[Collector, int], day: date
) -> None:
    collector, port = smtp
    conn = loop_conn
    first = datetime.combine(day - timedelta(days=1), datetime.min.time(), UTC)
    hours = 72
    add_projects(conn, 1, range(1, hours + 1))
    add_users(conn, [1, 2], frequency="daily")  # Paris
    add_users(conn, [3], commune="97411", frequency="daily")  # Saint-Denis, Réunion
    add_users(conn, [4], frequency="instant")  # only its overflow
    add_users(conn, [5], frequency="weekly", digest_weekday="sunday")
    for h in range(hours):
        for user in (1, 2, 3, 5):
            add_inbox(conn, user, h + 1, first + timedelta(hours=h, minutes=10))
        add_inbox(conn, 4, h + 1, first + timedelta(hours=h, minutes=10))
    conn.execute(
        "UPDATE inbox SET overflow_at = created_at WHERE user_id = 4 AND project_id % 2 = 0"
    )
    conn.commit()
    sender, composer = SmtpSender(port), TinyComposer()

    rounds = [first + timedelta(hours=h, minutes=30) for h in range(hours)]
    for at in rounds:
        digest_round(conn, "daily", at, sender, SETTINGS, composer)
        digest_round(conn, "weekly", at, sender, SETTINGS, composer)
    last = rounds[-1]

    # One digest per user and local day whose morning came; never two.
    got = Counter((user_of(m), str(m["Subject"])) for m in collector.messages)
    assert set(got.values()) == {1}
    for user, tz in (
        (1, "Europe/Paris"),
        (2, "Europe/Paris"),
        (3, "Indian/Reunion"),
        (4, "Europe/Paris"),
    ):
        days = [
            d
            for d in (day - timedelta(days=1), day, day + timedelta(days=1))
            if periods.digest_due("daily", d, tz, 8) <= last
        ]
        assert sorted(s for u, s in got if u == user) == [
            f"Digest {d.isoformat()}" for d in days
        ], user
    # Each item in exactly one mail; every item created before the last digest's claim is in one.
    seen = Counter((user_of(m), p) for m in collector.messages for p, _ in items_of(m))
    assert set(seen.values()) == {1}
    rows = conn.execute(
        """SELECT user_id, project_id, created_at, digest_period FROM inbox
           WHERE user_id <> 5 ORDER BY 1, 2"""
    ).fetchall()
    for user, project, created, period in rows:
        if user == 4 and project % 2 == 1:
            assert period is None  # not overflowed: the alert round's, never a digest's
            continue
        tz = "Indian/Reunion" if user == 3 else "Europe/Paris"
        # The digest that takes an item is the first claimed after it was created.
        due_days = [
            d
            for d in (day - timedelta(days=1), day, day + timedelta(days=1))
            if periods.digest_due("daily", d, tz, 8) <= last
        ]
        claims = [
            min(r for r in rounds if r >= periods.digest_due("daily", d, tz, 8)) for d in due_days
        ]
        expected = next((d for d, c in zip(due_days, claims, strict=True) if c >= created), None)
        assert period == expected, (user, project, created)
        assert ((user, project) in seen) == (expected is not None)
    # The weekly user, Sunday's: one digest, in the week of the Sunday it was due.
    weekly = [m for m in collector.messages if user_of(m) == 5]
    sunday = day if day.weekday() == 6 else None
    assert len(weekly) == (1 if sunday else 0)


def test_a_crash_before_smtp_resends_the_same_digest_once(
    loop_conn: psycopg.Connection, smtp: tuple[Collector, int]
) -> None:
    collector, port = smtp
    conn = loop_conn
    add_projects(conn, 1, [1, 2, 3])
    add_users(conn, [10], frequency="daily")
    add_users(conn, [11], frequency="off")
    add_users(conn, [12], frequency="daily", email=False)
    at = datetime(2026, 6, 3, 7, tzinfo=UTC)  # 09:00 in Paris
    for user in (10, 11, 12):
        for p in (1, 2, 3):
            add_inbox(conn, user, p, at - timedelta(hours=p))
    conn.commit()
    composer = TinyComposer()
    with pytest.raises(ConnectionRefusedError):
        digest_round(conn, "daily", at, FailingSender(), SETTINGS, composer)
    conn.rollback()
    key = digest_key((10, "daily", date(2026, 6, 3)))
    assert conn.execute("SELECT key, sent_at FROM mail_delivery").fetchall() == [(key, None)]
    # A second round in the period claims nothing more; after the lease the claim is re-sent.
    counts = digest_round(
        conn, "daily", at + timedelta(minutes=5), SmtpSender(port), SETTINGS, composer
    )
    assert (counts.claimed, counts.sent) == (0, 0)
    counts = digest_round(
        conn, "daily", at + timedelta(minutes=11), SmtpSender(port), SETTINGS, composer
    )
    assert (counts.recovered, counts.sent) == (1, 1)
    assert (
        digest_round(
            conn, "daily", at + timedelta(hours=3), SmtpSender(port), SETTINGS, composer
        ).sent
        == 0
    )
    assert [str(m["Message-ID"]) for m in collector.messages] == [composer.message_id(key)]
    assert sorted(p for p, _ in items_of(collector.messages[0])) == [1, 2, 3]
    assert conn.execute("SELECT item_count, sent_at IS NOT NULL FROM digest").fetchall() == [
        (3, True)
    ]
    # Users with 'off' or no e-mail keep everything in their inbox.
    assert conn.execute(
        "SELECT count(*) FROM inbox WHERE user_id IN (11, 12) AND digest_period IS NULL"
    ).fetchone() == (6,)


def test_items_made_private_are_dropped_at_render_and_an_empty_digest_is_not_sent(
    loop_conn: psycopg.Connection, smtp: tuple[Collector, int]
) -> None:
    collector, port = smtp
    conn = loop_conn
    add_projects(conn, 1, [1, 2])
    add_users(conn, [20, 21], frequency="daily")
    at = datetime(2026, 6, 3, 7, tzinfo=UTC)
    add_inbox(conn, 20, 1, at - timedelta(hours=1))
    add_inbox(conn, 20, 2, at - timedelta(hours=1))
    add_inbox(conn, 21, 1, at - timedelta(hours=1))
    conn.execute("UPDATE project SET visibility = 'private' WHERE id = 1")
    conn.commit()
    # Two shards: user 20 (even) in the first, 21 in the second; a shard taken twice is harmless.
    counts = digest_round(
        conn, "daily", at, SmtpSender(port), SETTINGS, TinyComposer(), shard=(0, 2)
    )
    assert (counts.claimed, counts.sent, counts.withheld) == (1, 1, 0)
    for _ in range(2):
        counts = digest_round(
            conn, "daily", at, SmtpSender(port), SETTINGS, TinyComposer(), shard=(1, 2)
        )
    assert (counts.due, counts.claimed) == (0, 0)
    assert conn.execute("SELECT user_id, sent_at IS NULL FROM digest ORDER BY 1").fetchall() == [
        (20, False),
        (21, True),
    ]
    assert [(user_of(m), items_of(m)) for m in collector.messages] == [(20, [(2, "published")])]
    # User 21's digest of the day is spent: a later round sends nothing for it.
    conn.execute("UPDATE project SET visibility = 'public' WHERE id = 1")
    conn.commit()
    assert (
        digest_round(
            conn, "daily", at + timedelta(hours=1), SmtpSender(port), SETTINGS, TinyComposer()
        ).sent
        == 0
    )


def rendered(
    project: int, org: int, priority: int, section: str, relevance: float = 0.0
) -> Rendered:
    item = Item(project, f"P{project}", f"O{org}", "consultation", "published", "r", section, None)  # type: ignore[arg-type]
    return Rendered(
        (1, project, "published", 0, 0),
        item,
        priority,
        relevance,
        datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=project),
        org,
        True,
    )


def test_arrange_ranks_diversifies_cuts_and_groups() -> None:
    rows = [
        rendered(1, 1, 1, "france", 0.9),
        rendered(2, 1, 1, "commune", 0.8),
        rendered(3, 1, 1, "commune", 0.7),  # third of organisation 1: after the others
        rendered(4, 2, 1, "epci", 0.1),
        rendered(5, 3, 2, "france"),  # a civic deadline comes first
        rendered(6, 4, 0, "commune", 0.99),  # a recommendation comes last
    ]
    assert [i.project_id for i in arrange(rows, 4)] == [2, 4, 5, 1]
    assert [i.project_id for i in arrange(rows, 10)] == [2, 6, 3, 4, 5, 1]
    invisible = [
        Rendered(*(r.key, r.item, r.priority, r.relevance, r.created_at, r.organisation_id, False))
        for r in rows
    ]
    assert arrange(invisible, 10) == ()


def test_recommended_picks_join_the_digest_of_due_users_only(
    loop_conn: psycopg.Connection, smtp: tuple[Collector, int]
) -> None:
    collector, port = smtp
    conn = loop_conn
    add_projects(conn, 1, [1, 2, 3, 4])
    add_projects(conn, 2, [5], visibility="private")
    add_users(conn, [30], frequency="daily")  # something new: scored
    add_users(conn, [31], frequency="daily")  # nothing new: neither scored nor sent
    at = datetime(2026, 6, 3, 7, tzinfo=UTC)
    add_inbox(conn, 30, 1, at - timedelta(hours=1))
    conn.commit()
    two = LoopSettings(digest_size=50, digest_picks=2)
    counts = digest_round(
        conn, "daily", at, SmtpSender(port), two, TinyComposer(), picks=recommender_picks()
    )
    assert (counts.due, counts.picks, counts.sent) == (1, 2, 1)
    picked = conn.execute(
        """SELECT user_id, project_id, priority, reason, digest_period FROM inbox
           WHERE kind = 'recommended' ORDER BY project_id"""
    ).fetchall()
    assert {r[0] for r in picked} == {30}
    assert all(
        r[1] in (2, 3, 4) and r[2] == 0 and r[3] and r[4] == date(2026, 6, 3) for r in picked
    )
    [mail] = collector.messages
    got = items_of(mail)
    assert got[0] == (1, "published") or (1, "published") in got
    assert sorted(p for p, k in got if k == "recommended") == sorted(r[1] for r in picked)
