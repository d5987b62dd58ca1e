"""Users: import (point, commune code, former code, postal code), errors that write nothing,
data minimisation of the stored home, settling a pending user, moves, the bulk path and the
JSON Lines reader.

Expected communes come from well-known places or from ``membership/communes.json``
(``codesPostaux``, ``anciensCodes``), read here with plain json; every test runs in a
transaction that is rolled back.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psycopg
import pytest
from pydantic import ValidationError

from contracts.users import Notifications, UserRecord
from fixtures.population import generate_users
from geo_engine.settings import UserSettings
from geo_engine.territories.locate import locate
from geo_engine.users import places as users
from geo_engine.users.places import (
    PlacementError,
    UserBatch,
    UserImportError,
    choose_commune,
    import_users,
    move_user,
    read_jsonl,
)

pytestmark = pytest.mark.geodata

EXACT = UserSettings(home_precision_m=0)
PARIS_HOTEL_DE_VILLE = (2.352222, 48.856389)  # (lon, lat): 75056, arrondissement 75104
REIMS_HOTEL_DE_VILLE = (4.0317, 49.2583)  # 51454
BAYONNE_HOTEL_DE_VILLE = (-1.4746, 43.4929)  # 64102
BAY_OF_BISCAY = (-3.0, 45.0)


@pytest.fixture(scope="module")
def postal_map(communes_json: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Postal code → sorted codes of the communes it serves."""
    served: dict[str, set[str]] = defaultdict(set)
    for code, record in communes_json.items():
        for postal in record.get("codesPostaux") or []:
            served[postal].add(code)
    return {p: sorted(c) for p, c in served.items()}


def _record(user_id: int, **place: Any) -> UserRecord:
    if "home" in place:
        lon, lat = place["home"]
        place["home"] = {"lon": lon, "lat": lat}
    return UserRecord.model_validate({"id": user_id, **place})


def _import(
    conn: psycopg.Connection, *records: UserRecord, settings: UserSettings = EXACT
) -> users.Placement:
    return import_users(conn, UserBatch.from_records(list(records)), settings)


def _place(conn: psycopg.Connection, user_id: int) -> dict[str, Any] | None:
    row = conn.execute(
        """SELECT commune_code, arrondissement_code, candidate_communes, postal_code,
                  ST_X(home), ST_Y(home), ST_SRID(home)
           FROM user_place WHERE user_id = %s""",
        (user_id,),
    ).fetchone()
    if row is None:
        return None
    keys = ["commune", "arrondissement", "candidates", "postal_code", "lon", "lat", "srid"]
    return dict(zip(keys, row, strict=True))


def _counts(conn: psycopg.Connection) -> tuple[int, int]:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM app_user), (SELECT count(*) FROM user_place)"
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def _keys(conn: psycopg.Connection) -> dict[tuple[str, str], tuple[int, str]]:
    """user_place's constraints and indexes: (kind, name) → (oid, definition)."""
    rows = conn.execute(
        """SELECT 'constraint', conname, oid, pg_get_constraintdef(oid) FROM pg_constraint
           WHERE conrelid = 'user_place'::regclass
           UNION ALL
           SELECT 'index', indexname, ('public.' || quote_ident(indexname))::regclass::oid,
                  indexdef
           FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'user_place'"""
    ).fetchall()
    return {(kind, name): (oid, definition) for kind, name, oid, definition in rows}


def _distance_m(conn: psycopg.Connection, a: tuple[float, float], b: tuple[float, float]) -> float:
    row = conn.execute(
        """SELECT ST_Distance(ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography,
                              ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography)""",
        (*a, *b),
    ).fetchone()
    assert row is not None
    return float(row[0])


# -- placing ----------------------------------------------------------------------------------


