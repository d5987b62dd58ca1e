"""Loading territories: what the real France looks like once loaded, idempotence, repairs,
unreadable files and the change to a newer millésime (merged communes, users remapped).

Expected values come from the data files themselves (membership JSON/CSV, reference EPCI
outlines), from the data set's README and from well-known facts, never from the loader.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import psycopg
import pytest
import shapely
from shapely.geometry import Point

from geo_engine import db
from geo_engine.settings import DatabaseSettings, GeoSettings
from geo_engine.territories import geodata
from geo_engine.territories.load import LoadReport, MillesimeError, load
from geo_engine.territories.locate import locate
from geo_engine.territories.timezones import COMMUNE_ZONE, TERRITORY_ZONE
from tests import minidata

pytestmark = pytest.mark.geodata

XXL = {  # README section 3: SIREN -> member communes
    "200067106": 158,  # CA du Pays Basque
    "200067213": 143,  # CU du Grand Reims
    "200067205": 129,  # CA du Cotentin
    "200054781": 130,  # Métropole du Grand Paris
}
# Areas of the four XXL EPCI as published (km², rounded): a sanity check of area_km2.
XXL_KNOWN_AREA_KM2 = {"200067106": 2967, "200067213": 1432, "200067205": 1444, "200054781": 814}
ISLANDS_WITHOUT_EPCI = {"22016", "29083", "29155", "85113"}  # Bréhat, Sein, Ouessant, Yeu

# UTC offsets in mid-January (well-known; Saint-Pierre-et-Miquelon is then on winter time).
OVERSEAS_UTC_OFFSET_H = {
    "971": -4,  # Guadeloupe
    "972": -4,  # Martinique
    "973": -3,  # Guyane
    "974": 4,  # La Réunion
    "975": -3,  # Saint-Pierre-et-Miquelon
    "976": 3,  # Mayotte
    "977": -4,  # Saint-Barthélemy
    "978": -4,  # Saint-Martin
    "984": 5,  # Terres australes (Kerguelen, the seat of the district)
    "986": 12,  # Wallis-et-Futuna
    "987": -10,  # Polynésie française (Tahiti)
    "988": 11,  # Nouvelle-Calédonie
    "989": -8,  # Clipperton
}

MARNE = ["51454", "51573", "51058", "51108"]  # Reims, Tinqueux, Bezannes, Châlons-en-Champagne
REIMS, TINQUEUX, BEZANNES, CHALONS = MARNE


# -- reference data, read straight from the files ---------------------------------------------


@pytest.fixture(scope="module")
def membership(geodata_dir: Path) -> dict[str, Any]:
    folder = geodata_dir / "membership"
    return {
        name: json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
        for name in ("communes", "epci", "departements", "regions")
    }


@pytest.fixture(scope="module")
def actual_communes(membership: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["code"]: c for c in membership["communes"] if c["type"] == "commune-actuelle"}


@pytest.fixture(scope="module")
def epci_of(membership: dict[str, Any]) -> dict[str, str]:
    return {m["code"]: e["code"] for e in membership["epci"] for m in e["membres"]}


@pytest.fixture(scope="module")
def reference_epci_outlines(geodata_dir: Path) -> dict[str, shapely.Geometry]:
    raw = gzip.decompress((geodata_dir / "epci" / "epci-2026-france.geojson.gz").read_bytes())
    features = orjson.loads(raw)["features"]
    geoms = shapely.from_geojson([orjson.dumps(f["geometry"]).decode() for f in features])
    return {f["properties"]["code"]: g for f, g in zip(features, geoms, strict=True)}


def _rows(conn: psycopg.Connection, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    return conn.execute(query, params).fetchall()


def _one(conn: psycopg.Connection, query: str, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0] if len(row) == 1 else row


# -- the whole of France ----------------------------------------------------------------------


def test_counts_match_the_data_files(
    conn: psycopg.Connection,
    membership: dict[str, Any],
    actual_communes: dict[str, dict[str, Any]],
    geodata_dir: Path,
) -> None:
    with (geodata_dir / "membership" / "communes-epci-2026.csv").open(encoding="utf-8") as f:
        with_polygon = sum(
            1
            for row in csv.DictReader(f)
            if row["type"] == "commune-actuelle" and row["polygone_commune_2026"] == "true"
        )
    arrondissements = [c for c in membership["communes"] if c["type"] == "arrondissement-municipal"]

    assert len(actual_communes) == 34_969 and with_polygon == 34_868  # README 2.6 and 4
    assert _one(conn, "SELECT count(*), count(geom) FROM commune") == (34_969, 34_868)
    assert _one(conn, "SELECT count(*) FROM epci") == len(membership["epci"]) == 1_255
    assert len(arrondissements) == 45
    assert _one(conn, "SELECT count(*), count(geom) FROM arrondissement") == (45, 20)
    assert sorted(
        r[0] for r in _rows(conn, "SELECT code FROM arrondissement WHERE geom IS NOT NULL")
    ) == [str(75100 + n) for n in range(1, 21)]
    assert _one(conn, "SELECT count(*), count(geom) FROM departement") == (
        len(membership["departements"]),
        101,
    )
    assert _one(conn, "SELECT count(*), count(geom) FROM region") == (
        len(membership["regions"]),
        18,
    )
    assert _rows(conn, "SELECT millesime FROM geodata_release") == [(2026,)]


def test_every_commune_has_its_chain_from_membership(
    conn: psycopg.Connection,
    actual_communes: dict[str, dict[str, Any]],
    epci_of: dict[str, str],
) -> None:
    loaded = {
        code: rest
        for code, *rest in _rows(
            conn,
            "SELECT code, name, departement_code, region_code, epci_siren, population,"
            " postal_codes FROM commune",
        )
    }
    expected = {
        code: [
            c["nom"],
            c["departement"],
            c.get("region") or c["departement"],
            epci_of.get(code),
            int(c.get("population") or 0),
            sorted(set(c.get("codesPostaux") or [])),
        ]
        for code, c in actual_communes.items()
    }
    assert loaded == expected


def test_the_four_xxl_epci(
    conn: psycopg.Connection, membership: dict[str, Any], geo_settings: GeoSettings
) -> None:
    members = {e["code"]: len(e["membres"]) for e in membership["epci"]}
    rows = _rows(
        conn,
        "SELECT siren, xxl, member_count, area_km2 FROM epci WHERE siren = ANY(%s)",
        (list(XXL),),
    )
    assert len(rows) == 4
    for siren, xxl, member_count, area in rows:
        assert xxl is True, siren
        assert member_count == members[siren] == XXL[siren]
        assert member_count >= geo_settings.xxl_min_communes
        known = XXL_KNOWN_AREA_KM2[siren]
        assert abs(area - known) / known < 0.03, (siren, area, known)


def _spherical_area_km2(geom: shapely.Geometry) -> float:
    """Area on the authalic sphere, via Lambert's cylindrical equal-area projection."""
    radius = 6371.0072  # km

    def project(coords: Any) -> Any:
        out = coords.copy()
        out[:, 0] = radius * (coords[:, 0] * math.pi / 180)
        out[:, 1] = radius * np.sin(coords[:, 1] * math.pi / 180)
        return out

    return float(shapely.transform(geom, project).area)


