"""Shared helpers of the HTTP API tests: committed test data, problem documents, geodesy, tiles.

The API reads through its own pool, so what a test writes must be committed; each API test module
works on its own cloned database (``api_db``) and writes its data once, through the same
``geo_engine.catalog.load`` functions the imports and the API use.
"""

from __future__ import annotations

import base64
import math
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import BaseModel

from contracts.api import Problem
from contracts.catalog import (
    ContributionRecord,
    MemberRecord,
    OrganisationRecord,
    ProjectRecord,
)
from geo_engine import db
from geo_engine.catalog import load as catalog_load
from geo_engine.jsonl import Line
from geo_engine.outbox import read_events
from geo_engine.settings import DatabaseSettings

PROBLEM = "application/problem+json"
GEOJSON = "application/geo+json"
MVT = "application/vnd.mapbox-vector-tile"
EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)

# --------------------------------------------------------------------------------------------
# Records


def organisation(
    org_id: int,
    name: str | None = None,
    *,
    kind: str = "association",
    territory: tuple[str, str] | None = None,
) -> OrganisationRecord:
    if territory is not None:
        territory = {"level": territory[0], "code": territory[1]}  # type: ignore[assignment]
    return OrganisationRecord.model_validate(
        {
            "id": org_id,
            "kind": kind,
            "name": name or f"Organisation {org_id}",
            "territory": territory,
        }
    )


def member(org_id: int, user_id: int, role: str = "member") -> MemberRecord:
    return MemberRecord.model_validate(
        {"organisation_id": org_id, "user_id": user_id, "role": role}
    )


def national() -> dict[str, Any]:
    return {"kind": "national"}


def territories(*refs: tuple[str, str]) -> dict[str, Any]:
    return {
        "kind": "territories",
        "territories": [{"level": level, "code": code} for level, code in refs],
    }


def radius(lon: float, lat: float, metres: float) -> dict[str, Any]:
    return {"kind": "radius", "center": {"lon": lon, "lat": lat}, "radius_m": metres}


def square(lon: float, lat: float, half_deg: float) -> dict[str, Any]:
    """An area scope: a square of side 2 * half_deg degrees centred on (lon, lat)."""
    ring = [
        [lon - half_deg, lat - half_deg],
        [lon + half_deg, lat - half_deg],
        [lon + half_deg, lat + half_deg],
        [lon - half_deg, lat + half_deg],
        [lon - half_deg, lat - half_deg],
    ]
    return {"kind": "area", "geometry": {"type": "Polygon", "coordinates": [ring]}}


def project(
    project_id: int,
    org_id: int,
    scope: dict[str, Any],
    *,
    title: str | None = None,
    location: tuple[float, float] | None = None,
    visibility: str = "public",
    tool: str = "consultation",
    **more: Any,
) -> ProjectRecord:
    body: dict[str, Any] = {
        "id": project_id,
        "organisation_id": org_id,
        "space": "territoires",
        "tool": tool,
        "title": title or f"Projet {project_id}",
        "visibility": visibility,
        "scope": scope,
        **more,
    }
    if location is not None:
        body["location"] = {"lon": location[0], "lat": location[1]}
    return ProjectRecord.model_validate(body)


def contribution(
    contribution_id: int,
    project_id: int,
    location: tuple[float, float],
    *,
    title: str = "",
    category: str = "idee",
    author_id: int | None = None,
) -> ContributionRecord:
    return ContributionRecord.model_validate(
        {
            "id": contribution_id,
            "project_id": project_id,
            "category": category,
            "title": title,
            "location": {"lon": location[0], "lat": location[1]},
            "author_id": author_id,
        }
    )


def _lines(records: Iterable[BaseModel]) -> list[Line[Any]]:
    return [Line(n, r) for n, r in enumerate(records, start=1)]