def test_home_point_is_placed_with_its_arrondissement_in_paris(conn: psycopg.Connection) -> None:
    placement = _import(
        conn,
        UserRecord.model_validate(
            {
                "id": 1,
                "home": {"lon": PARIS_HOTEL_DE_VILLE[0], "lat": PARIS_HOTEL_DE_VILLE[1]},
                "interests": ["mobilite", "culture"],
                "notifications": {"email": False, "push": True, "frequency": "daily"},
                "timezone": "America/Cayenne",
            }
        ),
        _record(2, home=REIMS_HOTEL_DE_VILLE),
    )
    assert placement.commune.tolist() == ["75056", "51454"]
    assert placement.arrondissement.tolist() == ["75104", None]
    assert placement.pending == 0
    paris, reims = _place(conn, 1), _place(conn, 2)
    assert paris is not None and reims is not None
    assert (paris["commune"], paris["arrondissement"], paris["candidates"]) == (
        "75056",
        "75104",
        None,
    )
    assert (paris["lon"], paris["lat"], paris["srid"]) == (*PARIS_HOTEL_DE_VILLE, 4326)
    assert (reims["commune"], reims["arrondissement"]) == ("51454", None)
    profile = conn.execute(
        "SELECT interests, notifications, timezone FROM app_user WHERE id = 1"
    ).fetchone()
    assert profile == (
        ["mobilite", "culture"],
        Notifications(email=False, push=True, frequency="daily").model_dump(mode="json"),
        "America/Cayenne",
    )
    defaults = conn.execute(
        "SELECT interests, notifications, timezone FROM app_user WHERE id = 2"
    ).fetchone()
    assert defaults == ([], Notifications().model_dump(mode="json"), None)
    assert Notifications().frequency == "weekly" and Notifications().email


def test_commune_codes_current_and_former(
    conn: psycopg.Connection, former_codes: dict[str, str], postal_map: dict[str, list[str]]
) -> None:
    assert former_codes["74011"] == "74010"  # Annecy absorbed Annecy-le-Vieux in 2017
    # Former codes that are no other commune's postal code (the others are refused: see
    # test_commune_codes.py).
    plain = sorted(
        old for old, new in former_codes.items() if set(postal_map.get(old, [])) <= {new}
    )
    rng = np.random.default_rng(4)
    sample = sorted(rng.choice(plain, 30, replace=False).tolist())
    records = [
        _record(1, commune="51454"),
        _record(2, commune="2A004"),
        _record(3, commune="97501"),  # Miquelon-Langlade: a COM commune, without outline
        _record(4, commune="74011"),
        *(_record(10 + i, commune=old) for i, old in enumerate(sample)),
    ]
    placement = _import(conn, *records)
    expected = ["51454", "2A004", "97501", "74010", *(former_codes[old] for old in sample)]
    assert placement.commune.tolist() == expected
    for record, code in zip(records, expected, strict=True):
        place = _place(conn, record.id)
        assert place is not None
        assert place["commune"] == code
        assert place["lon"] is None and place["candidates"] is None


def test_postal_codes_single_and_shared(
    conn: psycopg.Connection, postal_map: dict[str, list[str]]
) -> None:
    assert postal_map["51100"] == ["51454"]  # Reims alone
    shared = postal_map["51430"]
    assert len(shared) >= 2
    basque = postal_map["64250"]
    assert len(basque) >= 3
    rng = np.random.default_rng(8)
    more = sorted(rng.choice(sorted(postal_map), 40, replace=False).tolist())
    records = [
        _record(1, postal_code="51100"),
        _record(2, postal_code="51430"),
        _record(3, postal_code="64250"),
        *(_record(10 + i, postal_code=p) for i, p in enumerate(more)),
    ]
    placement = _import(conn, *records)
    for record in records:
        place = _place(conn, record.id)
        assert place is not None
        assert place["postal_code"] == record.postal_code
        assert record.postal_code is not None
        served = postal_map[record.postal_code]
        if len(served) == 1:
            assert (place["commune"], place["candidates"]) == (served[0], None)
        else:
            assert (place["commune"], place["candidates"]) == (None, served)
    assert placement.pending == sum(1 for r in records if len(postal_map[str(r.postal_code)]) > 1)
    assert placement.candidates[1] == shared


