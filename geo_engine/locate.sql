-- Locate one point: the commune whose outline covers it, with its EPCI, département, région,
-- and (inside Paris) its arrondissement.
-- Parameters: %(lon)s, %(lat)s, WGS84 degrees.
-- Output: commune code, name, population; EPCI siren, name, xxl, member count (NULL without EPCI);
--         département code, name; région code, name; arrondissement code, name (NULL outside Paris).
-- Border rule: ST_Covers (not ST_Contains, which misses borders) is true for every commune whose
-- outline touches the point; the lowest INSEE code wins, so the answer never depends on the plan.
-- Index: idx_commune_piece_geom, GiST on the ST_Subdivide'd outlines (ST_Covers uses it via &&).
WITH point AS (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS geom),
hit AS (
    SELECT p.commune_code
    FROM commune_piece p, point
    WHERE ST_Covers(p.geom, point.geom)
    ORDER BY p.commune_code
    LIMIT 1
)
SELECT c.code, c.name, c.population,
       e.siren, e.name, e.xxl, e.member_count,
       d.code, d.name, r.code, r.name,
       a.code, a.name
FROM hit
JOIN commune c ON c.code = hit.commune_code
JOIN departement d ON d.code = c.departement_code
JOIN region r ON r.code = c.region_code
LEFT JOIN epci e ON e.siren = c.epci_siren
-- Arrondissement outlines come from another survey than the commune's: a point of Paris just
-- outside all of them takes the nearest one.
LEFT JOIN LATERAL (
    SELECT a.code, a.name
    FROM arrondissement a, point
    WHERE a.commune_code = c.code AND a.geom IS NOT NULL
    ORDER BY ST_Distance(a.geom, point.geom), a.code
    LIMIT 1
) a ON true
