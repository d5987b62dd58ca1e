-- Nearby projects: the %(limit)s nearest projects the viewer may see within %(radius_m)s metres
-- of a point, nearest first, as an RFC 7946 FeatureCollection built here (the API passes the
-- text through). Each feature carries distance_m: metres on the sphere (R = 6,371,008.8 m),
-- within 0.5%% of the spheroid's and a tenth of its cost.
-- Parameters: %(lon)s, %(lat)s (degrees), %(radius_m)s, %(limit)s, %(viewer)s (app_user.id or NULL).
-- Index: idx_project_place_3857, GiST in Web Mercator, walked nearest first by <-> (KNN) and
-- stopped after twice %(limit)s rows; those are ranked by their true distance, cut at the
-- radius and at %(limit)s. Locally Mercator is a conformal scaling of metres (by 1/cos lat, which
-- varies by under 2%% across the largest radius allowed), so the doubled candidate set holds the
-- true nearest. Planar KNN costs 0.15-0.2 ms where the geography index's costs 0.5-1 ms, and an
-- ST_DWithin filter instead makes the planner read and sort every project in the radius (70 ms
-- in central Paris). The organisation is joined after the LIMIT.
-- The point is written out in each place rather than shared through a CTE: a CTE used twice
-- is materialised, and an ORDER BY on one of its columns cannot drive the index scan.
-- Rows are carried as (id, point) and the whole project fetched for the last %(limit)s only:
-- forming a whole row per candidate doubles the cost of the scan.
WITH candidates AS (
    SELECT p.id, p.place_geog
    FROM visible_projects(%(viewer)s) AS p
    ORDER BY p.place_3857 <-> ST_Transform(ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), 3857)
    LIMIT 2 * %(limit)s
),
nearest AS (
    SELECT c.id, ST_Distance(
        c.place_geog, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography, false
    ) AS distance_m
    FROM candidates AS c
    ORDER BY 2, c.id
    LIMIT %(limit)s
)
SELECT json_build_object(
    'type', 'FeatureCollection',
    'features', coalesce(json_agg(project_feature(p, o.name, n.distance_m)
                                  ORDER BY n.distance_m, n.id), '[]')
)::text
FROM nearest AS n
JOIN visible_projects(%(viewer)s) AS p ON p.id = n.id
JOIN organisation AS o ON o.id = p.organisation_id
WHERE n.distance_m <= %(radius_m)s