def test_invalid_places_name_line_and_field_and_write_nothing(conn: psycopg.Connection) -> None:
    _import(conn, _record(1, commune="51454"))
    before = _counts(conn)
    batch = UserBatch.from_records(
        [
            _record(1, commune="64102"),  # would move user 1
            _record(2, commune="99999"),
            _record(3, home=PARIS_HOTEL_DE_VILLE),
            _record(4, postal_code="00000"),
            _record(5, home=BAY_OF_BISCAY),
            _record(6, postal_code="51430"),
        ],
        lines=[3, 5, 8, 13, 21, 34],
    )
    with pytest.raises(UserImportError) as caught:
        import_users(conn, batch, EXACT)
    errors = caught.value.errors
    assert len(errors) == 3 and caught.value.total == 3
    assert any(e.startswith("line 5: commune:") and "99999" in e for e in errors), errors
    assert any(e.startswith("line 13: postal_code:") and "00000" in e for e in errors), errors
    assert any(e.startswith("line 21: home:") and "-3.0" in e for e in errors), errors
    assert all(str(e) in str(caught.value) for e in errors)
    assert _counts(conn) == before
    place = _place(conn, 1)
    assert place is not None and place["commune"] == "51454"


# -- data minimisation ------------------------------------------------------------------------


def test_stored_home_is_coarsened_to_the_precision(conn: psycopg.Connection) -> None:
    rng = np.random.default_rng(12)
    # Points around Paris, Reims and inland La Réunion (southern hemisphere).
    centres = [PARIS_HOTEL_DE_VILLE, REIMS_HOTEL_DE_VILLE, (55.5, -21.1)]
    points = [
        (round(x + dx, 7), round(y + dy, 7))
        for x, y in centres
        for dx, dy in rng.uniform(-0.01, 0.01, (10, 2)).tolist()
    ]
    records = [_record(i + 1, home=p) for i, p in enumerate(points)]
    _import(conn, *records, settings=UserSettings(home_precision_m=100))
    stored = []
    for i, (lon, lat) in enumerate(points):
        place = _place(conn, i + 1)
        assert place is not None and place["srid"] == 4326
        assert place["lon"] != lon and place["lat"] != lat
        # Within half the diagonal of a 100 m cell.
        assert _distance_m(conn, (lon, lat), (place["lon"], place["lat"])) <= 75
        stored.append((place["lon"], place["lat"]))
    exact = {c for p in points for c in p}
    assert not exact & {c for p in stored for c in p}
    # Neighbours 10 m apart mostly share a stored point: the cell, not the house.
    lon, lat = REIMS_HOTEL_DE_VILLE
    near = [(lon + 0.0001 * k, lat) for k in range(10)]  # 7.3 m steps
    _import(conn, *[_record(100 + k, home=p) for k, p in enumerate(near)], settings=UserSettings())
    cells = set()
    for k in range(10):
        place = _place(conn, 100 + k)
        assert place is not None
        cells.add((place["lon"], place["lat"]))
    assert 1 <= len(cells) <= 2


def test_precision_zero_keeps_the_exact_point(conn: psycopg.Connection) -> None:
    _import(conn, _record(1, home=(2.3488, 48.8534)), settings=UserSettings(home_precision_m=0))
    place = _place(conn, 1)
    assert place is not None and (place["lon"], place["lat"]) == (2.3488, 48.8534)


def test_moving_is_coarsened_too(conn: psycopg.Connection) -> None:
    _import(conn, _record(1, commune="51454"))
    move_user(conn, _record(1, home=BAYONNE_HOTEL_DE_VILLE), UserSettings(home_precision_m=100))
    place = _place(conn, 1)
    assert place is not None and place["commune"] == "64102"
    assert (place["lon"], place["lat"]) != BAYONNE_HOTEL_DE_VILLE
    assert _distance_m(conn, BAYONNE_HOTEL_DE_VILLE, (place["lon"], place["lat"])) <= 75


