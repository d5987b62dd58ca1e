"""The tile cache's invalidation as it runs in production, driven by a test: the outbox rows
not yet handled go through the ``tiles`` consumer group's handler (consumers/tiles.py) on the
real database, its messages through the real Redis channel, and the test waits until the API
process's cache (api/tile_cache.py) applied them."""

from __future__ import annotations

import time
from collections.abc import Iterable
from uuid import UUID

import psycopg
import redis
from fastapi.testclient import TestClient

from api.tile_cache import TileCache
from consumers import tiles
from contracts.events import Event, from_outbox_row
from geo_engine import db
from geo_engine.settings import DatabaseSettings, RedisSettings, TileCacheSettings


def tile_settings(name: str) -> TileCacheSettings:
    """Settings with a channel of this test's own on the shared Redis."""
    return TileCacheSettings(tile_channel=f"test-tiles-{name}-{time.time_ns()}")


def cache_of(client: TestClient) -> TileCache:
    cache: TileCache = client.app.state.tile_cache  # type: ignore[attr-defined]
    return cache


def wait_until_caching(client: TestClient, timeout_s: float = 10.0) -> TileCache:
    """The app's cache once it is subscribed and knows the territories' version."""
    cache = cache_of(client)
    deadline = time.monotonic() + timeout_s
    while not (cache.subscribed and cache.territories_version):
        assert time.monotonic() < deadline, "the tile cache did not subscribe"
        time.sleep(0.02)
    return cache


def unpublished_events(conn: psycopg.Connection, types: Iterable[str]) -> list[Event]:
    """The outbox's events not yet published, marked published (as the relay does), in order,
    those of ``types`` only."""
    rows = conn.execute(
        "UPDATE outbox SET published_at = clock_timestamp() WHERE published_at IS NULL "
        "RETURNING id, type, version, payload, created_at"
    ).fetchall()
    wanted = set(types)
    events = []
    for event_id, type_, version, payload, created_at in sorted(rows, key=lambda r: r[4]):
        assert isinstance(event_id, UUID)
        event = from_outbox_row(event_id, type_, version, payload, created_at)
        if event.type in wanted:
            events.append(event)
    return events


def invalidate(client: TestClient, database: DatabaseSettings, timeout_s: float = 10.0) -> int:
    """Hand every outbox event not yet handled here to the tiles consumer group (marking it
    published, as the relay would) and wait until the app's cache applied its messages;
    returns how many tiles were invalidated."""
    cache = cache_of(client)
    client_redis = redis.Redis.from_url(RedisSettings().redis_url)
    worker = tiles.worker(client_redis, cache.settings)
    with db.connect(database) as conn:
        events = unpublished_events(conn, worker.types)
        stale = tiles.stale_tiles(conn, events)
        before = cache.received
        sent = tiles.publish(client_redis, cache.settings.tile_channel, stale)
        conn.commit()
    client_redis.close()
    deadline = time.monotonic() + timeout_s
    while cache.received < before + sent:
        assert time.monotonic() < deadline, "the tile cache did not receive its invalidations"
        time.sleep(0.01)
    return len(stale)
