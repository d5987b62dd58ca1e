"""``CommuneIndex``: bulk placement in memory answers exactly what ``locate`` answers.

The oracle is ``geo_engine.territories.locate.locate`` (one PostGIS query per point). Points are
drawn inside random communes, on vertices shared by several communes, within 1e-9…1e-6° of an
outline's edge, at sea and abroad, in the five DROM, and in Paris (where the arrondissement
must agree too). The index is built once for the module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import psycopg
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.users import UserRecord
from fixtures.population import generate_users
from geo_engine import db
from geo_engine.settings import DatabaseSettings
from geo_engine.territories.locate import locate
from geo_engine.users import places as users
from geo_engine.users.placement import NO_COMMUNE, CommuneIndex
from geo_engine.users.places import UserBatch

pytestmark = pytest.mark.geodata

FloatArray = npt.NDArray[np.float64]
COMMUNES_WITH_OUTLINE = 34_868  # features of communes-2026-france (shared/geodata README 2.1)

# Boxes around the DROM (lon min, lat min, lon max, lat max): Guadeloupe, Martinique, Guyane,
# La Réunion, Mayotte. Saint-Martin and Saint-Barthélemy (COM, no outline) lie outside them.
DROM_BOXES = [
    (-61.85, 15.83, -61.0, 16.52),
    (-61.25, 14.38, -60.8, 14.9),
    (-54.6, 2.1, -51.6, 5.8),
    (55.2, -21.4, 55.85, -20.85),
    (44.95, -13.0, 45.3, -12.6),
]
PARIS_BOX = (2.2, 48.8, 2.48, 48.92)  # Paris and the first ring of its neighbours
FRANCE_BOX = (-5.5, 41.0, 10.0, 51.5)  # mainland, Corsica, the sea around them, neighbours


@dataclass
class Outlines:
    """Commune and arrondissement outlines as stored, to draw test points from."""

    codes: npt.NDArray[np.str_]
    geoms: npt.NDArray[np.object_]
    shared_vertices: FloatArray  # (n, 2): vertices of two or more communes' outlines
    segment_a: FloatArray  # (m, 2) edges of the commune outlines: from a …
    segment_b: FloatArray  # … to b
    arr_vertices: FloatArray  # vertices of the Paris arrondissement outlines
    arr_segment_a: FloatArray
    arr_segment_b: FloatArray


def _segments(geoms: npt.NDArray[np.object_]) -> tuple[FloatArray, FloatArray]:
    rings = shapely.get_rings(shapely.get_parts(geoms))
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    same = np.flatnonzero(ring[1:] == ring[:-1])
    return coords[same], coords[same + 1]


@pytest.fixture(scope="module")
def index_conn(france_db: DatabaseSettings) -> Iterator[psycopg.Connection]:
    """Module-wide, read-only: autocommit so no transaction stays open between tests."""
    with db.connect(france_db, autocommit=True) as connection:
        yield connection


@pytest.fixture(scope="module")
def index(index_conn: psycopg.Connection) -> CommuneIndex:
    return CommuneIndex.from_db(index_conn)


@pytest.fixture(scope="module")
def outlines(index_conn: psycopg.Connection) -> Outlines:
    rows = index_conn.execute(
        "SELECT code, ST_AsBinary(geom) FROM commune WHERE geom IS NOT NULL ORDER BY code"
    ).fetchall()
    codes = np.array([r[0] for r in rows])
    geoms = shapely.from_wkb(np.array([r[1] for r in rows], dtype=object))

    # Vertices that appear in the outlines of at least two distinct communes.
    coords, which = shapely.get_coordinates(geoms, return_index=True)
    table = np.unique(np.column_stack([coords, which.astype(np.float64)]), axis=0)
    xy = table[:, :2]
    first = np.ones(len(xy), dtype=bool)
    first[1:] = np.any(xy[1:] != xy[:-1], axis=1)
    group = np.cumsum(first) - 1
    owners = np.bincount(group)
    shared = xy[first][owners >= 2]

    a, b = _segments(geoms)
    arr_rows = index_conn.execute(
        "SELECT ST_AsBinary(geom) FROM arrondissement WHERE geom IS NOT NULL ORDER BY code"
    ).fetchall()
    arr_geoms = shapely.from_wkb(np.array([r[0] for r in arr_rows], dtype=object))
    arr_a, arr_b = _segments(arr_geoms)
    arr_vertices = np.unique(shapely.get_coordinates(arr_geoms), axis=0)
    return Outlines(codes, geoms, shared, a, b, arr_vertices, arr_a, arr_b)


def _expected(conn: psycopg.Connection, lon: float, lat: float) -> tuple[str | None, str | None]:
    found = locate(conn, lat, lon)
    if found is None:
        return None, None
    return found.commune.code, found.arrondissement.code if found.arrondissement else None


def _indexed(
    index: CommuneIndex, lon: FloatArray, lat: FloatArray
) -> list[tuple[str | None, str | None]]:
    found = index.place(lon, lat)
    arr = index.arrondissements(found, lon, lat)
    return [
        (None if f == NO_COMMUNE else str(index.codes[f]), a)
        for f, a in zip(found.tolist(), arr.tolist(), strict=True)
    ]


# -- point generators (seeded numpy) ----------------------------------------------------------


def _in_boxes(
    rng: np.random.Generator, boxes: list[tuple[float, float, float, float]], n: int
) -> FloatArray:
    which = rng.integers(0, len(boxes), n)
    box = np.array(boxes)[which]
    return np.column_stack([rng.uniform(box[:, 0], box[:, 2]), rng.uniform(box[:, 1], box[:, 3])])


def _inside_communes(rng: np.random.Generator, outlines: Outlines, n: int) -> FloatArray:
    """Points inside communes drawn uniformly (small communes as often as large ones)."""
    geoms = outlines.geoms[rng.integers(0, len(outlines.geoms), n)]
    bounds = shapely.bounds(geoms)
    out = np.full((n, 2), np.nan)
    todo = np.arange(n)
    for _ in range(30):
        if todo.size == 0:
            break
        b = bounds[todo]
        x = rng.uniform(b[:, 0], b[:, 2])
        y = rng.uniform(b[:, 1], b[:, 3])
        ok = shapely.contains_xy(geoms[todo], x, y)
        out[todo[ok]] = np.column_stack([x[ok], y[ok]])
        todo = todo[~ok]
    if todo.size:
        out[todo] = shapely.get_coordinates(shapely.point_on_surface(geoms[todo]))
    return out


def _near_edges(
    rng: np.random.Generator, a: FloatArray, b: FloatArray, n: int, on_edge: bool = False
) -> FloatArray:
    """Points along random edges, pushed sideways by 1e-9…1e-6° (either side), or not at all."""
    pick = rng.integers(0, len(a), n)
    pa, pb = a[pick], b[pick]
    t = rng.uniform(0, 1, n)[:, None]
    point = pa + (pb - pa) * t
    if on_edge:
        return point
    d = pb - pa
    normal = np.column_stack([-d[:, 1], d[:, 0]])
    length = np.linalg.norm(normal, axis=1)
    normal = normal / np.where(length > 0, length, 1.0)[:, None]
    offset = 10.0 ** rng.uniform(-9, -6, n) * rng.choice([-1.0, 1.0], n)
    return point + normal * offset[:, None]


def _batch(outlines: Outlines, seed: int) -> dict[str, FloatArray]:
    """20,000 points in named groups."""
    rng = np.random.default_rng(seed)
    shared = outlines.shared_vertices[rng.integers(0, len(outlines.shared_vertices), 3000)]
    arr_vertices = outlines.arr_vertices[rng.integers(0, len(outlines.arr_vertices), 500)]
    return {
        "inside communes": _inside_communes(rng, outlines, 6000),
        "shared vertices": shared,
        "near edges": _near_edges(rng, outlines.segment_a, outlines.segment_b, 4000),
        "anywhere on earth": np.column_stack(
            [rng.uniform(-180, 180, 1000), rng.uniform(-90, 90, 1000)]
        ),
        "around France": _in_boxes(rng, [FRANCE_BOX], 1000),
        "DROM": _in_boxes(rng, DROM_BOXES, 2000),
        "Paris": _in_boxes(rng, [PARIS_BOX], 2000),
        "arrondissement vertices": arr_vertices,
        "near arrondissement edges": _near_edges(
            rng, outlines.arr_segment_a, outlines.arr_segment_b, 500
        ),
    }


@pytest.fixture(scope="module")
def batch(outlines: Outlines) -> dict[str, FloatArray]:
    groups = _batch(outlines, seed=2026)
    assert sum(len(p) for p in groups.values()) == 20_000
    return groups


# -- tests ------------------------------------------------------------------------------------


def test_index_holds_every_outlined_commune_sorted(index: CommuneIndex) -> None:
    assert len(index.codes) == COMMUNES_WITH_OUTLINE
    assert len(set(index.codes.tolist())) == COMMUNES_WITH_OUTLINE
    assert index.codes.tolist() == sorted(index.codes.tolist())
    assert index.arr_commune == "75056"
    assert index.arr_codes.tolist() == [f"751{n:02d}" for n in range(1, 21)]


@pytest.mark.parametrize(
    ("lat", "lon", "commune", "arrondissement"),
    [
        (48.856389, 2.352222, "75056", "75104"),  # Paris, Hôtel de Ville
        (48.8584, 2.2945, "75056", "75107"),  # Eiffel Tower
        (48.8867, 2.3431, "75056", "75118"),  # Sacré-Cœur
        (49.2583, 4.0317, "51454", None),  # Reims, hôtel de ville
        (43.4929, -1.4746, "64102", None),  # Bayonne, hôtel de ville
        (41.9192, 8.7386, "2A004", None),  # Ajaccio
        (-20.8789, 55.4481, "97411", None),  # Saint-Denis (La Réunion)
        (4.9372, -52.3260, "97302", None),  # Cayenne
        (-12.7806, 45.2278, "97611", None),  # Mamoudzou
        (45.0, -3.0, None, None),  # Bay of Biscay
        (40.4168, -3.7038, None, None),  # Madrid
        (50.8467, 4.3525, None, None),  # Brussels
    ],
)
def test_well_known_places(
    index: CommuneIndex, lat: float, lon: float, commune: str | None, arrondissement: str | None
) -> None:
    assert _indexed(index, np.array([lon]), np.array([lat])) == [(commune, arrondissement)]


@pytest.mark.slow
def test_20000_points_agree_with_locate(
    index: CommuneIndex, index_conn: psycopg.Connection, batch: dict[str, FloatArray]
) -> None:
    mismatches: list[tuple[str, float, float, object, object]] = []
    answers: dict[str, list[tuple[str | None, str | None]]] = {}
    for name, points in batch.items():
        got = _indexed(index, points[:, 0], points[:, 1])
        answers[name] = got
        for (lon, lat), mine in zip(points.tolist(), got, strict=True):
            expected = _expected(index_conn, lon, lat)
            if mine != expected:
                mismatches.append((name, lon, lat, mine, expected))
    assert not mismatches, f"{len(mismatches)} disagreements, first: {mismatches[:10]}"

    # The batch reaches what it claims to reach (else the agreement above proves little).
    def count(name: str, test: Callable[[tuple[str | None, str | None]], bool]) -> int:
        return sum(1 for a in answers[name] if test(a))

    assert count("inside communes", lambda a: a[0] is not None) == 6000
    assert count("shared vertices", lambda a: a[0] is not None) == 3000
    assert count("anywhere on earth", lambda a: a[0] is None) >= 990
    assert 100 < count("around France", lambda a: a[0] is None) < 900
    drom = {a[0][:3] for a in answers["DROM"] if a[0] is not None}
    assert drom == {"971", "972", "973", "974", "976"}
    assert count("DROM", lambda a: a[0] is None) > 100  # the sea around the islands
    paris = {a[1] for a in answers["Paris"] if a[0] == "75056"}
    assert paris == {f"751{n:02d}" for n in range(1, 21)}
    assert count("Paris", lambda a: a[0] not in (None, "75056")) > 300  # the neighbours
    # Outer vertices of the arrondissements may fall just outside the commune (another survey).
    assert count("arrondissement vertices", lambda a: a[1] is not None) > 300


def test_shared_vertices_go_to_the_lowest_code(index: CommuneIndex, outlines: Outlines) -> None:
    """Independently of locate: every commune whose outline holds the vertex covers it, and the
    answer is the lowest of their codes."""
    rng = np.random.default_rng(7)
    vertices = outlines.shared_vertices[rng.integers(0, len(outlines.shared_vertices), 200)]
    tree = shapely.STRtree(outlines.geoms)
    got = _indexed(index, vertices[:, 0], vertices[:, 1])
    for (lon, lat), (code, _) in zip(vertices.tolist(), got, strict=True):
        holders = tree.query(shapely.Point(lon, lat), predicate="intersects")
        covering = sorted(outlines.codes[holders].tolist())
        assert len(covering) >= 2
        assert code == covering[0], (lon, lat, covering)


def _on_edges_as_typed(rng: np.random.Generator, outlines: Outlines, n: int) -> FloatArray:
    """Points a quarter, two fifths, half… of the way along random edges, with 7 decimals.

    The outlines' vertices have 5 decimals, so such points, as a user would type them, lie on
    the edge up to rounding: the hardest case for two implementations to agree on."""
    pick = rng.integers(0, len(outlines.segment_a), n)
    a, b = outlines.segment_a[pick], outlines.segment_b[pick]
    k = rng.choice([0.2, 0.25, 0.4, 0.5, 0.6, 0.75, 0.8], n)[:, None]
    return np.round(a + (b - a) * k, 7)


def test_points_exactly_on_an_edge_differ_from_locate_only_by_rounding(
    index: CommuneIndex, index_conn: psycopg.Connection, outlines: Outlines
) -> None:
    """A point on an edge lies on it only up to rounding; PostGIS's point-in-polygon and GEOS's
    robust predicates may then put it on different sides. Any disagreement must be that and
    nothing else: very rare (testing whole outlines rather than locate's pieces disagreed on
    about 1 point in 500 here), and every answer's outline passes within 1e-9° of the point."""
    rng = np.random.default_rng(11)
    points = np.concatenate(
        [
            _near_edges(rng, outlines.segment_a, outlines.segment_b, 2000, on_edge=True),
            _on_edges_as_typed(rng, outlines, 4000),
        ]
    )
    got = _indexed(index, points[:, 0], points[:, 1])
    differ = []
    for (lon, lat), mine in zip(points.tolist(), got, strict=True):
        expected = _expected(index_conn, lon, lat)
        if mine[0] != expected[0]:
            differ.append((lon, lat, mine[0], expected[0]))
    assert len(differ) <= 3, differ  # 0.05%
    for lon, lat, mine, expected in differ:
        named = [c for c in (mine, expected) if c is not None]
        close = index_conn.execute(
            """SELECT array_agg(code ORDER BY code) FROM commune WHERE code = ANY (%s)
               AND ST_DWithin(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326), 1e-9)""",
            (named, lon, lat),
        ).fetchone()
        assert close is not None and close[0] == sorted(named), (lon, lat, mine, expected)


