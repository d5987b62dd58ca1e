-- Inbox rows as a mail shows them, read for their recipient through the visibility rule at
-- render time (a project made private since fan-out comes back with visible = false).
-- Parameters: parallel arrays naming inbox rows: %(users)s bigint[], %(projects)s bigint[],
--   %(kinds)s text[], %(meetings)s bigint[], %(leads)s smallint[].
-- Output: user_id, project_id, kind, meeting_id, lead_days, level, priority, relevance,
--   reason, created_at, title, organisation, tool, closes_at, organisation_id, m_kind,
--   m_title, m_place, m_starts_at, m_ends_at (NULL without a meeting), visible.
-- Indexes: pk_inbox, pk_project, pk_organisation, ix_organisation_member_user_id (the
--   membership test of visible_projects, inlined).
SELECT i.user_id, i.project_id, i.kind, i.meeting_id, i.lead_days, i.level, i.priority,
       i.relevance, i.reason, i.created_at, p.title, o.name, p.tool, p.closes_at,
       p.organisation_id, m.kind, m.title, m.place, m.starts_at, m.ends_at,
       EXISTS (SELECT FROM visible_projects(i.user_id) AS v WHERE v.id = i.project_id) AS visible
FROM unnest(%(users)s::bigint[], %(projects)s::bigint[], %(kinds)s::text[],
            %(meetings)s::bigint[], %(leads)s::smallint[])
     AS k(user_id, project_id, kind, meeting_id, lead_days)
JOIN inbox AS i USING (user_id, project_id, kind, meeting_id, lead_days)
JOIN project AS p ON p.id = i.project_id
JOIN organisation AS o ON o.id = p.organisation_id
LEFT JOIN meeting AS m ON m.id = i.meeting_id AND i.meeting_id <> 0 AND m.cancelled_at IS NULL
