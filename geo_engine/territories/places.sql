-- Communes matching what a person typed in the map's search field: a postal code, or a name
-- (ignoring case, accents, hyphens and apostrophes), best first.
-- Parameters: %(q)s the text as normalised by places.normalise (ASCII lower case, words split
--             by one space); %(accented)s / %(plain)s the same translation table as Python's
--             (accents dropped, hyphens and apostrophes made spaces); %(limit)s at most this many.
-- Output: code, name, département code, population, lon, lat (a point on the commune's surface).
-- Order: a postal code or the exact name first, then names starting with the text, then names
--        with a word starting with it; the most populous first within each; then the INSEE code.
-- Index: pk_postal_code for a postal code; names by one sequential scan of the ~35,000 communes,
--        each name folded once (MATERIALIZED): ~150 ms, once per search a person submits.
WITH folded AS MATERIALIZED (
    SELECT c.code,
           ' ' || lower(translate(replace(replace(c.name, 'Œ', 'OE'), 'œ', 'oe'),
                                  %(accented)s, %(plain)s)) || ' ' AS words
    FROM commune c
    WHERE c.geom IS NOT NULL
), ranked AS (
    SELECT f.code,
           CASE
               WHEN f.words = ' ' || %(q)s || ' ' THEN 0
               WHEN f.words LIKE ' ' || %(q)s || '%%' THEN 1
               WHEN f.words LIKE '%% ' || %(q)s || '%%' THEN 2
           END AS rank
    FROM folded f
    UNION ALL
    SELECT p.commune_code, 0 FROM postal_code p WHERE p.postal_code = %(q)s
), best AS (
    SELECT c.code, c.name, c.departement_code, c.population, c.geom, min(r.rank) AS rank
    FROM ranked r
    JOIN commune c ON c.code = r.code AND c.geom IS NOT NULL
    WHERE r.rank IS NOT NULL
    GROUP BY c.code
    ORDER BY min(r.rank), c.population DESC, c.code
    LIMIT %(limit)s
)
SELECT b.code, b.name, b.departement_code, b.population, ST_X(s.point), ST_Y(s.point)
FROM best b
CROSS JOIN LATERAL (SELECT ST_PointOnSurface(b.geom) AS point) s
ORDER BY b.rank, b.population DESC, b.code
