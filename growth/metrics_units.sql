-- The outcomes summed per variant and randomised unit: the input of the per-variant figures
-- and of the cluster-level statistics (growth/stats.py).
-- Parameters: none. Reads growth_user.
-- Output: variant, unit, users, sent, alerts, digests, opened, clicked, participated (mails);
--   participants (users with a participation after a click), any_participants (with any
--   participation), unsubscribers, engaged;
--   return_7d_num, return_7d_den, return_30d_num, return_30d_den (users observed over the
--   window, and those who came back). With no experiment, one row ('tous', '').
SELECT variant, unit, count(*) AS users,
       sum(sent) AS sent, sum(alerts) AS alerts, sum(digests) AS digests,
       sum(opened) AS opened, sum(clicked) AS clicked, sum(participated) AS participated,
       count(participated_at) AS participants,
       count(any_participated_at) AS any_participants,
       count(unsubscribed_at) AS unsubscribers,
       count(*) FILTER (WHERE engaged) AS engaged,
       count(*) FILTER (WHERE returned_7d) AS return_7d_num,
       count(returned_7d) AS return_7d_den,
       count(*) FILTER (WHERE returned_30d) AS return_30d_num,
       count(returned_30d) AS return_30d_den
FROM growth_user
GROUP BY variant, unit
ORDER BY variant, unit
