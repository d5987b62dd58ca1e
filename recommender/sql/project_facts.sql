-- Facts of some projects for the ranking (recommender/ground.py), through the one visibility
-- rule: a project viewer may not see gives no row.
-- Parameters: %(ids)s int8[] project ids; %(viewer)s app_user.id or NULL (anonymous).
-- Output, one row per visible project asked: id, organisation_id, themes text[], tool, space,
--   status, title, description; lon, lat (degrees: its location, else the centroid of its
--   area or circle; NULL for neither); reach_m (metres its area or circle spreads around that
--   point: radius_m for a circle, the radius of a disc of the same area for an area, else 0);
--   audience (people the scope concerns: the INSEE population of the communes,
--   arrondissements, EPCI, départements or régions named; of the communes an area or circle
--   touches; of France for a national project; at least 1); age_days, closes_in_days (from now,
--   NULL when unknown); territory (the first territory it names, as 'level:code', NULL for
--   none).
-- Indexes: pk_project (through visible_projects), pk_project_territory (project_id leads),
--   pk_project_area, pk_commune, pk_arrondissement, pk_epci, ix_commune_departement_code and
--   ix_commune_region_code for the sums, idx_commune_piece_geom for areas and circles.
WITH asked AS MATERIALIZED (SELECT DISTINCT unnest(%(ids)s::int8[]) AS id),
scope AS (
    SELECT t.project_id, sum(
        CASE t.level
            WHEN 'commune' THEN (SELECT c.population FROM commune AS c WHERE c.code = t.code)
            WHEN 'arrondissement' THEN
                (SELECT a.population FROM arrondissement AS a WHERE a.code = t.code)
            WHEN 'epci' THEN (SELECT e.population FROM epci AS e WHERE e.siren = t.code)
            WHEN 'departement' THEN
                (SELECT sum(c.population) FROM commune AS c WHERE c.departement_code = t.code)
            WHEN 'region' THEN
                (SELECT sum(c.population) FROM commune AS c WHERE c.region_code = t.code)
        END) AS people
    FROM project_territory AS t
    WHERE t.project_id IN (SELECT id FROM asked)
    GROUP BY t.project_id
)
SELECT p.id, p.organisation_id, p.themes, p.tool, p.space, p.status, p.title, p.description,
       ST_X(coalesce(p.location, ST_Centroid(pa.geom))),
       ST_Y(coalesce(p.location, ST_Centroid(pa.geom))),
       CASE WHEN pa.radius_m IS NOT NULL THEN pa.radius_m
            WHEN pa.geom IS NOT NULL THEN sqrt(ST_Area(pa.geom::geography) / pi())
            ELSE 0 END,
       greatest(1, coalesce(
           s.people,
           CASE WHEN p.scope_kind = 'national' THEN (SELECT sum(population) FROM commune) END,
           (SELECT sum(c.population) FROM commune AS c
            WHERE c.code IN (SELECT cp.commune_code FROM commune_piece AS cp
                             WHERE ST_Intersects(cp.geom, pa.geom))),
           1)),
       extract(epoch FROM now() - p.opens_at) / 86400,
       extract(epoch FROM p.closes_at - now()) / 86400,
       (SELECT min(t.level || ':' || t.code) FROM project_territory AS t
        WHERE t.project_id = p.id)
FROM visible_projects(%(viewer)s) AS p
LEFT JOIN project_area AS pa ON pa.project_id = p.id
LEFT JOIN scope AS s ON s.project_id = p.id
WHERE p.id IN (SELECT id FROM asked)