def test_xxl_rule_and_areas_hold_for_every_epci(
    conn: psycopg.Connection,
    membership: dict[str, Any],
    reference_epci_outlines: dict[str, shapely.Geometry],
    geo_settings: GeoSettings,
) -> None:
    members = {e["code"]: len(e["membres"]) for e in membership["epci"]}
    rows = _rows(conn, "SELECT siren, xxl, member_count, area_km2 FROM epci")
    assert len(rows) == len(members)
    for siren, xxl, member_count, area in rows:
        assert member_count == members[siren], siren
        reference = _spherical_area_km2(reference_epci_outlines[siren])
        assert area == pytest.approx(reference, rel=0.01), siren
        rule = (
            member_count >= geo_settings.xxl_min_communes or area >= geo_settings.xxl_min_area_km2
        )
        assert xxl is rule, siren
    small = [r for r in rows if r[2] < geo_settings.xxl_min_communes and r[3] < 500]
    assert small and not any(r[1] for r in small)


def test_epci_outlines_are_valid_unions_of_their_members(
    conn: psycopg.Connection, reference_epci_outlines: dict[str, shapely.Geometry]
) -> None:
    rows = _rows(
        conn,
        "SELECT siren, geom IS NOT NULL, coalesce(ST_IsValid(geom), false), GeometryType(geom),"
        " ST_Area(geom), ST_NumGeometries(geom) FROM epci",
    )
    assert len(rows) == len(reference_epci_outlines) == 1_255
    for siren, has_geom, valid, kind, area, parts in rows:
        assert has_geom and valid and kind == "MULTIPOLYGON", siren
        ref = reference_epci_outlines[siren]
        assert area == pytest.approx(ref.area, rel=1e-6), siren
        assert parts == shapely.get_num_geometries(ref), siren


