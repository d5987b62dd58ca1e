-- Locate one point: the commune whose outline covers it, with its EPCI, département, région,
-- and (inside Paris) its arrondissement.
-- Parameters: %(lon)s, %(lat)s, WGS84 degrees.
-- Output: commune code, name, population; EPCI siren, name, xxl, member count (NULL without EPCI);
--         département code, name; région code, name; arrondissement code, name (NULL outside Paris).
-- Border rule: ST_Covers (not ST_Contains, which misses borders) is true for every commune whose
-- outline touches the point; the lowest INSEE code wins, so the answer never depends on the plan.
-- Index: idx_commune_piece_geom, GiST on the ST_Subdivide'd outlines (ST_Covers uses it via &&).
WITH hit AS (
    SELECT p.commune_code
    FROM commune_piece p
    WHERE ST_Covers(p.geom, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326))
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
-- Arrondissement outlines come from another survey than the commune's: the one covering the
-- point (lowest code on a border) or, for a point of Paris just outside all of them, the nearest.
-- LIMIT 1 over UNION ALL stops at the first branch that answers, so distances are computed
-- only for those rare points.
LEFT JOIN LATERAL (
    (SELECT a.code, a.name
     FROM arrondissement a
     WHERE a.commune_code = c.code
       AND ST_Covers(a.geom, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326))
     ORDER BY a.code
     LIMIT 1)
    UNION ALL
    (SELECT a.code, a.name
     FROM arrondissement a
     WHERE a.commune_code = c.code AND a.geom IS NOT NULL
     ORDER BY ST_Distance(a.geom, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)), a.code
     LIMIT 1)
    LIMIT 1
) a ON true
