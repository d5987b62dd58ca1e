-- How many unread items a user may still see.
-- Parameter: %(user)s app_user.id. Output: one count.
-- Visibility: visible_projects(user), as the page (consumers/inbox.sql).
-- Index: pk_inbox (user_id first).
SELECT count(*)
FROM inbox AS i
JOIN visible_projects(%(user)s) AS v ON v.id = i.project_id
WHERE i.user_id = %(user)s AND i.read_at IS NULL
