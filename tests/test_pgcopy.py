"""``geo_engine.pgcopy``: binary COPY built with numpy, and keys deferred for a bulk load.

Values go in through the binary format and come back through plain SQL (``ST_X``, ``ST_SRID``,
``IS NULL``), so a wrong byte order, length or null marker shows. Deferred keys are compared
with the catalogue before and after, and a bad row slipped into the bulk load must make the
rebuild fail.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import errors

from geo_engine import pgcopy

pytestmark = pytest.mark.geodata  # `conn` is the loaded France, rolled back after each test


def _rows(conn: psycopg.Connection, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    return conn.execute(query, params).fetchall()


def _make_points_table(conn: psycopg.Connection) -> None:
    conn.execute(
        """CREATE TEMP TABLE copied (id bigint, code text, postal text,
                                     home geometry(Point, 4326))"""
    )


def _copy(conn: psycopg.Connection, columns: list[pgcopy.Column]) -> None:
    with conn.cursor() as cur:
        pgcopy.copy_binary(cur, "copied", ["id", "code", "postal", "home"], columns)


def test_values_round_trip(conn: psycopg.Connection) -> None:
    _make_points_table(conn)
    ids = np.array([1, -1, 0, 2**63 - 1, -(2**63), 75056], dtype=np.int64)
    codes = np.array(["75056", None, "2A004", "00000", None, "97411"], dtype=object)
    postal = np.array([None, "64250", None, None, "51430", "97400"], dtype=object)
    lon = np.array([2.3522, np.nan, -180.0, 0.1 + 0.2, 1.0, 55.448100000000004])
    lat = np.array([48.8566, 1.0, -90.0, -0.0, np.nan, -20.8789])
    _copy(
        conn,
        [
            pgcopy.bigint(ids),
            pgcopy.fixed_text(codes, 5),
            pgcopy.fixed_text(postal, 5),
            pgcopy.points_ewkb(lon, lat),
        ],
    )
    rows = _rows(
        conn,
        """SELECT id, code, postal, home IS NULL, ST_X(home), ST_Y(home), ST_SRID(home),
                  GeometryType(home)
           FROM copied ORDER BY id""",
    )
    assert len(rows) == len(ids)
    by_id = {r[0]: r for r in rows}
    assert set(by_id) == set(ids.tolist())
    for i, key in enumerate(ids.tolist()):
        _, code, post, no_home, x, y, srid, kind = by_id[key]
        assert code == codes[i]
        assert post == postal[i]
        if np.isnan(lon[i]) or np.isnan(lat[i]):
            assert no_home and x is None and srid is None
        else:
            assert not no_home
            assert x == lon[i] and y == lat[i]  # float8 both ways: bit for bit
            assert srid == 4326
            assert kind == "POINT"


def test_rows_across_chunks(conn: psycopg.Connection) -> None:
    """More rows than one chunk: the rows on both sides of the cut are whole and in place."""
    _make_points_table(conn)
    n = pgcopy.CHUNK_ROWS + 3
    ids = np.arange(n, dtype=np.int64) * 3 - 7
    codes = np.array([None if i % 7 == 0 else f"{i % 100_000:05d}" for i in range(n)], dtype=object)
    lon = np.linspace(-5.0, 9.0, n)
    lat = np.linspace(41.0, 51.0, n)
    lat[::11] = np.nan
    postal = np.full(n, None, dtype=object)
    _copy(
        conn,
        [
            pgcopy.bigint(ids),
            pgcopy.fixed_text(codes, 5),
            pgcopy.fixed_text(postal, 5),
            pgcopy.points_ewkb(lon, lat),
        ],
    )
    count, id_sum, with_code, with_home, with_postal = _rows(
        conn, "SELECT count(*), sum(id), count(code), count(home), count(postal) FROM copied"
    )[0]
    assert count == n
    assert id_sum == int(ids.sum())
    assert with_code == sum(1 for c in codes if c is not None)
    assert with_home == int((~np.isnan(lat)).sum())
    assert with_postal == 0
    edge = [pgcopy.CHUNK_ROWS - 2, pgcopy.CHUNK_ROWS - 1, pgcopy.CHUNK_ROWS, n - 1, 0]
    got = {
        r[0]: r[1:]
        for r in _rows(
            conn,
            "SELECT id, code, ST_X(home), ST_Y(home) FROM copied WHERE id = ANY (%s)",
            ([int(ids[i]) for i in edge],),
        )
    }
    for i in edge:
        code, x, y = got[int(ids[i])]
        assert code == codes[i]
        if np.isnan(lat[i]):
            assert x is None and y is None
        else:
            assert (x, y) == (lon[i], lat[i])


def test_no_rows(conn: psycopg.Connection) -> None:
    _make_points_table(conn)
    empty = np.array([], dtype=object)
    _copy(
        conn,
        [
            pgcopy.bigint(np.array([], dtype=np.int64)),
            pgcopy.fixed_text(empty, 5),
            pgcopy.fixed_text(empty, 5),
            pgcopy.points_ewkb(np.array([]), np.array([])),
        ],
    )
    assert _rows(conn, "SELECT count(*) FROM copied") == [(0,)]


# -- keys deferred to the end of a bulk load --------------------------------------------------

Shape = tuple[list[tuple[str, str, str]], list[tuple[str, str]]]


def _shape(conn: psycopg.Connection, relation: str) -> Shape:
    """(constraints: name, type, definition), (indexes: name, definition) of a table, as
    pg_constraint and pg_indexes show them; ``relation`` as SQL names it (quoted, qualified)."""
    constraints = _rows(
        conn,
        """SELECT conname, contype::text, pg_get_constraintdef(oid) FROM pg_constraint
           WHERE conrelid = to_regclass(%s) ORDER BY conname""",
        (relation,),
    )
    indexes = _rows(
        conn,
        """SELECT indexname, indexdef FROM pg_indexes
           WHERE to_regclass(quote_ident(schemaname) || '.' || quote_ident(tablename))
                 = to_regclass(%s)
           ORDER BY indexname""",
        (relation,),
    )
    return [(r[0], r[1], r[2]) for r in constraints], [(r[0], r[1]) for r in indexes]


def _oids(conn: psycopg.Connection, table: str) -> set[int]:
    """Oids of the table's constraints and indexes: a rebuilt one gets a new oid."""
    rows = _rows(
        conn,
        """SELECT oid FROM pg_constraint WHERE conrelid = to_regclass(%s)
           UNION ALL SELECT indexrelid FROM pg_index WHERE indrelid = to_regclass(%s)""",
        (table, table),
    )
    return {r[0] for r in rows}


