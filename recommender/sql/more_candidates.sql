-- The candidate generators beyond the hierarchy, for one user (recommender/ground.py), each
-- through the one visibility rule and open (or upcoming) projects only.
-- Parameters: %(viewer)s app_user.id; %(lon)s, %(lat)s the home point (degrees) or NULL;
--   %(radius_m)s metres for `nearby`; %(departement)s the user's département code or NULL;
--   %(popular)s how many `popular` projects.
-- Output: project_id, generator, one row per (project, generator):
--   followed: projects of organisations the user follows or belongs to (private ones reach
--     members only, by the rule);
--   nearby: projects whose place is within radius_m of home, and projects with a contribution
--     (a point of a participatory map) within radius_m;
--   popular: the département's commune projects with the most participants (a fallback when
--     the user's own places have little).
-- Indexes: pk_follow (user_id leads), ix_organisation_member_user_id,
--   ix_project_organisation_id; GiST on project.place_geog and contribution.geog (ST_DWithin
--   on geography, the column itself: no cast in WHERE); ix_commune_departement_code,
--   ix_project_territory_level_code and the engagement index on (project_id, kind).
WITH visible AS MATERIALIZED (
    SELECT p.id, p.organisation_id, p.place_geog
    FROM visible_projects(%(viewer)s) AS p
    WHERE p.status IN ('open', 'upcoming')
),
home AS (
    SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography AS g
    WHERE %(lon)s::float8 IS NOT NULL
)
SELECT v.id, 'followed'
FROM visible AS v
WHERE v.organisation_id IN (
    SELECT f.organisation_id FROM follow AS f WHERE f.user_id = %(viewer)s
    UNION
    SELECT m.organisation_id FROM organisation_member AS m WHERE m.user_id = %(viewer)s
)
UNION ALL
SELECT v.id, 'nearby'
FROM visible AS v, home AS h
WHERE ST_DWithin(v.place_geog, h.g, %(radius_m)s)
UNION ALL
SELECT DISTINCT c.project_id, 'nearby'
FROM contribution AS c, home AS h
WHERE ST_DWithin(c.geog, h.g, %(radius_m)s)
  AND c.project_id IN (SELECT id FROM visible)
UNION ALL
(SELECT t.project_id, 'popular'
 FROM project_territory AS t
 JOIN commune AS c ON c.code = t.code AND t.level = 'commune'
 JOIN engagement AS e ON e.project_id = t.project_id AND e.kind = 'participation'
 WHERE c.departement_code = %(departement)s
   AND t.project_id IN (SELECT id FROM visible)
 GROUP BY t.project_id
 ORDER BY count(*) DESC, t.project_id
 LIMIT %(popular)s)
