-- Who sees what: the one rule, in one place.
-- A project is visible to a viewer when it is public, or when the viewer is a member of its
-- organisation. Every read of projects and contributions goes through these two functions:
-- lists, nearby, bounding boxes, tiles, counts and, later, recommendations, alerts and digests.
-- viewer: app_user.id, or NULL for an anonymous caller (who then sees public projects only).
-- Both are LANGUAGE sql, STABLE and one SELECT, so the planner inlines them into the caller's
-- query: a KNN scan on project.place_geog or a bbox scan on project.place keeps its index, and
-- the membership test is one hashed subplan on ix_organisation_member_user_id.

CREATE FUNCTION visible_projects(viewer bigint) RETURNS SETOF project
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT p.*
    FROM project AS p
    WHERE p.visibility = 'public'
       OR p.organisation_id IN (
            SELECT m.organisation_id FROM organisation_member AS m WHERE m.user_id = viewer
       )
$$;

CREATE FUNCTION visible_contributions(viewer bigint) RETURNS SETOF contribution
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT c.*
    FROM contribution AS c
    JOIN visible_projects(viewer) AS p ON p.id = c.project_id
$$;