def test_epci_spanning_several_departements(
    conn: psycopg.Connection,
    membership: dict[str, Any],
    actual_communes: dict[str, dict[str, Any]],
) -> None:
    departements: dict[str, set[str]] = defaultdict(set)
    for e in membership["epci"]:
        for m in e["membres"]:
            departements[e["code"]].add(actual_communes[m["code"]]["departement"])
    expected = sorted(code for code, deps in departements.items() if len(deps) > 1)
    assert len(expected) == 89  # README 2.6
    loaded = [
        r[0]
        for r in _rows(
            conn,
            "SELECT epci_siren FROM commune WHERE epci_siren IS NOT NULL GROUP BY epci_siren"
            " HAVING count(DISTINCT departement_code) > 1 ORDER BY 1",
        )
    ]
    assert loaded == expected
    assert "200054781" in loaded  # the Grand Paris reaches Essonne and Val-d'Oise


def test_four_island_communes_have_no_epci(
    conn: psycopg.Connection,
    actual_communes: dict[str, dict[str, Any]],
    epci_of: dict[str, str],
) -> None:
    outside = {
        code for code, c in actual_communes.items() if code not in epci_of and c["zone"] != "com"
    }
    assert outside == ISLANDS_WITHOUT_EPCI
    loaded = {
        r[0]
        for r in _rows(conn, "SELECT code FROM commune WHERE epci_siren IS NULL AND zone <> 'com'")
    }
    assert loaded == ISLANDS_WITHOUT_EPCI
    assert (
        _one(
            conn,
            "SELECT count(*) FROM commune WHERE code = ANY(%s) AND geom IS NOT NULL",
            (sorted(ISLANDS_WITHOUT_EPCI),),
        )
        == 4
    )


def test_time_zones(conn: psycopg.Connection) -> None:
    january = datetime(2026, 1, 15, 12, 0)
    # The territory's own zone; communes of the territories that span zones (Polynésie,
    # TAAF) are checked one by one in test_timezones.py.
    rows = _rows(
        conn,
        "SELECT DISTINCT departement_code, zone, timezone FROM commune WHERE code <> ALL (%s)",
        (sorted(c for c, z in COMMUNE_ZONE.items() if z != TERRITORY_ZONE[c[:3]]),),
    )
    overseas = {}
    for dep, zone, tz in rows:
        ZoneInfo(tz)  # a real IANA zone
        if zone == "metro":
            assert tz == "Europe/Paris", dep
        else:
            assert tz != "Europe/Paris", (dep, tz)
            overseas[dep] = tz
    assert set(overseas) == set(OVERSEAS_UTC_OFFSET_H)
    for dep, tz in overseas.items():
        offset = january.replace(tzinfo=ZoneInfo(tz)).utcoffset()
        assert offset is not None
        assert offset.total_seconds() / 3600 == OVERSEAS_UTC_OFFSET_H[dep], (dep, tz)
    assert overseas["974"] == "Indian/Reunion"
    assert _one(conn, "SELECT timezone FROM commune WHERE code = '97411'") == "Indian/Reunion"


def test_locate_pieces_cover_exactly_the_outlines(conn: psycopg.Connection) -> None:
    assert (
        _one(
            conn,
            "SELECT count(*) FROM commune c WHERE geom IS NOT NULL AND NOT EXISTS"
            " (SELECT 1 FROM commune_piece p WHERE p.commune_code = c.code)",
        )
        == 0
    )
    assert _one(conn, "SELECT count(DISTINCT commune_code) FROM commune_piece") == 34_868
    pieces, outlines = _one(
        conn,
        "SELECT (SELECT sum(ST_Area(geom)) FROM commune_piece),"
        " (SELECT sum(ST_Area(geom)) FROM commune)",
    )
    assert pieces == pytest.approx(outlines, rel=1e-9)
    assert _one(conn, "SELECT bool_and(ST_IsValid(geom)) FROM commune WHERE geom IS NOT NULL")


