-- The EPCI layer of the engine's own tiles: the growth dashboard's choropleth of participation
-- by EPCI (GET /growth) joins its rates to these outlines by SIREN (MapLibre feature state).
-- STABLE, never IMMUTABLE: it reads a table, and an IMMUTABLE tile would be cached stale.

-- Outlines in Web Mercator, simplified once like commune_tile and departement_tile
-- (0002_tiles.sql). Refreshed by `geo-engine geo load` with them.
CREATE MATERIALIZED VIEW epci_tile AS
SELECT e.siren, e.name, e.population, e.xxl,
       ST_SimplifyPreserveTopology(ST_Transform(e.geom, 3857), 38) AS geom,
       ST_SimplifyPreserveTopology(ST_Transform(e.geom, 3857), 300) AS geom_simple,
       ST_SimplifyPreserveTopology(ST_Transform(e.geom, 3857), 1200) AS geom_coarse
FROM epci AS e
WHERE e.geom IS NOT NULL;
CREATE UNIQUE INDEX ix_epci_tile_siren ON epci_tile (siren);
CREATE INDEX ix_epci_tile_geom ON epci_tile USING gist (geom);

-- epcis_tile(z, x, y) -> bytea
-- Layer "epcis" (code = the SIREN, name, population, xxl) at every zoom: about 1,250 EPCIs
-- cover France, so even a zoom-5 tile holds a few hundred. Outlines are simplified to under a
-- screen pixel (a 512-pixel tile): 1,200 m below z 6, 300 m at z 6-9, 38 m from z 10.
-- Relies on ix_epci_tile_geom.
CREATE FUNCTION epcis_tile(z integer, x integer, y integer) RETURNS bytea
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    env geometry := ST_TileEnvelope(z, x, y);
    mvt bytea;
BEGIN
    SELECT ST_AsMVT(t, 'epcis', 4096, 'geom') INTO mvt FROM (
        SELECT e.siren AS code, e.name, e.population, e.xxl,
               ST_AsMVTGeom(CASE WHEN z < 6 THEN e.geom_coarse
                                 WHEN z < 10 THEN e.geom_simple ELSE e.geom END,
                            env, 4096, 64, true) AS geom
        FROM epci_tile AS e
        WHERE e.geom && env
    ) AS t;
    RETURN mvt;
END
$$;
