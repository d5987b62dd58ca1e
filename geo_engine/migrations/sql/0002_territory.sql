-- Every territory a scope or an organisation's home can name, by (level, code): the planner
-- pushes an equality on both into each branch, so a lookup uses that table's primary key.
CREATE VIEW territory AS
    SELECT 'commune'::text AS level, code, name, geom FROM commune
    UNION ALL SELECT 'epci', siren, name, geom FROM epci
    UNION ALL SELECT 'departement', code, name, geom FROM departement
    UNION ALL SELECT 'region', code, name, geom FROM region;
