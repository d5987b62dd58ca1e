-- Fan-out of one project: one inbox row per user it concerns and who wants it, with its reason.
--
-- Parameters:
--   %(project)s bigint project.id; %(kind)s text inbox.kind; %(meeting)s bigint (0: none);
--   %(lead)s smallint reminder lead in days (0: none); %(event)s uuid (or NULL);
--   %(levels)s text[] geo_engine.audience.LEVELS (a level's index is its position - 1);
--   %(level_weights)s real[] the scorer's weight of each level, in LEVELS order, then that of
--     an XXL intercommunalité (level:epci_xxl) last;
--   %(space_weights)s jsonb: space -> weight (space:loi, space:idees; the project's alone);
--   %(w_interest)s, %(w_followed)s, %(w_muted)s real: weights of interest_declared,
--     followed and theme_muted (recommender/scorers.py, weighted-v1.toml);
--   %(threshold)s real: a user is kept when the score is above it;
--   %(deadline)s boolean: a civic deadline (priority 2 where the project concerns the user's
--     own commune).
-- Output: none; inserts into inbox, ON CONFLICT (pk_inbox) DO NOTHING, so handling an event
--   twice adds nothing.
-- Who: project_audience(project), which applies the visibility rule (a private project
--   reaches its organisation's members only; a missing one reaches nobody), then, for a
--   public project, the organisation's followers outside the audience (level -1: reached by
--   the follow, not by a territory). The audience's rows come first in the Append (an INSERT
--   never runs a parallel plan), so a follower in the audience keeps the territory's reason.
-- Filters: the user's notifications.muted_spaces, muted_tools (the project's space or tool
--   listed) and muted_themes (any of the project's themes listed); the frequency is not a
--   filter, the inbox always gets the row.
-- Score: level weight + w_interest * share of the project's themes the user declared
--   + w_followed * (follows or belongs to the organisation) + w_muted * share of the themes
--   the user asked less of (recommendation_feedback 'less_of_theme') + its space's weight.
-- {shared} is composed by consumers/fanout.py: one `(theme = ANY (u.interests))::int` per theme
--   of the project, summed (a subquery over unnest() per user cost 5 µs a row).
-- Plan: app_user is read once, whole, for the few users whose preferences matter here
--   (`prefs`, hashed); `scored` is kept whole (OFFSET 0) so the score is computed once a row.
-- Reasons: one per commune and level, from a hash of the communes with their EPCI,
--   département and région names (35,000 rows), joined to the users by commune.
-- Indexes: those of project_audience; none on app_user (one sequential scan);
--   ix_follow_organisation_id, uq_recommendation_feedback_user_id; pk_inbox.
WITH p AS MATERIALIZED (
    SELECT pr.id, pr.organisation_id, pr.space, pr.tool, pr.themes,
           pr.visibility = 'public' AS public,
           greatest(cardinality(pr.themes), 1)::real AS n_themes, o.name AS organisation
    FROM project AS pr
    JOIN organisation AS o ON o.id = pr.organisation_id
    WHERE pr.id = %(project)s
),
fans AS (
    SELECT f.user_id FROM follow AS f JOIN p ON f.organisation_id = p.organisation_id
    UNION
    SELECT m.user_id FROM organisation_member AS m JOIN p ON m.organisation_id = p.organisation_id
),
less AS (
    SELECT fb.user_id, count(*)::real AS themes
    FROM recommendation_feedback AS fb
    JOIN p ON fb.theme = ANY (p.themes)
    WHERE fb.kind = 'less_of_theme'
    GROUP BY fb.user_id
),
arrondissements AS (
    SELECT ar.commune_code, string_agg(ar.name, ', ' ORDER BY ar.code) AS names
    FROM project_territory AS t
    JOIN arrondissement AS ar ON ar.code = t.code
    WHERE t.project_id = %(project)s AND t.level = 'arrondissement'
    GROUP BY ar.commune_code
),
places AS (
    SELECT c.code, c.name, e.name AS epci, coalesce(e.xxl, false) AS xxl,
           d.name AS departement, r.name AS region, a.names AS arrondissements
    FROM commune AS c
    LEFT JOIN epci AS e ON e.siren = c.epci_siren
    JOIN departement AS d ON d.code = c.departement_code
    JOIN region AS r ON r.code = c.region_code
    LEFT JOIN arrondissements AS a ON a.commune_code = c.code
),
reached AS (
    SELECT a.user_id, a.commune_code, (array_position(%(levels)s::text[], a.level) - 1)::int AS level
    FROM project_audience(%(project)s) AS a
    UNION ALL
    SELECT f.user_id, NULL, -1
    FROM follow AS f
    JOIN p ON f.organisation_id = p.organisation_id AND p.public
),
prefs AS (
    -- Only the users whose preferences change something for this project: declared
    -- interests among its themes, or mutes. Hashing these few narrow rows costs a fraction
    -- of hashing app_user whole (five million rows with their jsonb and arrays).
    SELECT u.id,
           CASE WHEN u.interests && p.themes THEN ({shared})::real / p.n_themes ELSE 0 END
               AS interest,
           coalesce(u.notifications -> 'muted_spaces' ? p.space, false)
           OR coalesce(u.notifications -> 'muted_tools' ? p.tool, false)
           OR coalesce(u.notifications -> 'muted_themes' ?| p.themes, false) AS muted
    FROM app_user AS u
    CROSS JOIN p
    WHERE u.interests && p.themes
       OR u.notifications ?| ARRAY['muted_spaces', 'muted_tools', 'muted_themes']
),
scored AS (
    SELECT r.user_id, r.level, pl.name AS commune, pl.epci, pl.departement, pl.region,
           pl.arrondissements,
           (CASE WHEN r.level < 0 THEN 0
                 WHEN r.level = 2 AND pl.xxl
                     THEN (%(level_weights)s::real[])[cardinality(%(levels)s::text[]) + 1]
                 ELSE (%(level_weights)s::real[])[r.level + 1] END
            + coalesce((%(space_weights)s::jsonb ->> p.space)::real, 0)
            + %(w_interest)s::real * coalesce(pr.interest, 0)
            + CASE WHEN fa.user_id IS NOT NULL THEN %(w_followed)s::real ELSE 0 END
            + coalesce(%(w_muted)s::real * l.themes / p.n_themes, 0))::real AS relevance,
           coalesce(pr.muted, false) AS muted
    FROM reached AS r
    CROSS JOIN p
    LEFT JOIN prefs AS pr ON pr.id = r.user_id
    LEFT JOIN places AS pl ON pl.code = r.commune_code
    LEFT JOIN fans AS fa ON fa.user_id = r.user_id
    LEFT JOIN less AS l ON l.user_id = r.user_id
    OFFSET 0
)
INSERT INTO inbox (user_id, project_id, kind, meeting_id, lead_days, level, priority,
                   relevance, reason, event_id)
SELECT s.user_id, p.id, %(kind)s, %(meeting)s, %(lead)s, s.level,
       CASE WHEN %(deadline)s AND s.level IN (0, 1) THEN 2 ELSE 1 END,
       s.relevance,
       CASE s.level
           WHEN -1 THEN 'Proposé par une organisation que vous suivez : ' || p.organisation
           WHEN 0 THEN 'Concerne votre commune, ' || s.commune
           WHEN 1 THEN 'Concerne votre arrondissement, ' || coalesce(s.arrondissements, s.commune)
           WHEN 2 THEN 'Concerne votre intercommunalité, ' || s.epci
           WHEN 3 THEN 'Concerne un secteur de votre commune, ' || s.commune
           WHEN 4 THEN 'Concerne les environs de votre commune, ' || s.commune
           WHEN 5 THEN 'Concerne votre département, ' || s.departement
           WHEN 6 THEN 'Concerne votre région, ' || s.region
           ELSE 'Concerne toute la France'
       END,
       %(event)s
FROM scored AS s
CROSS JOIN p
WHERE NOT s.muted AND s.relevance > %(threshold)s
ON CONFLICT ON CONSTRAINT pk_inbox DO NOTHING
