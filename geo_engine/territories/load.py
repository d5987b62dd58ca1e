"""Loading a millésime of French territories into PostGIS, idempotently.

Everything goes through temporary staging tables and set-based upserts that only touch rows
whose content differs, so a second run of the same data changes nothing. A newer millésime
remaps users placed in communes that merged (the data's ``anciensCodes``) before the dead
codes are removed, so no user is lost or left pointing at a dead code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from contracts.errors import Conflict
from geo_engine.db import copy_rows, upsert
from geo_engine.outbox import insert_events
from geo_engine.settings import GeoSettings
from geo_engine.territories.geodata import GeoDataSet

Progress = Callable[[str], None]


class MillesimeError(Conflict):
    """Refusing to load an older millésime over a newer one."""


@dataclass
class LoadReport:
    millesime: int
    changes: dict[str, dict[str, int]] = field(default_factory=dict)
    repaired_geometries: int = 0
    users_remapped: int = 0
    users_unplaced: int = 0
    xxl_flags_changed: int = 0

    @property
    def changed(self) -> bool:
        return self.xxl_flags_changed > 0 or any(
            n for counts in self.changes.values() for n in counts.values()
        )


STAGING = """
CREATE TEMP TABLE stage_region (code text, name text, zone text, geom geometry) ON COMMIT DROP;
CREATE TEMP TABLE stage_departement (code text, name text, region_code text, zone text,
                                     geom geometry) ON COMMIT DROP;
CREATE TEMP TABLE stage_epci (siren text, name text, kind text, population int,
                              member_count int) ON COMMIT DROP;
CREATE TEMP TABLE stage_commune (code text, name text, departement_code text, region_code text,
                                 epci_siren text, population int, postal_codes text[], zone text,
                                 timezone text, former_codes text[], geom geometry) ON COMMIT DROP;
CREATE TEMP TABLE stage_arrondissement (code text, name text, commune_code text, population int,
                                        postal_codes text[], geom geometry) ON COMMIT DROP;
"""

# Repair invalid outlines in staging, keeping only their areal parts as a MultiPolygon.
REPAIR = """
UPDATE {table} SET geom = ST_Multi(ST_CollectionExtract(ST_MakeValid(geom), 3))
WHERE geom IS NOT NULL AND NOT ST_IsValid(geom)
"""
NORMALISE = "UPDATE {table} SET geom = ST_Multi(geom) WHERE GeometryType(geom) = 'POLYGON'"


UPSERT_REGION = upsert("region", "code", ["name", "zone", "geom"])
UPSERT_DEPARTEMENT = upsert("departement", "code", ["name", "region_code", "zone", "geom"])
UPSERT_EPCI = upsert("epci", "siren", ["name", "kind", "population", "member_count"])
COMMUNE_COLUMNS = [
    "name",
    "departement_code",
    "region_code",
    "epci_siren",
    "population",
    "postal_codes",
    "zone",
    "timezone",
]
UPSERT_COMMUNE = upsert("commune", "code", [*COMMUNE_COLUMNS, "geom"])
UPSERT_ARRONDISSEMENT = upsert(
    "arrondissement", "code", ["name", "commune_code", "population", "postal_codes", "geom"]
)

SYNC_FORMER_CODES = (
    """DELETE FROM commune_former_code f WHERE NOT EXISTS (
        SELECT 1 FROM stage_commune s WHERE f.former_code = ANY (s.former_codes)
                                         AND s.code = f.commune_code)""",
    """INSERT INTO commune_former_code (former_code, commune_code)
       SELECT DISTINCT unnest(former_codes), code FROM stage_commune
       ON CONFLICT (former_code) DO UPDATE SET commune_code = EXCLUDED.commune_code
       WHERE commune_former_code.commune_code IS DISTINCT FROM EXCLUDED.commune_code""",
)
SYNC_POSTAL_CODES = (
    """DELETE FROM postal_code p WHERE NOT EXISTS (
        SELECT 1 FROM stage_commune s WHERE s.code = p.commune_code
                                         AND p.postal_code = ANY (s.postal_codes))""",
    """INSERT INTO postal_code (postal_code, commune_code)
       SELECT DISTINCT unnest(postal_codes), code FROM stage_commune
       ON CONFLICT DO NOTHING""",
)

# Users whose commune merged follow it to the commune nouvelle; the same for the candidates of
# users still choosing between communes. Users of a commune that vanished without a successor
# become unplaced with no candidate (counted in the report), never left on a dead code.
# Each user moved (or unplaced, below) announces it: one user.moved per row, same statement.
USER_MOVED_EVENTS = insert_events(
    "(SELECT 'user.moved' AS type, jsonb_build_object('user_id', user_id) AS payload FROM written)"
)
REMAP_USERS = (
    """
