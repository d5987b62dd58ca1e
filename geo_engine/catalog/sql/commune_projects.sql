-- What concerns a commune: every project the viewer may see whose scope covers commune
-- %(code)s, as project_candidates (migrations/sql/0003_candidates.sql) finds them: named,
-- through one of its arrondissements, its EPCI, département or région, national, or a drawn
-- area or radius touching its outline. One page in id order after %(after)s, at most
-- %(limit)s + 1 rows; concerns_via is the candidate's level (the narrowest reason).
-- Parameters: %(code)s (INSEE), %(after)s, %(limit)s, %(viewer)s.
-- Indexes: those of project_candidates for one commune (pk_commune, the btree
-- ix_project_territory_level_code, ix_commune_piece_commune_code then idx_project_area_geom,
-- ix_project_national); then pk_project and pk_organisation for the page's rows.
-- The visibility rule is applied inside project_candidates (visible_projects(viewer)), so
-- the page's rows are read from project directly. The page is cut on the candidates, in id
-- order: the national projects (thousands) come from ix_project_national in id order through
-- a Merge Append, so a page reads about its own rows, not all of them.
WITH page AS (
    SELECT k.project_id, k.level
    FROM project_candidates(ARRAY[%(code)s]::text[], NULL, %(viewer)s) AS k
    WHERE k.project_id > %(after)s
    ORDER BY k.project_id
    LIMIT %(limit)s + 1
)
SELECT p.id, project_feature(p, o.name, NULL, r.level)::text
FROM page AS r
JOIN project AS p ON p.id = r.project_id
JOIN organisation AS o ON o.id = p.organisation_id
ORDER BY p.id
