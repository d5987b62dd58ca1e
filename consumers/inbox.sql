-- A page of a user's inbox, newest first, read through the visibility rule again.
--
-- Parameters: %(user)s app_user.id (the viewer: the inbox's owner); %(unread)s boolean or NULL
--   (NULL: all items; true: unread only; false: read only); %(limit)s rows;
--   the keyset of the last item of the previous page, NULL for the first page:
--   %(after_created)s timestamptz, %(after_project)s bigint, %(after_kind)s text,
--   %(after_meeting)s bigint, %(after_lead)s smallint.
-- Output: project_id, title, organisation, kind, meeting_id, lead_days, reason, level,
--   created_at, read_at, and the meeting's kind, title, place, starts_at, ends_at,
--   cancelled_at (NULL when the item is about no meeting).
-- Visibility: an item shows only while its project is in visible_projects(user): a project
--   made private after the fan-out disappears from a non-member's inbox.
-- Index: pk_inbox (user_id first): one user's rows, sorted here (an inbox holds hundreds).
SELECT i.project_id, v.title, o.name, i.kind, i.meeting_id, i.lead_days, i.reason, i.level,
       i.created_at, i.read_at, m.kind, m.title, m.place, m.starts_at, m.ends_at, m.cancelled_at
FROM inbox AS i
JOIN visible_projects(%(user)s) AS v ON v.id = i.project_id
JOIN organisation AS o ON o.id = v.organisation_id
LEFT JOIN meeting AS m ON m.id = i.meeting_id AND i.meeting_id <> 0
WHERE i.user_id = %(user)s
  AND (%(unread)s::boolean IS NULL OR (i.read_at IS NULL) = %(unread)s::boolean)
  AND (%(after_created)s::timestamptz IS NULL
       OR (i.created_at, i.project_id, i.kind, i.meeting_id, i.lead_days)
          < (%(after_created)s::timestamptz, %(after_project)s::bigint, %(after_kind)s::text,
             %(after_meeting)s::bigint, %(after_lead)s::smallint))
ORDER BY i.created_at DESC, i.project_id DESC, i.kind DESC, i.meeting_id DESC,
         i.lead_days DESC
LIMIT %(limit)s
