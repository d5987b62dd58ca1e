-- The map's projects in two layers, so that public tiles can be cached and shared
-- (api/tile_cache.py) while a member's private projects never are:
--   projects_tile(z, x, y, NULL)       the public tile, the same for everyone (0002_tiles.sql);
--   private_projects_tile(z, x, y, viewer)  only the private projects `viewer` may see
--                                       (visible_projects), never cached (api/routes/tiles.py).
-- STABLE, never IMMUTABLE: they read tables, and an IMMUTABLE tile would be cached stale.

-- private_projects_tile(z, x, y, viewer) -> bytea
-- The layers of projects_tile ("projects", "project_clusters", from zoom 14 "contributions"),
-- with the same columns and the same 64 x 64 grid below zoom 16, over the private projects of
-- the viewer's organisations and their contributions only. NULL viewer: an empty tile.
-- Relies on idx_project_place_3857 and idx_contribution_geom_3857 (GiST, Web Mercator).
CREATE FUNCTION private_projects_tile(z integer, x integer, y integer, viewer bigint)
RETURNS bytea
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    env geometry := ST_TileEnvelope(z, x, y);
    x0 float8 := ST_XMin(env);
    y0 float8 := ST_YMin(env);
    cell float8 := (ST_XMax(env) - ST_XMin(env)) / 64;
    grouped boolean := z < 16;
    mvt bytea;
    extra bytea;
BEGIN
    WITH cells AS (
        SELECT count(*) AS n, min(p.id) AS id,
               avg(ST_X(p.place_3857)) AS mx, avg(ST_Y(p.place_3857)) AS my
        FROM visible_projects(viewer) AS p
        WHERE p.place_3857 && env AND p.visibility = 'private'
        GROUP BY CASE WHEN grouped THEN floor((ST_X(p.place_3857) - x0) / cell) ELSE p.id END,
                 CASE WHEN grouped THEN floor((ST_Y(p.place_3857) - y0) / cell) END
    )
    SELECT coalesce((
        SELECT ST_AsMVT(t, 'project_clusters', 4096, 'geom') FROM (
            SELECT c.n::integer AS count,
                   ST_AsMVTGeom(ST_SetSRID(ST_MakePoint(c.mx, c.my), 3857), env, 4096, 64, true)
                       AS geom
            FROM cells AS c WHERE c.n > 1
        ) AS t), '') || coalesce((
        SELECT ST_AsMVT(t, 'projects', 4096, 'geom') FROM (
            SELECT p.id, p.title, p.tool, p.space, p.status, o.name AS organisation,
                   to_char(p.opens_at AT TIME ZONE 'Europe/Paris', 'YYYY-MM-DD') AS opens_at,
                   to_char(p.closes_at AT TIME ZONE 'Europe/Paris', 'YYYY-MM-DD') AS closes_at,
                   ST_AsMVTGeom(p.place_3857, env, 4096, 64, true) AS geom
            FROM cells AS c
            JOIN visible_projects(viewer) AS p ON p.id = c.id
            JOIN organisation AS o ON o.id = p.organisation_id
            WHERE c.n = 1
        ) AS t), '')
    INTO mvt;
    IF z >= 14 THEN
        WITH cells AS (
            SELECT count(*) AS n, min(c.id) AS id
            FROM contribution AS c
            JOIN visible_projects(viewer) AS p ON p.id = c.project_id
            WHERE c.geom_3857 && env AND p.visibility = 'private'
            GROUP BY CASE WHEN grouped THEN floor((ST_X(c.geom_3857) - x0) / cell) ELSE c.id END,
                     CASE WHEN grouped THEN floor((ST_Y(c.geom_3857) - y0) / cell) END
        )
        SELECT ST_AsMVT(t, 'contributions', 4096, 'geom') INTO extra FROM (
            SELECT c.id, c.project_id, c.category, c.title, cells.n::integer AS count,
                   ST_AsMVTGeom(c.geom_3857, env, 4096, 64, true) AS geom
            FROM cells JOIN contribution AS c ON c.id = cells.id
        ) AS t;
    END IF;
    RETURN mvt || coalesce(extra, '');
END
$$;

-- Where the tiles consumer group (consumers/tiles.py) last saw each project and contribution
-- (Web Mercator): an event carries ids only, so the old place of a moved or hidden one, whose
-- tiles must be dropped, is read here. Seeded with every place at migration time.
CREATE TABLE tile_place (
    kind  text     NOT NULL CHECK (kind IN ('project', 'contribution')),
    id    bigint   NOT NULL,
    place geometry(Point, 3857) NOT NULL,
    CONSTRAINT pk_tile_place PRIMARY KEY (kind, id)
);
INSERT INTO tile_place (kind, id, place)
SELECT 'project', p.id, p.place_3857 FROM project AS p WHERE p.place_3857 IS NOT NULL
UNION ALL
SELECT 'contribution', c.id, c.geom_3857 FROM contribution AS c WHERE c.geom_3857 IS NOT NULL;
