-- The map's meetings: those placed in a box, not over and not cancelled, whose project the
-- viewer may see (visible_projects: a private project's meetings reach its members only).
-- Parameters: %(minlon)s %(minlat)s %(maxlon)s %(maxlat)s (WGS84 degrees), %(since)s
-- (timestamptz: meetings ending before are over), %(viewer)s (app_user.id or NULL),
-- %(limit)s.
-- Output: the columns of geo_engine.meetings.VIEW_COLUMNS, soonest first.
-- Indexes: ix_meeting_location (GiST, the box), ix_meeting_starts_at (partial, not cancelled).
SELECT m.id, m.project_id, p.title, m.kind, m.title, m.place, ST_X(m.location),
       ST_Y(m.location), m.starts_at, m.ends_at, m.cancelled_at
FROM meeting AS m
JOIN visible_projects(%(viewer)s) AS p ON p.id = m.project_id
WHERE m.location && ST_MakeEnvelope(%(minlon)s, %(minlat)s, %(maxlon)s, %(maxlat)s, 4326)
  AND m.cancelled_at IS NULL
  AND m.ends_at >= %(since)s
ORDER BY m.starts_at, m.id
LIMIT %(limit)s
