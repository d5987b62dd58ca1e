-- A commune with its chain (EPCI, département, région) and, when %(geometry)s, its outline.
-- Parameters: %(code)s (INSEE), %(geometry)s boolean. Index: the primary keys.
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
    'geometry', CASE WHEN %(geometry)s THEN ST_AsGeoJSON(c.geom, 6)::json END
)::text
FROM commune AS c
JOIN departement AS d ON d.code = c.departement_code
JOIN region AS r ON r.code = c.region_code
LEFT JOIN epci AS e ON e.siren = c.epci_siren
WHERE c.code = %(code)s
