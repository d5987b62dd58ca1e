-- Users whose digest of the period is due at %(at)s, not yet claimed, and who have something
-- new: at least one undelivered inbox row created by then (for instant users, only rows the
-- alert budget overflowed) and after their last held-out digest (an experiment's holdout
-- leaves its rows undelivered: they are not new again, so a holdout is due exactly when a
-- digest would have had something new).
-- Parameters: %(at)s timestamptz; %(frequency)s text ('daily' | 'weekly'), the digest;
--   %(wanted)s text[], the notification frequencies it serves (daily: {daily, instant},
--   weekly: {weekly}); the schedule, parallel arrays computed per zone by consumers/periods.py
--   (DST resolved there): %(zones)s text[], %(weekdays)s text[], %(starts)s date[] (the local
--   period containing %(at)s), %(dues)s timestamptz[] (when its digest is due, on that weekday).
--   %(shards)s int, %(shard)s int: this round takes the users with id %% shards = shard (N
--   processes share a round, one shard each; 1 and 0 for all).
-- Output: user_id, period_start.
-- Indexes: pk_user_place, pk_commune, pk_digest, ix_digest_held_out (partial: held-out periods
--   only), pk_inbox (user_id first).
WITH schedule AS (
    SELECT s.zone, s.weekday, s.period_start
    FROM unnest(%(zones)s::text[], %(weekdays)s::text[], %(starts)s::date[],
                %(dues)s::timestamptz[]) AS s(zone, weekday, period_start, due)
    WHERE s.due <= %(at)s
)
SELECT u.id, s.period_start
FROM app_user AS u
LEFT JOIN user_place AS p ON p.user_id = u.id
LEFT JOIN commune AS c ON c.code = p.commune_code
JOIN schedule AS s
  ON s.zone = coalesce(u.timezone, c.timezone, 'Europe/Paris')
 AND s.weekday = coalesce(u.notifications ->> 'digest_weekday', 'monday')
CROSS JOIN LATERAL (
    SELECT coalesce(max(h.claimed_at), '-infinity') AS since
    FROM digest AS h
    WHERE h.user_id = u.id AND h.frequency = %(frequency)s AND h.held_out
) AS held
WHERE u.id %% %(shards)s = %(shard)s
  AND u.notifications ->> 'frequency' = ANY(%(wanted)s)
  AND coalesce((u.notifications ->> 'email')::boolean, true)
  AND NOT EXISTS (SELECT FROM digest AS d WHERE d.user_id = u.id
                    AND d.frequency = %(frequency)s AND d.period_start = s.period_start)
  AND EXISTS (SELECT FROM inbox AS i WHERE i.user_id = u.id AND i.alerted_at IS NULL
                AND i.digest_period IS NULL AND i.created_at <= %(at)s
                AND i.created_at > held.since
                AND (u.notifications ->> 'frequency' <> 'instant' OR i.overflow_at IS NOT NULL))
