-- The report's population, one row per user (a temporary table the other metrics_*.sql read).
-- Parameters: %(experiment)s integer, or NULL for everyone; %(until)s timestamptz; %(since)s
--   timestamptz.
-- Output (growth_people): user_id; variant (the variant of the user's FIRST exposure in the
--   experiment, or 'tous'); unit (the randomised unit, '' for everyone); entered_at (that
--   first exposure, or the sign-up for everyone); start_at = greatest(entered_at, since), from
--   which outcomes count; created_at (sign-up); commune_code (NULL when not placed).
--   Only users who entered before %(until)s.
-- Indexes: pk_experiment_exposure (experiment_id leads), pk_app_user, pk_user_place.
CREATE TEMP TABLE growth_people ON COMMIT DROP AS
WITH exposed AS (
    SELECT DISTINCT ON (user_id) user_id, variant, unit, exposed_at
    FROM experiment_exposure
    WHERE experiment_id = %(experiment)s AND exposed_at < %(until)s
    ORDER BY user_id, exposed_at, variant
),
entered AS (
    SELECT x.user_id, x.variant, x.unit, x.exposed_at AS entered_at
    FROM exposed AS x
    UNION ALL
    SELECT u.id, 'tous', '', u.created_at
    FROM app_user AS u
    WHERE %(experiment)s::integer IS NULL AND u.created_at < %(until)s
)
SELECT e.user_id, e.variant, e.unit, e.entered_at,
       greatest(e.entered_at, %(since)s::timestamptz) AS start_at,
       u.created_at, p.commune_code
FROM entered AS e
JOIN app_user AS u ON u.id = e.user_id
LEFT JOIN user_place AS p ON p.user_id = e.user_id
