-- Where some users live and what they declared, for the ranking (recommender/ground.py).
-- Parameters: %(users)s int8[] app_user ids.
-- Output, one row per existing user asked: id, interests text[], commune_code (NULL while the
--   user still has to choose), home lon, lat (degrees, NULL unknown), and the names of their
--   commune, arrondissement, EPCI, département and région, whether the EPCI is XXL, and the
--   département's code; the communes a user still choosing hesitates between.
-- Indexes: pk_app_user, pk_user_place, pk_commune, pk_arrondissement, pk_epci,
--   pk_departement, pk_region.
SELECT u.id, u.interests, up.commune_code, ST_X(up.home), ST_Y(up.home),
       c.name, a.name, e.name, d.name, r.name, coalesce(e.xxl, false), c.departement_code,
       up.candidate_communes
FROM app_user AS u
LEFT JOIN user_place AS up ON up.user_id = u.id
LEFT JOIN commune AS c ON c.code = up.commune_code
LEFT JOIN arrondissement AS a ON a.code = up.arrondissement_code
LEFT JOIN epci AS e ON e.siren = c.epci_siren
LEFT JOIN departement AS d ON d.code = c.departement_code
LEFT JOIN region AS r ON r.code = c.region_code
WHERE u.id = ANY(%(users)s::int8[])