# -- small data sets in fresh databases -------------------------------------------------------


@pytest.fixture
def fresh(make_database: Callable[[], DatabaseSettings]) -> Iterator[psycopg.Connection]:
    with db.connect(make_database()) as connection:
        yield connection


def _load(conn: psycopg.Connection, root: Path, settings: GeoSettings) -> LoadReport:
    report = load(conn, geodata.read(root), settings)
    conn.commit()
    return report


@pytest.mark.parametrize(
    ("codes", "commune_file"),
    [(MARNE, "communes-2026-51.geojson"), (["75056"], "communes-2026-75.geojson")],
    ids=["marne", "paris"],
)
def test_loading_the_same_data_twice_changes_nothing(
    fresh: psycopg.Connection,
    geodata_dir: Path,
    geo_settings: GeoSettings,
    tmp_path: Path,
    codes: list[str],
    commune_file: str,
) -> None:
    mini = minidata.cut(geodata_dir, codes, commune_file=commune_file)
    root = mini.write(tmp_path / "mini")

    first = _load(fresh, root, geo_settings)
    assert first.changed
    assert first.changes["communes"]["inserted"] == len(codes)
    assert first.repaired_geometries == 0
    snapshot = _rows(
        fresh,
        "SELECT code, name, epci_siren, ST_AsEWKB(geom) FROM commune ORDER BY code",
    )
    pieces = _one(fresh, "SELECT count(*) FROM commune_piece")

    second = _load(fresh, root, geo_settings)
    assert second.changed is False, second.changes
    assert all(n == 0 for counts in second.changes.values() for n in counts.values())
    assert (
        _rows(fresh, "SELECT code, name, epci_siren, ST_AsEWKB(geom) FROM commune ORDER BY code")
        == snapshot
    )
    assert _one(fresh, "SELECT count(*) FROM commune_piece") == pieces
    assert sorted(r[0] for r in _rows(fresh, "SELECT code FROM commune")) == sorted(codes)


def test_mini_marne_loads_its_chain(
    fresh: psycopg.Connection, geodata_dir: Path, geo_settings: GeoSettings, tmp_path: Path
) -> None:
    mini = minidata.cut(geodata_dir, MARNE)
    _load(fresh, mini.write(tmp_path / "mini"), geo_settings)
    rows = {
        code: (epci, members)
        for code, epci, members in _rows(
            fresh,
            "SELECT c.code, c.epci_siren, e.member_count FROM commune c"
            " LEFT JOIN epci e ON e.siren = c.epci_siren",
        )
    }
    # Reims, Tinqueux and Bezannes in the Grand Reims (3 kept of 143), Châlons in its own.
    assert {c: rows[c][0] for c in (REIMS, TINQUEUX, BEZANNES)} == dict.fromkeys(
        (REIMS, TINQUEUX, BEZANNES), "200067213"
    )
    assert rows[REIMS][1] == 3
    assert rows[CHALONS][0] not in (None, "200067213") and rows[CHALONS][1] == 1
    assert _rows(fresh, "SELECT code, region_code FROM departement") == [("51", "44")]
    # Locating a point inside each kept commune finds it.
    for code in MARNE:
        p = mini.outline(code).point_on_surface()
        found = locate(fresh, p.y, p.x)
        assert found is not None and found.commune.code == code


def test_self_intersecting_outline_is_repaired(
    fresh: psycopg.Connection, geodata_dir: Path, geo_settings: GeoSettings, tmp_path: Path
) -> None:
    mini = minidata.cut(geodata_dir, MARNE)
    xmin, ymin, xmax, ymax = mini.outline(CHALONS).bounds
    bow_tie = [[xmin, ymin], [xmax, ymax], [xmax, ymin], [xmin, ymax], [xmin, ymin]]
    assert not shapely.Polygon(bow_tie).is_valid
    mini.feature(CHALONS)["geometry"] = {"type": "Polygon", "coordinates": [bow_tie]}
    root = mini.write(tmp_path / "mini")

    report = _load(fresh, root, geo_settings)
    assert report.repaired_geometries == 1
    valid, kind, area, parts = _one(
        fresh,
        "SELECT ST_IsValid(geom), GeometryType(geom), ST_Area(geom), ST_NumGeometries(geom)"
        " FROM commune WHERE code = %s",
        (CHALONS,),
    )
    # Two triangles, each a quarter of the bounding box.
    assert valid and kind == "MULTIPOLYGON" and parts == 2
    assert area == pytest.approx((xmax - xmin) * (ymax - ymin) / 2, rel=1e-9)
    assert _one(fresh, "SELECT bool_and(ST_IsValid(geom)) FROM commune_piece")
    assert _one(fresh, "SELECT bool_and(ST_IsValid(geom)) FROM epci WHERE geom IS NOT NULL")
    # The repaired outline is the one locate uses: the left triangle's middle is Châlons.
    found = locate(fresh, (ymin + ymax) / 2, xmin + (xmax - xmin) * 0.1)
    assert found is not None and found.commune.code == CHALONS
    # Repairing is stable: the same broken file loaded again changes nothing.
    again = _load(fresh, root, geo_settings)
    assert again.repaired_geometries == 1 and again.changed is False


