-- What concerns many communes, one row per commune and level with the project ids packed in
-- one byte string, for geo_engine/audience.py: a few million rows cross as about 100,000 (a row
-- costs the client about 2.5 µs whatever its size).
-- Parameters: %(communes)s the INSEE codes (text[]); %(lon)s, %(lat)s the home point (degrees)
-- or NULL; %(viewer)s app_user.id or NULL.
-- Output, per commune asked and level (commune NULL: the national projects, which concern
-- them all): commune_code; level (the word); project_ids, big-endian int8 each (int8send);
-- distances, big-endian float8 each (NaN when none), only with a home point (else NULL). The
-- aggregates read each group's rows in one pass, so their n-th items belong together.
-- Indexes: those of project_candidates (migrations/sql/0003_candidates.sql).
SELECT k.commune_code, k.level,
       string_agg(int8send(k.project_id), ''::bytea),
       string_agg(float8send(coalesce(k.distance_m, 'NaN')), ''::bytea)
           FILTER (WHERE %(lon)s::float8 IS NOT NULL)
FROM project_candidates(
    %(communes)s::text[], ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), %(viewer)s
) AS k
GROUP BY k.commune_code, k.level
