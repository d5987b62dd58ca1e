-- One project the viewer may see, with its scope: the Feature of lists plus description, the
-- named territories and the area (GeoJSON). No row when it is missing *or* hidden from the
-- viewer: the API answers both the same way.
-- Parameters: %(id)s, %(viewer)s. Index: pk_project, pk_project_territory, pk_project_area.
SELECT jsonb_set(f::jsonb, '{properties}', (f->'properties')::jsonb || jsonb_build_object(
    'description', p.description,
    'territories', coalesce((
        SELECT jsonb_agg(jsonb_build_object('level', t.level, 'code', t.code, 'name', tr.name)
                         ORDER BY t.level, t.code)
        FROM project_territory AS t
        LEFT JOIN territory AS tr ON tr.level = t.level AND tr.code = t.code
        WHERE t.project_id = p.id), '[]'),
    'area', (SELECT ST_AsGeoJSON(a.geom, 6)::jsonb FROM project_area AS a
             WHERE a.project_id = p.id),
    'radius_m', (SELECT a.radius_m FROM project_area AS a WHERE a.project_id = p.id)
))::text
FROM visible_projects(%(viewer)s) AS p
JOIN organisation AS o ON o.id = p.organisation_id
CROSS JOIN LATERAL project_feature(p, o.name) AS f
WHERE p.id = %(id)s
