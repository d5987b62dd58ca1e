-- Clicks after the user's start and the participation each led to (a temporary table).
-- Parameters: none. Reads growth_people, growth_event.
-- Output (growth_click): user_id, project_id, notification (mail key or NULL: the inbox),
--   clicked_at, participated_at = the first participation of the same user in the same project
--   in [clicked_at, clicked_at + 7 days] (NULL when none: outside the window or never; only
--   participations before the report's end are in growth_event).
-- Indexes: none (hash joins over the period's events).
CREATE TEMP TABLE growth_click ON COMMIT DROP AS
SELECT k.user_id, k.project_id, k.notification, k.occurred_at AS clicked_at,
       min(x.occurred_at) AS participated_at
FROM growth_event AS k
JOIN growth_people AS p ON p.user_id = k.user_id AND k.occurred_at >= p.start_at
LEFT JOIN growth_event AS x
       ON x.kind = 'participated' AND x.user_id = k.user_id AND x.project_id = k.project_id
      AND x.occurred_at >= k.occurred_at AND x.occurred_at <= k.occurred_at + interval '7 days'
WHERE k.kind = 'clicked'
GROUP BY k.user_id, k.project_id, k.notification, k.occurred_at
