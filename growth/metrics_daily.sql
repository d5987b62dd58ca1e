-- The funnel per variant and local day (Europe/Paris): mails sent that day, mails first opened,
-- first clicked, first leading to a participation that day (growth_mail), users first
-- unsubscribing that day. Summed over days, each column is the variant's funnel.
-- Parameters: none. Reads growth_mail, growth_user.
-- Output: variant, day (date), sent, opened, clicked, participated, unsubscribed; days with
--   nothing are absent.
WITH happened AS (
    SELECT user_id, 'sent' AS what, sent_at AS at FROM growth_mail
    UNION ALL
    SELECT user_id, 'opened', opened_at FROM growth_mail WHERE opened_at IS NOT NULL
    UNION ALL
    SELECT user_id, 'clicked', clicked_at FROM growth_mail WHERE clicked_at IS NOT NULL
    UNION ALL
    SELECT user_id, 'participated', participated_at
    FROM growth_mail WHERE participated_at IS NOT NULL
    UNION ALL
    SELECT user_id, 'unsubscribed', unsubscribed_at
    FROM growth_user WHERE unsubscribed_at IS NOT NULL
)
SELECT u.variant, (h.at AT TIME ZONE 'Europe/Paris')::date AS day,
       count(*) FILTER (WHERE h.what = 'sent') AS sent,
       count(*) FILTER (WHERE h.what = 'opened') AS opened,
       count(*) FILTER (WHERE h.what = 'clicked') AS clicked,
       count(*) FILTER (WHERE h.what = 'participated') AS participated,
       count(*) FILTER (WHERE h.what = 'unsubscribed') AS unsubscribed
FROM happened AS h
JOIN growth_user AS u ON u.user_id = h.user_id
GROUP BY day, u.variant
ORDER BY day, u.variant
