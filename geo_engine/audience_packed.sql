-- The audience of a project, one row per commune and level with the users' ids packed in one
-- byte string, for geo_engine/audience.py: millions of users cross as at most a few tens of
-- thousands of rows (a row costs the client about 2.5 µs whatever its size).
-- Parameter: %(project)s project.id.
-- Output: commune_code; level (the word); user_ids, big-endian int8 each (int8send).
-- Indexes: those of project_audience (migrations/sql/0003_audience.sql). The grouping is a
-- hash on (commune, level): PostgreSQL holds 8 bytes per user until the last row (spilling to
-- disk past work_mem). string_agg of int8send costs a third of array_agg + array_send, and a
-- level per group instead of per user saves another second for five million users.
SELECT a.commune_code, a.level, string_agg(int8send(a.user_id), ''::bytea)
FROM project_audience(%(project)s) AS a
GROUP BY a.commune_code, a.level