WITH written AS (
UPDATE user_place u SET commune_code = f.commune_code, arrondissement_code = NULL
FROM commune_former_code f
WHERE u.commune_code = f.former_code AND f.former_code NOT IN (SELECT code FROM stage_commune)
RETURNING u.user_id)
"""
    + USER_MOVED_EVENTS
)
# Projects scoped to, and organisations at home in, a merged commune follow it too.
# Each announces it: project.updated per project whose scope changed, organisation.updated.
REMAP_PROJECT_COMMUNES = """
WITH moved AS (
    DELETE FROM project_territory t USING commune_former_code f
    WHERE t.level = 'commune' AND t.code = f.former_code
      AND f.former_code NOT IN (SELECT code FROM stage_commune)
    RETURNING t.project_id, f.commune_code),
renamed AS (
    INSERT INTO project_territory (project_id, level, code)
    SELECT DISTINCT project_id, 'commune', commune_code FROM moved
    ON CONFLICT DO NOTHING)
""" + insert_events(
    """(SELECT 'project.updated' AS type,
               jsonb_build_object('project_id', p.id, 'organisation_id', p.organisation_id)
               AS payload
        FROM project AS p WHERE p.id IN (SELECT project_id FROM moved))"""
)
REMAP_ORGANISATIONS = """
WITH written AS (
UPDATE organisation o SET territory_code = f.commune_code
FROM commune_former_code f
WHERE o.territory_level = 'commune' AND o.territory_code = f.former_code
  AND f.former_code NOT IN (SELECT code FROM stage_commune)
RETURNING o.id)
""" + insert_events(
    "(SELECT 'organisation.updated' AS type, jsonb_build_object('organisation_id', id)"
    " AS payload FROM written)"
)
# Outlines simplified for the map tiles (see migrations/sql/0002_tiles.sql, 0009_epci_tiles.sql).
REFRESH_TILE_OUTLINES = """
REFRESH MATERIALIZED VIEW commune_tile;
REFRESH MATERIALIZED VIEW departement_tile;
REFRESH MATERIALIZED VIEW epci_tile
"""
REMAP_CANDIDATES = """
UPDATE user_place u SET candidate_communes = ARRAY(
    SELECT DISTINCT coalesce(f.commune_code, c.code)
    FROM unnest(u.candidate_communes) AS c(code)
    LEFT JOIN commune_former_code f ON f.former_code = c.code
    WHERE coalesce(f.commune_code, c.code) IN (SELECT code FROM stage_commune)
    ORDER BY 1)
WHERE u.candidate_communes IS NOT NULL AND EXISTS (
    SELECT 1 FROM unnest(u.candidate_communes) AS c(code)
    WHERE c.code NOT IN (SELECT code FROM stage_commune))
"""
FORGET_STALE_ARRONDISSEMENTS = """
UPDATE user_place SET arrondissement_code = NULL
WHERE arrondissement_code IS NOT NULL
  AND arrondissement_code NOT IN (SELECT code FROM stage_arrondissement)
"""
UNPLACE_ORPHANS = (
    """
