-- The mails sent to the population after its start, and what became of each (a temporary
-- table).
-- Parameters: %(until)s timestamptz. Reads growth_people, growth_event, growth_click.
-- Output (growth_mail): user_id, key, kind (alert | digest), sent_at in [start_at, until);
--   opened_at = the first sign it was opened before %(until)s: its open pixel
--   (mail_delivery.opened_at), a notification.opened event, or a click on one of its links (a
--   click proves the opening when images are blocked); clicked_at = its first link followed by
--   a person; participated_at = the first participation that followed one of its clicks within
--   7 days (growth_click).
-- Indexes: ix_mail_delivery_user_id (user_id, claimed_at).
CREATE TEMP TABLE growth_mail ON COMMIT DROP AS
SELECT m.user_id, m.key, m.kind, m.sent_at,
       least(CASE WHEN m.opened_at < %(until)s THEN m.opened_at END, o.opened_at, c.clicked_at)
           AS opened_at,
       c.clicked_at, c.participated_at
FROM growth_people AS p
JOIN mail_delivery AS m
  ON m.user_id = p.user_id AND m.sent_at >= p.start_at AND m.sent_at < %(until)s
LEFT JOIN (
    SELECT user_id, notification, min(occurred_at) AS opened_at
    FROM growth_event
    WHERE kind = 'opened' AND notification IS NOT NULL
    GROUP BY user_id, notification
) AS o ON o.user_id = m.user_id AND o.notification = m.key
LEFT JOIN (
    SELECT user_id, notification, min(clicked_at) AS clicked_at,
           min(participated_at) AS participated_at
    FROM growth_click
    WHERE notification IS NOT NULL
    GROUP BY user_id, notification
) AS c ON c.user_id = m.user_id AND c.notification = m.key
