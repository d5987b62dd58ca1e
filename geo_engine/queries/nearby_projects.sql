-- Nearby projects: the %(limit)s nearest projects the viewer may see within %(radius_m)s metres
-- of a point, nearest first, as an RFC 7946 FeatureCollection built here (the API passes the
-- text through). Each feature carries distance_m.
-- Parameters: %(lon)s, %(lat)s (degrees), %(radius_m)s, %(limit)s, %(viewer)s (app_user.id or NULL).
-- Index: idx_project_place_geog, GiST on the geography column, walked nearest first by <->
-- (KNN, metres on the sphere) and stopped after %(limit)s rows; the radius is applied to those
-- rows only. (An ST_DWithin in the scan makes the planner read and sort every project in the
-- radius: 70 ms in central Paris instead of under 1.) The organisation is joined after the
-- LIMIT so that the join never reorders the index scan.
WITH here AS (
    SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography AS g
),
nearest AS (
    SELECT p, ST_Distance(p.place_geog, here.g) AS distance_m
    FROM visible_projects(%(viewer)s) AS p, here
    ORDER BY p.place_geog <-> here.g
    LIMIT %(limit)s
)
SELECT json_build_object(
    'type', 'FeatureCollection',
    'features', coalesce(json_agg(project_feature(n.p, o.name, n.distance_m)
                                  ORDER BY n.distance_m, (n.p).id), '[]')
)::text
FROM nearest AS n
JOIN organisation AS o ON o.id = (n.p).organisation_id
WHERE n.distance_m <= %(radius_m)s