def _break_truncate(mini: minidata.MiniData, root: Path) -> tuple[str | None, str]:
    path = mini.communes_path(root)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return None, "not readable JSON"


def _break_geometry(geometry: Any, reason: str) -> Callable[..., tuple[str | None, str]]:
    def breaker(mini: minidata.MiniData, root: Path) -> tuple[str | None, str]:
        mini.feature(TINQUEUX)["geometry"] = geometry
        mini.write(root)
        return TINQUEUX, reason

    return breaker


@pytest.mark.parametrize(
    "breaker",
    [
        _break_truncate,
        _break_geometry(
            {"type": "LineString", "coordinates": [[4.0, 49.2], [4.1, 49.3]]}, "LineString"
        ),
        _break_geometry({"type": "Point", "coordinates": [4.0, 49.2]}, "Point"),
        _break_geometry(None, "no geometry"),
        _break_geometry(
            {"type": "Polygon", "coordinates": [[[4.0, 49.2], [4.1, 49.3]]]}, "unreadable"
        ),
        _break_geometry(
            {"type": "Polygon", "coordinates": [[[204, 49], [205, 49], [205, 50], [204, 49]]]},
            "outside longitude/latitude",
        ),
    ],
    ids=["truncated", "linestring", "point", "null", "two-point-ring", "out-of-range"],
)
def test_unreadable_communes_file_is_refused(
    geodata_dir: Path, tmp_path: Path, breaker: Callable[..., tuple[str | None, str]]
) -> None:
    mini = minidata.cut(geodata_dir, MARNE)
    root = mini.write(tmp_path / "mini")
    feature, reason = breaker(mini, root)
    with pytest.raises(geodata.GeoDataError) as caught:
        geodata.read(root)
    message = str(caught.value)
    assert mini.communes_path(root).name in message
    assert reason in message
    if feature is not None:
        assert f"feature {feature}" in message
        assert caught.value.feature == feature


def _place_users(conn: psycopg.Connection, placed: str, candidates: list[str]) -> None:
    conn.execute("INSERT INTO app_user (id) VALUES (1), (2)")
    conn.execute("INSERT INTO user_place (user_id, commune_code) VALUES (1, %s)", (placed,))
    conn.execute(
        "INSERT INTO user_place (user_id, commune_code, candidate_communes) VALUES (2, NULL, %s)",
        (candidates,),
    )
    conn.commit()


def _events(conn: psycopg.Connection) -> list[tuple[str, dict[str, int]]]:
    """The outbox, as (type, ids), in a stable order."""
    return _rows(conn, "SELECT type, payload FROM outbox ORDER BY type, payload::text")


def _dangling_places(conn: psycopg.Connection) -> int:
    return _one(
        conn,
        "SELECT count(*) FROM user_place u WHERE"
        " (u.commune_code IS NOT NULL AND u.commune_code NOT IN (SELECT code FROM commune))"
        " OR EXISTS (SELECT 1 FROM unnest(u.candidate_communes) AS c(code)"
        "            WHERE c.code NOT IN (SELECT code FROM commune))",
    )