WITH written AS (
UPDATE user_place SET commune_code = NULL, arrondissement_code = NULL, candidate_communes = '{}'
WHERE commune_code IS NOT NULL AND commune_code NOT IN (SELECT code FROM stage_commune)
RETURNING user_id)
"""
    + USER_MOVED_EVENTS
)

DELETE_STALE = [
    (
        "arrondissements",
        "DELETE FROM arrondissement WHERE code NOT IN (SELECT code FROM stage_arrondissement)",
    ),
    ("communes", "DELETE FROM commune WHERE code NOT IN (SELECT code FROM stage_commune)"),
    ("epci", "DELETE FROM epci WHERE siren NOT IN (SELECT siren FROM stage_epci)"),
    (
        "departements",
        "DELETE FROM departement WHERE code NOT IN (SELECT code FROM stage_departement)",
    ),
    ("regions", "DELETE FROM region WHERE code NOT IN (SELECT code FROM stage_region)"),
]

# Outlines that changed lose their pieces; every outline without pieces is then cut.
DROP_PIECES = "DELETE FROM commune_piece WHERE commune_code = ANY (%(codes)s)"
CUT_PIECES = """
INSERT INTO commune_piece (commune_code, geom)
SELECT c.code, ST_Subdivide(c.geom, %(max_vertices)s)
FROM commune c
WHERE c.geom IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM commune_piece p WHERE p.commune_code = c.code)
"""

# An EPCI's outline is the union of its members' (snapped to the data's 1e-5° grid);
# recomputed only for EPCIs whose members or members' outlines changed.
EPCI_OUTLINES = """
UPDATE epci e SET geom = u.geom, area_km2 = ST_Area(u.geom::geography) / 1e6
FROM (
    SELECT epci_siren, ST_Multi(ST_CollectionExtract(ST_Union(geom, 1e-5), 3)) AS geom
    FROM commune
    WHERE epci_siren = ANY (%(sirens)s) AND geom IS NOT NULL
    GROUP BY epci_siren
) u
WHERE e.siren = u.epci_siren
"""
XXL_RULE = """
UPDATE epci SET xxl = (member_count >= %(min_communes)s OR coalesce(area_km2, 0) >= %(min_area)s)
WHERE xxl IS DISTINCT FROM (member_count >= %(min_communes)s
                            OR coalesce(area_km2, 0) >= %(min_area)s)
