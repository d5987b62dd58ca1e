-- The instant alert round's decisions: which undelivered inbox rows of instant, e-mail users go
-- out now and which overflow the weekly budget to the next daily digest. Users in their quiet
-- hours (their local wall clock, default 22:00–08:00) are left out: nothing is decided for them.
-- Parameters: %(now)s timestamptz (the round's instant).
-- Output: user_id, project_id, kind, meeting_id, lead_days, priority, slot (the budget slot
--   the row would take: used + r). Rows are locked (FOR UPDATE SKIP LOCKED): two rounds never
--   decide one row. The caller applies each user's budget (consumers/alerts.py,
--   within_budget: an experiment may change it per user).
-- Budget rule: a user's pending rows are ordered priority DESC, created_at, key; with `used`
--   alerts claimed in (now - 7 days, now], the r-th row (1-based) takes slot used + r; it is
--   sent when slot <= budget for a deadline, slot <= budget - reserve otherwise; deadlines come
--   first in the order, so a lesser item never takes a slot a deadline of the same round needs,
--   and the last `reserve` slots of every 7 days stay free for a deadline still to come.
-- Indexes: pk_inbox (user_id first), ix_mail_delivery_user_id (user_id, claimed_at).
WITH wanting AS (
    SELECT u.id AS user_id,
           coalesce(u.timezone, c.timezone, 'Europe/Paris') AS zone,
           coalesce((u.notifications #>> '{quiet_hours,start}')::time, time '22:00') AS q_start,
           coalesce((u.notifications #>> '{quiet_hours,end}')::time, time '08:00') AS q_end
    FROM app_user AS u
    LEFT JOIN user_place AS p ON p.user_id = u.id
    LEFT JOIN commune AS c ON c.code = p.commune_code
    WHERE u.notifications ->> 'frequency' = 'instant'
      AND coalesce((u.notifications ->> 'email')::boolean, true)
      AND EXISTS (SELECT FROM inbox AS i WHERE i.user_id = u.id AND i.alerted_at IS NULL
                    AND i.overflow_at IS NULL AND i.digest_period IS NULL
                    AND i.created_at <= %(now)s)
),
awake AS (
    SELECT w.user_id
    FROM wanting AS w
    CROSS JOIN LATERAL (SELECT (%(now)s::timestamptz AT TIME ZONE w.zone)::time AS t) AS l
    WHERE NOT CASE
        WHEN w.q_start = w.q_end THEN false
        WHEN w.q_start < w.q_end THEN l.t >= w.q_start AND l.t < w.q_end
        ELSE l.t >= w.q_start OR l.t < w.q_end
    END
),
pending AS (
    SELECT i.user_id, i.project_id, i.kind, i.meeting_id, i.lead_days, i.priority, i.created_at
    FROM inbox AS i
    JOIN awake AS a ON a.user_id = i.user_id
    WHERE i.alerted_at IS NULL AND i.overflow_at IS NULL AND i.digest_period IS NULL
      AND i.created_at <= %(now)s
    FOR UPDATE OF i SKIP LOCKED
),
used AS (
    SELECT a.user_id, count(d.key)::int AS used
    FROM awake AS a
    LEFT JOIN mail_delivery AS d
      ON d.user_id = a.user_id AND d.kind = 'alert'
     AND d.claimed_at > %(now)s::timestamptz - interval '7 days' AND d.claimed_at <= %(now)s
    GROUP BY a.user_id
),
ranked AS (
    SELECT p.*, row_number() OVER (
               PARTITION BY p.user_id
               ORDER BY p.priority DESC, p.created_at, p.project_id, p.kind, p.meeting_id,
                        p.lead_days) AS r
    FROM pending AS p
)
SELECT r.user_id, r.project_id, r.kind, r.meeting_id, r.lead_days, r.priority,
       u.used + r.r AS slot
FROM ranked AS r
JOIN used AS u ON u.user_id = r.user_id
ORDER BY r.user_id, r.r
