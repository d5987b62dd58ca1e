-- The EPCI layer of the engine's own tiles: the growth dashboard's choropleth of participation
-- by EPCI (GET /growth) joins its rates to these outlines by SIREN (MapLibre feature state).
-- STABLE, never IMMUTABLE: it reads a table, and an IMMUTABLE tile would be cached stale.

-- Outlines in Web Mercator, simplified once (about one tile pixel at the zooms that show them),
-- like commune_tile and departement_tile (0002_tiles.sql), each level from the finer one.
-- Plain Douglas-Peucker (ST_Simplify, keeping collapsed rings), not ST_SimplifyPreserveTopology:
-- four times faster on France's EPCIs (2 s against 8 s for the refresh), and ST_AsMVTGeom
-- repairs what it leaves invalid. Refreshed by `geo-engine geo load` with the others.
CREATE MATERIALIZED VIEW epci_tile AS
SELECT s.siren, s.geom,
       ST_Simplify(s.geom, 300, true) AS geom_simple,
       ST_Simplify(s.geom, 1500, true) AS geom_medium,
       ST_Simplify(s.geom, 5000, true) AS geom_coarse
FROM (SELECT e.siren, ST_Simplify(ST_Transform(e.geom, 3857), 38, true) AS geom
      FROM epci AS e
      WHERE e.geom IS NOT NULL) AS s;
CREATE UNIQUE INDEX ix_epci_tile_siren ON epci_tile (siren);
CREATE INDEX ix_epci_tile_geom ON epci_tile USING gist (geom);

-- epcis_tile(z, x, y) -> bytea
-- Layer "epcis" (code = the SIREN, nothing else: 1,250 names would double the low-zoom tiles)
-- at every zoom: about 1,250 EPCIs cover France.
-- Outlines are simplified to one or two screen pixels (a 512-pixel tile): 5 km below z 6,
-- 1.5 km at z 6, 300 m at z 7-9, 38 m from z 10.
-- Relies on ix_epci_tile_geom.
CREATE FUNCTION epcis_tile(z integer, x integer, y integer) RETURNS bytea
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    env geometry := ST_TileEnvelope(z, x, y);
    mvt bytea;
BEGIN
    SELECT ST_AsMVT(t, 'epcis', 4096, 'geom') INTO mvt FROM (
        SELECT e.siren AS code,
               ST_AsMVTGeom(CASE WHEN z < 6 THEN e.geom_coarse
                                 WHEN z < 7 THEN e.geom_medium
                                 WHEN z < 10 THEN e.geom_simple ELSE e.geom END,
                            env, 4096, 64, true) AS geom
        FROM epci_tile AS e
        WHERE e.geom && env
    ) AS t;
    RETURN mvt;
END
$$;
