"""The public tile cache: in each API process, the tiles every caller gets alike.

Design. Only the public layers are cached (``projects``, the same for everyone since private
projects have a layer of their own, ``communes``, ``epcis``); a member's private projects are
read live and never stored (api/routes/tiles.py). The cache lives in the process, a
least-recently-used dict bounded in bytes: a hit costs a dict lookup and no round trip, where
a Redis cache shared by the workers would add one to every request for a gain on misses only
(each tile is filled once per worker instead of once per machine); a CDN in front is the shared
layer, helped by a strong ``ETag`` (the tile's BLAKE2b) and ``Cache-Control: public``.

Keys and versions. An entry is keyed by layer and z/x/y and holds the data version it was
read at. ``communes`` and ``epcis`` change only when ``geo load`` rebuilds their outlines:
their version is the millésime with the file nodes of the rebuilt materialized views (a
REFRESH writes new ones), read every ``tile_territories_poll_s``. ``projects`` tiles are
dropped by the ``tiles`` consumer group, which turns the outbox's project, contribution and
organisation events into the tiles they stale and publishes them on ``tile_channel``
(geo_engine/tile_keys.py); each process listens.

Safety. Nothing is cached while the channel is not subscribed (an invalidation could be
missed); every (re)subscription empties the cache, so what was missed while away is
forgotten. A tile read while an invalidation arrived is served but not stored (it may predate
the change); an entry older than ``tile_cache_ttl_s`` is read again (a bound on staleness
should the consumer group be down).

Hot standby. Tiles may be read from a standby (``GEO_ENGINE_READ_DATABASE_URL``) that has not
yet replayed a change whose invalidation already arrived. An invalidation carries the primary's
WAL position past that change; a tile read returns the position its snapshot includes
(geo_engine/catalog/queries.py ``tile``); per layer, a tile is stored only when its position is
at least the highest invalidation position received, else it is served (the standby's truth)
and read again next time. A layer that received a positioned invalidation stores no tile whose
position is unknown. Messages without a position (older producers) do as before. Given the
primary's settings (``primary``), each (re)subscription also reads the primary's position:
the invalidations missed while away were published before it, so ``projects`` tiles are stored
again only once read at least that recent.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import redis.asyncio
from psycopg_pool import AsyncConnectionPool

from geo_engine import pools, tile_keys
from geo_engine.settings import DatabaseSettings, TileCacheSettings

log = logging.getLogger(__name__)

PUBLIC_LAYERS = frozenset({"projects", "communes", "epcis"})
_TERRITORIES = frozenset({"communes", "epcis"})
# Rebuilt by `geo load` (geo_engine/territories/load.py REFRESH_TILE_OUTLINES): a REFRESH
# gives each view a new file node, so their nodes name the load.
_TERRITORIES_VERSION = (
    "SELECT concat_ws(':', (SELECT max(millesime) FROM geodata_release),"
    " pg_relation_filenode('commune_tile'), pg_relation_filenode('departement_tile'),"
    " pg_relation_filenode('epci_tile'))"
)
_RETRY_S = 1.0
# Layers whose tiles the channel's messages drop (the territories follow their version).
_INVALIDATED = frozenset({"projects"})

Key = tuple[str, int, int, int]


@dataclass(frozen=True)
class Tile:
    """A tile's bytes and its strong ETag (quoted, as the header carries it)."""

    data: bytes
    etag: str


@dataclass(frozen=True)
class _Entry:
    tile: Tile
    version: str
    stored_at: float


def etag_of(data: bytes) -> str:
    """A strong ETag of ``data``: its BLAKE2b (128 bits), quoted."""
    return '"' + hashlib.blake2b(data, digest_size=16).hexdigest() + '"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weak comparison, RFC 9110 13.1.2)."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