def write(
    settings: DatabaseSettings,
    *,
    users: Iterable[int] = (),
    organisations: Sequence[OrganisationRecord] = (),
    members: Sequence[MemberRecord] = (),
    projects: Sequence[ProjectRecord] = (),
    contributions: Sequence[ContributionRecord] = (),
) -> None:
    """Write the records in one transaction and commit it (the API must see them)."""
    with db.connect(settings) as conn:
        user_ids = sorted(set(users))
        if user_ids:
            conn.execute(
                "INSERT INTO app_user (id) SELECT unnest(%s::bigint[]) ON CONFLICT DO NOTHING",
                (user_ids,),
            )
        if organisations:
            catalog_load.store_organisations(conn, _lines(organisations), "test")
        if members:
            catalog_load.store_members(conn, _lines(members), "test")
        if projects:
            catalog_load.store_projects(conn, _lines(projects), "test")
        if contributions:
            catalog_load.store_contributions(conn, _lines(contributions), "test")
        conn.commit()


# --------------------------------------------------------------------------------------------
# Answers


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem document with this status; returns its body."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].split(";")[0] == PROBLEM, response.headers
    body = response.json()
    assert isinstance(body, dict)
    assert {"type", "title", "status", "detail"} <= set(body), body
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    Problem.model_validate(body)
    return body


def feature_ids(collection: dict[str, Any]) -> list[int]:
    return [int(f["id"]) for f in collection["features"]]


def walk_pages(
    client: httpx.Client | Any,
    url: str,
    params: dict[str, Any],
    headers: dict[str, str] | None = None,
    max_pages: int = 200,
) -> list[list[dict[str, Any]]]:
    """Every page of a paginated FeatureCollection, following ``next_cursor`` to the end."""
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    for _ in range(max_pages):
        query = dict(params) if cursor is None else {**params, "cursor": cursor}
        response = client.get(url, params=query, headers=headers or {})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].split(";")[0] == GEOJSON
        body = response.json()
        assert body["type"] == "FeatureCollection"
        pages.append(body["features"])
        cursor = body.get("next_cursor")
        if cursor is None:
            return pages
        assert body["features"], "a page with a next_cursor must not be empty"
    raise AssertionError(f"more than {max_pages} pages")


