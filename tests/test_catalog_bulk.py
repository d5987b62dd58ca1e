"""Big catalogue imports: indexes and foreign keys built once (``geo_engine/catalog/bulk.py``),
the one-transaction ``geo-engine catalog import DIR``, and the text check's fast path.

The same catalogue stored through the row-by-row path and through the build-once path leaves the
same rows, the same events and the same indexes and constraints (recreated: new OIDs, same
definitions, every foreign key validated); a bad reference still names its line and leaves the
indexes as they were; the CLI imports a folder all or nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from contracts.catalog import ContributionRecord, MemberRecord, OrganisationRecord, ProjectRecord
from contracts.values import _FORBIDDEN, _control, check_text
from geo_engine import db
from geo_engine.catalog.bulk import worth_building_once
from geo_engine.catalog.load import (
    store_contributions,
    store_members,
    store_organisations,
    store_projects,
)
from geo_engine.jsonl import ImportRejected, Line
from geo_engine.settings import CatalogSettings, DatabaseSettings
from tests.cli import run_cli, write_jsonl

pytestmark = pytest.mark.geodata

REIMS, PARIS_15E = "51454", "75115"
ALWAYS = CatalogSettings(build_indexes_from_rows=1, build_indexes_from_share=0.01)
TABLES = ["organisation", "organisation_member", "project", "project_territory", "project_area"]
TABLES.append("contribution")


def _organisations() -> list[dict[str, Any]]:
    return [
        {
            "id": 1,
            "kind": "commune",
            "name": "Ville de Reims",
            "territory": {"level": "commune", "code": REIMS},
        },
        {"id": 2, "kind": "association", "name": "Vélo Paris 15"},
    ]


def _members() -> list[dict[str, Any]]:
    return [{"organisation_id": 1 + u % 2, "user_id": u, "role": "agent"} for u in range(1, 21)]


def _projects() -> list[dict[str, Any]]:
    """120 projects of every scope kind; one in three a participatory map."""
    scopes: list[dict[str, Any]] = [
        {"kind": "territories", "territories": [{"level": "commune", "code": REIMS}]},
        {"kind": "territories", "territories": [{"level": "arrondissement", "code": PARIS_15E}]},
        {"kind": "radius", "center": {"lon": 4.03, "lat": 49.25}, "radius_m": 1500},
        {
            "kind": "area",
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[2.28, 48.83], [2.31, 48.83], [2.31, 48.85], [2.28, 48.83]]],
            },
        },
        {"kind": "national"},
    ]
    return [
        {
            "id": pid,
            "organisation_id": 1 + pid % 2,
            "space": "loi" if pid % 5 == 4 else "territoires",
            "tool": "carte_participative" if pid % 3 == 0 else "consultation",
            "title": f"Projet n° {pid}",
            "visibility": "private" if pid % 7 == 0 else "public",
            "scope": scopes[pid % 5],
        }
        for pid in range(1, 121)
    ]


def _contributions() -> list[dict[str, Any]]:
    maps = [p["id"] for p in _projects() if p["tool"] == "carte_participative"]
    return [
        {
            "id": cid,
            "project_id": maps[cid % len(maps)],
            "category": "Voirie",
            "location": {"lon": 4.0 + cid / 10_000, "lat": 49.25},
            "author_id": 1 + cid % 20 if cid % 4 else None,
        }
        for cid in range(1, 401)
    ]


def _lines(model: Any, raws: list[dict[str, Any]]) -> list[Line[Any]]:
    return [Line(n, model.model_validate(raw)) for n, raw in enumerate(raws, start=1)]


def _store_all(conn: psycopg.Connection, settings: CatalogSettings | None) -> list[int]:
    return [
        store_organisations(conn, _lines(OrganisationRecord, _organisations()), "o", settings),
        store_members(conn, _lines(MemberRecord, _members()), "m", settings),
        store_projects(conn, _lines(ProjectRecord, _projects()), "p", settings),
        store_contributions(conn, _lines(ContributionRecord, _contributions()), "c", settings),
    ]


def _content(conn: psycopg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "project": conn.execute(
            """SELECT id, organisation_id, visibility, scope_kind, ST_AsEWKT(place),
                      ST_AsEWKT(place_3857) FROM project ORDER BY id"""
        ).fetchall(),
        "territory": conn.execute(
            "SELECT project_id, level, code FROM project_territory ORDER BY 1, 2, 3"
        ).fetchall(),
        "area": conn.execute(
            "SELECT project_id, radius_m, ST_AsEWKB(geom) FROM project_area ORDER BY 1"
        ).fetchall(),
        "member": conn.execute(
            "SELECT organisation_id, user_id, role FROM organisation_member ORDER BY 1, 2"
        ).fetchall(),
        "contribution": conn.execute(
            "SELECT id, project_id, author_id, ST_AsEWKT(geog) FROM contribution ORDER BY id"
        ).fetchall(),
        "events": conn.execute("SELECT type, payload::text FROM outbox ORDER BY 1, 2").fetchall(),
    }


def _schema(conn: psycopg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Each table's indexes and constraints: (name, definition, oid, valid)."""
    return {
        table: conn.execute(
            """SELECT c.relname, pg_get_indexdef(i.indexrelid), i.indexrelid::int, i.indisvalid
               FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid
               WHERE i.indrelid = %(t)s::regclass
               UNION ALL
               SELECT conname, pg_get_constraintdef(oid), oid::int, convalidated
               FROM pg_constraint WHERE conrelid = %(t)s::regclass
               ORDER BY 1""",
            {"t": table},
        ).fetchall()
        for table in TABLES
    }


