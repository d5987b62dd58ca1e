"""The loop's clock: what runs on time rather than on an event, in ``geo-engine consume``.

Every ``tick_s`` seconds, one pass: the scheduled fan-outs (projects closing soon, meeting
reminders), the instant alert round (quiet hours and the weekly budget are decided there),
then the daily and weekly digest rounds, each as at the pass's instant. Every step is
idempotent by its own keys (inbox rows, ``mail_delivery``, ``digest``), so a pass cut short by
a crash is simply run again; a PostgreSQL advisory lock lets one process of many run a pass
at a time, so N consumer processes do not repeat each other's work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from consumers import alerts, digest, fanout
from consumers.settings import LoopSettings
from geo_engine import db
from geo_engine.settings import DatabaseSettings
from recommender.scorers import LinearScorer
from recommender.variants import RankingVariants

log = logging.getLogger(__name__)

# pg_try_advisory_lock key of the pass (any constant the engine uses for nothing else).
PASS_LOCK = 0x6C6F6F70  # "loop"

Clock = Callable[[], datetime]


def run_pass(
    database: DatabaseSettings,
    loop: LoopSettings,
    mail: alerts.MailModule,
    scorer: LinearScorer,
    now: datetime,
    ranking: RankingVariants | None = None,
) -> dict[str, Any] | None:
    """One pass as at ``now`` (aware); None when another process holds the pass. Returns
    what each step did. ``ranking``: the ranking experiments' scorers for the digests' picks
    (None: ``scorer`` for everyone)."""
    with db.connect(database) as conn:
        conn.autocommit = True
        if not conn.execute("SELECT pg_try_advisory_lock(%s)", (PASS_LOCK,)).fetchone()[0]:  # type: ignore[index]
            return None
        conn.autocommit = False
        try:
            done: dict[str, Any] = {
                "closing_soon": fanout.closing_soon(
                    conn, now, loop.closing_soon_days, loop, scorer
                ),
                "meeting_reminders": fanout.meeting_reminders(
                    conn, now, loop.meeting_reminder_days, loop, scorer
                ),
            }
            conn.commit()
            lease = timedelta(seconds=loop.mail_lease_s)
            done["alerts"] = alerts.alert_round(conn, now, mail, loop, mail, lease).__dict__
            picks = digest.recommender_picks(scorer, ranking)
            for frequency in ("daily", "weekly"):
                counts = digest.digest_round(
                    conn, frequency, now, mail, loop, mail, picks, lease=lease
                )
                done[frequency] = counts.__dict__
            return done
        finally:
            conn.rollback()
            conn.autocommit = True
            conn.execute("SELECT pg_advisory_unlock(%s)", (PASS_LOCK,))


def run_forever(
    database: DatabaseSettings,
    loop: LoopSettings,
    mail: alerts.MailModule,
    scorer: LinearScorer,
    stop: threading.Event,
    clock: Clock = lambda: datetime.now(UTC),
    ranking: RankingVariants | None = None,
) -> None:
    """Passes every ``loop.tick_s`` seconds until ``stop`` is set. A failed pass (the database
    or the SMTP server away) is logged and tried again at the next tick: nothing it claimed is
    lost, the next pass's recovery sends it."""
    while not stop.is_set():
        try:
            done = run_pass(database, loop, mail, scorer, clock(), ranking)
            if done is not None:
                log.info("loop pass: %s", done)
        except Exception:  # the next tick tries again; what was claimed is recovered
            log.exception("loop pass failed; retrying at the next tick")
        stop.wait(loop.tick_s)
