"""Writing organisations, members, projects and contributions, from imports and from the API.

Each ``store_*`` stages its rows with COPY, checks every reference in one query (a bad row is
named by its line), then upserts set-wise, all in the caller's transaction: a rejected batch
writes nothing, and the caller commits. Each also inserts the outbox events of the rows it
changed, derived set-wise from the same statement (``RETURNING``) or the same changed set:
a write that changes nothing announces nothing.

Given :class:`~geo_engine.settings.CatalogSettings`, a store that adds many rows to a table
builds that table's indexes and foreign keys once after the insert (``bulk.py``); without
(the API's writes), the indexes are kept up row by row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg
import shapely
from psycopg import sql

from contracts.catalog import (
    AreaScope,
    ContributionRecord,
    MemberRecord,
    OrganisationRecord,
    Point,
    ProjectRecord,
    RadiusScope,
    TerritoriesScope,
)
from geo_engine.catalog.bulk import indexes_built_once, worth_building_once
from geo_engine.db import copy_rows, upsert
from geo_engine.jsonl import ImportRejected, Line
from geo_engine.outbox import insert_events
from geo_engine.settings import CatalogSettings

CIRCLE_SEGMENTS = 16  # per quarter circle: a radius scope's polygon is within 0.8% of the circle


def _ewkt(point: Point | None) -> str | None:
    return None if point is None else f"SRID=4326;POINT({point.lon!r} {point.lat!r})"


def _reject_bad_references(cur: psycopg.Cursor, source: str, query: str) -> None:
    """``query`` yields (line, field, reason) for every row whose references do not hold."""
    cur.execute(query)
    errors = [f"{source}:{line}: {field}: {reason}" for line, field, reason in cur.fetchall()]
    if errors:
        raise ImportRejected(errors)


def _build_once(
    cur: psycopg.Cursor,
    table: str,
    stage: str,
    keys: Sequence[str],
    settings: CatalogSettings | None,
) -> bool:
    """Whether writing ``stage`` into ``table`` adds enough new rows (keys not there yet) to
    build ``table``'s indexes once (``bulk.worth_building_once``)."""
    if settings is None:
        return False
    match = sql.SQL(" AND ").join(
        sql.SQL("t.{k} = s.{k}").format(k=sql.Identifier(k)) for k in keys
    )
    cur.execute(
        sql.SQL(
            "SELECT count(*) FROM {stage} AS s"
            " WHERE NOT EXISTS (SELECT FROM {table} AS t WHERE {m})"
        ).format(stage=sql.Identifier(stage), table=sql.Identifier(table), m=match)
    )
    row = cur.fetchone()
    return row is not None and worth_building_once(cur, table, int(row[0]), settings)


def _write(table: str, columns: list[str], exclusive: bool) -> sql.Composed:
    """The CTE ``written (inserted, key)`` writing ``stage_<table>`` into ``table`` by ``id``,
    a row rewritten only when its content differs (``geo_engine.db.upsert``).

    ``exclusive``: nobody else can write ``table`` until the commit (its indexes are being
    built once, under an ACCESS EXCLUSIVE lock), so the new rows are inserted bare and the
    changed ones updated, in one statement: ``ON CONFLICT`` probes the primary key before and
    after each row, about twice the cost of a plain insert of a million rows."""
    if not exclusive:
        return sql.SQL("written AS ({})").format(upsert(table, "id", columns))
    ident = [sql.Identifier(c) for c in columns]
    return sql.SQL(
        """inserted AS (
               INSERT INTO {table} (id, {cols}) SELECT id, {cols} FROM {stage} AS s
               WHERE NOT EXISTS (SELECT FROM {table} AS t WHERE t.id = s.id)
               RETURNING true AS inserted, id AS key),
           updated AS (
               UPDATE {table} AS t SET {sets} FROM {stage} AS s
               WHERE t.id = s.id AND ({old}) IS DISTINCT FROM ({new})
               RETURNING false AS inserted, t.id AS key),
           written AS (SELECT * FROM inserted UNION ALL SELECT * FROM updated)"""
    ).format(
        table=sql.Identifier(table),
        stage=sql.Identifier(f"stage_{table}"),
        cols=sql.SQL(", ").join(ident),
        sets=sql.SQL(", ").join(sql.SQL("{c} = s.{c}").format(c=c) for c in ident),
        old=sql.SQL(", ").join(sql.SQL("t.{}").format(c) for c in ident),
        new=sql.SQL(", ").join(sql.SQL("s.{}").format(c) for c in ident),
    )


