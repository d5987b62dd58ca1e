-- A project as an RFC 7946 Feature: the one shape every API list uses for a project.
-- p: a row of visible_projects(viewer); organisation: its organisation's name; distance_m
-- (nearby) and concerns_via (what concerns a commune) are null elsewhere. geometry is null
-- when the project has no place on the map (national scope without a location).
-- json, not jsonb: it keeps the keys in this order and costs 100x less to build (0.25 ms for
-- 20 features against 26 ms). Inlined by the planner (one SELECT, LANGUAGE sql).
CREATE FUNCTION project_feature(
    p project, organisation text, distance_m float8 DEFAULT NULL, concerns_via text DEFAULT NULL
)
RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'type', 'Feature',
        'id', p.id,
        'geometry', ST_AsGeoJSON(p.place, 6)::json,
        'properties', json_build_object(
            'id', p.id,
            'title', p.title,
            'tool', p.tool,
            'space', p.space,
            'status', p.status,
            'visibility', p.visibility,
            'organisation', organisation,
            'organisation_id', p.organisation_id,
            'themes', p.themes,
            'scope', p.scope_kind,
            'opens_at', p.opens_at,
            'closes_at', p.closes_at,
            'results_at', p.results_at,
            'distance_m', round(distance_m::numeric, 1),
            'concerns_via', concerns_via
        )
    )
$$;

-- A contribution on a participatory map as a Feature, with its distance from the query point.
CREATE FUNCTION contribution_feature(c contribution, distance_m float8)
RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'type', 'Feature',
        'id', c.id,
        'geometry', ST_AsGeoJSON(c.geom, 6)::json,
        'properties', json_build_object(
            'id', c.id,
            'project_id', c.project_id,
            'category', c.category,
            'title', c.title,
            'created_at', c.created_at,
            'distance_m', round(distance_m::numeric, 1)
        )
    )
$$;