KINDS = ["commune", "vertex", "edge", "sea", "drom", "paris", "arr-vertex", "arr-edge"]


@pytest.mark.slow
@settings(max_examples=80, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    pick=st.integers(min_value=0, max_value=2**31),
    u=st.floats(min_value=0, max_value=1),
    v=st.floats(min_value=0, max_value=1),
    exponent=st.floats(min_value=-9, max_value=-6),
    side=st.sampled_from([-1.0, 1.0]),
)
def test_any_point_agrees_with_locate(
    index: CommuneIndex,
    index_conn: psycopg.Connection,
    outlines: Outlines,
    kind: str,
    pick: int,
    u: float,
    v: float,
    exponent: float,
    side: float,
) -> None:
    def box(b: tuple[float, float, float, float]) -> tuple[float, float]:
        return b[0] + u * (b[2] - b[0]), b[1] + v * (b[3] - b[1])

    def near(a: FloatArray, b: FloatArray) -> tuple[float, float]:
        i = pick % len(a)
        p, q = a[i], b[i]
        d = q - p
        normal = np.array([-d[1], d[0]]) / np.hypot(d[0], d[1])
        x, y = p + d * u + normal * side * 10.0**exponent
        return float(x), float(y)

    if kind == "commune":
        geom = outlines.geoms[pick % len(outlines.geoms)]
        xmin, ymin, xmax, ymax = geom.bounds
        lon, lat = xmin + u * (xmax - xmin), ymin + v * (ymax - ymin)
        if not shapely.contains_xy(geom, lon, lat):
            lon, lat = shapely.get_coordinates(geom.point_on_surface())[0].tolist()
    elif kind == "vertex":
        lon, lat = outlines.shared_vertices[pick % len(outlines.shared_vertices)].tolist()
    elif kind == "edge":
        lon, lat = near(outlines.segment_a, outlines.segment_b)
    elif kind == "sea":
        lon, lat = box((-180.0, -90.0, 180.0, 90.0)) if pick % 2 else box(FRANCE_BOX)
    elif kind == "drom":
        lon, lat = box(DROM_BOXES[pick % len(DROM_BOXES)])
    elif kind == "paris":
        lon, lat = box(PARIS_BOX)
    elif kind == "arr-vertex":
        lon, lat = outlines.arr_vertices[pick % len(outlines.arr_vertices)].tolist()
    else:
        lon, lat = near(outlines.arr_segment_a, outlines.arr_segment_b)
    got = _indexed(index, np.array([lon]), np.array([lat]))[0]
    assert got == _expected(index_conn, lon, lat), (kind, lon, lat)


