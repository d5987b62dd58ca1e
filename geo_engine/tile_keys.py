"""Which tiles hold a point, and the invalidation message: shared by the API's tile cache
(api/tile_cache.py) and the ``tiles`` consumer group (consumers/tiles.py), which know nothing
of each other.

A message on the channel (``TileCacheSettings.tile_channel``) is one JSON object,
``{"layer": "projects", "tiles": [[z, x, y], ...], "position": 50331976}``: drop these tiles
of that layer. ``position`` (optional: older producers leave it out) is the primary's WAL
position, in bytes, when the change was already committed: a tile read from a hot standby
that has not replayed that far may predate the change, and is not kept (:class:`TileRead`).
Tiles are the XYZ scheme of ``ST_TileEnvelope`` (Web Mercator, y down from the north).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

#: Half the side of the Web Mercator square, metres (ST_TileEnvelope's default bounds).
HALF_WORLD = 20037508.342789244
#: Zooms a tile can be asked at (api/deps.py MAX_ZOOM).
MAX_ZOOM = 20
#: The projects layer carries contributions from this zoom (migrations/sql/0002_tiles.sql).
CONTRIBUTIONS_FROM_ZOOM = 14

Tile = tuple[int, int, int]
#: The primary's WAL position in bytes: the end of the last record inserted, past every commit
#: already visible (the insert position, not the write one, which lags it under
#: synchronous_commit = off). Read by the ``tiles`` consumer group for each message and by a
#: tile cache on a standby when it subscribes.
PRIMARY_POSITION = "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint"


class TileRead(bytes):
    """A tile's bytes as read from the database, with ``position``: the WAL position in bytes
    that the read's snapshot includes at least (None when unknown)."""

    position: int | None

    def __new__(cls, data: bytes, position: int | None) -> TileRead:
        read = super().__new__(cls, data)
        read.position = position
        return read


def covering(x: float, y: float, zooms: Iterable[int]) -> set[Tile]:
    """Every tile (z, x, y) at ``zooms`` whose envelope holds the Web Mercator point (x, y)
    in metres, both neighbours when it lies on an edge."""
    tiles: set[Tile] = set()
    for z in zooms:
        count = 2**z
        size_m = 2 * HALF_WORLD / count
        cols = _edge_cells(x + HALF_WORLD, size_m, count)
        rows = _edge_cells(HALF_WORLD - y, size_m, count)
        tiles.update((z, c, r) for c in cols for r in rows)
    return tiles


def _edge_cells(offset_m: float, size_m: float, count: int) -> list[int]:
    # The tile functions select with && on boxes the GiST index stores as float4 (rounded
    # outwards by up to ~1e-7 of the coordinate), so a point within that of an edge is in both
    # tiles: both are named.
    position = offset_m / size_m
    first = math.floor(position)
    margin = max(2.0, abs(offset_m) * 1e-6) / size_m
    cells = {first}
    if position - first < margin:
        cells.add(first - 1)
    if first + 1 - position < margin:
        cells.add(first + 1)
    return [c for c in cells if 0 <= c < count]


def message(layer: str, tiles: Iterable[Tile], position: int | None = None) -> str:
    """The invalidation message of ``tiles`` of ``layer`` (sorted, so equal sets are equal),
    with the primary's WAL ``position`` (bytes) when given."""
    body: dict[str, Any] = {"layer": layer, "tiles": sorted(tiles)}
    if position is not None:
        body["position"] = position
    return json.dumps(body, separators=(",", ":"))


def parse_message(raw: bytes | str) -> tuple[str, list[Tile], int | None]:
    """``(layer, tiles, position)`` of a message (position None when it has none);
    ValueError when it is not one."""
    data: Any = json.loads(raw)
    if not isinstance(data, dict) or not isinstance(data.get("layer"), str):
        raise ValueError("a tile invalidation is an object with a layer")
    position = data.get("position")
    if position is not None and (
        not isinstance(position, int) or isinstance(position, bool) or position < 0
    ):
        raise ValueError(f"a WAL position is a count of bytes, not {position!r}")
    tiles: list[Tile] = []
    for item in data.get("tiles", []):
        if (
            not isinstance(item, list)
            or len(item) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in item)
        ):
            raise ValueError(f"a tile is [z, x, y], not {item!r}")
        tiles.append((item[0], item[1], item[2]))
    return data["layer"], tiles, position
