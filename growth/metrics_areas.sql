-- The participation rate per commune (INSEE code) or EPCI (SIREN), for the choropleth: users
-- placed there, those engaged (a click or a participation in the period), those who took part
-- after a click (growth_user.participated_at). Areas without a user are absent.
-- Parameters: %(level)s text ('commune' | 'epci'). Reads growth_user, commune.
-- Output: code, users, engaged, participated; by code.
-- Indexes: pk_commune.
SELECT CASE WHEN %(level)s = 'commune' THEN c.code ELSE c.epci_siren END AS code,
       count(*) AS users,
       count(*) FILTER (WHERE u.engaged) AS engaged,
       count(u.participated_at) AS participated
FROM growth_user AS u
JOIN commune AS c ON c.code = u.commune_code
WHERE %(level)s = 'commune' OR c.epci_siren IS NOT NULL
GROUP BY 1
ORDER BY 1