# -- pending users and moves ------------------------------------------------------------------


def test_choose_commune(conn: psycopg.Connection, postal_map: dict[str, list[str]]) -> None:
    candidates = postal_map["51430"]
    _import(conn, _record(1, postal_code="51430"), _record(2, commune="51454"))
    with pytest.raises(PlacementError) as caught:
        choose_commune(conn, 1, "51454")
    message = str(caught.value)
    assert "51454" in message
    assert all(c in message for c in candidates)
    assert _place(conn, 1) == {
        "commune": None,
        "arrondissement": None,
        "candidates": candidates,
        "postal_code": "51430",
        "lon": None,
        "lat": None,
        "srid": None,
    }
    choose_commune(conn, 1, candidates[-1])
    place = _place(conn, 1)
    assert place is not None
    assert (place["commune"], place["candidates"]) == (candidates[-1], None)
    with pytest.raises(PlacementError, match="already placed"):
        choose_commune(conn, 1, candidates[0])
    with pytest.raises(PlacementError, match="already placed"):
        choose_commune(conn, 2, "51454")
    with pytest.raises(PlacementError, match="no place"):
        choose_commune(conn, 404, "51454")


def test_reimport_keeps_a_settled_choice(
    conn: psycopg.Connection, postal_map: dict[str, list[str]]
) -> None:
    candidates = postal_map["51430"]
    _import(conn, _record(1, postal_code="51430"))
    choose_commune(conn, 1, candidates[-1])
    _import(conn, _record(1, postal_code="51430"))  # the same file, imported again
    place = _place(conn, 1)
    assert place is not None
    assert (place["commune"], place["candidates"]) == (candidates[-1], None)
    # A different postal code is a move: the old choice no longer holds.
    _import(conn, _record(1, postal_code="64250"))
    place = _place(conn, 1)
    assert place is not None
    assert (place["commune"], place["candidates"]) == (None, postal_map["64250"])


def test_move_user(conn: psycopg.Connection, postal_map: dict[str, list[str]]) -> None:
    _import(conn, _record(1, home=REIMS_HOTEL_DE_VILLE))
    place = _place(conn, 1)
    assert place is not None and place["commune"] == "51454"

    placement = move_user(conn, _record(1, home=BAYONNE_HOTEL_DE_VILLE), EXACT)
    assert placement.commune.tolist() == ["64102"]
    place = _place(conn, 1)
    assert place is not None
    assert (place["commune"], place["lon"], place["lat"]) == ("64102", *BAYONNE_HOTEL_DE_VILLE)

    placement = move_user(conn, _record(1, postal_code="64250"), EXACT)
    assert placement.candidates == [postal_map["64250"]]
    assert _place(conn, 1) == {
        "commune": None,
        "arrondissement": None,
        "candidates": postal_map["64250"],
        "postal_code": "64250",
        "lon": None,
        "lat": None,
        "srid": None,
    }
    choose_commune(conn, 1, "64160")  # Hasparren, one of them
    move_user(conn, _record(1, home=PARIS_HOTEL_DE_VILLE), EXACT)
    place = _place(conn, 1)
    assert place is not None
    assert (place["commune"], place["arrondissement"], place["candidates"]) == (
        "75056",
        "75104",
        None,
    )
    assert place["postal_code"] is None

    before = _place(conn, 1)
    with pytest.raises(PlacementError, match="no French commune"):
        move_user(conn, _record(1, home=BAY_OF_BISCAY), EXACT)
    with pytest.raises(PlacementError, match="99999"):
        move_user(conn, _record(1, commune="99999"), EXACT)
    assert _place(conn, 1) == before
    with pytest.raises(PlacementError, match="no user 404"):
        move_user(conn, _record(404, commune="51454"), EXACT)


# -- many users at once -----------------------------------------------------------------------


