-- Projects in a bounding box, one page at a time in id order: at most %(limit)s + 1 rows after
-- id %(after)s (the extra row only tells the caller there is a next page).
-- Parameters: %(minlon)s, %(minlat)s, %(maxlon)s, %(maxlat)s (degrees), %(after)s, %(limit)s,
-- %(viewer)s (app_user.id or NULL).
-- Index: idx_project_place (GiST, SRID 4326) for &&, or pk_project for the id order when the box
-- holds most projects; the API bounds the box so neither reads more than a region.
SELECT p.id, project_feature(p, o.name)::text
FROM visible_projects(%(viewer)s) AS p
JOIN organisation AS o ON o.id = p.organisation_id
WHERE p.place && ST_MakeEnvelope(%(minlon)s, %(minlat)s, %(maxlon)s, %(maxlat)s, 4326)
  AND p.id > %(after)s
ORDER BY p.id
LIMIT %(limit)s + 1
