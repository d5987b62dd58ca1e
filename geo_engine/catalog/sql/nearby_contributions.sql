-- Nearby contributions on participatory maps: the %(limit)s nearest the viewer may see (their
-- project is visible to them) within %(radius_m)s metres, nearest first, as a FeatureCollection.
-- Parameters: %(lon)s, %(lat)s, %(radius_m)s, %(limit)s, %(viewer)s; %(project_id)s or NULL for
-- every map.
-- Every map: idx_contribution_geog (GiST, geography) walked nearest first by <-> (KNN), the
-- radius applied to those few rows. One map: its contributions (ix_contribution_project_id)
-- within the radius, sorted; a KNN walk there could cross the whole table before finding them.
-- Only the branch whose condition holds runs (a one-time filter on the parameter).
-- One map: whether the viewer may see %(project_id)s is asked first, once (an InitPlan on
-- visible_projects, the one rule, by pk_project), and gates the branch: for a hidden map not
-- one of its contributions is read, so a private map answers in the time a missing one does
-- (a per-row check after the scan read the hidden rows, then dropped them). Once the map is
-- visible, so is each of its contributions: they are read from contribution directly.
-- The point is written out in each place rather than shared through a CTE: a CTE used twice
-- is materialised, and an ORDER BY on one of its columns cannot drive the KNN scan (every
-- contribution was read and checked, 1.4 s among 300,000).
WITH nearest AS (
    (SELECT c, ST_Distance(
                c.geog, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography
            ) AS distance_m
     FROM visible_contributions(%(viewer)s) AS c
     WHERE %(project_id)s::bigint IS NULL
     ORDER BY c.geog <-> ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography
     LIMIT %(limit)s)
    UNION ALL
    (SELECT c, ST_Distance(
                c.geog, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography
            ) AS distance_m
     FROM contribution AS c
     WHERE EXISTS (
            SELECT FROM visible_projects(%(viewer)s) AS p WHERE p.id = %(project_id)s::bigint
       )
       AND c.project_id = %(project_id)s::bigint
       AND ST_DWithin(
            c.geog, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography, %(radius_m)s
       )
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
