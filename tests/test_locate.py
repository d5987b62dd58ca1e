"""``locate``: known places resolve to their INSEE codes, borders resolve deterministically,
sea and abroad resolve to nothing, bad coordinates are refused, and random points of real
commune outlines come back to their commune and its EPCI.

Expected codes are well-known facts (INSEE codes of town halls' communes) or are computed
with shapely from the real data files, independently of the database.
"""

from __future__ import annotations

import gzip
import json
import math
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, shape

from contracts.territories import InvalidCoordinates
from geo_engine import db
from geo_engine.settings import DatabaseSettings
from geo_engine.territories.locate import locate

pytestmark = pytest.mark.geodata


@dataclass
class Reference:
    """The real commune outlines and memberships, read with plain json + shapely."""

    codes: list[str]
    geoms: list[shapely.Geometry]
    tree: shapely.STRtree
    communes: dict[str, dict[str, Any]]  # communes.json, commune-actuelle only
    epci_of: dict[str, str]
    epcis: dict[str, dict[str, Any]]

    def covering(self, lon: float, lat: float) -> list[str]:
        """Codes of every commune whose outline covers the point (borders included)."""
        idx = self.tree.query(Point(lon, lat), predicate="covered_by")
        return sorted(self.codes[i] for i in idx)


@pytest.fixture(scope="module")
def reference(geodata_dir: Path) -> Reference:
    raw = gzip.decompress(
        (geodata_dir / "communes" / "communes-2026-france.geojson.gz").read_bytes()
    )
    features = orjson.loads(raw)["features"]
    codes = [f["properties"]["code"] for f in features]
    geoms = [shape(f["geometry"]) for f in features]
    membership = geodata_dir / "membership"
    communes = {
        c["code"]: c
        for c in json.loads((membership / "communes.json").read_text(encoding="utf-8"))
        if c["type"] == "commune-actuelle"
    }
    epcis = {
        e["code"]: e for e in json.loads((membership / "epci.json").read_text(encoding="utf-8"))
    }
    epci_of = {m["code"]: e["code"] for e in epcis.values() for m in e["membres"]}
    return Reference(codes, geoms, shapely.STRtree(geoms), communes, epci_of, epcis)


# -- known places -----------------------------------------------------------------------------

# (place, lat, lon, commune, département, région, arrondissement municipal)
TOWN_HALLS = [
    ("Paris, Hôtel de Ville", 48.856389, 2.352222, "75056", "75", "11", "75104"),
    ("Bayonne, hôtel de ville", 43.4929, -1.4746, "64102", "64", "75", None),
    ("Reims, hôtel de ville", 49.2583, 4.0317, "51454", "51", "44", None),
    ("Cherbourg-en-Cotentin, hôtel de ville", 49.6394, -1.6164, "50129", "50", "28", None),
    ("Saint-Denis (La Réunion), hôtel de ville", -20.8789, 55.4481, "97411", "974", "04", None),
    ("Ajaccio, hôtel de ville", 41.9192, 8.7386, "2A004", "2A", "94", None),
    ("Lyon, hôtel de ville", 45.7675, 4.8357, "69123", "69", "84", None),
    ("Toulouse, Capitole", 43.6045, 1.4440, "31555", "31", "76", None),
    ("Strasbourg, hôtel de ville", 48.5839, 7.7486, "67482", "67", "44", None),
    ("Bordeaux, palais Rohan", 44.8378, -0.5792, "33063", "33", "75", None),
    ("Cayenne, hôtel de ville", 4.9372, -52.3260, "97302", "973", "03", None),
    ("Mamoudzou, hôtel de ville", -12.7806, 45.2278, "97611", "976", "06", None),
    ("Fort-de-France, hôtel de ville", 14.6070, -61.0700, "97209", "972", "02", None),
]


@pytest.mark.parametrize(
    ("lat", "lon", "commune", "departement", "region", "arrondissement"),
    [t[1:] for t in TOWN_HALLS],
    ids=[t[0] for t in TOWN_HALLS],
)
def test_town_halls(
    conn: psycopg.Connection,
    reference: Reference,
    lat: float,
    lon: float,
    commune: str,
    departement: str,
    region: str,
    arrondissement: str | None,
) -> None:
    found = locate(conn, lat, lon)
    assert found is not None
    assert found.commune.code == commune
    assert found.departement.code == departement
    assert found.region.code == region
    if arrondissement is None:
        assert found.arrondissement is None
    else:
        assert found.arrondissement is not None and found.arrondissement.code == arrondissement
    # Names, population and EPCI as the membership files have them.
    record = reference.communes[commune]
    assert found.commune.name == record["nom"]
    assert found.commune.population == record["population"]
    siren = reference.epci_of.get(commune)
    assert found.epci is not None and found.epci.code == siren
    assert found.epci.name == reference.epcis[siren]["nom"]
    assert found.epci.members == len(reference.epcis[siren]["membres"])


