-- Projects in a bounding box, one page at a time in id order: at most %(limit)s + 1 rows after
-- id %(after)s (the extra row only tells the caller there is a next page).
-- Parameters: %(minlon)s, %(minlat)s, %(maxlon)s, %(maxlat)s (degrees), %(after)s, %(limit)s,
-- and the viewer's app_user.id for a signed-in viewer. Written into the text by
-- geo_engine/catalog/queries.py: {viewer}, NULL for an anonymous viewer (the membership test
-- then folds away at planning), else the viewer's id as a parameter.
-- Index: idx_project_place (GiST, SRID 4326) for &&, always: the page's ids are taken from the
-- box and sorted (top-N), then only those rows are read whole and made features. Ordering by
-- "p.id + 0" keeps the planner off pk_project: walking the ids in order and testing each
-- place read 20,000 rows for a page of a dense box (25-45 ms in Paris) where the box holds
-- 500 (under 1 ms); and making a feature of every row of the box before the sort, as the
-- one-step query did, cost 30 ms there. The API bounds the box (4 square degrees, about
-- 18,000 projects around Paris at the bench's density), so neither reads more than a region.
WITH page AS MATERIALIZED (
    SELECT p.id
    FROM visible_projects({viewer}) AS p
    WHERE p.place && ST_MakeEnvelope(%(minlon)s, %(minlat)s, %(maxlon)s, %(maxlat)s, 4326)
      AND p.id > %(after)s
    ORDER BY p.id + 0
    LIMIT %(limit)s + 1
)
SELECT p.id, project_feature(p, o.name)::text
FROM page
JOIN project AS p ON p.id = page.id
JOIN organisation AS o ON o.id = p.organisation_id
ORDER BY p.id
