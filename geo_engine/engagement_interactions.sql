-- Every engagement since a time, for training and the co-participation model, streamed by
-- COPY in binary (millions of rows: no per-row client cost, read in chunks by numpy).
-- Parameters: %(since)s timestamptz or NULL (everything), bound client-side by psycopg (COPY
--   takes no server-side parameters).
-- Output, COPY binary rows of three NOT NULL columns: user_id int8, project_id int8,
--   kind int2 (0 participation, 1 click: contracts.engagement.EngagementKind's order).
-- Index: none, on purpose: training reads the whole table (a sequential scan); a since
--   filter only trims what crosses.
COPY (
    SELECT e.user_id, e.project_id, (CASE e.kind WHEN 'participation' THEN 0 ELSE 1 END)::int2
    FROM engagement AS e
    WHERE %(since)s::timestamptz IS NULL OR e.last_at >= %(since)s::timestamptz
) TO STDOUT (FORMAT BINARY)
