-- What the recommender knows of some users, in one round trip: their engagement, the
-- organisations they follow or belong to, and their feedback, packed (a row costs the client
-- more than its size; three rows of byte strings cross for any number of users).
-- Parameters: %(users)s int8[] app_user ids (duplicates ignored); %(kinds)s text[] the
--   engagement kinds, %(feedback_kinds)s text[] the feedback kinds and %(themes)s text[] the
--   themes, each in code order (a value's code is its position - 1).
-- Output, one row, each column a byte string of big-endian values (NULL when no row); the
--   aggregates of one part read its rows in one pass, so their n-th items belong together:
--   e_user int8, e_project int8, e_kind int2 (code), e_count int4, e_last float8 (epoch s);
--   o_user int8, o_organisation int8, o_followed bool, o_member bool (one per pair);
--   f_user int8, f_kind int2 (code), f_project int8 (0: none), f_theme int2 (code, -1: none).
-- Indexes: pk_engagement (user_id leads), pk_follow (user_id leads),
--   ix_organisation_member_user_id, uq_recommendation_feedback_user_id (user_id leads), each
--   probed with = ANY(array): no join, so a stale estimate costs at worst one scan of a table,
--   never a nested loop over it (an IN (subquery) took minutes on 6M rows just loaded).
WITH organisations AS (
    SELECT o.user_id, o.organisation_id, bool_or(o.followed) AS followed,
           bool_or(NOT o.followed) AS member
    FROM (
        SELECT f.user_id, f.organisation_id, true AS followed
        FROM follow AS f WHERE f.user_id = ANY(%(users)s::int8[])
        UNION ALL
        SELECT m.user_id, m.organisation_id, false
        FROM organisation_member AS m WHERE m.user_id = ANY(%(users)s::int8[])
    ) AS o
    GROUP BY o.user_id, o.organisation_id
)
SELECT e.*, o.*, f.*
FROM (
    SELECT string_agg(int8send(e.user_id), ''::bytea) AS e_user,
           string_agg(int8send(e.project_id), ''::bytea) AS e_project,
           string_agg(int2send((array_position(%(kinds)s::text[], e.kind) - 1)::int2), ''::bytea)
               AS e_kind,
           string_agg(int4send(e.count), ''::bytea) AS e_count,
           string_agg(float8send(extract(epoch FROM e.last_at)::float8), ''::bytea) AS e_last
    FROM engagement AS e WHERE e.user_id = ANY(%(users)s::int8[])
) AS e, (
    SELECT string_agg(int8send(o.user_id), ''::bytea) AS o_user,
           string_agg(int8send(o.organisation_id), ''::bytea) AS o_organisation,
           string_agg(boolsend(o.followed), ''::bytea) AS o_followed,
           string_agg(boolsend(o.member), ''::bytea) AS o_member
    FROM organisations AS o
) AS o, (
    SELECT string_agg(int8send(f.user_id), ''::bytea) AS f_user,
           string_agg(int2send((array_position(%(feedback_kinds)s::text[], f.kind) - 1)::int2),
                      ''::bytea) AS f_kind,
           string_agg(int8send(coalesce(f.project_id, 0)), ''::bytea) AS f_project,
           string_agg(int2send(coalesce(array_position(%(themes)s::text[], f.theme) - 1, -1)::int2),
                      ''::bytea) AS f_theme
    FROM recommendation_feedback AS f WHERE f.user_id = ANY(%(users)s::int8[])
) AS f
