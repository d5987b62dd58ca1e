-- Coverage: communes with at least one engaged resident (growth_user.engaged: a click or a
-- participation in the period) among communes with at least one user of the population, per
-- commune size class (every class listed, empty ones with 0) and per XXL EPCI (those with at
-- least one such commune), with its communes under 2,000 inhabitants apart.
-- Parameters: none. Reads growth_user, commune, epci.
-- Output: scope ('taille' | 'epci_xxl'), key (class key or SIREN), label (French), communes,
--   reached, small_communes, small_reached (NULL for size classes); size classes first, in
--   size order, then EPCIs by SIREN.
-- Indexes: pk_commune, pk_epci.
WITH lived AS (
    SELECT commune_code AS code, bool_or(engaged) AS reached
    FROM growth_user
    WHERE commune_code IS NOT NULL
    GROUP BY commune_code
),
placed AS (
    SELECT c.code, c.population, c.epci_siren, l.reached
    FROM lived AS l
    JOIN commune AS c ON c.code = l.code
),
classes (position, lo, hi, key, label) AS (
    VALUES (1, 0, 500, '<500', 'moins de 500 habitants'),
           (2, 500, 2000, '500-1999', 'de 500 à 1 999 habitants'),
           (3, 2000, 10000, '2000-9999', 'de 2 000 à 9 999 habitants'),
           (4, 10000, 50000, '10000-49999', 'de 10 000 à 49 999 habitants'),
           (5, 50000, NULL, '>=50000', '50 000 habitants ou plus')
)
SELECT scope, key, label, communes, reached, small_communes, small_reached
FROM (
    SELECT 0 AS part, k.position::text AS sort, 'taille' AS scope, k.key, k.label,
           count(p.code) AS communes, count(p.code) FILTER (WHERE p.reached) AS reached,
           NULL::bigint AS small_communes, NULL::bigint AS small_reached
    FROM classes AS k
    LEFT JOIN placed AS p ON p.population >= k.lo AND (k.hi IS NULL OR p.population < k.hi)
    GROUP BY k.position, k.key, k.label
    UNION ALL
    SELECT 1, e.siren, 'epci_xxl', e.siren, e.name,
           count(*), count(*) FILTER (WHERE p.reached),
           count(*) FILTER (WHERE p.population < 2000),
           count(*) FILTER (WHERE p.population < 2000 AND p.reached)
    FROM placed AS p
    JOIN epci AS e ON e.siren = p.epci_siren AND e.xxl
    GROUP BY e.siren, e.name
) AS rows
ORDER BY part, sort
