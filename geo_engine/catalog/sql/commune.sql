-- A commune with its chain (EPCI, département, région) and, when %(geometry)s, its outline.
-- The code is a commune's INSEE code or an arrondissement municipal's (Paris 75101-75120, Lyon
-- 69381-69389, Marseille 13201-13216): then the answer is its commune, and `arrondissement`
-- names it (null for a commune code).
-- Parameters: %(code)s (INSEE), %(geometry)s boolean.
-- Output: one JSON text, or no row for an unknown code. Index: the primary keys.
WITH target AS (
    SELECT code, NULL::text AS arrondissement_code FROM commune WHERE code = %(code)s
    UNION ALL
    SELECT commune_code, code FROM arrondissement WHERE code = %(code)s
)
SELECT json_build_object(
    'code', c.code,
    'name', c.name,
    'population', c.population,
    'postal_codes', c.postal_codes,
    'timezone', c.timezone,
    'epci', CASE WHEN e.siren IS NULL THEN NULL ELSE json_build_object(
        'code', e.siren, 'name', e.name, 'xxl', e.xxl, 'members', e.member_count) END,
    'departement', json_build_object('code', d.code, 'name', d.name),
    'region', json_build_object('code', r.code, 'name', r.name),
    'arrondissement', CASE WHEN a.code IS NULL THEN NULL ELSE json_build_object(
        'code', a.code, 'name', a.name, 'population', a.population,
        'postal_codes', a.postal_codes) END,
    'geometry', CASE WHEN %(geometry)s THEN ST_AsGeoJSON(c.geom, 6)::json END
)::text
FROM target AS t
JOIN commune AS c ON c.code = t.code
JOIN departement AS d ON d.code = c.departement_code
JOIN region AS r ON r.code = c.region_code
LEFT JOIN epci AS e ON e.siren = c.epci_siren
LEFT JOIN arrondissement AS a ON a.code = t.arrondissement_code
