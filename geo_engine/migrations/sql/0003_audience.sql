-- The audience of a project: every user it concerns, for the fan-out of alerts and digests.
--
-- project_audience(project)
-- Parameter: project: project.id (an unknown id gives no row).
-- Output, one row per user (no duplicates, no order):
--   user_id bigint;
--   commune_code text: the commune the user is placed in (to group them, e.g. by time zone);
--   level text, the narrowest reason, with the words of project_candidates: commune,
--     arrondissement, epci, departement, region (the territories it names, resolved to
--     communes and matched on the users' commune), area or radius (the user's stored home
--     point is inside its drawn area or circle), national.
-- Who: users placed in a commune. A user still pending (a shared postal code, the candidate
--   communes not yet chosen) has no commune and no home, so is in no audience. A project
--   naming an arrondissement reaches the users placed in it, and those of its commune whose
--   arrondissement is unknown (Lyon and Marseille have no outlines in the data, a user placed
--   by commune code has none either): never fewer than concerned.
-- A private project reaches only the members of its organisation: the one rule,
--   visible_projects(viewer), asked once for "anyone" (viewer NULL: the project is public) and
--   once per member of the project's organisation; both are computed once, before any user
--   row (an InitPlan and a hashed SubPlan).
-- Indexes: ix_user_place_commune_code (btree on commune_code, INCLUDE user_id and
--   arrondissement_code: an index-only scan per commune once the table is vacuumed);
--   idx_user_place_home (GiST on the home points) for areas and circles; the national branch
--   reads user_place whole, in physical order. Each branch starts with a one-time filter on
--   the project's scope kind, so only the branch of that kind reads anything.
-- LANGUAGE sql, STABLE, one SELECT: inlined into the caller, so rows stream (a server-side
--   cursor or COPY (SELECT ... FROM project_audience(p)) TO STDOUT never holds millions).
CREATE FUNCTION project_audience(project bigint)
RETURNS TABLE (user_id bigint, commune_code text, level text)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH scope AS (
        -- The communes a territorial scope names or contains, each once, with the narrowest
        -- level naming the whole commune and the arrondissements named in it.
        SELECT s.code, min(s.rank) FILTER (WHERE s.rank <> 2) AS rank,
               array_agg(s.arrondissement) FILTER (WHERE s.rank = 2) AS arrondissements
        FROM (
            SELECT c.code, 1 AS rank, NULL::text AS arrondissement
            FROM project_territory AS t JOIN commune AS c ON c.code = t.code
            WHERE t.project_id = project AND t.level = 'commune'
            UNION ALL
            SELECT ar.commune_code, 2, ar.code
            FROM project_territory AS t JOIN arrondissement AS ar ON ar.code = t.code
            WHERE t.project_id = project AND t.level = 'arrondissement'
            UNION ALL
            SELECT c.code, 3, NULL
            FROM project_territory AS t JOIN commune AS c ON c.epci_siren = t.code
            WHERE t.project_id = project AND t.level = 'epci'
            UNION ALL
            SELECT c.code, 5, NULL
            FROM project_territory AS t JOIN commune AS c ON c.departement_code = t.code
            WHERE t.project_id = project AND t.level = 'departement'
            UNION ALL
            SELECT c.code, 6, NULL
            FROM project_territory AS t JOIN commune AS c ON c.region_code = t.code
            WHERE t.project_id = project AND t.level = 'region'
        ) AS s
        GROUP BY s.code
    ),
    reached AS (
        SELECT u.user_id, u.commune_code,
               CASE WHEN s.rank = 1 THEN 'commune'
                    WHEN s.rank IS NULL OR u.arrondissement_code = ANY (s.arrondissements)
                        THEN 'arrondissement'
                    ELSE (ARRAY['commune', 'arrondissement', 'epci', NULL, 'departement',
                                'region'])[s.rank]
               END AS level
        FROM scope AS s
        JOIN user_place AS u ON u.commune_code = s.code
        WHERE (SELECT p.scope_kind FROM project AS p WHERE p.id = project) = 'territories'
          AND (s.rank IS NOT NULL OR u.arrondissement_code IS NULL
               OR u.arrondissement_code = ANY (s.arrondissements))
        UNION ALL
        SELECT u.user_id, u.commune_code,
               CASE WHEN a.radius_m IS NULL THEN 'area' ELSE 'radius' END
        FROM project_area AS a
        JOIN user_place AS u ON ST_Intersects(a.geom, u.home)
        WHERE a.project_id = project
          AND (SELECT p.scope_kind FROM project AS p WHERE p.id = project) IN ('area', 'radius')
          AND u.commune_code IS NOT NULL
        UNION ALL
        SELECT u.user_id, u.commune_code, 'national'
        FROM user_place AS u
        WHERE (SELECT p.scope_kind FROM project AS p WHERE p.id = project) = 'national'
          AND u.commune_code IS NOT NULL
    )
    SELECT r.user_id, r.commune_code, r.level
    FROM reached AS r
    WHERE EXISTS (SELECT FROM visible_projects(NULL) AS v WHERE v.id = project)
       OR r.user_id IN (
            SELECT m.user_id
            FROM organisation_member AS m
            JOIN project AS p ON p.organisation_id = m.organisation_id
            WHERE p.id = project
              AND EXISTS (SELECT FROM visible_projects(m.user_id) AS v WHERE v.id = project)
       )
$$;
