-- What concerns a place, as ids and facts (no JSON): the one copy of the hierarchy, used by the
-- HTTP list of a commune's projects (queries/commune_projects.sql), by the recommender's
-- candidate generators and by the fan-out.
--
-- project_candidates(communes, home, viewer)
-- Parameters: communes text[]: INSEE codes of communes (unknown codes and duplicates are
--   ignored); home geometry(Point, 4326) or NULL; viewer app_user.id or NULL (anonymous).
-- Output, one row per (commune, project) for every project visible to viewer through
--   visible_projects(viewer), the one rule:
--   commune_code text: the commune asked; NULL on the rows of national projects, which come
--     ONCE each (they concern every commune asked; 12,000 national projects repeated for all
--     34,969 communes would be 420 million rows). They come only when a commune asked exists.
--   project_id bigint.
--   level text, the narrowest reason it concerns the commune, from narrow to wide: commune
--     (named), arrondissement (one of the commune's municipal arrondissements is named: Paris,
--     Lyon, Marseille), epci, area or radius (its drawn area or circle touches the commune's
--     outline), departement, region, national.
--   distance_m float8: when home is given, metres on the sphere from home to the project's
--     area or circle (0 inside it), else to its location; NULL without home or without either.
-- The rule is applied before the expansion: to the territories named (70,000 rows for 100,000
--   projects) and to the drawn areas, each by a semi-join on visible_projects(viewer).
-- Indexes: territorial scopes are btree joins of project_territory (pk_project_territory,
--   ix_project_territory_level_code) against the communes' own columns (pk_commune,
--   ix_commune_epci_siren; the département and région joins hash the asked communes);
--   areas and circles probe idx_commune_piece_geom (GiST on the ST_Subdivide'd outlines) and
--   keep the pieces of the communes asked; national projects come from ix_project_national.
-- LANGUAGE sql, STABLE, one SELECT: the planner inlines it into the caller's query, so a
-- caller's filter (commune_projects.sql: one page after an id) reaches the scans.
CREATE FUNCTION project_candidates(
    communes text[], home geometry DEFAULT NULL, viewer bigint DEFAULT NULL
)
RETURNS TABLE (commune_code text, project_id bigint, level text, distance_m float8)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH asked AS MATERIALIZED (
        SELECT c.code, c.epci_siren, c.departement_code, c.region_code
        FROM commune AS c
        WHERE c.code IN (SELECT unnest(communes))
    ),
    -- Each territory a visible project names, flagged when the project names others: only
    -- those projects can reach a commune twice (a commune and its département, two
    -- arrondissements of one commune), so only their rows are grouped below (a GROUP BY over
    -- the five million rows of all communes would spill to disk). The rule is applied here,
    -- to the 70,000 territories named, not to the millions of rows they expand to.
    named AS NOT MATERIALIZED (
        SELECT t.project_id, t.level, t.code, EXISTS (
                   SELECT FROM project_territory AS o
                   WHERE o.project_id = t.project_id AND (o.level, o.code) <> (t.level, t.code)
               ) AS several
        FROM project_territory AS t
        WHERE EXISTS (SELECT FROM visible_projects(viewer) AS v WHERE v.id = t.project_id)
    ),
    hit AS NOT MATERIALIZED (
        SELECT a.code, t.project_id, 1 AS rank, t.several
        FROM asked AS a
        JOIN named AS t ON t.level = 'commune' AND t.code = a.code
        UNION ALL
        SELECT a.code, t.project_id, 2, t.several
        FROM named AS t
        JOIN arrondissement AS ar ON ar.code = t.code
        JOIN asked AS a ON a.code = ar.commune_code
        WHERE t.level = 'arrondissement'
        UNION ALL
        SELECT a.code, t.project_id, 3, t.several
        FROM asked AS a
        JOIN named AS t ON t.level = 'epci' AND t.code = a.epci_siren
        UNION ALL
        SELECT a.code, t.project_id, 5, t.several
        FROM asked AS a
        JOIN named AS t ON t.level = 'departement' AND t.code = a.departement_code
        UNION ALL
        SELECT a.code, t.project_id, 6, t.several
        FROM asked AS a
        JOIN named AS t ON t.level = 'region' AND t.code = a.region_code
    ),
    -- Visible drawn areas and circles.
    drawn AS NOT MATERIALIZED (
        SELECT pa.project_id, pa.geom,
               CASE WHEN pa.radius_m IS NULL THEN 'area' ELSE 'radius' END AS level
        FROM project_area AS pa
        WHERE EXISTS (SELECT FROM visible_projects(viewer) AS v WHERE v.id = pa.project_id)
    ),
    concern AS (
        SELECT h.code, h.project_id,
               (ARRAY['commune', 'arrondissement', 'epci', NULL, 'departement', 'region'])[h.rank]
                   AS level
        FROM hit AS h WHERE NOT h.several
        UNION ALL
        SELECT h.code, h.project_id,
               (ARRAY['commune', 'arrondissement', 'epci', NULL, 'departement', 'region'])[
                   min(h.rank)]
        FROM hit AS h WHERE h.several
        GROUP BY h.code, h.project_id
        -- Areas and circles touching the outline. For a few communes, their pieces probe
        -- idx_project_area_geom; for many, each area probes idx_commune_piece_geom (OFFSET 0
        -- keeps that order), its prepared polygon tested against the pieces it touches. Only
        -- one of the two runs: cardinality(communes) is known when the query is planned.
        UNION ALL
        SELECT DISTINCT cp.commune_code, d.project_id, d.level
        FROM asked AS a
        JOIN commune_piece AS cp ON cp.commune_code = a.code
        JOIN drawn AS d ON ST_Intersects(d.geom, cp.geom)
        WHERE cardinality(communes) <= 64
        UNION ALL
        SELECT DISTINCT x.commune_code, d.project_id, d.level
        FROM drawn AS d
        CROSS JOIN LATERAL (
            SELECT cp.commune_code FROM commune_piece AS cp
            WHERE ST_Intersects(d.geom, cp.geom) OFFSET 0
        ) AS x
        WHERE cardinality(communes) > 64
          AND x.commune_code IN (SELECT a.code FROM asked AS a)
    )
    SELECT k.code, k.project_id, k.level,
           CASE WHEN home IS NOT NULL THEN
               coalesce(
                   (SELECT ST_Distance(pa.geom::geography, home::geography, false)
                    FROM project_area AS pa WHERE pa.project_id = k.project_id),
                   (SELECT ST_Distance(p.location::geography, home::geography, false)
                    FROM project AS p WHERE p.id = k.project_id))
           END
    FROM concern AS k
    UNION ALL
    -- National projects straight from the rule on ix_project_national, once.
    SELECT NULL, p.id, 'national',
           CASE WHEN home IS NOT NULL THEN
               ST_Distance(p.location::geography, home::geography, false)
           END
    FROM visible_projects(viewer) AS p
    WHERE p.scope_kind = 'national' AND EXISTS (SELECT FROM asked)
$$;
