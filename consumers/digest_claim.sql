-- Claim the digests of a round and give each its items, in one statement (one transaction):
-- an item is in exactly one digest, a user has at most one digest per frequency and period.
-- Parameters: %(frequency)s text; %(at)s timestamptz (the round's instant, claimed_at and the
--   items' cut-off); %(users)s bigint[], %(starts)s date[], %(held)s boolean[]: the due users,
--   their periods (digest_due.sql) and whether an experiment holds them out (their period is
--   claimed held_out: no items, never sent; their rows stay undelivered, in the in-app inbox).
-- Output: user_id, period_start, held_out, items (rows assigned; 0 for a holdout, or when
--   another round or alert took them in between).
-- Indexes: pk_digest (ON CONFLICT), pk_inbox (user_id first).
WITH claimed AS (
    INSERT INTO digest (user_id, frequency, period_start, claimed_at, held_out)
    SELECT d.user_id, %(frequency)s, d.period_start, %(at)s, d.held_out
    FROM unnest(%(users)s::bigint[], %(starts)s::date[], %(held)s::boolean[])
         AS d(user_id, period_start, held_out)
    ON CONFLICT DO NOTHING
    RETURNING user_id, period_start, held_out
),
assigned AS (
    UPDATE inbox AS i
       SET digest_frequency = %(frequency)s, digest_period = c.period_start
      FROM claimed AS c
      JOIN app_user AS u ON u.id = c.user_id
     WHERE NOT c.held_out
       AND i.user_id = c.user_id AND i.alerted_at IS NULL AND i.digest_period IS NULL
       AND i.created_at <= %(at)s
       AND (u.notifications ->> 'frequency' <> 'instant' OR i.overflow_at IS NOT NULL)
    RETURNING i.user_id
)
SELECT c.user_id, c.period_start, c.held_out, count(a.user_id)::int
FROM claimed AS c
LEFT JOIN assigned AS a ON a.user_id = c.user_id
GROUP BY c.user_id, c.period_start, c.held_out
