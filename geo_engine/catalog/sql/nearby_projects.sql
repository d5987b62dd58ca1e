-- Nearby projects: the {limit} nearest projects the viewer may see within %(radius_m)s metres
-- of a point, nearest first, as an RFC 7946 FeatureCollection built here (the API passes the
-- text through). Each feature carries distance_m: metres on the sphere (R = 6,371,008.8 m),
-- within 0.5%% of the spheroid's and a tenth of its cost.
-- Parameters: %(mercator)s (the point in Web Mercator, SRID 3857, as hex EWKB), %(point)s (the
-- same point in WGS84, SRID 4326, hex EWKB), %(radius_m)s, and the viewer's
-- app_user.id for a signed-in viewer.
-- Written into the text by geo_engine/catalog/queries.py: {limit} and {candidates} (= 2 x
-- {limit}), integers the API bounded (1-100), and {viewer}: NULL for an anonymous viewer, else
-- the viewer's id as a parameter. So each text keeps one generic plan that PostgreSQL reuses instead
-- of planning every request (0.5 ms, a quarter of the statement): with the LIMIT, the point or
-- an anonymous viewer as parameters, the generic plan's estimate stayed above the custom
-- plans' and PostgreSQL planned again on every execution.
-- Index: idx_project_place_3857, GiST in Web Mercator, walked nearest first by <-> (KNN) and
-- stopped after {candidates} rows; those are ranked by their true distance, cut at the
-- radius and at {limit}. Locally Mercator is a conformal scaling of metres (by 1/cos lat, which
-- varies by under 2%% across the largest radius allowed), so the doubled candidate set holds the
-- true nearest. Planar KNN costs 0.15-0.2 ms where the geography index's costs 0.5-1 ms, and an
-- ST_DWithin filter instead makes the planner read and sort every project in the radius (70 ms
-- in central Paris). The organisation is joined after the LIMIT.
-- Rows are carried as (id, point) and the whole project fetched for the last {limit} only
-- (through pk_project: those ids came out of visible_projects already): forming a whole row per
-- candidate doubles the cost of the scan.
WITH candidates AS (
    SELECT p.id, p.place_geog
    FROM visible_projects({viewer}) AS p
    ORDER BY p.place_3857 <-> %(mercator)s::geometry
    LIMIT {candidates}
),
nearest AS (
    SELECT c.id, ST_Distance(c.place_geog, %(point)s::geography, false) AS distance_m
    FROM candidates AS c
    ORDER BY 2, c.id
    LIMIT {limit}
)
SELECT json_build_object(
    'type', 'FeatureCollection',
    'features', coalesce(json_agg(project_feature(p, o.name, n.distance_m)
                                  ORDER BY n.distance_m, n.id), '[]')
)::text
FROM nearest AS n
JOIN project AS p ON p.id = n.id
JOIN organisation AS o ON o.id = p.organisation_id
WHERE n.distance_m <= %(radius_m)s
