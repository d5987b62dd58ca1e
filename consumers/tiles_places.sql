-- The places whose tiles a batch of events makes stale, and tile_place brought up to date.
-- Parameters: %(projects)s bigint[] (projects written, moved, made public or private),
--   %(organisations)s bigint[] (organisations renamed: the tiles name them),
--   %(hidden)s bigint[] (projects whose visibility changed: their contributions too),
--   %(contributions)s bigint[] (contributions written).
-- Output: kind ('project' | 'contribution'), x, y (Web Mercator metres): the place each had
--   when last seen (tile_place) and the place it has now, both; a deleted one only the first.
-- Relies on pk_tile_place, the primary keys of project and contribution, and
--   ix_project_organisation_id / ix_contribution_project_id (ids of a few organisations or
--   projects).
WITH asked AS (
    SELECT 'project'::text AS kind, p.id FROM unnest(%(projects)s::bigint[]) AS p(id)
    UNION
    SELECT 'project', p.id FROM project AS p WHERE p.organisation_id = ANY(%(organisations)s)
    UNION
    SELECT 'contribution', c.id FROM unnest(%(contributions)s::bigint[]) AS c(id)
    UNION
    SELECT 'contribution', c.id FROM contribution AS c WHERE c.project_id = ANY(%(hidden)s)
),
now_at AS (
    SELECT a.kind, a.id, coalesce(p.place_3857, c.geom_3857) AS place
    FROM asked AS a
    LEFT JOIN project AS p ON a.kind = 'project' AND p.id = a.id
    LEFT JOIN contribution AS c ON a.kind = 'contribution' AND c.id = a.id
),
before AS (
    SELECT t.kind, t.id, t.place FROM tile_place AS t JOIN asked AS a USING (kind, id)
),
gone AS (
    DELETE FROM tile_place AS t USING now_at AS n
    WHERE t.kind = n.kind AND t.id = n.id AND n.place IS NULL
),
kept AS (
    INSERT INTO tile_place (kind, id, place)
    SELECT n.kind, n.id, n.place FROM now_at AS n WHERE n.place IS NOT NULL
    ON CONFLICT (kind, id) DO UPDATE SET place = excluded.place
)
SELECT kind, ST_X(place), ST_Y(place) FROM before
UNION
SELECT kind, ST_X(place), ST_Y(place) FROM now_at WHERE place IS NOT NULL
