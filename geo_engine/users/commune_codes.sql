-- What each code given as "the INSEE code of where I live" names (a users file's `commune`).
-- Parameters: %(codes)s text[], the distinct codes given.
-- Output, one row per code that names something (unknown codes have no row):
--   code;
--   reading: 'commune' (a commune in force), 'arrondissement' (an arrondissement municipal of
--     Paris, Lyon or Marseille: placed in its commune) or 'former' (a former code, followed to
--     the commune that absorbed it);
--   commune_code, commune_name: where that reading places the user;
--   arrondissement_code: for an arrondissement code, itself;
--   postal_readings: for a former code only, the other reading when the code is also a live
--     postal code of communes other than its successor: a JSON array of
--     [commune code, commune name, arrondissement code, arrondissement name] (null otherwise).
--     Such a former code is ambiguous and refused by the caller (README, "Codes").
-- Indexes: the primary keys of commune, arrondissement, commune_former_code, and of
--   postal_code (postal_code, commune_code) for the postal reading; arrondissement has 45 rows.
WITH given AS (SELECT DISTINCT unnest(%(codes)s::text[]) AS code)
SELECT g.code,
       CASE WHEN c.code IS NOT NULL THEN 'commune'
            WHEN a.code IS NOT NULL THEN 'arrondissement'
            ELSE 'former' END AS reading,
       n.code AS commune_code,
       n.name AS commune_name,
       a.code AS arrondissement_code,
       p.readings AS postal_readings
FROM given AS g
LEFT JOIN commune AS c ON c.code = g.code
LEFT JOIN arrondissement AS a ON c.code IS NULL AND a.code = g.code
LEFT JOIN commune_former_code AS f
       ON c.code IS NULL AND a.code IS NULL AND f.former_code = g.code
JOIN commune AS n ON n.code = coalesce(c.code, a.commune_code, f.commune_code)
LEFT JOIN LATERAL (
    SELECT json_agg(json_build_array(pc.code, pc.name, pa.code, pa.name)
                    ORDER BY pc.code, pa.code) AS readings
    FROM postal_code AS pp
    JOIN commune AS pc ON pc.code = pp.commune_code
    LEFT JOIN arrondissement AS pa
           ON pa.commune_code = pc.code AND pp.postal_code = ANY (pa.postal_codes)
    WHERE f.former_code IS NOT NULL
      AND pp.postal_code = g.code
      AND pp.commune_code <> f.commune_code
) AS p ON true