def test_user_place_keys_are_rebuilt_as_they_were(conn: psycopg.Connection) -> None:
    before = _shape(conn, "user_place")
    names = {c[0] for c in before[0]} | {i[0] for i in before[1]}
    # The schema as the models declare it.
    assert {
        "pk_user_place",
        "fk_user_place_user_id_app_user",
        "fk_user_place_commune_code_commune",
        "fk_user_place_arrondissement_code_arrondissement",
        "ix_user_place_commune_code",
        "idx_user_place_home",  # audiences of areas and radii (migration 0003)
    } <= names
    oids = _oids(conn, "user_place")
    conn.execute("INSERT INTO app_user (id) VALUES (900001), (900002)")
    with conn.cursor() as cur, pgcopy.constraints_deferred_to_the_end(cur, "user_place"):
        during = _shape(conn, "user_place")
        # Only the row-level check stays during the load: no key, no index.
        assert [c[1] for c in during[0]] == ["c"]
        assert during[1] == []
        pgcopy.copy_binary(
            cur,
            "user_place",
            ["user_id", "commune_code", "arrondissement_code", "home"],
            [
                pgcopy.bigint(np.array([900001, 900002])),
                pgcopy.fixed_text(np.array(["75056", "51454"], dtype=object), 5),
                pgcopy.fixed_text(np.array(["75104", None], dtype=object), 5),
                pgcopy.points_ewkb(np.array([2.3522, 4.0317]), np.array([48.8566, 49.2583])),
            ],
        )
    assert _shape(conn, "user_place") == before
    rebuilt = _oids(conn, "user_place")
    check = {r[0] for r in _rows(conn, "SELECT oid FROM pg_constraint WHERE contype = 'c'")}
    assert (rebuilt - check).isdisjoint(oids)  # every key and index is a new one
    assert _rows(
        conn,
        "SELECT user_id, commune_code, arrondissement_code FROM user_place"
        " WHERE user_id >= 900001 ORDER BY user_id",
    ) == [(900001, "75056", "75104"), (900002, "51454", None)]
    # The rebuilt primary key and foreign keys hold again.
    with pytest.raises(errors.UniqueViolation), conn.transaction():
        conn.execute("INSERT INTO user_place (user_id, commune_code) VALUES (900001, '75056')")
    with pytest.raises(errors.ForeignKeyViolation), conn.transaction():
        conn.execute("INSERT INTO user_place (user_id, commune_code) VALUES (900003, '75056')")


@pytest.mark.parametrize(
    ("user_id", "commune", "arrondissement", "error"),
    [
        (900001, "99999", None, errors.ForeignKeyViolation),  # no such commune
        (900009, "75056", None, errors.ForeignKeyViolation),  # no such user
        (900001, "75056", "75121", errors.ForeignKeyViolation),  # no such arrondissement
        (900002, "75056", None, errors.UniqueViolation),  # user 900002 twice
    ],
    ids=["commune", "user", "arrondissement", "duplicate"],
)
def test_an_invalid_row_in_the_bulk_load_fails_the_rebuild(
    conn: psycopg.Connection,
    user_id: int,
    commune: str,
    arrondissement: str | None,
    error: type[Exception],
) -> None:
    conn.execute("INSERT INTO app_user (id) VALUES (900001), (900002)")
    before = _shape(conn, "user_place")
    rows_before = _rows(conn, "SELECT count(*) FROM user_place")
    with (
        pytest.raises(error),
        conn.transaction(),
        conn.cursor() as cur,
        pgcopy.constraints_deferred_to_the_end(cur, "user_place"),
    ):
        pgcopy.copy_binary(
            cur,
            "user_place",
            ["user_id", "commune_code", "arrondissement_code"],
            [
                pgcopy.bigint(np.array([900002, user_id])),
                pgcopy.fixed_text(np.array(["51454", commune], dtype=object), 5),
                pgcopy.fixed_text(np.array([None, arrondissement], dtype=object), 5),
            ],
        )
    # Nothing slipped in, and the table has all its keys.
    assert _rows(conn, "SELECT count(*) FROM user_place") == rows_before
    assert _rows(conn, "SELECT count(*) FROM user_place WHERE user_id >= 900001") == [(0,)]
    assert _shape(conn, "user_place") == before


