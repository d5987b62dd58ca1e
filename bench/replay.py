"""The offline replay of candidate weights over ``size`` logged digests.

On ``<database>_bench_replay`` (France, ``size`` fixture users with their seeded follows and
engagement, ``PROJECTS`` fixture projects, committed once per size through
`geo-engine fixtures load`), in one transaction rolled back at the end: every placed user gets
one sent weekly digest of ``ROWS`` inbox rows (the first ``SHOWN`` shown, by rank) and clicks
drawn with a position bias (rank k clicked by a hash with probability ``CLICK_TOP``/k), in
three ``INSERT … SELECT``. Then the replay of the current weights against ``CANDIDATE``
(:mod:`growth.replay`), timed by stage: ``read_s`` (the logged lists, one statement),
``rerank_s`` (facts, features and both scorers, by chunks of lists), ``estimate_s`` (IPS,
bootstrap, NDCG, interleaving); ``lists_per_s`` over the three.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from geo_engine import db
from geo_engine.settings import DatabaseSettings, GeoSettings
from growth import replay as engine
from recommender.scorers import load_weighted

PROJECTS = 20_000
ROWS = 10
SHOWN = 8
CLICK_TOP = 0.3
WEEK = datetime(2026, 6, 1, tzinfo=UTC)
CANDIDATE = {"proximity": 3.0, "interest_declared": 2.0}


def replay_database(
    settings: DatabaseSettings, geo: GeoSettings, users: int, seed: int
) -> DatabaseSettings:
    from bench.runner import fixture_database

    return fixture_database(
        settings, geo, "_bench_replay", users=users, projects=PROJECTS, seed=seed
    )


def run_replay(
    settings: DatabaseSettings, geo: GeoSettings, size: int, seed: int
) -> dict[str, Any]:
    database = replay_database(settings, geo, size, seed)
    sent = WEEK + timedelta(hours=8)
    with db.connect(database) as conn:
        started = time.perf_counter()
        conn.execute(
            """INSERT INTO mail_delivery (key, user_id, kind, message_id, claimed_at, sent_at)
               SELECT 'digest:' || u.user_id || ':weekly:' || %(week)s::date, u.user_id,
                      'digest', '<bench-replay-' || u.user_id || '@bench>', %(sent)s, %(sent)s
               FROM user_place AS u WHERE u.commune_code IS NOT NULL""",
            {"week": WEEK.date(), "sent": sent},
        )
        conn.execute(
            """INSERT INTO inbox (user_id, project_id, kind, level, reason, created_at,
                                  digest_frequency, digest_period, digest_rank)
               SELECT u.user_id, 1 + (u.user_id * 7919 + g * 104729) %% %(projects)s,
                      'published', (u.user_id + g) %% 8, 'Un projet près de chez vous',
                      %(week)s, 'weekly', %(week)s::date,
                      CASE WHEN g <= %(shown)s THEN g END
               FROM user_place AS u, generate_series(1, %(rows)s) AS g
               WHERE u.commune_code IS NOT NULL
               ON CONFLICT DO NOTHING""",
            {"projects": PROJECTS, "week": WEEK, "rows": ROWS, "shown": SHOWN},
        )
        conn.execute(
            """INSERT INTO engagement_event (event_id, user_id, kind, project_id, notification,
                                             occurred_at)
               SELECT gen_random_uuid(), i.user_id, 'clicked', i.project_id,
                      'digest:' || i.user_id || ':weekly:' || i.digest_period, %(at)s
               FROM inbox AS i
               WHERE i.digest_rank IS NOT NULL AND i.digest_period = %(week)s::date
                 AND ((i.user_id * 31 + i.digest_rank * 17 + %(seed)s) %% 1000)
                     < 1000 * %(top)s / i.digest_rank""",
            {"at": sent + timedelta(hours=1), "week": WEEK.date(), "seed": seed, "top": CLICK_TOP},
        )
        # Statistics of the rows just written (this transaction's own), as autovacuum would
        # have them for a month of real digests: without them the planner expects empty tables.
        conn.execute("ANALYZE mail_delivery, inbox, engagement_event")
        fill_s = time.perf_counter() - started
        current = load_weighted()
        candidate = engine.candidate_scorer(current, CANDIDATE)
        started = time.perf_counter()
        lists = engine.read_lists(conn, WEEK, WEEK + timedelta(days=7))
        read_s = time.perf_counter() - started
        started = time.perf_counter()
        (cur, cand), unscored = engine.rerank(conn, lists, [current, candidate])
        rerank_s = time.perf_counter() - started
        started = time.perf_counter()
        report = engine.estimate(
            lists, cur, cand, (current.version, candidate.version), engine.ReplayParams(seed=seed)
        )
        estimate_s = time.perf_counter() - started
        conn.rollback()  # the logged digests were the bench's own: nothing stays
    total = read_s + rerank_s + estimate_s
    return {
        "lists": report.lists,
        "items_per_list": ROWS,
        "clicks": report.clicks,
        "unscored_items": unscored,
        "read_s": round(read_s, 2),
        "rerank_s": round(rerank_s, 2),
        "estimate_s": round(estimate_s, 2),
        "lists_per_s": round(report.lists / total),
        "fill_s": round(fill_s, 2),
        "difference": round(report.difference, 4),
        "verdict": report.verdict,
    }