def _without_oids(schema: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    return {t: [(n, d, v) for n, d, _oid, v in rows] for t, rows in schema.items()}


@pytest.fixture
def users(conn: psycopg.Connection) -> psycopg.Connection:
    conn.execute("INSERT INTO app_user (id) SELECT generate_series(1, 20)")
    return conn


def test_built_once_matches_row_by_row(users: psycopg.Connection) -> None:
    conn = users
    before = _schema(conn)
    conn.execute("SAVEPOINT row_by_row")
    assert _store_all(conn, None) == [2, 20, 120, 400]
    row_by_row = _content(conn)
    assert _schema(conn) == before  # the same indexes, never dropped
    conn.execute("ROLLBACK TO SAVEPOINT row_by_row")

    assert _store_all(conn, ALWAYS) == [2, 20, 120, 400]
    assert _content(conn) == row_by_row
    after = _schema(conn)
    assert _without_oids(after) == _without_oids(before)
    for table in TABLES:  # every secondary index and foreign key was built again, only they
        old_oids = {oid for _n, _d, oid, _v in before[table]}
        rebuilt = {n for n, _d, oid, _v in after[table] if oid not in old_oids}
        assert rebuilt == {
            n for n, d, _oid, _v in before[table] if d.startswith(("CREATE INDEX", "FOREIGN KEY"))
        }, table
    assert conn.execute(
        "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated"
    ).fetchone() == (0,)

    # Stored again, nothing changes: nothing new to insert, so nothing is rebuilt either.
    assert _store_all(conn, ALWAYS) == [0, 0, 0, 0]
    assert _schema(conn) == after


def test_a_bad_reference_is_named_and_the_indexes_stay(users: psycopg.Connection) -> None:
    conn = users
    _store_all(conn, None)
    before = _schema(conn)
    bad = _contributions()
    bad[6]["project_id"] = 99_999
    bad[9]["author_id"] = 77_777
    with pytest.raises(ImportRejected) as caught:
        store_contributions(conn, _lines(ContributionRecord, bad), "c.jsonl", ALWAYS)
    assert caught.value.errors == [
        "c.jsonl:7: project_id: no project 99999",
        "c.jsonl:10: author_id: no user 77777",
    ]
    assert _schema(conn) == before  # refused before anything was dropped


def test_when_indexes_are_built_once(users: psycopg.Connection) -> None:
    conn = users
    settings = CatalogSettings(build_indexes_from_rows=100, build_indexes_from_share=0.5)
    with conn.cursor() as cur:
        assert not worth_building_once(cur, "contribution", 10_000, None)
        assert worth_building_once(cur, "contribution", 100, settings)  # an empty table
        assert not worth_building_once(cur, "contribution", 99, settings)  # too few rows
    _store_all(conn, None)  # 400 contributions held
    with conn.cursor() as cur:
        assert worth_building_once(cur, "contribution", 200, settings)  # half of 400
        assert not worth_building_once(cur, "contribution", 199, settings)


def test_text_check_is_the_same_rule() -> None:
    """The regex fast path refuses exactly the characters the per-character rule refuses."""
    for point in range(0x110000):
        char = chr(point)
        for multiline in (False, True):
            assert (_FORBIDDEN[multiline].search(char) is not None) == _control(char, multiline), (
                hex(point),
                multiline,
            )
    with pytest.raises(ValueError, match=r"U\+0085\) at position 3"):
        check_text("abc\x85")
    assert check_text("a\tb\nc", multiline=True) == "a\tb\nc"


@pytest.mark.slow
def test_catalog_import_cli(clone_france: Callable[[], DatabaseSettings], tmp_path: Path) -> None:
    settings = clone_france()
    with db.connect(settings) as conn:
        conn.execute("INSERT INTO app_user (id) SELECT generate_series(1, 20)")
        conn.commit()
    env = {
        "GEO_ENGINE_DATABASE_URL": settings.database_url,
        "GEO_ENGINE_CATALOG_BUILD_INDEXES_FROM_ROWS": "1",  # the build-once path, small
    }
    good = tmp_path / "good"
    good.mkdir()
    write_jsonl(good / "organisations.jsonl", _organisations())
    write_jsonl(good / "members.jsonl", _members())
    write_jsonl(good / "projects.jsonl", _projects())
    write_jsonl(good / "contributions.jsonl", _contributions())

    # A bad line in the last file: exit 2, its line named, and not even the first files stay.
    bad = tmp_path / "bad"
    bad.mkdir()
    for path in good.iterdir():
        (bad / path.name).write_bytes(path.read_bytes())
    contributions = _contributions()
    contributions[1]["project_id"] = 1  # not a participatory map
    write_jsonl(bad / "contributions.jsonl", contributions)
    run = run_cli("catalog", "import", str(bad), env=env)
    assert run.returncode == 2, run.stderr
    assert "nothing imported" in run.stderr
    assert "contributions.jsonl:2: project_id: project 1 is a consultation" in run.stderr
    with db.connect(settings) as conn:
        assert conn.execute("SELECT count(*) FROM organisation").fetchone() == (0,)

    empty = tmp_path / "empty"
    empty.mkdir()
    run = run_cli("catalog", "import", str(empty), env=env)
    assert run.returncode == 2 and "no catalogue file here" in run.stderr, run.stderr

    oid = "SELECT 'idx_contribution_geom'::regclass::oid"
    with db.connect(settings) as conn:
        before = conn.execute(oid).fetchone()
    run = run_cli("catalog", "import", str(good), env=env)
    assert run.returncode == 0, run.stderr
    with db.connect(settings) as conn:
        assert conn.execute(oid).fetchone() != before  # built once, as the setting asks
    assert run.stdout.replace(",", "").splitlines() == [
        "2 organisations imported 2 rows written",
        "20 members imported 20 rows written",
        "120 projects imported 120 rows written",
        "400 contributions imported 400 rows written",
    ]
    with db.connect(settings) as conn:
        counts = conn.execute(
            """SELECT (SELECT count(*) FROM project), (SELECT count(*) FROM contribution),
                      (SELECT count(*) FROM outbox WHERE type = 'contribution.created'),
                      (SELECT count(*) FROM pg_indexes WHERE tablename = 'contribution')"""
        ).fetchone()
    assert counts == (120, 400, 400, 5)
    again = run_cli("catalog", "import", str(good), env=env)
    assert again.returncode == 0 and again.stdout.count(" 0 rows written") == 4, again.stdout


def test_built_once_updates_what_changed(users: psycopg.Connection) -> None:
    """A big import into a table already holding some of its rows: the new ones inserted, the
    changed ones updated, the same ones untouched, with the same events as row by row."""
    conn = users
    _store_all(conn, None)
    conn.execute("DELETE FROM outbox")
    changed = _contributions() + [
        {**c, "id": c["id"] + 1_000} for c in _contributions()[:200]
    ]  # 200 new rows
    for c in changed[:5]:
        c["category"] = "Éclairage"
    organisations = _organisations()
    organisations[1]["name"] = "Vélo Paris 15e"
    results = []
    for settings in (None, ALWAYS):
        conn.execute("SAVEPOINT variant")
        written = [
            store_organisations(conn, _lines(OrganisationRecord, organisations), "o", settings),
            store_contributions(conn, _lines(ContributionRecord, changed), "c", settings),
        ]
        results.append((written, _content(conn)))
        conn.execute("ROLLBACK TO SAVEPOINT variant")
    assert results[0] == results[1]
    written, content = results[1]
    assert written == [1, 205]
    assert [t for t, _payload in content["events"]].count("contribution.updated") == 5
    assert [t for t, _payload in content["events"]].count("contribution.created") == 200
    assert [t for t, _payload in content["events"]].count("organisation.updated") == 1