@pytest.mark.parametrize(
    ("lat", "lon", "arrondissement"),
    [
        (48.8584, 2.2945, "75107"),  # Eiffel Tower
        (48.8867, 2.3431, "75118"),  # Sacré-Cœur
        (48.8462, 2.3464, "75105"),  # Panthéon
        (48.8606, 2.3376, "75101"),  # Louvre
    ],
)
def test_paris_arrondissements(
    conn: psycopg.Connection, lat: float, lon: float, arrondissement: str
) -> None:
    found = locate(conn, lat, lon)
    assert found is not None and found.commune.code == "75056"
    assert found.arrondissement is not None and found.arrondissement.code == arrondissement
    assert found.as_json_dict()["arrondissement"]["code"] == arrondissement


def test_lyon_has_no_arrondissement_outline(conn: psycopg.Connection) -> None:
    found = locate(conn, 45.7675, 4.8357)
    assert found is not None and found.commune.code == "69123"
    assert found.arrondissement is None
    assert "arrondissement" not in found.as_json_dict()


# One member of each XXL EPCI (well-known town centres), and the README's member counts.
XXL_POINTS = [
    ("Saint-Jean-Pied-de-Port", 43.1631, -1.2375, "64485", "200067106", 158),
    ("Fismes", 49.3075, 3.6858, "51250", "200067213", 143),
    ("Valognes", 49.5086, -1.4700, "50615", "200067205", 129),
    ("Argenteuil", 48.9472, 2.2467, "95018", "200054781", 130),
]


@pytest.mark.parametrize(
    ("lat", "lon", "commune", "siren", "members"),
    [p[1:] for p in XXL_POINTS],
    ids=[p[0] for p in XXL_POINTS],
)
def test_xxl_epci(
    conn: psycopg.Connection,
    reference: Reference,
    lat: float,
    lon: float,
    commune: str,
    siren: str,
    members: int,
) -> None:
    found = locate(conn, lat, lon)
    assert found is not None and found.commune.code == commune
    assert found.epci is not None
    assert found.epci.code == siren
    assert found.epci.xxl is True
    assert found.epci.members == members == len(reference.epcis[siren]["membres"])
    assert found.epci.name == reference.epcis[siren]["nom"]


ISLANDS = [
    ("Ouessant", 48.4575, -5.0956, "29155", "29"),
    ("Île-de-Sein", 48.0372, -4.8508, "29083", "29"),
    ("Île-de-Bréhat", 48.8467, -3.0011, "22016", "22"),
    ("L'Île-d'Yeu", 46.7256, -2.3486, "85113", "85"),
]


@pytest.mark.parametrize(
    ("lat", "lon", "commune", "departement"), [i[1:] for i in ISLANDS], ids=[i[0] for i in ISLANDS]
)
def test_island_communes_without_epci(
    conn: psycopg.Connection,
    reference: Reference,
    lat: float,
    lon: float,
    commune: str,
    departement: str,
) -> None:
    assert commune not in reference.epci_of
    found = locate(conn, lat, lon)
    assert found is not None and found.commune.code == commune
    assert found.departement.code == departement
    assert found.epci is None
    data = found.as_json_dict()
    assert "epci" in data and data["epci"] is None


@pytest.mark.parametrize(
    ("lat", "lon"),
    [
        (45.0, -3.0),  # Bay of Biscay
        (46.5, -4.5),  # Bay of Biscay, further out
        (43.0, 7.5),  # Mediterranean, off Nice
        (40.4168, -3.7038),  # Madrid
        (50.8467, 4.3525),  # Brussels
        (46.2044, 6.1432),  # Geneva
        (90.0, 180.0),  # extreme but valid
        (-90.0, -180.0),
        (0.0, 0.0),
    ],
    ids=["biscay", "biscay-open", "mediterranean", "madrid", "brussels", "geneva", "np", "sp", "0"],
)
def test_sea_and_abroad_are_nowhere(conn: psycopg.Connection, lat: float, lon: float) -> None:
    assert locate(conn, lat, lon) is None