def test_newer_millesime_merges_communes_and_remaps_users(
    fresh: psycopg.Connection, geodata_dir: Path, geo_settings: GeoSettings, tmp_path: Path
) -> None:
    mini_2026 = minidata.cut(geodata_dir, MARNE)
    mini_2027 = minidata.merged(mini_2026, absorbed=TINQUEUX, into=REIMS, millesime=2027)
    root_2026 = mini_2026.write(tmp_path / "2026")
    root_2027 = mini_2027.write(tmp_path / "2027")
    inside_tinqueux = mini_2026.outline(TINQUEUX).point_on_surface()

    _load(fresh, root_2026, geo_settings)
    found = locate(fresh, inside_tinqueux.y, inside_tinqueux.x)
    assert found is not None and found.commune.code == TINQUEUX
    _place_users(fresh, TINQUEUX, [CHALONS, TINQUEUX])

    report = _load(fresh, root_2027, geo_settings)
    assert report.millesime == 2027
    assert report.users_remapped >= 1
    assert report.users_unplaced == 0
    # The user whose commune merged is announced as moved (the pending one has no commune).
    assert _events(fresh) == [("user.moved", {"user_id": 1})]
    assert report.changes["communes"]["removed"] == 1
    assert _rows(
        fresh, "SELECT commune_code, candidate_communes FROM user_place ORDER BY user_id"
    ) == [
        (REIMS, None),
        (None, sorted([CHALONS, REIMS])),
    ]
    assert _one(fresh, "SELECT count(*) FROM commune WHERE code = %s", (TINQUEUX,)) == 0
    assert _dangling_places(fresh) == 0
    assert (
        _one(
            fresh,
            "SELECT commune_code FROM commune_former_code WHERE former_code = %s",
            (TINQUEUX,),
        )
        == REIMS
    )
    # Where Tinqueux was is now Reims, in a Grand Reims of one member fewer.
    found = locate(fresh, inside_tinqueux.y, inside_tinqueux.x)
    assert found is not None and found.commune.code == REIMS
    assert found.epci is not None and found.epci.members == 2
    assert (
        _one(fresh, "SELECT count(*) FROM commune_piece WHERE commune_code = %s", (TINQUEUX,)) == 0
    )
    assert _one(
        fresh,
        "SELECT ST_Covers(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326)) FROM epci"
        " WHERE siren = '200067213'",
        (inside_tinqueux.x, inside_tinqueux.y),
    )
    assert _one(fresh, "SELECT max(millesime) FROM geodata_release") == 2027

    # The same newer millésime again is a no-op; the older one is refused, and nothing moves.
    assert _load(fresh, root_2027, geo_settings).changed is False
    assert _events(fresh) == [("user.moved", {"user_id": 1})]
    with pytest.raises(MillesimeError, match="2026"):
        load(fresh, geodata.read(root_2026), geo_settings)
    fresh.rollback()
    assert _one(fresh, "SELECT count(*) FROM commune WHERE code = %s", (TINQUEUX,)) == 0
    assert _one(fresh, "SELECT commune_code FROM user_place WHERE user_id = 1") == REIMS


def test_newer_millesime_unplaces_users_of_a_vanished_commune(
    fresh: psycopg.Connection, geodata_dir: Path, geo_settings: GeoSettings, tmp_path: Path
) -> None:
    mini_2026 = minidata.cut(geodata_dir, MARNE)
    mini_2027 = minidata.without(mini_2026, BEZANNES, millesime=2027)
    _load(fresh, mini_2026.write(tmp_path / "2026"), geo_settings)
    _place_users(fresh, BEZANNES, [BEZANNES, CHALONS])

    report = _load(fresh, mini_2027.write(tmp_path / "2027"), geo_settings)
    assert report.users_unplaced == 1
    assert _events(fresh) == [("user.moved", {"user_id": 1})]
    assert _rows(
        fresh, "SELECT commune_code, candidate_communes FROM user_place ORDER BY user_id"
    ) == [
        (None, []),
        (None, [CHALONS]),
    ]
    assert _dangling_places(fresh) == 0


def test_paris_arrondissements_of_the_mini_set(
    fresh: psycopg.Connection, geodata_dir: Path, geo_settings: GeoSettings, tmp_path: Path
) -> None:
    mini = minidata.cut(geodata_dir, ["75056"], commune_file="communes-2026-75.geojson")
    _load(fresh, mini.write(tmp_path / "paris"), geo_settings)
    assert _one(fresh, "SELECT count(*), count(geom) FROM arrondissement") == (20, 20)
    assert mini.paris_features is not None
    for feature in mini.paris_features[:5]:
        code = str(feature["properties"]["c_arinsee"])
        point: Point = shapely.geometry.shape(feature["geometry"]).point_on_surface()
        found = locate(fresh, point.y, point.x)
        assert found is not None and found.commune.code == "75056"
        assert found.arrondissement is not None and found.arrondissement.code == code