def tamper_cursor(cursor: str, after: int) -> str:
    """The same cursor with another id in it (and the old signature)."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    _, mac = raw.split(".", 1)
    return base64.urlsafe_b64encode(f"{after}.{mac}".encode()).decode().rstrip("=")


# --------------------------------------------------------------------------------------------
# Geodesy and tiles


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance on the sphere of mean radius (within 0.5% of the ellipsoid's)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def _mercator(lon: float, lat: float, z: int) -> tuple[float, float]:
    n = 2**z
    x = (lon + 180.0) / 360.0 * n
    phi = math.radians(lat)
    y = (1.0 - math.log(math.tan(phi) + 1.0 / math.cos(phi)) / math.pi) / 2.0 * n
    return x, y


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    x, y = _mercator(lon, lat, z)
    return int(x), int(y)


def pixel_in_tile(
    lon: float, lat: float, z: int, x: int, y: int, extent: int = 4096
) -> tuple[float, float]:
    """Where (lon, lat) falls in tile z/x/y, in tile units (origin top left, y down)."""
    fx, fy = _mercator(lon, lat, z)
    return (fx - x) * extent, (fy - y) * extent


def tile_bounds(z: int, x: int, y: int, margin: float = 0.0) -> tuple[float, float, float, float]:
    """minlon, minlat, maxlon, maxlat of tile z/x/y grown by ``margin`` of its size each side."""
    n = 1 << z

    def lon(fx: float) -> float:
        return fx / n * 360.0 - 180.0

    def lat(fy: float) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * fy / n))))

    return lon(x - margin), lat(y + 1 + margin), lon(x + 1 + margin), lat(y - margin)


# A Mapbox Vector Tile is a protocol buffer (vector_tile.proto, spec 2.1); this reads the few
# messages it has, so the tests need no protobuf library.


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes) -> Iterable[tuple[int, int | bytes]]:
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i : i + size], i + size
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire} is not in a vector tile")
        yield number, value


def _packed(buf: bytes) -> list[int]:
    out, i = [], 0
    while i < len(buf):
        value, i = _varint(buf, i)
        out.append(value)
    return out


def _zigzag(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


def _value(buf: bytes) -> object:
    for number, raw in _fields(buf):
        if number == 1:
            assert isinstance(raw, bytes)
            return raw.decode()
        if number == 2:
            assert isinstance(raw, bytes)
            return struct.unpack("<f", raw)[0]
        if number == 3:
            assert isinstance(raw, bytes)
            return struct.unpack("<d", raw)[0]
        assert isinstance(raw, int)
        if number == 4:
            return raw - (1 << 64) if raw >= 1 << 63 else raw
        if number == 5:
            return raw
        if number == 6:
            return _zigzag(raw)
        if number == 7:
            return bool(raw)
    return None


@dataclass
class TileFeature:
    id: int | None
    kind: int  # 1 point, 2 line, 3 polygon
    properties: dict[str, object]
    geometry: list[int]

    def points(self) -> list[tuple[int, int]]:
        """The vertices of a point feature, in tile units."""
        out: list[tuple[int, int]] = []
        x = y = i = 0
        while i < len(self.geometry):
            command, count = self.geometry[i] & 7, self.geometry[i] >> 3
            i += 1
            if command in (1, 2):
                for _ in range(count):
                    x += _zigzag(self.geometry[i])
                    y += _zigzag(self.geometry[i + 1])
                    i += 2
                    out.append((x, y))
        return out


@dataclass
class TileLayer:
    name: str
    extent: int = 4096
    version: int = 1
    features: list[TileFeature] = field(default_factory=list)


def decode_mvt(data: bytes) -> dict[str, TileLayer]:
    """The layers of a vector tile by name (a repeated name merges, as protobuf merges)."""
    layers: dict[str, TileLayer] = {}
    for number, raw in _fields(data):
        assert number == 3 and isinstance(raw, bytes), f"unexpected field {number} in a tile"
        name, extent, version = "", 4096, 1
        keys: list[str] = []
        values: list[object] = []
        raw_features: list[bytes] = []
        for lnum, lraw in _fields(raw):
            if lnum == 1:
                assert isinstance(lraw, bytes)
                name = lraw.decode()
            elif lnum == 2:
                assert isinstance(lraw, bytes)
                raw_features.append(lraw)
            elif lnum == 3:
                assert isinstance(lraw, bytes)
                keys.append(lraw.decode())
            elif lnum == 4:
                assert isinstance(lraw, bytes)
                values.append(_value(lraw))
            elif lnum == 5:
                assert isinstance(lraw, int)
                extent = lraw
            elif lnum == 15:
                assert isinstance(lraw, int)
                version = lraw
        layer = layers.setdefault(name, TileLayer(name, extent, version))
        for fraw in raw_features:
            fid: int | None = None
            kind, tags, geometry = 0, [], []
            for fnum, fval in _fields(fraw):
                if fnum == 1:
                    assert isinstance(fval, int)
                    fid = fval
                elif fnum == 2:
                    assert isinstance(fval, bytes)
                    tags = _packed(fval)
                elif fnum == 3:
                    assert isinstance(fval, int)
                    kind = fval
                elif fnum == 4:
                    assert isinstance(fval, bytes)
                    geometry = _packed(fval)
            properties = {keys[tags[k]]: values[tags[k + 1]] for k in range(0, len(tags), 2)}
            layer.features.append(TileFeature(fid, kind, properties, geometry))
    return layers


class Outbox:
    """Events committed since the last look."""

    def __init__(self, settings: DatabaseSettings) -> None:
        self.settings = settings
        self.seen = {e.event_id for e in self._all()}

    def _all(self) -> list[Any]:
        with db.connect(self.settings) as conn:
            return read_events(conn)

    def new(self) -> list[Any]:
        fresh = [e for e in self._all() if e.event_id not in self.seen]
        self.seen.update(e.event_id for e in fresh)
        return fresh

    def types(self) -> Counter[str]:
        return Counter(e.type for e in self.new())