UNKNOWN_TERRITORY = """
    SELECT s.line, {field}, format('no %s with code %s', s.{level}, s.{code})
    FROM {stage} AS s
    WHERE s.{level} IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM territory AS t WHERE t.level = s.{level} AND t.code = s.{code})
"""


# One event per organisation written: created when the upsert inserted it, else updated.
ORGANISATION_EVENTS = insert_events(
    """(SELECT CASE WHEN inserted THEN 'organisation.created' ELSE 'organisation.updated' END
               AS type, jsonb_build_object('organisation_id', key) AS payload
        FROM written)"""
)


def store_organisations(
    conn: psycopg.Connection,
    lines: Sequence[Line[OrganisationRecord]],
    source: str = "input",
    settings: CatalogSettings | None = None,
) -> int:
    """Create or update organisations; their home territory must exist. Returns rows written."""
    with conn.cursor() as cur:
        cur.execute("""DROP TABLE IF EXISTS stage_organisation;
                       CREATE TEMP TABLE stage_organisation (line integer, id bigint, kind text,
                       name text, territory_level text, territory_code text) ON COMMIT DROP""")
        copy_rows(
            cur,
            "stage_organisation",
            ["line", "id", "kind", "name", "territory_level", "territory_code"],
            (
                (n, r.id, r.kind, r.name, r.territory and r.territory.level)
                + (r.territory and r.territory.code,)
                for n, r in lines
            ),
        )
        _reject_bad_references(
            cur,
            source,
            UNKNOWN_TERRITORY.format(
                field="'territory'",
                stage="stage_organisation",
                level="territory_level",
                code="territory_code",
            ),
        )
        build = _build_once(cur, "organisation", "stage_organisation", ["id"], settings)
        with indexes_built_once(cur, "organisation", build):
            cur.execute(
                sql.SQL("WITH {} ").format(
                    _write(
                        "organisation",
                        ["kind", "name", "territory_level", "territory_code"],
                        exclusive=build,
                    )
                )
                + sql.SQL(ORGANISATION_EVENTS)
            )
            written = cur.rowcount  # one event per row written
        cur.execute("DROP TABLE stage_organisation")
        return written


MEMBER_EVENTS = insert_events(
    """(SELECT CASE WHEN inserted THEN 'member.added' ELSE 'member.role_changed' END AS type,
               jsonb_build_object('organisation_id', organisation_id, 'user_id', user_id)
               AS payload
        FROM written)"""
)


def store_members(
    conn: psycopg.Connection,
    lines: Sequence[Line[MemberRecord]],
    source: str = "input",
    settings: CatalogSettings | None = None,
) -> int:
    """Add members or change their role; the organisation and the user must exist."""
    with conn.cursor() as cur:
        cur.execute("""DROP TABLE IF EXISTS stage_member;
                       CREATE TEMP TABLE stage_member (line integer, organisation_id bigint,
                       user_id bigint, role text) ON COMMIT DROP""")
        copy_rows(
            cur,
            "stage_member",
            ["line", "organisation_id", "user_id", "role"],
            ((n, r.organisation_id, r.user_id, r.role) for n, r in lines),
        )
        _reject_bad_references(
            cur,
            source,
            """SELECT s.line, 'organisation_id', format('no organisation %s', s.organisation_id)
               FROM stage_member s
               WHERE NOT EXISTS (SELECT 1 FROM organisation o WHERE o.id = s.organisation_id)
               UNION ALL
               SELECT s.line, 'user_id', format('no user %s', s.user_id) FROM stage_member s
               WHERE NOT EXISTS (SELECT 1 FROM app_user u WHERE u.id = s.user_id)
               ORDER BY 1""",
        )
        keys = ["organisation_id", "user_id"]
        build = _build_once(cur, "organisation_member", "stage_member", keys, settings)
        with indexes_built_once(cur, "organisation_member", build):
            cur.execute(
                """WITH written AS (
                       INSERT INTO organisation_member AS m (organisation_id, user_id, role)
                       SELECT organisation_id, user_id, role FROM stage_member
                       ON CONFLICT (organisation_id, user_id) DO UPDATE SET role = EXCLUDED.role
                       WHERE m.role IS DISTINCT FROM EXCLUDED.role
                       RETURNING organisation_id, user_id, (xmax = 0) AS inserted) """
                + MEMBER_EVENTS
            )
            written = cur.rowcount  # one event per row written
        cur.execute("DROP TABLE stage_member")
        return written