@pytest.mark.slow
def test_bulk_import_into_an_empty_table(
    conn: psycopg.Connection, postal_map: dict[str, list[str]], former_codes: dict[str, str]
) -> None:
    conn.execute("TRUNCATE user_place, app_user CASCADE")
    keys_before = _keys(conn)
    batch = generate_users(conn, 12_000, seed=5)
    assert len(batch) >= users.BULK_ROWS
    placement = import_users(conn, batch, UserSettings())

    # The fast path dropped the keys and indexes and built them again: same definitions,
    # new objects.
    keys_after = _keys(conn)
    assert {k: v[1] for k, v in keys_after.items()} == {k: v[1] for k, v in keys_before.items()}
    rebuilt = [k for k in keys_before if not k[1].startswith("ck_")]
    assert len(rebuilt) >= 6  # pk (constraint and index), 3 foreign keys, 1 index
    assert all(keys_after[k][0] != keys_before[k][0] for k in rebuilt)

    assert _counts(conn) == (12_000, 12_000)
    rows = conn.execute(
        """SELECT user_id, commune_code, arrondissement_code, candidate_communes, postal_code,
                  home IS NOT NULL FROM user_place ORDER BY user_id"""
    ).fetchall()
    assert [r[0] for r in rows] == batch.ids.tolist()
    points = ~np.isnan(batch.lon)
    assert [r[5] for r in rows] == points.tolist()

    # Homes: a sample checked against locate, on the exact generated points.
    rng = np.random.default_rng(0)
    for i in rng.choice(np.flatnonzero(points), 300, replace=False).tolist():
        found = locate(conn, float(batch.lat[i]), float(batch.lon[i]))
        assert found is not None
        assert rows[i][1] == found.commune.code, i
        assert rows[i][2] == (found.arrondissement.code if found.arrondissement else None)
    # Commune codes and postal codes: from the data files.
    for i, row in enumerate(rows):
        if batch.commune[i] is not None:
            code = batch.commune[i]
            assert row[1] == former_codes.get(code, code)
        elif batch.postal_code[i] is not None:
            served = postal_map[batch.postal_code[i]]
            assert row[4] == batch.postal_code[i]
            if len(served) == 1:
                assert (row[1], row[3]) == (served[0], None)
            else:
                assert (row[1], row[3]) == (None, served)
    assert placement.pending == sum(1 for r in rows if r[3] is not None) > 0

    # Keys hold again: a second place for user 1 or a place for nobody are refused.
    with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():
        conn.execute("INSERT INTO user_place (user_id, commune_code) VALUES (1, '51454')")
    with pytest.raises(psycopg.errors.ForeignKeyViolation), conn.transaction():
        conn.execute("INSERT INTO user_place (user_id, commune_code) VALUES (99999999, '51454')")


def test_large_batch_into_a_table_with_users_is_an_upsert(conn: psycopg.Connection) -> None:
    _import(conn, _record(1, commune="64102"))
    keys_before = _keys(conn)
    codes = ["51454", "64102", "75056", "2A004", "97411"]
    records = [
        _record(i, commune=codes[(i - 1) % len(codes)]) for i in range(1, users.BULK_ROWS + 1)
    ]
    _import(conn, *records)
    assert _keys(conn) == keys_before  # nothing dropped or rebuilt
    assert _counts(conn) == (users.BULK_ROWS, users.BULK_ROWS)
    place = _place(conn, 1)
    assert place is not None and place["commune"] == "51454"  # user 1 moved


# -- reading JSON Lines -----------------------------------------------------------------------


