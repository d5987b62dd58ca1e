-- The logged lists of the offline replay (growth/replay.py): each digest mailed in
-- [since, until), its inbox rows in the order the digest showed them, and its clicks.
-- Parameters: %(since)s, %(until)s timestamptz.
-- Output, one row per sent digest that showed at least one row, by user then sending time:
--   key text ('digest:<user>:<frequency>:<period>'), user_id bigint, sent_at timestamptz,
--   projects bigint[] (the shown ones by digest_rank, then the digest's rows it did not show,
--   by project id; a project once), levels smallint[] (aligned: its narrowest inbox level,
--   an index into geo_engine.audience.LEVELS), shown int (how many it showed),
--   clicked bool[] (aligned: a 'clicked' engagement event from this mail on this shown
--   project, occurred in [since, until)).
-- Indexes: pk_app_user; none on mail_delivery.sent_at (a replay reads a period's digests once: one scan);
--   pk_inbox (user_id leads); ix_engagement_event_user_id, engagement_event's partitions
--   pruned by occurred_at.
WITH sent AS (
    SELECT m.key, m.user_id, m.sent_at,
           split_part(m.key, ':', 3) AS frequency,
           split_part(m.key, ':', 4)::date AS period
    FROM mail_delivery AS m
    JOIN app_user AS u ON u.id = m.user_id  -- a replay ranks for existing users only
    WHERE m.kind = 'digest' AND m.sent_at >= %(since)s AND m.sent_at < %(until)s
),
shown AS (
    SELECT s.key, i.project_id, min(i.digest_rank) AS rank, min(i.level) AS level
    FROM sent AS s
    JOIN inbox AS i ON i.user_id = s.user_id AND i.digest_frequency = s.frequency
                   AND i.digest_period = s.period
    GROUP BY s.key, i.project_id
),
clicks AS (
    SELECT DISTINCT s.key, e.project_id
    FROM sent AS s
    JOIN engagement_event AS e ON e.user_id = s.user_id AND e.notification = s.key
    WHERE e.kind = 'clicked' AND e.occurred_at >= %(since)s AND e.occurred_at < %(until)s
)
SELECT s.key, s.user_id, s.sent_at,
       array_agg(r.project_id ORDER BY r.rank NULLS LAST, r.project_id),
       array_agg(r.level ORDER BY r.rank NULLS LAST, r.project_id),
       count(r.rank)::int,
       array_agg(c.project_id IS NOT NULL AND r.rank IS NOT NULL
                 ORDER BY r.rank NULLS LAST, r.project_id)
FROM sent AS s
JOIN shown AS r ON r.key = s.key
LEFT JOIN clicks AS c ON c.key = r.key AND c.project_id = r.project_id
GROUP BY s.key, s.user_id, s.sent_at
HAVING count(r.rank) > 0
ORDER BY s.user_id, s.sent_at