def remove_member(conn: psycopg.Connection, organisation_id: int, user_id: int) -> bool:
    """Remove a membership with its ``member.removed`` event; False when there was none."""
    cur = conn.execute(
        """WITH written AS (
               DELETE FROM organisation_member WHERE organisation_id = %s AND user_id = %s
               RETURNING organisation_id, user_id) """
        + insert_events(
            """(SELECT 'member.removed' AS type,
                       jsonb_build_object('organisation_id', organisation_id, 'user_id', user_id)
                       AS payload FROM written)"""
        ),
        (organisation_id, user_id),
    )
    return cur.rowcount > 0


def _area_geojson(record: ProjectRecord, source: str, line: int) -> str | None:
    """A drawn area as GeoJSON PostGIS will read, or ImportRejected saying why it is invalid."""
    if not isinstance(record.scope, AreaScope):
        return None
    where = f"{source}:{line}: scope.geometry"
    try:
        shape = shapely.from_geojson(json.dumps(record.scope.geometry))
    except (shapely.errors.GEOSException, ValueError) as exc:
        raise ImportRejected([f"{where}: not a readable GeoJSON polygon ({exc})"]) from None
    if shape.is_empty:
        raise ImportRejected([f"{where}: the area is empty"])
    if not shape.is_valid:
        raise ImportRejected([f"{where}: invalid polygon: {shapely.is_valid_reason(shape)}"])
    minx, miny, maxx, maxy = shape.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise ImportRejected([f"{where}: coordinates must be longitude, latitude in degrees"])
    return str(shapely.to_geojson(shapely.force_2d(shape)))  # heights are not kept


def _project_row(line: int, r: ProjectRecord, source: str) -> tuple[Any, ...]:
    center = r.scope.center if isinstance(r.scope, RadiusScope) else None
    radius = r.scope.radius_m if isinstance(r.scope, RadiusScope) else None
    return (
        line,
        r.id,
        r.organisation_id,
        r.space,
        r.tool,
        r.title,
        r.description,
        [t.value for t in r.themes],
        r.visibility,
        r.status,
        r.opens_at,
        r.closes_at,
        r.results_at,
        r.scope.kind,
        _ewkt(r.location),
        _ewkt(center),
        radius,
        _area_geojson(r, source, line),
    )


PROJECT_COLUMNS = [
    "organisation_id",
    "space",
    "tool",
    "title",
    "description",
    "themes",
    "visibility",
    "status",
    "opens_at",
    "closes_at",
    "results_at",
    "scope_kind",
    "location",
    "place",
]

