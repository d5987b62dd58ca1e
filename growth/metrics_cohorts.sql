-- Sign-up cohorts: users who signed up in [since, until), by the ISO week (Monday, Europe/
-- Paris) of their sign-up, per variant, and how many came back (an open, a click or a
-- participation) within 7 and 30 days of signing up (growth_user.signup_7d/_30d; users whose
-- window is not over by %(until)s are left out of that denominator).
-- Parameters: %(since)s, %(until)s timestamptz. Reads growth_user.
-- Output: cohort (date, a Monday), variant, users, return_7d_num, return_7d_den,
--   return_30d_num, return_30d_den.
SELECT (date_trunc('week', created_at AT TIME ZONE 'Europe/Paris'))::date AS cohort, variant,
       count(*) AS users,
       count(*) FILTER (WHERE signup_7d) AS return_7d_num, count(signup_7d) AS return_7d_den,
       count(*) FILTER (WHERE signup_30d) AS return_30d_num, count(signup_30d) AS return_30d_den
FROM growth_user
WHERE created_at >= %(since)s AND created_at < %(until)s
GROUP BY cohort, variant
ORDER BY cohort, variant
