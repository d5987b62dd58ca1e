-- What concerns many communes, one row per commune with its candidates packed in arrays, for
-- geo_engine/audience.py: a few million rows cross as 35,000 (a row costs the client far more
-- than its bytes), each array in PostgreSQL's binary format (array_send) that numpy reads.
-- Parameters: %(levels)s the LEVELS words (text[]); %(communes)s the INSEE codes (text[]);
-- %(lon)s, %(lat)s the home point (degrees) or NULL; %(viewer)s app_user.id or NULL.
-- Output, per commune asked that something concerns (NULL: the national projects, which
-- concern them all): commune_code; project ids (int8[]); levels (int2[], 0-based index into
-- the words); distances (float8[], NaN when none). The three aggregates read each group's rows
-- in one pass, so their n-th items belong together.
-- Indexes: those of project_candidates (migrations/sql/0003_candidates.sql).
SELECT k.commune_code,
       array_send(array_agg(k.project_id)),
       array_send(array_agg((array_position(%(levels)s::text[], k.level) - 1)::int2)),
       array_send(array_agg(coalesce(k.distance_m, 'NaN')))
FROM project_candidates(
    %(communes)s::text[], ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), %(viewer)s
) AS k
GROUP BY k.commune_code
