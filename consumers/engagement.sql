-- The engagement worker's batch: what people did with what the loop sent them, set-wise.
-- Parameters: parallel arrays, one item per event: %(ids)s uuid[], %(users)s int8[],
--   %(kinds)s text[] (opened, clicked, participated, dismissed, unsubscribed),
--   %(projects)s int8[] (null for opens and unsubscribes), %(notifications)s text[],
--   %(at)s timestamptz[] (occurred_at).
-- Writes: engagement_event (partitioned by month; an event already there is not counted
--   again), engagement (clicks and participations, counted up: what the recommender trains
--   on), recommendation_feedback (dismissals: 'not_interested').
-- Events of users that no longer exist (erased) are left out.
-- Output: one row, (events written, engagement rows touched, dismissals written).
-- Indexes: pk_app_user, pk_engagement_event, pk_engagement, uq_recommendation_feedback_user_id.
WITH given AS (
    SELECT g.*
      FROM unnest(%(ids)s::uuid[], %(users)s::int8[], %(kinds)s::text[], %(projects)s::int8[],
                  %(notifications)s::text[], %(at)s::timestamptz[])
           AS g(event_id, user_id, kind, project_id, notification, occurred_at)
     WHERE EXISTS (SELECT 1 FROM app_user AS u WHERE u.id = g.user_id)
),
written AS (
    INSERT INTO engagement_event (event_id, user_id, kind, project_id, notification, occurred_at)
    SELECT event_id, user_id, kind, project_id, notification, occurred_at FROM given
    ON CONFLICT DO NOTHING
    RETURNING user_id, kind, project_id, occurred_at
),
counted AS (
    INSERT INTO engagement AS e (user_id, project_id, kind, first_at, last_at, count)
    SELECT user_id, project_id,
           CASE kind WHEN 'clicked' THEN 'click' ELSE 'participation' END,
           min(occurred_at), max(occurred_at), count(*)
      FROM written
     WHERE kind IN ('clicked', 'participated')
     GROUP BY 1, 2, 3
    ON CONFLICT (user_id, project_id, kind) DO UPDATE
       SET count = e.count + excluded.count,
           first_at = least(e.first_at, excluded.first_at),
           last_at = greatest(e.last_at, excluded.last_at)
    RETURNING 1
),
dismissed AS (
    INSERT INTO recommendation_feedback (user_id, kind, project_id)
    SELECT DISTINCT user_id, 'not_interested', project_id FROM written WHERE kind = 'dismissed'
    ON CONFLICT (user_id, kind, project_id, theme) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM written), (SELECT count(*) FROM counted),
       (SELECT count(*) FROM dismissed)
