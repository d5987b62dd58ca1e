-- What concerns many communes, one row per commune with its candidates packed in byte strings
-- for geo_engine/audience.py (a few million rows cross as 35,000: a row costs the client far
-- more than its bytes).
-- Parameters: %(levels)s the LEVELS words (text[]); %(communes)s the INSEE codes (text[]);
-- %(lon)s, %(lat)s the home point (degrees) or NULL; %(viewer)s app_user.id or NULL.
-- Output, per commune asked that something concerns (NULL: the national projects, which
-- concern them all): commune_code; project_ids, big-endian int8 each; levels, big-endian int2
-- each (0-based index into the words); distances, big-endian float8 each (NaN when none).
-- The three aggregates read each group's rows in one pass, so their n-th items belong together.
-- Indexes: those of project_candidates (migrations/sql/0003_candidates.sql).
SELECT k.commune_code,
       string_agg(int8send(k.project_id), ''::bytea),
       string_agg(int2send((array_position(%(levels)s::text[], k.level) - 1)::int2), ''::bytea),
       string_agg(float8send(coalesce(k.distance_m, 'NaN')), ''::bytea)
FROM project_candidates(
    %(communes)s::text[], ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), %(viewer)s
) AS k
GROUP BY k.commune_code