# -- borders ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_vertices(
    geodata_dir: Path, reference: Reference
) -> list[tuple[float, float, list[str]]]:
    """Vertices of Marne outlines shared by several communes: (lon, lat, covering communes)."""
    doc = json.loads((geodata_dir / "communes" / "communes-2026-51.geojson").read_text("utf-8"))
    owners: dict[tuple[float, float], set[str]] = defaultdict(set)
    for f in doc["features"]:
        for x, y in shapely.get_coordinates(shape(f["geometry"])):
            owners[(float(x), float(y))].add(f["properties"]["code"])
    rnd = random.Random(2026)
    picked = []
    for size, count in ((2, 12), (3, 4)):
        candidates = sorted(v for v, o in owners.items() if len(o) == size)
        for lon, lat in rnd.sample(candidates, count):
            covering = reference.covering(lon, lat)
            # Keep vertices inside the Marne: covered exactly by the communes sharing them.
            if covering == sorted(owners[(lon, lat)]):
                picked.append((lon, lat, covering))
    assert len(picked) >= 10
    return picked


def test_shared_vertex_goes_to_the_lowest_code_every_time(
    conn: psycopg.Connection,
    france_db: DatabaseSettings,
    shared_vertices: list[tuple[float, float, list[str]]],
) -> None:
    with db.connect(france_db) as other:
        for lon, lat, covering in shared_vertices:
            assert len(covering) >= 2
            # Every commune sharing the vertex covers it, in the database as in the file.
            covered = conn.execute(
                "SELECT code FROM commune WHERE code = ANY(%s)"
                " AND ST_Covers(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326)) ORDER BY code",
                (covering, lon, lat),
            ).fetchall()
            assert [r[0] for r in covered] == covering
            answers = set()
            for _ in range(4):
                for connection in (conn, other):
                    found = locate(connection, lat, lon)
                    assert found is not None
                    answers.add(found.commune.code)
            assert answers == {min(covering)}, (lon, lat, covering)


# -- invalid coordinates ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lat", "lon", "label", "shown"),
    [
        (91, 2.35, "latitude", "91"),
        (-90.5, 2.35, "latitude", "-90.5"),
        (48.85, 181, "longitude", "181"),
        (48.85, -180.01, "longitude", "-180.01"),
        (float("nan"), 2.35, "latitude", "nan"),
        (48.85, float("nan"), "longitude", "nan"),
        (float("inf"), 2.35, "latitude", "inf"),
        (48.85, float("-inf"), "longitude", "-inf"),
        ("abc", 2.35, "latitude", "abc"),
        (48.85, "abc", "longitude", "abc"),
        (None, 2.35, "latitude", "None"),
        ("", 2.35, "latitude", "''"),
    ],
)
def test_invalid_coordinates_name_the_value(
    conn: psycopg.Connection, lat: Any, lon: Any, label: str, shown: str
) -> None:
    with pytest.raises(InvalidCoordinates) as caught:
        locate(conn, lat, lon)
    message = str(caught.value)
    assert label in message
    assert shown in message
    other = "longitude" if label == "latitude" else "latitude"
    assert other not in message
    assert isinstance(caught.value, ValueError)


def test_coordinates_as_strings_are_accepted(conn: psycopg.Connection) -> None:
    found = locate(conn, "-20.8789", "55.4481")  # type: ignore[arg-type]
    assert found is not None and found.commune.code == "97411"


# -- property: points of real outlines come back to their commune -----------------------------

COMMUNES_WITH_OUTLINE = 34_868  # features of communes-2026-france (README 2.1)


@pytest.mark.slow
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    index=st.integers(min_value=0, max_value=COMMUNES_WITH_OUTLINE - 1),
    u=st.floats(min_value=0, max_value=1),
    v=st.floats(min_value=0, max_value=1),
)
def test_points_inside_a_commune_locate_to_it(
    conn: psycopg.Connection, reference: Reference, index: int, u: float, v: float
) -> None:
    assert len(reference.codes) == COMMUNES_WITH_OUTLINE
    code, outline = reference.codes[index], reference.geoms[index]
    xmin, ymin, xmax, ymax = outline.bounds
    point = Point(xmin + u * (xmax - xmin), ymin + v * (ymax - ymin))
    if not outline.covers(point):
        point = outline.point_on_surface()
    assert not math.isnan(point.x)

    covering = reference.covering(point.x, point.y)
    assert code in covering
    found = locate(conn, point.y, point.x)
    assert found is not None, (code, point.wkt)
    # The commune itself, or (shared border, sliver of overlap) the lowest code covering it.
    assert found.commune.code == min(covering), (code, covering, point.wkt)
    expected_epci = reference.epci_of.get(found.commune.code)
    assert (found.epci.code if found.epci else None) == expected_epci
    record = reference.communes[found.commune.code]
    assert found.departement.code == record["departement"]
    assert found.region.code == record["region"]
