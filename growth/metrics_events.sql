-- The population's engagement events in the period (a temporary table).
-- Parameters: %(since)s, %(until)s timestamptz. Reads growth_people.
-- Output (growth_event): user_id, kind (opened | clicked | participated | unsubscribed),
--   project_id, notification (the mail's key, NULL for the inbox's links), occurred_at in
--   [since, until). Every later figure reads events from here: returns are only measured for
--   users who entered in the period, so nothing before %(since)s is needed.
-- Indexes: engagement_event's monthly partitions, pruned on occurred_at; ix_engagement_event_
--   user_id when the population is small.
CREATE TEMP TABLE growth_event ON COMMIT DROP AS
SELECT e.user_id, e.kind, e.project_id, e.notification, e.occurred_at
FROM engagement_event AS e
JOIN growth_people AS p ON p.user_id = e.user_id
WHERE e.occurred_at >= %(since)s AND e.occurred_at < %(until)s
  AND e.kind IN ('opened', 'clicked', 'participated', 'unsubscribed')
