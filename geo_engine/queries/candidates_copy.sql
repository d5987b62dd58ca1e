-- What concerns many communes as fixed-width binary COPY records for geo_engine/audience.py.
-- Parameters: %(levels)s the LEVELS words (text[]); %(communes)s the INSEE codes (text[],
-- distinct); %(lon)s, %(lat)s the home point (degrees) or NULL; %(viewer)s app_user.id or NULL.
-- Output: commune int4 (0-based index into the communes; -1 for a national project, which
-- concerns them all), project_id bigint, level smallint (0-based index into the words),
-- distance_m float8 (NaN when none).
-- Indexes: those of project_candidates (migrations/sql/0003_candidates.sql); the communes
-- are numbered by a hash join, never array_position over 35,000 codes per row.
COPY (
    SELECT coalesce(q.i - 1, -1)::int4, k.project_id,
           (array_position(%(levels)s::text[], k.level) - 1)::int2,
           coalesce(k.distance_m, 'NaN')::float8
    FROM project_candidates(
        %(communes)s::text[], ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), %(viewer)s
    ) AS k
    LEFT JOIN unnest(%(communes)s::text[]) WITH ORDINALITY AS q (code, i)
        ON q.code = k.commune_code
) TO STDOUT (FORMAT binary)
