-- The audience of a project as fixed-width binary COPY records for geo_engine/audience.py.
-- Parameters: %(levels)s the LEVELS words (text[]), %(project)s project.id.
-- Output: user_id bigint, level smallint (0-based index into the words).
-- Indexes: those of project_audience (migrations/sql/0003_audience.sql); the level lookup
-- is array_position on an 8-element array.
COPY (
    SELECT a.user_id, (array_position(%(levels)s::text[], a.level) - 1)::int2
    FROM project_audience(%(project)s) AS a
) TO STDOUT (FORMAT binary)