def test_read_jsonl_reports_every_bad_line(tmp_path: Path) -> None:
    lines = [
        {"id": 1, "home": {"lon": 2.35, "lat": 48.85}, "interests": ["culture"]},
        '{"id": 2, "home": {"lon": 2.35',
        {"id": 3, "home": {"lon": 2.35, "lat": 91}},
        {"id": 4, "home": {"lon": 2.35, "lat": 48.85}, "commune": "75056"},
        {"id": 5, "commune": "51454", "interests": ["culture", "astrologie"]},
        {"id": 6, "postal_code": "51100", "timezone": "Europe/Reims"},
        {"id": 1, "commune": "51454"},
        {"id": 8, "commune": "51454", "email": "a@b.fr"},
        "",
        {"id": 10, "postal_code": "64250", "timezone": "Europe/Paris"},
    ]
    path = tmp_path / "users.jsonl"
    path.write_bytes(
        b"\n".join(line.encode() if isinstance(line, str) else orjson.dumps(line) for line in lines)
        + b"\n"
    )
    with pytest.raises(UserImportError) as caught:
        read_jsonl(path)
    errors = caught.value.errors
    by_line: dict[int, list[str]] = defaultdict(list)
    for error in errors:
        name, number, rest = error.split(":", 2)
        assert name == "users.jsonl"
        by_line[int(number)].append(rest)
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7, 8]
    assert all(len(v) == 1 for v in by_line.values()), errors
    assert "json" in by_line[2][0].lower()
    assert by_line[3][0].startswith(" home:") and "latitude" in by_line[3][0]
    assert "home" in by_line[4][0] and "commune" in by_line[4][0]
    assert by_line[5][0].startswith(" interests.1:")
    assert by_line[6][0].startswith(" timezone:") and "Europe/Reims" in by_line[6][0]
    assert by_line[7][0].startswith(" id:") and "line 1" in by_line[7][0]
    assert by_line[8][0].startswith(" email:")
    assert caught.value.total == 7


def test_read_jsonl_valid_file_and_many_errors(tmp_path: Path) -> None:
    records = [
        _record(7, home=(2.35, 48.85)),
        _record(3, commune="2A004"),
        _record(5, postal_code="64250"),
    ]
    good = tmp_path / "good.jsonl"
    good.write_text("\n\n".join(r.model_dump_json(exclude_none=True) for r in records) + "\n")
    batch = read_jsonl(good)
    expected = UserBatch.from_records(records, lines=[1, 3, 5])
    assert batch.ids.tolist() == [7, 3, 5]
    assert batch.line.tolist() == [1, 3, 5]
    np.testing.assert_array_equal(batch.lon, expected.lon)
    np.testing.assert_array_equal(batch.lat, expected.lat)
    assert batch.commune.tolist() == [None, "2A004", None]
    assert batch.postal_code.tolist() == [None, None, "64250"]
    assert batch.notifications == expected.notifications

    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(f'{{"id": {i}}}\n' for i in range(1, 31)))
    with pytest.raises(UserImportError) as caught:
        read_jsonl(bad)
    assert caught.value.total == 30
    message = str(caught.value)
    assert "bad.jsonl:20:" in message and "bad.jsonl:21:" not in message
    assert message.rstrip().endswith("and 10 more")


@pytest.mark.parametrize("zone", ["localtime", "Factory", "posixrules", "Europe/Reims"])
def test_a_time_zone_is_a_place_s_iana_zone(zone: str) -> None:
    """``localtime`` is whatever the server's clock says, ``Factory`` a placeholder: both are
    in the zone database, neither is where anyone lives."""
    with pytest.raises(ValueError, match="unknown time zone"):
        UserRecord.model_validate({"id": 1, "commune": "75056", "timezone": zone})
    assert UserRecord.model_validate({"id": 1, "commune": "75056", "timezone": "Pacific/Marquesas"})


def test_quiet_hours_are_local_times_of_day_and_old_frequency_words_still_read() -> None:
    with pytest.raises(ValidationError, match="without offset"):
        Notifications.model_validate({"quiet_hours": {"start": "00:00:00Z"}})
    with pytest.raises(ValidationError, match="listed more than once"):
        Notifications.model_validate({"muted_tools": ["petition", "petition"]})
    old = Notifications.model_validate({"frequency": "immediate"})
    assert (old.frequency, Notifications.model_validate({"frequency": "never"}).frequency) == (
        "instant",
        "off",
    )
