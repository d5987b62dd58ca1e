-- A project as an RFC 7946 Feature: the one shape every API list uses for a project.
-- p: a row of visible_projects(viewer); organisation: its organisation's name;
-- extra: more properties merged in (distance_m, concerns_via). geometry is null when the
-- project has no place on the map (national scope without a location).
CREATE FUNCTION project_feature(p project, organisation text, extra jsonb DEFAULT '{}')
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT jsonb_build_object(
        'type', 'Feature',
        'id', p.id,
        'geometry', ST_AsGeoJSON(p.place, 6)::jsonb,
        'properties', jsonb_build_object(
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
            'results_at', p.results_at
        ) || extra
    )
$$;

-- A contribution on a participatory map as a Feature (extra: distance_m).
CREATE FUNCTION contribution_feature(c contribution, extra jsonb DEFAULT '{}')
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT jsonb_build_object(
        'type', 'Feature',
        'id', c.id,
        'geometry', ST_AsGeoJSON(c.geom, 6)::jsonb,
        'properties', jsonb_build_object(
            'id', c.id,
            'project_id', c.project_id,
            'category', c.category,
            'title', c.title,
            'created_at', c.created_at
        ) || extra
    )
$$;