"""


def _count(cur: psycopg.Cursor, statement: sql.Composed) -> tuple[int, int]:
    """(inserted, updated) by an ``upsert`` statement."""
    cur.execute(statement)
    flags = [r[0] for r in cur.fetchall()] if cur.description else []
    inserted = sum(1 for f in flags if f)
    return inserted, len(flags) - inserted


def current_millesime(conn: psycopg.Connection) -> int | None:
    row = conn.execute("SELECT max(millesime) FROM geodata_release").fetchone()
    return None if row is None else row[0]


def load(
    conn: psycopg.Connection,
    data: GeoDataSet,
    settings: GeoSettings,
    progress: Progress = lambda _step: None,
) -> LoadReport:
    """Load ``data`` in the caller's transaction (the caller commits)."""
    current = current_millesime(conn)
    if current is not None and data.millesime < current:
        raise MillesimeError(
            f"the database holds millésime {current}; refusing to load the older {data.millesime}"
        )
    report = LoadReport(millesime=data.millesime)
    cur = conn.cursor()
    cur.execute(STAGING)

    progress("staging")
    copy_rows(
        cur,
        "stage_region",
        ["code", "name", "zone", "geom"],
        [(r.code, r.name, r.attrs["zone"], r.wkb) for r in data.regions],
    )
    copy_rows(
        cur,
        "stage_departement",
        ["code", "name", "region_code", "zone", "geom"],
        [(d.code, d.name, d.attrs["region"], d.attrs["zone"], d.wkb) for d in data.departements],
    )
    copy_rows(
        cur,
        "stage_epci",
        ["siren", "name", "kind", "population", "member_count"],
        [
            (e["siren"], e["name"], e["kind"], e["population"], e["member_count"])
            for e in data.epcis
        ],
    )
    commune_cols = ["code", *COMMUNE_COLUMNS, "former_codes"]
    copy_rows(
        cur,
        "stage_commune",
        [*commune_cols, "geom"],
        [(*(c[k] for k in commune_cols), c["wkb"]) for c in data.communes],
    )
    copy_rows(
        cur,
        "stage_arrondissement",
        ["code", "name", "commune_code", "population", "postal_codes", "geom"],
        [
            (
                a["code"],
                a["name"],
                a["commune_code"],
                a["population"],
                a.get("postal_codes", []),
                a.get("wkb"),
            )
            for a in data.arrondissements
        ],
    )

    progress("repairing geometries")
    for table in ("stage_region", "stage_departement", "stage_commune", "stage_arrondissement"):
        cur.execute(REPAIR.format(table=table))
        report.repaired_geometries += cur.rowcount
        cur.execute(NORMALISE.format(table=table))

    progress("upserting territories")
    for name, statement in (
        ("regions", UPSERT_REGION),
        ("departements", UPSERT_DEPARTEMENT),
        ("epci", UPSERT_EPCI),
    ):
        ins, upd = _count(cur, statement)
        report.changes[name] = {"inserted": ins, "updated": upd, "removed": 0}

    # Which communes change, before the upsert overwrites them: to re-cut their pieces and
    # recompute the outlines of the EPCIs they leave or join.
    cur.execute("""
        SELECT s.code, s.epci_siren, c.epci_siren,
               (c.code IS NULL OR c.geom IS DISTINCT FROM s.geom) AS outline_changed
        FROM stage_commune s LEFT JOIN commune c USING (code)
        WHERE c.code IS NULL OR c.geom IS DISTINCT FROM s.geom
           OR c.epci_siren IS DISTINCT FROM s.epci_siren
        UNION ALL
        SELECT c.code, NULL, c.epci_siren, true FROM commune c
        WHERE c.code NOT IN (SELECT code FROM stage_commune)
    """)
    recut: list[str] = []
    epcis_touched: set[str] = set()
    for code, new_epci, old_epci, outline_changed in cur.fetchall():
        if outline_changed:
            recut.append(code)
        epcis_touched.update(e for e in (new_epci, old_epci) if e)

    ins, upd = _count(cur, UPSERT_COMMUNE)
    report.changes["communes"] = {"inserted": ins, "updated": upd, "removed": 0}
    ins, upd = _count(cur, UPSERT_ARRONDISSEMENT)
    report.changes["arrondissements"] = {"inserted": ins, "updated": upd, "removed": 0}
    for name, statements in (
        ("former codes", SYNC_FORMER_CODES),
        ("postal codes", SYNC_POSTAL_CODES),
    ):
        delete, insert = statements
        cur.execute(delete)
        removed = cur.rowcount
        cur.execute(insert)
        report.changes[name] = {"inserted": cur.rowcount, "updated": 0, "removed": removed}

    progress("remapping users of merged communes")
    cur.execute(REMAP_USERS)
    report.users_remapped = cur.rowcount
    cur.execute(REMAP_CANDIDATES)
    report.users_remapped += cur.rowcount
    cur.execute(REMAP_PROJECT_COMMUNES)
    cur.execute(REMAP_ORGANISATIONS)
    cur.execute(FORGET_STALE_ARRONDISSEMENTS)
    cur.execute(UNPLACE_ORPHANS)
    report.users_unplaced = cur.rowcount

    for name, delete_stale in DELETE_STALE:
        cur.execute(delete_stale)
        report.changes[name]["removed"] = cur.rowcount

    progress("cutting outlines for locate")
    cur.execute(DROP_PIECES, {"codes": recut})
    cur.execute(CUT_PIECES, {"max_vertices": settings.subdivide_max_vertices})

    progress("computing EPCI outlines")
    cur.execute("SELECT siren FROM epci WHERE geom IS NULL")
    epcis_touched.update(r[0] for r in cur.fetchall())
    if epcis_touched:
        cur.execute(EPCI_OUTLINES, {"sirens": sorted(epcis_touched)})
    cur.execute(
        XXL_RULE, {"min_communes": settings.xxl_min_communes, "min_area": settings.xxl_min_area_km2}
    )
    report.xxl_flags_changed = cur.rowcount

    if report.changed:
        progress("simplifying outlines for map tiles")
        cur.execute(REFRESH_TILE_OUTLINES)
    cur.execute(
        """INSERT INTO geodata_release (millesime, source) VALUES (%s, %s)
           ON CONFLICT (millesime) DO NOTHING""",
        (data.millesime, data.source),
    )
    return report
