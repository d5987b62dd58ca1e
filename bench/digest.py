"""A daily digest round at national scale.

On ``<database>_bench_digest`` (France, ``size`` fixture users, ``PROJECTS`` fixture projects,
committed once per size through `geo-engine fixtures load`): every user is set to a daily
e-mail digest and given ``ROWS_PER_USER`` undelivered inbox rows (one ``INSERT … SELECT``, as
a fan-out would write them); digests, deliveries and previous rows are emptied first, so each
run starts from the same state (the round commits: this database is the bench's own).

Then one :func:`consumers.digest.digest_round` as at ``AT`` (noon in Paris: the morning has
come in mainland France, the Antilles, Guyane, Réunion and Mayotte, not yet in the Pacific,
whose users are not due): due users found, digests and items claimed, rendered with the
visibility rule re-checked, handed to a counting sink, marked sent. ``round_s`` times it all;
``users`` is the digests sent. ``composer`` says what rendered the mails (``consumers.mail``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from consumers.alerts import Composer, MailModule, Outgoing
from consumers.digest import digest_round
from consumers.settings import LoopSettings, MailSettings
from geo_engine import db
from geo_engine.settings import DatabaseSettings, GeoSettings

PROJECTS = 20_000
ROWS_PER_USER = 5
AT = datetime(2026, 6, 3, 10, tzinfo=UTC)


class CountingSink:
    """A Sender that counts what it is handed (and the bytes of each mail's text)."""

    def __init__(self) -> None:
        self.messages = 0

    def send(self, messages: Sequence[Outgoing]) -> None:
        self.messages += len(messages)


def composer() -> tuple[Composer, str]:
    return MailModule(MailSettings()), "consumers.mail"


def digest_database(
    settings: DatabaseSettings, geo: GeoSettings, users: int, seed: int
) -> DatabaseSettings:
    """``<database>_bench_digest``: France, ``users`` fixture users and ``PROJECTS`` projects."""
    from bench.runner import fixture_database

    return fixture_database(
        settings, geo, "_bench_digest", users=users, projects=PROJECTS, seed=seed
    )


def run_digest(
    settings: DatabaseSettings, geo: GeoSettings, size: int, seed: int
) -> dict[str, Any]:
    database = digest_database(settings, geo, size, seed)
    with db.connect(database) as conn:
        started = time.perf_counter()
        conn.execute("TRUNCATE inbox, digest, mail_delivery")
        conn.execute(
            """UPDATE app_user SET notifications = notifications
                 || '{"frequency": "daily", "email": true}'::jsonb"""
        )
        conn.execute(
            """INSERT INTO inbox (user_id, project_id, kind, level, priority, reason,
                                  created_at)
               SELECT u.id, 1 + (u.id * 7919 + g * 104729) %% %(projects)s, 'published',
                      (u.id + g) %% 8, CASE WHEN g = 1 THEN 2 ELSE 1 END,
                      'Un projet près de chez vous', %(created)s
               FROM app_user AS u, generate_series(1, %(rows)s) AS g
               ON CONFLICT DO NOTHING""",
            {"projects": PROJECTS, "rows": ROWS_PER_USER, "created": AT - timedelta(hours=1)},
        )
        conn.commit()
        conn.execute("ANALYZE inbox")
        conn.execute("ANALYZE app_user")
        conn.commit()
        fill_s = time.perf_counter() - started
        sink, (mail, name) = CountingSink(), composer()
        started = time.perf_counter()
        counts = digest_round(conn, "daily", AT, sink, LoopSettings(), mail)
        round_s = time.perf_counter() - started
    return {
        "users": counts.sent,
        "round_s": round(round_s, 2),
        "digests_per_s": round(counts.sent / round_s),
        "due": counts.due,
        "withheld": counts.withheld,
        "handed_to_sink": sink.messages,
        "inbox_rows": size * ROWS_PER_USER,
        "fill_s": round(fill_s, 2),
        "composer": name,
    }
