"""The public tile cache (api/tile_cache.py) when the API reads from a hot standby, for real: a
primary and a standby of the test's own (tests/pgcluster.py), the real Redis on a channel of
the test's own, the ``tiles`` consumer group's real handler (consumers/tiles.py) on the primary.

The standby may not have replayed a change whose invalidation the API process already
received: the tile it reads then is served (the standby's truth) but not cached, so that once
the standby has replayed, the next request shows the change without waiting for the TTL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.tile_cache import TileCache
from consumers import tiles
from geo_engine import db, pools, tile_keys
from geo_engine.catalog import queries
from geo_engine.settings import (
    ApiSettings,
    DatabaseSettings,
    GeoSettings,
    RedisSettings,
    TileCacheSettings,
)
from geo_engine.territories import geodata
from geo_engine.territories.load import load
from tests import minidata
from tests.api_data import tile_of
from tests.conftest import TEST_SECRET, token_for
from tests.pgcluster import Replicated, throwaway_replicated
from tests.tile_invalidation import tile_settings, unpublished_events, wait_until_caching

pytestmark = [pytest.mark.slow, pytest.mark.geodata]

REIMS, TINQUEUX = "51454", "51573"
WHERE = (4.0317, 49.2535)
STAFF = token_for(1, staff=True)
ZOOM = 12


def _project(visibility: str) -> dict[str, Any]:
    return {
        "id": 1,
        "organisation_id": 1,
        "space": "territoires",
        "tool": "carte_participative",
        "title": "Projet de Reims",
        "visibility": visibility,
        "scope": {"kind": "territories", "territories": [{"level": "commune", "code": REIMS}]},
        "location": {"lon": WHERE[0], "lat": WHERE[1]},
    }


@pytest.fixture(scope="module")
def replicated(
    geodata_dir: Path, geo_settings: GeoSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replicated]:
    """Schema and two real Marne communes written on the primary, replayed by the standby."""
    with throwaway_replicated() as running:
        settings = DatabaseSettings(database_url=running.primary.url)
        db.upgrade(settings)
        mini = minidata.cut(geodata_dir, [REIMS, TINQUEUX])
        root = mini.write(tmp_path_factory.mktemp("mini-reims-tiles"))
        with db.connect(settings) as conn:
            load(conn, geodata.read(root), geo_settings)
            conn.commit()
        running.wait_replayed()
        yield running


@pytest.fixture(scope="module")
def settings() -> TileCacheSettings:
    return tile_settings("replica")


@pytest.fixture(scope="module")
def client(replicated: Replicated, settings: TileCacheSettings) -> Iterator[TestClient]:
    api = ApiSettings(jwt_secret=SecretStr(TEST_SECRET), pool_min_size=1, pool_max_size=2)
    app = create_app(replicated.settings(), api, RedisSettings(), tile_settings=settings)
    with TestClient(app) as test_client:
        org = {"id": 1, "kind": "commune", "name": "Ville de Reims"}
        assert test_client.post("/v1/organisations", json=org, headers=STAFF).status_code == 200
        written = test_client.post("/v1/projects", json=_project("public"), headers=STAFF)
        assert written.status_code == 200, written.text
        wait_until_caching(test_client)
        handle_outbox(replicated, test_client)
        replicated.wait_replayed()
        yield test_client


def handle_outbox(
    replicated: Replicated, client: TestClient, *, required: bool = True, timeout_s: float = 10.0
) -> int:
    """Every outbox event not yet handled through the ``tiles`` group's own handler, on the
    primary (marked published, as the relay does), and wait until the app's cache applied a
    message; returns how many events (``required``: at least one)."""
    cache: TileCache = client.app.state.tile_cache  # type: ignore[attr-defined]
    publisher = redis.Redis.from_url(RedisSettings().redis_url)
    worker = tiles.worker(publisher, cache.settings)
    before = cache.received
    try:
        with psycopg.connect(replicated.primary.url) as conn:
            events = unpublished_events(conn, worker.types)
            assert events or not required, "no project event to handle"
            if not events:
                return 0
            worker.handle(conn, events)
            conn.commit()
    finally:
        publisher.close()
    deadline = time.monotonic() + timeout_s
    while cache.received == before:
        assert time.monotonic() < deadline, "the tile cache did not receive its invalidation"
        time.sleep(0.01)
    return len(events)


def _tile(client: TestClient) -> bytes:
    x, y = tile_of(*WHERE, ZOOM)
    response = client.get(f"/v1/tiles/projects/{ZOOM}/{x}/{y}.mvt")
    assert response.status_code == 200, response.text
    data: bytes = response.content
    return data


def test_a_tile_read_from_a_standby_behind_its_invalidation_is_served_not_cached(
    client: TestClient, replicated: Replicated
) -> None:
    cache: TileCache = client.app.state.tile_cache  # type: ignore[attr-defined]
    assert b"Projet de Reims" in _tile(client)
    hits = cache.hits
    assert b"Projet de Reims" in _tile(client)
    assert cache.hits == hits + 1  # cached while nothing changes

    with psycopg.connect(replicated.standby.url, autocommit=True) as standby:
        standby.execute("SELECT pg_wal_replay_pause()")
        try:
            made_private = client.post("/v1/projects", json=_project("private"), headers=STAFF)
            assert made_private.status_code == 200, made_private.text
            handle_outbox(replicated, client)
            # The standby has not replayed it: its tile still shows the project (served as
            # the standby has it), but is not kept.
            hits, misses = cache.hits, cache.misses
            for _ in range(3):
                assert b"Projet de Reims" in _tile(client)
            assert (cache.hits, cache.misses) == (hits, misses + 3)
            assert len(cache) == 0
        finally:
            standby.execute("SELECT pg_wal_replay_resume()")
    replicated.wait_replayed()
    # Replayed: gone from the public tile at once (the TTL is 600 s), then cached again.
    assert b"Projet de Reims" not in _tile(client)
    hits = cache.hits
    assert b"Projet de Reims" not in _tile(client)
    assert cache.hits == hits + 1


def test_a_cache_subscribing_while_the_standby_lags_keeps_no_tile_older_than_the_primary(
    client: TestClient, replicated: Replicated
) -> None:
    """An invalidation published before the process listened is missed: with the primary's
    settings, the cache reads the primary's position when it subscribes and stores no tile
    the standby read before replaying that far."""
    public = client.post("/v1/projects", json=_project("public"), headers=STAFF)
    assert public.status_code == 200, public.text
    handle_outbox(replicated, client, required=False)  # already public when run after the first
    replicated.wait_replayed()
    with psycopg.connect(replicated.standby.url, autocommit=True) as standby:
        standby.execute("SELECT pg_wal_replay_pause()")
        try:
            made_private = client.post("/v1/projects", json=_project("private"), headers=STAFF)
            assert made_private.status_code == 200, made_private.text
            handle_outbox(replicated, client)  # before the process below listens: missed
            api = ApiSettings(jwt_secret=SecretStr(TEST_SECRET), pool_min_size=1)
            app = create_app(replicated.settings(), api, RedisSettings())
            primary = DatabaseSettings(database_url=replicated.primary.url)
            app.state.tile_cache = TileCache(tile_settings("replica-start"), primary=primary)
            with TestClient(app) as late:
                cache = wait_until_caching(late)
                for _ in range(2):
                    assert b"Projet de Reims" in _tile(late)  # the standby's truth, served
                assert (cache.hits, cache.misses, len(cache)) == (0, 2, 0)
                standby.execute("SELECT pg_wal_replay_resume()")
                replicated.wait_replayed()
                assert b"Projet de Reims" not in _tile(late)
                assert b"Projet de Reims" not in _tile(late)
                assert (cache.hits, len(cache)) == (1, 1)  # read past the position: kept
        finally:
            standby.execute("SELECT pg_wal_replay_resume()")


def test_a_tile_read_says_which_wal_position_it_includes(replicated: Replicated) -> None:
    """On the standby its replay position, on the primary its insert position: both at least
    where the primary was when the change was committed and the standby had replayed it."""

    async def positions() -> list[int | None]:
        found: list[int | None] = []
        for url in (replicated.standby.url, replicated.primary.url):
            settings = DatabaseSettings(database_url=url)
            api = ApiSettings(jwt_secret=SecretStr(TEST_SECRET), pool_min_size=1)
            pool = pools.read_pool(settings, api)
            await pool.open(wait=True)
            try:
                read = await queries.tile(pool, "projects", ZOOM, *tile_of(*WHERE, ZOOM))
            finally:
                await pool.close()
            assert isinstance(read, tile_keys.TileRead)
            found.append(read.position)
        return found

    with psycopg.connect(replicated.primary.url, autocommit=True) as primary:
        row = primary.execute(tile_keys.PRIMARY_POSITION).fetchone()
    assert row is not None
    replicated.wait_replayed()
    on_standby, on_primary = asyncio.run(positions())
    assert on_standby is not None and on_standby >= row[0]
    assert on_primary is not None and on_primary >= row[0]


def test_a_layer_with_a_positioned_invalidation_stores_only_reads_at_least_that_recent() -> None:
    cache = TileCache(TileCacheSettings())
    cache.subscribed = True
    cache.territories_version = "2025"

    def reader(position: int | None):  # type: ignore[no-untyped-def]
        async def read() -> bytes:
            if position is None:
                return b"tile"
            return tile_keys.TileRead(b"tile", position)

        return read

    # No position received yet: any read is stored, as before positions existed.
    asyncio.run(cache.get("projects", 5, 1, 1, reader(None)))
    assert len(cache) == 1
    cache.on_message(tile_keys.message("projects", [(5, 1, 1)], position=1000))
    assert len(cache) == 0
    for position in (None, 999):  # unknown or older: served, not stored
        assert asyncio.run(cache.get("projects", 5, 1, 1, reader(position))).data == b"tile"
        assert len(cache) == 0
    asyncio.run(cache.get("projects", 5, 1, 1, reader(1000)))
    assert len(cache) == 1
    # A lower position later does not lower the floor; other layers are not held back.
    cache.on_message(tile_keys.message("projects", [(9, 9, 9)], position=10))
    asyncio.run(cache.get("projects", 6, 1, 1, reader(999)))
    asyncio.run(cache.get("communes", 6, 1, 1, reader(None)))
    assert ("projects", 6, 1, 1) not in cache._entries
    assert ("communes", 6, 1, 1) in cache._entries


def test_a_message_carries_its_position() -> None:
    raw = tile_keys.message("projects", [(3, 2, 1)], position=50331976)
    assert tile_keys.parse_message(raw) == ("projects", [(3, 2, 1)], 50331976)
    assert tile_keys.parse_message(tile_keys.message("projects", [])) == ("projects", [], None)
    for bad in ('"x"', "-1", "true", "1.5"):
        with pytest.raises(ValueError, match="WAL position"):
            tile_keys.parse_message('{"layer": "projects", "tiles": [], "position": ' + bad + "}")
