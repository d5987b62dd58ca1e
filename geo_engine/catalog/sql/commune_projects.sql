-- What concerns a commune: every project the viewer may see whose scope covers commune
-- %(code)s through the hierarchy: named directly, through its EPCI, département or région,
-- national, or a drawn area or radius touching its outline. One page in id order after
-- %(after)s, at most %(limit)s + 1 rows; concerns_via says the narrowest reason.
-- Parameters: %(code)s (INSEE), %(after)s, %(limit)s, %(viewer)s.
-- Indexes: ix_project_territory_level_code (btree on level, code); idx_project_area_geom (GiST)
-- against the commune's ST_Subdivide'd pieces (ix_commune_piece_commune_code); ix_project_national.
WITH c AS (
    SELECT code, epci_siren, departement_code, region_code FROM commune WHERE code = %(code)s
),
concerned AS (
    SELECT t.project_id, min(CASE t.level WHEN 'commune' THEN 1 WHEN 'epci' THEN 2
                                          WHEN 'departement' THEN 4 ELSE 5 END) AS rank
    FROM c
    JOIN project_territory AS t
      ON (t.level = 'commune' AND t.code = c.code)
      OR (t.level = 'epci' AND t.code = c.epci_siren)
      OR (t.level = 'departement' AND t.code = c.departement_code)
      OR (t.level = 'region' AND t.code = c.region_code)
    GROUP BY t.project_id
    UNION ALL
    SELECT DISTINCT a.project_id, 3
    FROM commune_piece AS cp
    JOIN project_area AS a ON ST_Intersects(a.geom, cp.geom)
    WHERE cp.commune_code = %(code)s
    UNION ALL
    SELECT p.id, 6 FROM project AS p, c WHERE p.scope_kind = 'national'
),
reasons AS (
    SELECT project_id, min(rank) AS rank FROM concerned WHERE project_id > %(after)s
    GROUP BY project_id
)
SELECT p.id, project_feature(p, o.name, NULL,
           (ARRAY['commune', 'epci', 'area', 'departement', 'region', 'national'])[r.rank])::text
FROM reasons AS r
JOIN visible_projects(%(viewer)s) AS p ON p.id = r.project_id
JOIN organisation AS o ON o.id = p.organisation_id
ORDER BY p.id
LIMIT %(limit)s + 1