# Where the map shows a project: its location, else a point inside its scope (a radius's
# centre, a drawn area's or the first named territory's point on surface); none if national.
# stage_project = the input plus each project's place, written as a new table in one pass.
# Set-wise: each territory's point on surface is computed once however many projects name it
# (a région's outline is large), then everything is joined by hash.
PLACE_PROJECTS = """
CREATE INDEX ON stage_project_territory (project_id);
CREATE INDEX ON stage_project_area (project_id);
ANALYZE stage_project_territory;
CREATE TEMP TABLE stage_first_territory ON COMMIT DROP AS
    SELECT DISTINCT ON (project_id) project_id, level, code
    FROM stage_project_territory ORDER BY project_id, position;
CREATE TEMP TABLE stage_territory_point ON COMMIT DROP AS
    SELECT t.level, t.code, ST_PointOnSurface(t.geom) AS point
    FROM (SELECT DISTINCT level, code FROM stage_first_territory) AS named
    JOIN territory AS t ON t.level = named.level AND t.code = named.code
    WHERE t.geom IS NOT NULL;
ANALYZE stage_project_input;
ANALYZE stage_project_area;
ANALYZE stage_first_territory;
CREATE TEMP TABLE stage_project ON COMMIT DROP AS
    SELECT s.*, coalesce(s.location, s.center, ST_PointOnSurface(a.geom), tp.point) AS place
    FROM stage_project_input AS s
    LEFT JOIN stage_project_area AS a ON a.project_id = s.id
    LEFT JOIN stage_first_territory AS ft ON ft.project_id = s.id
    LEFT JOIN stage_territory_point AS tp ON tp.level = ft.level AND tp.code = ft.code;
ANALYZE stage_project;
DROP TABLE stage_first_territory, stage_territory_point
"""


_COLS = ", ".join(PROJECT_COLUMNS)
# A project is written when it is new, or when its row or its scope (territories, area)
# differs: a scope-only change counts and touches updated_at like any other.
# Set-wise: each side's territories are aggregated once per project and everything is joined
# by hash (a correlated subquery per project made one call cost the square of its size).
# No territory on either side is NULL = NULL, not distinct; an area against none is distinct.
CHANGED_PROJECTS = f"""
CREATE TEMP TABLE changed_project ON COMMIT DROP AS
WITH new_territories AS (
    SELECT project_id, array_agg(level || ':' || code ORDER BY level || ':' || code) AS named
    FROM stage_project_territory GROUP BY project_id
), old_territories AS (
    SELECT t.project_id, array_agg(t.level || ':' || t.code ORDER BY t.level || ':' || t.code)
           AS named
    FROM project_territory AS t JOIN stage_project AS s ON s.id = t.project_id
    GROUP BY t.project_id
)
SELECT s.id, p.id IS NULL AS new, p.visibility AS old_visibility, p.status AS old_status,
       p.closes_at AS old_closes_at
FROM stage_project AS s
LEFT JOIN project AS p ON p.id = s.id
LEFT JOIN new_territories AS nt ON nt.project_id = s.id
LEFT JOIN old_territories AS ot ON ot.project_id = s.id
LEFT JOIN stage_project_area AS na ON na.project_id = s.id
LEFT JOIN project_area AS oa ON oa.project_id = s.id
WHERE p.id IS NULL
   OR ({", ".join(f"s.{c}" for c in PROJECT_COLUMNS)})
      IS DISTINCT FROM ({", ".join(f"p.{c}" for c in PROJECT_COLUMNS)})
   OR nt.named IS DISTINCT FROM ot.named
   OR (na.radius_m, ST_AsEWKB(na.geom)) IS DISTINCT FROM (oa.radius_m, ST_AsEWKB(oa.geom))
"""
# The events of the changed projects, read from the same set: a new one is published; an
# existing one is updated, plus each transition its change makes (see contracts/events.py).
PROJECT_EVENTS = insert_events(
    """(SELECT ev.type,
               jsonb_build_object('project_id', s.id, 'organisation_id', s.organisation_id)
               AS payload
        FROM changed_project AS c JOIN stage_project AS s ON s.id = c.id
        CROSS JOIN LATERAL (VALUES
            (CASE WHEN c.new THEN 'project.published' ELSE 'project.updated' END),
            (CASE WHEN NOT c.new AND c.old_visibility = 'public' AND s.visibility = 'private'
                  THEN 'project.made_private' END),
            (CASE WHEN NOT c.new AND c.old_visibility = 'private' AND s.visibility = 'public'
                  THEN 'project.made_public' END),
            (CASE WHEN NOT c.new AND s.status IN ('upcoming', 'open') AND s.closes_at IS NOT NULL
                       AND s.closes_at IS DISTINCT FROM c.old_closes_at
                  THEN 'project.closing' END),
            (CASE WHEN NOT c.new AND s.status = 'closed' AND c.old_status <> 'closed'
                  THEN 'project.closed' END),
            (CASE WHEN NOT c.new AND s.status = 'results' AND c.old_status <> 'results'
                  THEN 'project.results_published' END)) AS ev (type)
        WHERE ev.type IS NOT NULL)"""
)
UPSERT_CHANGED_PROJECTS = f"""
INSERT INTO project AS t (id, {_COLS})
SELECT id, {_COLS} FROM stage_project WHERE id IN (SELECT id FROM changed_project)
ON CONFLICT (id) DO UPDATE SET updated_at = now(),
    {", ".join(f"{c} = EXCLUDED.{c}" for c in PROJECT_COLUMNS)}
"""


