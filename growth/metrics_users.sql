-- One row per user of the population with their outcomes (a temporary table).
-- Parameters: %(since)s, %(until)s timestamptz. Reads growth_people, growth_event,
--   growth_click, growth_mail; mail_delivery for opens of mails sent before the start.
-- Output (growth_user): user_id, variant, unit, entered_at, created_at, commune_code;
--   sent, alerts, digests, opened, clicked, participated: their mails (growth_mail) and how
--   many were opened, clicked, led to a participation;
--   participated_at: their first participation that followed a click (from a mail or the
--   inbox) within 7 days, the click at or after start_at;
--   engaged: a click or a participation at or after start_at;
--   unsubscribed_at: their first unsubscribe at or after start_at;
--   any_participated_at: their first participation at or after start_at, with or without a
--   click (what a holdout, which gets no mail, is compared on);
--   returned_7d / returned_30d: any open, click or participation in (entered_at, entered_at +
--   7 / 30 days], NULL when that window is not wholly in [since, until) (not observed);
--   signup_7d / signup_30d: the same from the sign-up (created_at), for the cohorts.
-- Indexes: ix_mail_delivery_user_id.
CREATE TEMP TABLE growth_user ON COMMIT DROP AS
WITH mails AS (
    SELECT user_id, count(*) AS sent,
           count(*) FILTER (WHERE kind = 'alert') AS alerts,
           count(*) FILTER (WHERE kind = 'digest') AS digests,
           count(opened_at) AS opened, count(clicked_at) AS clicked,
           count(participated_at) AS participated
    FROM growth_mail
    GROUP BY user_id
),
followed AS (
    SELECT user_id, min(participated_at) AS participated_at
    FROM growth_click
    GROUP BY user_id
),
acts AS (
    SELECT e.user_id,
           bool_or(e.kind IN ('clicked', 'participated')) AS engaged,
           min(e.occurred_at) FILTER (WHERE e.kind = 'unsubscribed') AS unsubscribed_at,
           min(e.occurred_at) FILTER (WHERE e.kind = 'participated') AS any_participated_at
    FROM growth_event AS e
    JOIN growth_people AS p ON p.user_id = e.user_id AND e.occurred_at >= p.start_at
    GROUP BY e.user_id
),
activity AS (
    SELECT user_id, occurred_at AS at
    FROM growth_event
    WHERE kind IN ('opened', 'clicked', 'participated')
    UNION ALL
    SELECT m.user_id, m.opened_at
    FROM mail_delivery AS m
    JOIN growth_people AS p ON p.user_id = m.user_id
    WHERE m.opened_at >= %(since)s AND m.opened_at < %(until)s
),
back AS (
    SELECT a.user_id,
           bool_or(a.at > p.entered_at AND a.at <= p.entered_at + interval '7 days') AS b7,
           bool_or(a.at > p.entered_at AND a.at <= p.entered_at + interval '30 days') AS b30,
           bool_or(a.at > p.created_at AND a.at <= p.created_at + interval '7 days') AS s7,
           bool_or(a.at > p.created_at AND a.at <= p.created_at + interval '30 days') AS s30
    FROM activity AS a
    JOIN growth_people AS p ON p.user_id = a.user_id
    GROUP BY a.user_id
)
SELECT p.user_id, p.variant, p.unit, p.entered_at, p.created_at, p.commune_code,
       coalesce(m.sent, 0) AS sent, coalesce(m.alerts, 0) AS alerts,
       coalesce(m.digests, 0) AS digests, coalesce(m.opened, 0) AS opened,
       coalesce(m.clicked, 0) AS clicked, coalesce(m.participated, 0) AS participated,
       f.participated_at,
       coalesce(a.engaged, false) AS engaged,
       a.unsubscribed_at, a.any_participated_at,
       CASE WHEN p.entered_at >= %(since)s AND p.entered_at + interval '7 days' <= %(until)s
            THEN coalesce(b.b7, false) END AS returned_7d,
       CASE WHEN p.entered_at >= %(since)s AND p.entered_at + interval '30 days' <= %(until)s
            THEN coalesce(b.b30, false) END AS returned_30d,
       CASE WHEN p.created_at >= %(since)s AND p.created_at + interval '7 days' <= %(until)s
            THEN coalesce(b.s7, false) END AS signup_7d,
       CASE WHEN p.created_at >= %(since)s AND p.created_at + interval '30 days' <= %(until)s
            THEN coalesce(b.s30, false) END AS signup_30d
FROM growth_people AS p
LEFT JOIN mails AS m ON m.user_id = p.user_id
LEFT JOIN followed AS f ON f.user_id = p.user_id
LEFT JOIN acts AS a ON a.user_id = p.user_id
LEFT JOIN back AS b ON b.user_id = p.user_id
