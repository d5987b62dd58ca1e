-- Map layers as functions of z, x, y returning Mapbox Vector Tiles (ST_AsMVT), the engine's own
-- base map: the participatory map needs no outside tile server.
-- STABLE, never IMMUTABLE: they read tables, and an IMMUTABLE tile would be cached stale.
-- Each filters with && on ST_TileEnvelope in the layer's SRID, so its GiST index is used.

-- Outlines in Web Mercator, simplified once (about one tile pixel at the zooms that show them),
-- so that a low-zoom tile does not simplify thousands of outlines on every request.
-- Refreshed by `geo-engine geo load` when the territories change.
CREATE MATERIALIZED VIEW commune_tile AS
SELECT c.code, c.name, c.departement_code, c.population,
       ST_Transform(c.geom, 3857) AS geom,
       ST_SimplifyPreserveTopology(ST_Transform(c.geom, 3857), 38) AS geom_simple,
       ST_SimplifyPreserveTopology(ST_Transform(c.geom, 3857), 150) AS geom_coarse
FROM commune AS c
WHERE c.geom IS NOT NULL;
CREATE UNIQUE INDEX ix_commune_tile_code ON commune_tile (code);
CREATE INDEX ix_commune_tile_geom ON commune_tile USING gist (geom);

CREATE MATERIALIZED VIEW departement_tile AS
SELECT d.code, d.name,
       ST_SimplifyPreserveTopology(ST_Transform(d.geom, 3857), 300) AS geom,
       ST_SimplifyPreserveTopology(ST_Transform(d.geom, 3857), 1200) AS geom_coarse
FROM departement AS d
WHERE d.geom IS NOT NULL;
CREATE UNIQUE INDEX ix_departement_tile_code ON departement_tile (code);
CREATE INDEX ix_departement_tile_geom ON departement_tile USING gist (geom);

-- communes_tile(z, x, y) -> bytea
-- z < 9: layer "departements" (code, name); z >= 9: layer "communes" (code, name, population);
-- at zoom 8 a commune is a few screen pixels wide, and drawing 1,500 of them took 25 ms.
-- Outlines are simplified to under a screen pixel (a 512-pixel tile): 1,200 m below z 6,
-- 300 m at z 6-8, 150 m at z 9, 38 m at z 10-11, full from z 12.
-- Relies on ix_departement_tile_geom and ix_commune_tile_geom.
CREATE FUNCTION communes_tile(z integer, x integer, y integer) RETURNS bytea
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    env geometry := ST_TileEnvelope(z, x, y);
    mvt bytea;
BEGIN
    IF z < 9 THEN
        SELECT ST_AsMVT(t, 'departements', 4096, 'geom') INTO mvt FROM (
            SELECT d.code, d.name,
                   ST_AsMVTGeom(CASE WHEN z < 6 THEN d.geom_coarse ELSE d.geom END,
                                env, 4096, 64, true) AS geom
            FROM departement_tile AS d
            WHERE d.geom && env
        ) AS t;
    ELSE
        SELECT ST_AsMVT(t, 'communes', 4096, 'geom') INTO mvt FROM (
            SELECT c.code, c.name, c.population,
                   ST_AsMVTGeom(CASE WHEN z <= 9 THEN c.geom_coarse
                                     WHEN z <= 11 THEN c.geom_simple ELSE c.geom END,
                                env, 4096, 64, true) AS geom
            FROM commune_tile AS c
            WHERE c.geom && env
        ) AS t;
    END IF;
    RETURN mvt;
END
$$;

-- projects_tile(z, x, y, viewer) -> bytea, only what `viewer` may see (visible_projects).
-- The tile is cut into a 64 x 64 grid (below zoom 16): a cell holding one project gives that
-- project, a cell holding several gives one cluster with their count, so no tile carries more
-- than 4,096 features however dense the city or low the zoom. Layers:
--   "projects" (id, title, tool, space, status, organisation, opens_at, closes_at),
--   "project_clusters" (count),
--   from zoom 14 "contributions" (id, project_id, category, title, count: one per cell, count
--   being how many share the cell).
-- Points are taken inside the tile only (no margin), so none is drawn or counted twice.
-- Relies on idx_project_place_3857 and idx_contribution_geom_3857 (GiST, Web Mercator, the
-- tiles' own SRID: nothing is transformed per row).
CREATE FUNCTION projects_tile(z integer, x integer, y integer, viewer bigint) RETURNS bytea
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
        WHERE p.place_3857 && env
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
            FROM visible_contributions(viewer) AS c
            WHERE c.geom_3857 && env
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