class TileCache:
    """The process's cache of public tiles; :meth:`run` keeps it subscribed and versioned."""

    def __init__(
        self,
        settings: TileCacheSettings,
        clock: Callable[[], float] = time.monotonic,
        primary: DatabaseSettings | None = None,
    ):
        """``primary``: the primary's settings when tiles are read from a hot standby (each
        subscription then reads the primary's WAL position); None when they are read from the
        primary itself, which has every change whose invalidation could have been missed."""
        self.settings = settings
        self._clock = clock
        self._primary = primary
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        self._bytes = 0
        # Bumped by every invalidation received: a tile read across one is not stored.
        self._generation = 0
        # Per layer, the highest WAL position (bytes) an invalidation named: a tile read at an
        # older position may predate a change already invalidated, and is not stored.
        self._floors: dict[str, int] = {}
        self.subscribed = False
        self.territories_version: str | None = None
        self.hits = 0
        self.misses = 0
        self.received = 0  # channel messages applied

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def enabled(self) -> bool:
        """Whether tiles are stored: only while invalidations can be heard."""
        return self.subscribed and self.settings.tile_cache_max_bytes > 0

    def _version(self, layer: str) -> str | None:
        if layer in _TERRITORIES:
            return self.territories_version
        return "outbox"

    def clear(self) -> None:
        """Forget every tile."""
        self._entries.clear()
        self._bytes = 0
        self._generation += 1

    def invalidate(
        self, layer: str, tiles: list[tile_keys.Tile], position: int | None = None
    ) -> None:
        """Drop ``tiles`` of ``layer``; no tile of ``layer`` read before the WAL ``position``
        (bytes, when given) is stored from now on."""
        self._generation += 1
        if position is not None and position > self._floors.get(layer, -1):
            self._floors[layer] = position
        for z, x, y in tiles:
            entry = self._entries.pop((layer, z, x, y), None)
            if entry is not None:
                self._bytes -= len(entry.tile.data)

    def peek(self, layer: str, z: int, x: int, y: int) -> Tile | None:
        """The tile when the cache holds it at the current version and within its time to
        live (a hit), else None; reads nothing."""
        key = (layer, z, x, y)
        entry = self._entries.get(key)
        if (
            entry is None
            or entry.version != self._version(layer)
            or self._clock() - entry.stored_at >= self.settings.tile_cache_ttl_s
        ):
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry.tile

    async def get(
        self, layer: str, z: int, x: int, y: int, read: Callable[[], Awaitable[bytes]]
    ) -> Tile:
        """The tile, from the cache when it holds it at the current version, else from
        ``read()`` (stored when nothing invalidated tiles meanwhile, and when the read is at
        least at the layer's highest invalidation position: a ``TileRead``'s ``position``)."""
        key = (layer, z, x, y)
        version = self._version(layer)
        cached = self.peek(layer, z, x, y)
        if cached is not None:
            return cached
        self.misses += 1
        generation = self._generation
        data = await read()
        tile = Tile(bytes(data), etag_of(data))
        if (
            self.enabled
            and version is not None
            and generation == self._generation
            and version == self._version(layer)
            and self._recent_enough(layer, data)
        ):
            self._store(key, _Entry(tile, version, self._clock()))
        return tile

    def _recent_enough(self, layer: str, data: bytes) -> bool:
        floor = self._floors.get(layer)
        if floor is None:
            return True
        position = data.position if isinstance(data, tile_keys.TileRead) else None
        return position is not None and position >= floor

    def _store(self, key: Key, entry: _Entry) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old.tile.data)
        self._entries[key] = entry
        self._bytes += len(entry.tile.data)
        while self._bytes > self.settings.tile_cache_max_bytes and self._entries:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= len(dropped.tile.data)

    def on_message(self, raw: bytes | str) -> None:
        """Apply one message of the channel; a malformed one empties the cache (it may have
        named tiles that are now stale)."""
        self.received += 1
        try:
            layer, tiles, position = tile_keys.parse_message(raw)
        except ValueError as exc:
            log.warning("tile cache: unreadable invalidation, cache emptied: %s", exc)
            self.clear()
            return
        self.invalidate(layer, tiles, position)

    async def refresh_territories(self, pool: AsyncConnectionPool) -> None:
        """Read the territories' version; a new one makes their cached tiles unused."""

        async def read(conn: psycopg.AsyncConnection[Any]) -> str:
            cur = await conn.execute(_TERRITORIES_VERSION)
            row = await cur.fetchone()
            return "" if row is None else str(row[0])

        version = await pools.read(pool, read)
        if version != self.territories_version:
            self._generation += 1
            self.territories_version = version

    async def run(self, redis_url: str, pool: AsyncConnectionPool) -> None:
        """Listen to the channel and poll the territories' version until cancelled,
        resubscribing (cache emptied) after any loss of Redis."""
        poll = asyncio.create_task(self._poll_territories(pool))
        try:
            while True:
                try:
                    await self._listen(redis_url)
                except Exception as exc:  # noqa: BLE001 (whatever broke, stop caching, retry)
                    log.warning("tile cache: channel lost, not caching until back: %s", exc)
                self.subscribed = False
                self.clear()
                await asyncio.sleep(_RETRY_S)
        finally:
            self.subscribed = False
            poll.cancel()

    async def _listen(self, redis_url: str) -> None:
        client = redis.asyncio.Redis.from_url(
            redis_url, socket_connect_timeout=1, health_check_interval=5
        )
        try:
            async with client.pubsub(ignore_subscribe_messages=False) as pubsub:
                await pubsub.subscribe(self.settings.tile_channel)
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self.clear()
                        await self._catch_up_with_primary()
                        self.subscribed = True
                    elif message["type"] == "message":
                        self.on_message(message["data"])
        finally:
            await client.aclose()

    async def _catch_up_with_primary(self) -> None:
        # Read after the subscription took effect: every invalidation missed before it named a
        # position read before it. Raises when the primary cannot be reached: not subscribed
        # then, the channel is tried again.
        if self._primary is None:
            return
        async with await psycopg.AsyncConnection.connect(
            self._primary.database_url,
            autocommit=True,
            connect_timeout=self._primary.connect_timeout_s,
        ) as conn:
            cur = await conn.execute(tile_keys.PRIMARY_POSITION)
            row = await cur.fetchone()
        assert row is not None
        for layer in _INVALIDATED:
            if row[0] > self._floors.get(layer, -1):
                self._floors[layer] = int(row[0])

    async def _poll_territories(self, pool: AsyncConnectionPool) -> None:
        while True:
            try:
                await self.refresh_territories(pool)
            except Exception as exc:  # noqa: BLE001 (kept polling whatever the database does)
                log.warning("tile cache: territories' version unread: %s", exc)
                self.territories_version = None
            await asyncio.sleep(self.settings.tile_territories_poll_s)
