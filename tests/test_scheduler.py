"""The loop's clock (consumers/scheduler.py) against the real PostGIS, the real mail module and
a real SMTP server: one pass alerts and digests what is due, the next sends nothing again, and
a pass another process holds is not run twice."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
from pydantic import SecretStr

from consumers import scheduler
from consumers.alerts import MailModule
from consumers.settings import LoopSettings
from geo_engine import db
from geo_engine.settings import DatabaseSettings
from recommender.scorers import load_weighted
from tests.smtpsink import running_sink
from tests.test_digest_support import add_inbox, add_projects, add_users

NOON = datetime(2026, 6, 3, 10, tzinfo=UTC)  # 12:00 in Paris: the day's digest is due
NO_QUIET = {"start": "00:00", "end": "00:00"}


def _ground(database: DatabaseSettings) -> None:
    with db.connect(database) as conn:
        add_projects(conn, 1, [1, 2])
        add_users(conn, [10], frequency="instant", quiet_hours=NO_QUIET)
        add_users(conn, [20], frequency="daily")
        for user in (10, 20):
            for project in (1, 2):
                add_inbox(conn, user, project, NOON - timedelta(hours=3))
        conn.commit()


def test_a_pass_alerts_and_digests_once(clone_france: Callable[[], DatabaseSettings]) -> None:
    database = clone_france()
    _ground(database)
    loop = LoopSettings(digest_picks=0)
    with running_sink() as (sink, mail):
        module = MailModule(mail.model_copy(update={"link_secret": SecretStr("x" * 40)}))
        done = scheduler.run_pass(database, loop, module, load_weighted(), NOON)
        assert done is not None
        assert done["alerts"]["sent"] == 2  # one mail per inbox row of the instant user
        assert done["daily"]["sent"] == 1
        first = [str(m["Message-ID"]) for m in sink.messages]
        assert len(first) == 3
        again = scheduler.run_pass(
            database, loop, module, load_weighted(), NOON + timedelta(hours=1)
        )
        assert again is not None and again["alerts"]["sent"] == 0 and again["daily"]["sent"] == 0
        assert [str(m["Message-ID"]) for m in sink.messages] == first
    digest = next(m for m in sink.messages if "20" in str(m["To"]))
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_a_pass_held_by_another_process_is_not_run(
    clone_france: Callable[[], DatabaseSettings],
) -> None:
    database = clone_france()
    _ground(database)
    with running_sink() as (sink, mail), psycopg.connect(database.database_url) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (scheduler.PASS_LOCK,))
        module = MailModule(mail.model_copy(update={"link_secret": SecretStr("x" * 40)}))
        assert scheduler.run_pass(database, LoopSettings(), module, load_weighted(), NOON) is None
        assert sink.messages == []
        other.execute("SELECT pg_advisory_unlock(%s)", (scheduler.PASS_LOCK,))
        done = scheduler.run_pass(
            database, LoopSettings(digest_picks=0), module, load_weighted(), NOON
        )
        assert done is not None and done["alerts"]["sent"] == 2