def test_keys_of_a_table_with_awkward_names_are_rebuilt(conn: psycopg.Connection) -> None:
    """Quoted names with spaces, capitals, braces and percent signs, a partial and an
    expression index, a composite key and a foreign key to another temporary table."""
    conn.execute('CREATE TEMP TABLE "Parent {p}" ("key%" int PRIMARY KEY)')
    conn.execute(
        """CREATE TEMP TABLE "Bulk {Load} 100%" (
               a bigint, b text, "c%" int REFERENCES "Parent {p}" ("key%"),
               CONSTRAINT "pk {a,b}" PRIMARY KEY (a, b),
               CONSTRAINT "one {c}%" UNIQUE ("c%"))"""
    )
    conn.execute('CREATE INDEX "ix lower(b)" ON "Bulk {Load} 100%" (lower(b))')
    conn.execute("""CREATE INDEX "ix {partial}" ON "Bulk {Load} 100%" (a) WHERE b LIKE '7%'""")
    conn.execute('INSERT INTO "Parent {p}" VALUES (1), (2)')
    table = '"Bulk {Load} 100%"'
    before = _shape(conn, table)
    assert len(before[0]) == 3 and len(before[1]) == 4
    oids = _oids(conn, table)
    with conn.cursor() as cur, pgcopy.constraints_deferred_to_the_end(cur, "Bulk {Load} 100%"):
        assert _shape(conn, table) == ([], [])
        cur.execute("""INSERT INTO "Bulk {Load} 100%" VALUES (1, '75', 1), (1, '76', 2)""")
    assert _shape(conn, table) == before
    assert _oids(conn, table).isdisjoint(oids)
    with pytest.raises(errors.ForeignKeyViolation), conn.transaction():
        conn.execute("""INSERT INTO "Bulk {Load} 100%" VALUES (2, '75', 3)""")


def test_a_namesake_in_another_schema_is_left_alone(conn: psycopg.Connection) -> None:
    conn.execute("CREATE SCHEMA elsewhere")
    conn.execute("CREATE TABLE elsewhere.twin (id int PRIMARY KEY, v int)")
    conn.execute("CREATE INDEX twin_v_elsewhere ON elsewhere.twin (v)")
    conn.execute("CREATE TEMP TABLE twin (id int PRIMARY KEY, v int)")
    conn.execute("CREATE INDEX twin_v_here ON twin (v)")
    theirs = _shape(conn, "elsewhere.twin")
    ours = _shape(conn, "twin")
    assert [i[0] for i in theirs[1]] == ["twin_pkey", "twin_v_elsewhere"]
    assert [i[0] for i in ours[1]] == ["twin_pkey", "twin_v_here"]
    with conn.cursor() as cur, pgcopy.constraints_deferred_to_the_end(cur, "twin"):
        assert _shape(conn, "elsewhere.twin") == theirs
        assert _shape(conn, "twin") == ([], [])
    assert _shape(conn, "twin") == ours
    assert _shape(conn, "elsewhere.twin") == theirs


def test_foreign_keys_not_valid_are_enforced_and_validated_after(
    conn: psycopg.Connection,
) -> None:
    conn.execute("CREATE TEMP TABLE parent (id int PRIMARY KEY)")
    conn.execute("CREATE TEMP TABLE child (id int PRIMARY KEY, parent int REFERENCES parent)")
    conn.execute("INSERT INTO parent VALUES (1)")
    with (
        conn.cursor() as cur,
        pgcopy.constraints_deferred_to_the_end(cur, "child", foreign_keys_not_valid=True),
    ):
        # A row that breaks the key slips in: NOT VALID does not check the loaded rows.
        cur.execute("INSERT INTO child VALUES (1, 1), (2, 2)")
    with pytest.raises(errors.ForeignKeyViolation), conn.transaction():
        conn.execute("INSERT INTO child VALUES (3, 3)")  # enforced at once for new rows
    with pytest.raises(errors.UniqueViolation), conn.transaction():
        conn.execute("INSERT INTO child VALUES (1, 1)")  # the key is valid as ever
    with pytest.raises(errors.ForeignKeyViolation), conn.transaction(), conn.cursor() as cur:
        pgcopy.validate_constraints(cur, "child")
    conn.execute("DELETE FROM child WHERE id = 2")
    with conn.cursor() as cur:
        assert pgcopy.validate_constraints(cur, "child") == ["child_parent_fkey"]
        assert pgcopy.validate_constraints(cur, "child") == []