def test_former_code_claimed_by_two_communes_is_refused(geodata_dir: Path, tmp_path: Path) -> None:
    mini = minidata.cut(geodata_dir, MARNE)
    for code in (REIMS, CHALONS):
        mini.record(code)["anciensCodes"] = ["51999"]
    root = mini.write(tmp_path / "mini")
    with pytest.raises(geodata.GeoDataError) as caught:
        geodata.read(root)
    message = str(caught.value)
    assert "communes.json" in message
    assert "51999" in message
    assert REIMS in message and CHALONS in message


def test_vanished_arrondissement_is_forgotten_not_a_broken_load(
    fresh: psycopg.Connection, geodata_dir: Path, geo_settings: GeoSettings, tmp_path: Path
) -> None:
    paris = minidata.cut(geodata_dir, ["75056"], commune_file="communes-2026-75.geojson")
    _load(fresh, paris.write(tmp_path / "2026"), geo_settings)
    fresh.execute("INSERT INTO app_user (id) VALUES (1)")
    fresh.execute(
        "INSERT INTO user_place (user_id, commune_code, arrondissement_code)"
        " VALUES (1, '75056', '75104')"
    )
    fresh.commit()
    # A later millésime without the 4th arrondissement (as when Paris Centre merged 1st–4th).
    later = minidata.cut(
        geodata_dir, ["75056"], commune_file="communes-2026-75.geojson", millesime=2027
    )
    later.records.remove(later.record("75104"))
    report = _load(fresh, later.write(tmp_path / "2027"), geo_settings)
    assert report.changes["arrondissements"]["removed"] == 1
    assert _rows(
        fresh, "SELECT commune_code, arrondissement_code FROM user_place WHERE user_id = 1"
    ) == [("75056", None)]


def test_newer_millesime_moves_projects_and_organisations_to_the_commune_nouvelle(
    fresh: psycopg.Connection, geodata_dir: Path, geo_settings: GeoSettings, tmp_path: Path
) -> None:
    mini_2026 = minidata.cut(geodata_dir, MARNE)
    mini_2027 = minidata.merged(mini_2026, absorbed=TINQUEUX, into=REIMS, millesime=2027)
    _load(fresh, mini_2026.write(tmp_path / "2026"), geo_settings)
    assert _one(fresh, "SELECT count(*) FROM commune_tile WHERE code = %s", (TINQUEUX,)) == 1
    fresh.execute(
        """INSERT INTO organisation (id, kind, name, territory_level, territory_code)
           VALUES (1, 'commune', 'Ville de Tinqueux', 'commune', %s)""",
        (TINQUEUX,),
    )
    fresh.execute(
        """INSERT INTO project (id, organisation_id, space, tool, title, visibility, status,
                                scope_kind)
           SELECT id, 1, 'territoires', 'consultation', 'Projet', 'public', 'open',
                  'territories' FROM generate_series(1, 2) AS id"""
    )
    fresh.execute(
        """INSERT INTO project_territory (project_id, level, code)
           VALUES (1, 'commune', %(t)s), (1, 'commune', %(r)s), (2, 'commune', %(t)s)""",
        {"t": TINQUEUX, "r": REIMS},
    )
    fresh.commit()

    _load(fresh, mini_2027.write(tmp_path / "2027"), geo_settings)
    # A project naming both keeps Reims once; one naming Tinqueux alone now names Reims.
    assert _rows(fresh, "SELECT project_id, code FROM project_territory ORDER BY 1, 2") == [
        (1, REIMS),
        (2, REIMS),
    ]
    assert _one(fresh, "SELECT territory_code FROM organisation WHERE id = 1") == REIMS
    assert _events(fresh) == [
        ("organisation.updated", {"organisation_id": 1}),
        ("project.updated", {"project_id": 1, "organisation_id": 1}),
        ("project.updated", {"project_id": 2, "organisation_id": 1}),
    ]
    # The map's outlines follow the new millésime too.
    assert _one(fresh, "SELECT count(*) FROM commune_tile WHERE code = %s", (TINQUEUX,)) == 0