def test_order_of_the_input_does_not_matter(
    index: CommuneIndex, batch: dict[str, FloatArray]
) -> None:
    points = np.concatenate(list(batch.values()))
    lon, lat = points[:, 0], points[:, 1]
    found = index.place(lon, lat)
    arr = index.arrondissements(found, lon, lat)
    perm = np.random.default_rng(3).permutation(len(points))
    shuffled = index.place(lon[perm], lat[perm])
    np.testing.assert_array_equal(shuffled, found[perm])
    assert index.arrondissements(shuffled, lon[perm], lat[perm]).tolist() == arr[perm].tolist()
    # In pieces of any size, the answers are the same too.
    cuts = [0, 1, 17, 5000, 12_345, len(points)]
    parts = [index.place(lon[a:b], lat[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    np.testing.assert_array_equal(np.concatenate(parts), found)


def test_empty_input(index: CommuneIndex) -> None:
    empty = np.array([], dtype=np.float64)
    found = index.place(empty, empty)
    assert found.shape == (0,)
    assert index.arrondissements(found, empty, empty).shape == (0,)


def test_users_are_placed_alike_with_and_without_the_index(
    index: CommuneIndex, index_conn: psycopg.Connection
) -> None:
    """``places.place`` in memory (large imports) and through locate (small ones)."""
    batch = generate_users(index_conn, 3000, seed=21)
    fast = users.place(index_conn, batch, index)
    slow = users.place(index_conn, batch)
    assert fast.commune.tolist() == slow.commune.tolist()
    assert fast.arrondissement.tolist() == slow.arrondissement.tolist()
    assert fast.candidates == slow.candidates
    assert sum(1 for a in fast.arrondissement if a is not None) > 20  # Paris is in the batch

    lost = UserBatch.from_records(
        [
            UserRecord.model_validate({"id": 1, "home": {"lon": 2.3522, "lat": 48.8566}}),
            UserRecord.model_validate({"id": 2, "home": {"lon": -3.0, "lat": 45.0}}),
        ],
        lines=[7, 9],
    )
    for with_index in (index, None):
        with pytest.raises(users.UserImportError) as caught:
            users.place(index_conn, lost, with_index)
        assert len(caught.value.errors) == 1
        assert caught.value.errors[0].startswith("line 9: home:")