def store_projects(
    conn: psycopg.Connection,
    lines: Sequence[Line[ProjectRecord]],
    source: str = "input",
    settings: CatalogSettings | None = None,
) -> int:
    """Create or replace projects with their scopes; organisation and territories must exist."""
    rows = [_project_row(n, r, source) for n, r in lines]
    with conn.cursor() as cur:
        cur.execute("""
            DROP TABLE IF EXISTS stage_project_input, stage_project, stage_project_territory,
                stage_project_area, changed_project;
            CREATE TEMP TABLE stage_project_input (line integer, id bigint,
                organisation_id bigint, space text, tool text, title text, description text,
                themes text[], visibility text, status text, opens_at timestamptz,
                closes_at timestamptz, results_at timestamptz, scope_kind text,
                location geometry(Point, 4326), center geometry(Point, 4326), radius_m float8,
                area text) ON COMMIT DROP;
            CREATE TEMP TABLE stage_project_territory (line integer, project_id bigint,
                position integer, level text, code text) ON COMMIT DROP;
            CREATE TEMP TABLE stage_project_area (project_id bigint, radius_m float8,
                geom geometry(MultiPolygon, 4326)) ON COMMIT DROP""")
        copy_rows(
            cur,
            "stage_project_input",
            ["line", "id", *PROJECT_COLUMNS[:13], "center", "radius_m", "area"],
            rows,
        )
        copy_rows(
            cur,
            "stage_project_territory",
            ["line", "project_id", "position", "level", "code"],
            (
                (n, r.id, i, t.level, t.code)
                for n, r in lines
                if isinstance(r.scope, TerritoriesScope)
                for i, t in enumerate(r.scope.territories)
            ),
        )
        _reject_bad_references(
            cur,
            source,
            """SELECT s.line, 'organisation_id', format('no organisation %s', s.organisation_id)
               FROM stage_project_input s
               WHERE NOT EXISTS (SELECT 1 FROM organisation o WHERE o.id = s.organisation_id)
               UNION ALL """
            + UNKNOWN_TERRITORY.format(
                field="'scope.territories'",
                stage="stage_project_territory",
                level="level",
                code="code",
            )
            + " ORDER BY 1",
        )
        # Circles are cut on the sphere (geography), so a radius is metres wherever it lies.
        cur.execute(
            """
            INSERT INTO stage_project_area (project_id, radius_m, geom)
            SELECT id, radius_m, ST_Multi(CASE WHEN scope_kind = 'radius'
                THEN ST_Buffer(center::geography, radius_m, %s)::geometry
                ELSE ST_SetSRID(ST_GeomFromGeoJSON(area), 4326) END)
            FROM stage_project_input WHERE scope_kind IN ('radius', 'area')""",
            (CIRCLE_SEGMENTS,),
        )
        cur.execute(PLACE_PROJECTS)
        cur.execute(CHANGED_PROJECTS)
        with indexes_built_once(cur, "project", _build_new(cur, "project", settings)):
            cur.execute(UPSERT_CHANGED_PROJECTS)
            written = cur.rowcount
        cur.execute(PROJECT_EVENTS)
        # A changed project's scope is replaced whole: its old rows go, its staged rows come.
        for table, columns in (
            ("project_territory", "project_id, level, code"),
            ("project_area", "project_id, radius_m, geom"),
        ):
            with indexes_built_once(cur, table, _build_new(cur, table, settings)):
                cur.execute(
                    sql.SQL("""
                        DELETE FROM {table} WHERE project_id IN (SELECT id FROM changed_project);
                        INSERT INTO {table} ({columns}) SELECT {columns} FROM {stage}
                        WHERE project_id IN (SELECT id FROM changed_project)""").format(
                        table=sql.Identifier(table),
                        columns=sql.SQL(columns),
                        stage=sql.Identifier(f"stage_{table}"),
                    )
                )
        cur.execute("""DROP TABLE stage_project_input, stage_project, stage_project_territory,
                           stage_project_area, changed_project""")
        return written


