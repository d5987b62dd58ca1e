-- Which running experiment of a surface, and which of its variants, each of some users is in.
-- Parameters: %(surface)s text ('ranking' | 'digest' | 'alerts'); %(users)s bigint[].
-- Output: user_id, experiment_id, variant (name), unit (the randomised unit: the user id, the
--   commune's INSEE code or the EPCI's SIREN, as text); users in no experiment are absent.
-- Rule (contracts/experiments.py): the unit is in an experiment when
--   experiment_bucket('layer:' || surface, unit) mod 100 is in [layer_lo, layer_hi); its variant
--   is the first whose cumulative edge exceeds experiment_bucket(salt, unit) mod 10000; among
--   should two running experiments of the surface take the user (the store refuses to start
--   one that could), the one started first keeps them.
--   Users without a commune are in no commune or EPCI experiment.
-- Indexes: pk_user_place, pk_commune; experiment is a handful of rows.
WITH running AS (
    SELECT id, unit, salt, layer_lo, layer_hi, variant_names, variant_edges, started_at
    FROM experiment
    WHERE surface = %(surface)s AND status = 'running'
),
people AS (
    SELECT u.id AS user_id, p.commune_code, c.epci_siren
    FROM unnest(%(users)s::bigint[]) AS u(id)
    LEFT JOIN user_place AS p ON p.user_id = u.id
    LEFT JOIN commune AS c ON c.code = p.commune_code
),
units AS (
    SELECT x.user_id, r.id, r.started_at, r.layer_lo, r.layer_hi, r.variant_names,
           r.variant_edges, r.salt,
           CASE r.unit WHEN 'user' THEN x.user_id::text
                       WHEN 'commune' THEN x.commune_code
                       ELSE x.epci_siren END AS unit_id
    FROM people AS x
    CROSS JOIN running AS r
),
-- Materialised: each hash is computed once per unit, not once per use.
hashed AS MATERIALIZED (
    SELECT u.*,
           experiment_bucket('layer:' || %(surface)s, u.unit_id) %% 100 AS layer_slot,
           experiment_bucket(u.salt, u.unit_id) %% 10000 AS position
    FROM units AS u
    WHERE u.unit_id IS NOT NULL
)
SELECT DISTINCT ON (user_id)
       -- width_bucket: how many edges are <= position, i.e. the variant's index - 1
       user_id, id, variant_names[1 + width_bucket(position, variant_edges)], unit_id
FROM hashed
WHERE layer_slot >= layer_lo AND layer_slot < layer_hi
ORDER BY user_id, started_at, id
