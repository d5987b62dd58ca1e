-- Mark a user's items read: those listed (parallel arrays), or all of them.
-- Parameters: %(user)s app_user.id; %(all)s boolean; %(projects)s bigint[], %(kinds)s text[],
--   %(meetings)s bigint[], %(leads)s smallint[] the keys (ignored when all).
-- Output: one count, the items marked now (unread before, visible to the user).
-- Visibility: visible_projects(user): an item the user may no longer see is not touched.
-- Index: pk_inbox (user_id, project_id, kind, meeting_id, lead_days).
WITH marked AS (
    UPDATE inbox AS i
       SET read_at = now()
     WHERE i.user_id = %(user)s
       AND i.read_at IS NULL
       AND EXISTS (SELECT FROM visible_projects(%(user)s) AS v WHERE v.id = i.project_id)
       AND (%(all)s::boolean
            OR (i.project_id, i.kind, i.meeting_id, i.lead_days) IN (
                   SELECT * FROM unnest(%(projects)s::bigint[], %(kinds)s::text[],
                                        %(meetings)s::bigint[], %(leads)s::smallint[])))
    RETURNING 1
)
SELECT count(*) FROM marked