def _build_new(cur: psycopg.Cursor, table: str, settings: CatalogSettings | None) -> bool:
    """Whether the changed projects' rows of ``table`` (``project``, or a scope table whose
    changed rows are all rewritten) are enough to build its indexes once."""
    if settings is None:
        return False
    if table == "project":
        cur.execute("SELECT count(*) FILTER (WHERE new) FROM changed_project")
    else:
        cur.execute(
            sql.SQL(
                "SELECT count(*) FROM {} WHERE project_id IN (SELECT id FROM changed_project)"
            ).format(sql.Identifier(f"stage_{table}"))
        )
    row = cur.fetchone()
    return row is not None and worth_building_once(cur, table, int(row[0]), settings)


CONTRIBUTION_EVENTS = insert_events(
    """(SELECT CASE WHEN w.inserted THEN 'contribution.created' ELSE 'contribution.updated' END
               AS type,
               jsonb_build_object('contribution_id', s.id, 'project_id', s.project_id,
                                  'author_id', s.author_id) AS payload
        FROM written AS w JOIN stage_contribution AS s ON s.id = w.key)"""
)


def store_contributions(
    conn: psycopg.Connection,
    lines: Sequence[Line[ContributionRecord]],
    source: str = "input",
    settings: CatalogSettings | None = None,
) -> int:
    """Add or update contributions; each belongs to a participatory-map project."""
    with conn.cursor() as cur:
        cur.execute("""DROP TABLE IF EXISTS stage_contribution;
                       CREATE TEMP TABLE stage_contribution (line integer, id bigint,
                       project_id bigint, category text, title text, author_id bigint,
                       geom geometry(Point, 4326)) ON COMMIT DROP""")
        copy_rows(
            cur,
            "stage_contribution",
            ["line", "id", "project_id", "category", "title", "author_id", "geom"],
            (
                (n, r.id, r.project_id, r.category, r.title, r.author_id, _ewkt(r.location))
                for n, r in lines
            ),
        )
        _reject_bad_references(
            cur,
            source,
            """SELECT s.line, 'project_id', CASE WHEN p.id IS NULL
                   THEN format('no project %s', s.project_id)
                   ELSE format('project %s is a %s, not a carte_participative', p.id, p.tool) END
               FROM stage_contribution s LEFT JOIN project p ON p.id = s.project_id
               WHERE p.tool IS DISTINCT FROM 'carte_participative'
               UNION ALL
               SELECT s.line, 'author_id', format('no user %s', s.author_id)
               FROM stage_contribution s
               WHERE s.author_id IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM app_user u WHERE u.id = s.author_id)
               ORDER BY 1""",
        )
        build = _build_once(cur, "contribution", "stage_contribution", ["id"], settings)
        with indexes_built_once(cur, "contribution", build):
            cur.execute(
                sql.SQL("WITH {} ").format(
                    _write(
                        "contribution",
                        ["project_id", "category", "title", "author_id", "geom"],
                        exclusive=build,
                    )
                )
                + sql.SQL(CONTRIBUTION_EVENTS)
            )
            written = cur.rowcount  # one event per row written
        cur.execute("DROP TABLE stage_contribution")
        return written
