-- Popularity: how many distinct users took part in each project asked.
-- Parameters: %(projects)s int8[] project ids (any order, repeats and unknown ids allowed).
-- Output, one row: participants, a byte string of big-endian int8, the n-th the count of the
--   n-th id asked (0 for an unknown id or a project nobody took part in).
-- Index: ix_engagement_project_id (project_id, kind): one index range per id, the count read
--   from the index (engagement's key holds one row per user, project and kind, so the rows
--   of a project's participation are its distinct participants).
SELECT string_agg(int8send(n.participants), ''::bytea ORDER BY n.i)
FROM (
    SELECT a.i, (
        SELECT count(*) FROM engagement AS e
        WHERE e.project_id = a.id AND e.kind = 'participation'
    ) AS participants
    FROM unnest(%(projects)s::int8[]) WITH ORDINALITY AS a(id, i)
) AS n
