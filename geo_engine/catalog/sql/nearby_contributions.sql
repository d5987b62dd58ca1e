-- Nearby contributions on participatory maps: the %(limit)s nearest the viewer may see (their
-- project is visible to them) within %(radius_m)s metres, nearest first, as a FeatureCollection.
-- Parameters: %(lon)s, %(lat)s, %(radius_m)s, %(limit)s, %(viewer)s; %(project_id)s or NULL for
-- every map.
-- Every map: idx_contribution_geog (GiST, geography) walked nearest first by <-> (KNN), the
-- radius applied to those few rows. One map: its contributions (ix_contribution_project_id)
-- within the radius, sorted; a KNN walk there could cross the whole table before finding them.
-- Only the branch whose condition holds runs (a one-time filter on the parameter).
WITH here AS (
    SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography AS g
),
nearest AS (
    (SELECT c, ST_Distance(c.geog, here.g) AS distance_m
     FROM visible_contributions(%(viewer)s) AS c, here
     WHERE %(project_id)s::bigint IS NULL
     ORDER BY c.geog <-> here.g
     LIMIT %(limit)s)
    UNION ALL
    (SELECT c, ST_Distance(c.geog, here.g) AS distance_m
     FROM visible_contributions(%(viewer)s) AS c, here
     WHERE c.project_id = %(project_id)s::bigint
       AND ST_DWithin(c.geog, here.g, %(radius_m)s)
     ORDER BY 2
     LIMIT %(limit)s)
)
SELECT json_build_object(
    'type', 'FeatureCollection',
    'features', coalesce(json_agg(contribution_feature(n.c, n.distance_m)
                                  ORDER BY n.distance_m, (n.c).id), '[]')
)::text
FROM nearest AS n
WHERE n.distance_m <= %(radius_m)s
