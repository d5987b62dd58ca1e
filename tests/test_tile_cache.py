"""The public tile cache (api/tile_cache.py) and its invalidation by the outbox's events
(consumers/tiles.py), on the real PostgreSQL and Redis: a written project shows in the next
tile, a project made private leaves the next anonymous tile at every zoom, a moved one leaves
its old tiles; strong ETags with 304; a member's private projects only on the uncached
``projects-private`` layer; territories' tiles follow their version."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator

import psycopg
import pytest
import redis
from fastapi.testclient import TestClient

from api import deps
from api.app import create_app
from api.tile_cache import TileCache, etag_of, matches
from consumers import tiles
from contracts.errors import Unavailable
from contracts.events import ProjectUpdated
from geo_engine import db, tile_keys
from geo_engine.settings import ApiSettings, DatabaseSettings, RedisSettings, TileCacheSettings
from tests.api_data import (
    MVT,
    assert_problem,
    contribution,
    decode_mvt,
    member,
    organisation,
    project,
    territories,
    tile_of,
    write,
)
from tests.conftest import token_for
from tests.tile_invalidation import invalidate, tile_settings, wait_until_caching

pytestmark = pytest.mark.geodata

ADMIN, STRANGER = 2, 3
ORG = 10
FIRST, SECOND, THIRD = 100, 101, 102
CONTRIBUTION = 500
LYON = (4.8357, 45.7676)
# 1.3 km east: another cell than LYON from zoom 10 (a cell is 1/64 of a tile).
LYON_EAST = (4.8520, 45.7676)
# Another city, far from both: where a project moves to.
GRENOBLE = (5.7245, 45.1885)
ZOOMS = range(0, 17)


@pytest.fixture(scope="module")
def settings() -> TileCacheSettings:
    return tile_settings("cache").model_copy(update={"tile_territories_poll_s": 0.2})


@pytest.fixture(scope="module")
def client(
    api_db: DatabaseSettings, api_settings: ApiSettings, settings: TileCacheSettings
) -> Iterator[TestClient]:
    lyon = territories(("commune", "69123"))
    write(
        api_db,
        users=[ADMIN, STRANGER],
        organisations=[organisation(ORG, "Ville de Lyon")],
        members=[member(ORG, ADMIN, "admin")],
        projects=[project(FIRST, ORG, lyon, title="Premier projet", location=LYON)],
    )
    with TestClient(create_app(api_db, api_settings, tile_settings=settings)) as test_client:
        wait_until_caching(test_client)
        invalidate(test_client, api_db)  # what the fixtures wrote: nothing cached yet
        yield test_client


def _get(client: TestClient, layer: str, z: int, lonlat: tuple[float, float], **headers: str):  # type: ignore[no-untyped-def]
    x, y = tile_of(*lonlat, z)
    return client.get(f"/v1/tiles/{layer}/{z}/{x}/{y}.mvt", headers=headers)


def _tile(client: TestClient, z: int, lonlat: tuple[float, float], **headers: str) -> bytes:
    response = _get(client, "projects", z, lonlat, **headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == MVT
    data: bytes = response.content
    return data


def _count(data: bytes) -> int:
    """Projects a tile holds: its single projects plus its clusters' counts."""
    layers = decode_mvt(data)
    alone = len(layers["projects"].features) if "projects" in layers else 0
    clusters = layers["project_clusters"].features if "project_clusters" in layers else []
    return alone + sum(int(str(f.properties["count"])) for f in clusters)


def _write_second(api_db: DatabaseSettings, visibility: str, where: tuple[float, float]) -> None:
    write(
        api_db,
        projects=[
            project(
                SECOND,
                ORG,
                territories(("commune", "69123")),
                title="Second projet",
                location=where,
                visibility=visibility,
            )
        ],
    )


def test_a_public_tile_has_a_strong_etag_and_answers_304(
    client: TestClient, settings: TileCacheSettings
) -> None:
    first = _get(client, "projects", 12, LYON)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag == etag_of(first.content) and etag.startswith('"')
    assert first.headers["cache-control"] == f"public, max-age={settings.tile_max_age_s}"
    assert b"Premier projet" in first.content
    again = _get(client, "projects", 12, LYON, **{"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == first.headers["cache-control"]
    other = _get(client, "projects", 12, LYON, **{"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.content == first.content
    # Outlines too, and the EPCIs.
    for layer in ("communes", "epcis"):
        outlines = _get(client, layer, 10, LYON)
        assert outlines.status_code == 200 and outlines.content
        tag = outlines.headers["etag"]
        assert _get(client, layer, 10, LYON, **{"If-None-Match": f"W/{tag}"}).status_code == 304


def test_the_second_request_is_served_from_the_cache(client: TestClient) -> None:
    cache: TileCache = client.app.state.tile_cache  # type: ignore[attr-defined]
    data = _tile(client, 13, LYON)
    hits = cache.hits
    assert _tile(client, 13, LYON) == data
    assert cache.hits == hits + 1


def test_a_written_project_shows_in_the_next_tile_and_leaves_it_made_private(
    client: TestClient, api_db: DatabaseSettings
) -> None:
    before = {z: _tile(client, z, LYON_EAST) for z in ZOOMS}  # warm the cache
    etags = {z: etag_of(data) for z, data in before.items()}
    counts = {z: _count(data) for z, data in before.items()}
    _write_second(api_db, "public", LYON_EAST)
    # Until its event is handled, the cached tile is served as it was.
    assert _tile(client, 12, LYON_EAST) == before[12]
    assert invalidate(client, api_db) > 0
    for z in ZOOMS:
        data = _tile(client, z, LYON_EAST)
        assert _count(data) == counts[z] + 1, z
    assert b"Second projet" in _tile(client, 14, LYON_EAST)

    # Made private: the next anonymous tile no longer holds it, at any zoom, nor a stranger's
    # or a member's public tile (the same bytes for all); the member sees it on the private
    # layer only.
    _write_second(api_db, "private", LYON_EAST)
    invalidate(client, api_db)
    for z in ZOOMS:
        anonymous = _get(client, "projects", z, LYON_EAST)
        assert _count(anonymous.content) == counts[z], z
        # As if the project had never been written: nothing in it, nor in its ETag.
        assert anonymous.content == before[z] and anonymous.headers["etag"] == etags[z]
        for viewer in (STRANGER, ADMIN):
            seen = _get(client, "projects", z, LYON_EAST, **token_for(viewer))
            assert seen.content == anonymous.content
            assert seen.headers["etag"] == anonymous.headers["etag"]
    assert b"Second projet" not in _tile(client, 14, LYON_EAST)
    private = _get(client, "projects-private", 14, LYON_EAST, **token_for(ADMIN))
    assert private.status_code == 200
    assert b"Second projet" in private.content
    assert private.headers["cache-control"] == "private, no-store"
    assert "etag" not in private.headers
    stranger = _get(client, "projects-private", 14, LYON_EAST, **token_for(STRANGER))
    assert stranger.status_code == 200 and stranger.content == b""

    # Made public again, then moved to Grenoble: gone from its old tiles, in its new ones.
    at_grenoble = {z: _count(_tile(client, z, GRENOBLE)) for z in ZOOMS}
    _write_second(api_db, "public", LYON_EAST)
    invalidate(client, api_db)
    assert b"Second projet" in _tile(client, 14, LYON_EAST)
    _write_second(api_db, "public", GRENOBLE)
    invalidate(client, api_db)
    for z in ZOOMS:
        assert _count(_tile(client, z, GRENOBLE)) == at_grenoble[z] + 1, z
    for z in range(8, 17):  # at lower zooms Lyon and Grenoble share tiles
        assert _count(_tile(client, z, LYON_EAST)) == counts[z], z


def test_a_contribution_and_a_renamed_organisation_show_in_the_next_tile(
    client: TestClient, api_db: DatabaseSettings
) -> None:
    spot = (LYON[0] + 0.002, LYON[1] + 0.001)
    write(
        api_db,
        projects=[
            project(
                THIRD,
                ORG,
                territories(("commune", "69123")),
                tool="carte_participative",
                location=spot,
            )
        ],
    )
    invalidate(client, api_db)
    before = _tile(client, 16, spot)
    assert b"Ville de Lyon" in before
    write(api_db, contributions=[contribution(CONTRIBUTION, THIRD, spot, title="Banc cassé")])
    write(api_db, organisations=[organisation(ORG, "Métropole de Lyon")])
    assert _tile(client, 16, spot) == before  # cached until the events are handled
    invalidate(client, api_db)
    after = _tile(client, 16, spot)
    assert "Banc cassé".encode() in after
    assert "Métropole de Lyon".encode() in after and b"Ville de Lyon" not in after


def test_the_private_layer_needs_a_token(client: TestClient) -> None:
    body = assert_problem(_get(client, "projects-private", 12, LYON), 401)
    assert "projects-private" in body["detail"]


def test_a_bad_token_is_refused_on_a_public_tile_too(client: TestClient) -> None:
    response = _get(client, "projects", 12, LYON, Authorization="Bearer abc.def.ghi")
    assert_problem(response, 401)


def test_territories_tiles_follow_the_version_of_their_load(
    client: TestClient, api_db: DatabaseSettings
) -> None:
    cache: TileCache = client.app.state.tile_cache  # type: ignore[attr-defined]
    data = _get(client, "epcis", 9, LYON).content
    hits = cache.hits
    assert _get(client, "epcis", 9, LYON).content == data
    assert cache.hits == hits + 1
    version = cache.territories_version
    with psycopg.connect(api_db.database_url, autocommit=True) as conn:
        conn.execute("REFRESH MATERIALIZED VIEW epci_tile")  # what `geo load` does
    deadline = time.monotonic() + 10
    while cache.territories_version == version:
        assert time.monotonic() < deadline, "the territories' version was not read again"
        time.sleep(0.05)
    misses = cache.misses
    assert _get(client, "epcis", 9, LYON).content == data  # same outlines, read again
    assert cache.misses == misses + 1


def test_nothing_is_cached_while_the_channel_is_unheard(
    api_db: DatabaseSettings, api_settings: ApiSettings
) -> None:
    # A Redis nobody listens on: tiles are answered, read from PostgreSQL every time.
    nowhere = RedisSettings(redis_url="redis://127.0.0.1:1/0")
    app = create_app(api_db, api_settings, nowhere, tile_settings=tile_settings("nowhere"))
    with TestClient(app) as test_client:
        cache: TileCache = test_client.app.state.tile_cache  # type: ignore[attr-defined]
        for _ in range(2):
            first = _get(test_client, "projects", 12, LYON)
            assert first.status_code == 200 and b"Premier projet" in first.content
        assert not cache.subscribed
        assert len(cache) == 0 and cache.hits == 0


def test_a_resubscription_empties_the_cache() -> None:
    cache = TileCache(TileCacheSettings())
    cache.subscribed = True

    async def read() -> bytes:
        return b"tile"

    asyncio.run(cache.get("projects", 5, 1, 1, read))
    assert len(cache) == 1
    cache.on_message(tile_keys.message("projects", [(5, 1, 1)]))
    assert len(cache) == 0
    asyncio.run(cache.get("projects", 5, 1, 1, read))
    cache.on_message(b"not json")  # unreadable: everything may be stale
    assert len(cache) == 0


def test_a_tile_read_across_an_invalidation_is_not_stored() -> None:
    cache = TileCache(TileCacheSettings())
    cache.subscribed = True

    async def read() -> bytes:
        cache.on_message(tile_keys.message("projects", [(9, 9, 9)]))
        return b"maybe stale"

    tile = asyncio.run(cache.get("projects", 5, 1, 1, read))
    assert tile.data == b"maybe stale"
    assert len(cache) == 0


def test_the_cache_keeps_to_its_bytes_least_recently_used_first() -> None:
    cache = TileCache(TileCacheSettings(tile_cache_max_bytes=10))
    cache.subscribed = True

    def reader(data: bytes):  # type: ignore[no-untyped-def]
        async def read() -> bytes:
            return data

        return read

    for x in range(3):
        asyncio.run(cache.get("projects", 5, x, 0, reader(b"1234")))
    assert len(cache) == 2  # 12 bytes > 10: the first dropped


def test_if_none_match() -> None:
    assert matches('"a", W/"b"', '"b"')
    assert matches("*", '"b"')
    assert not matches('"a"', '"b"')
    assert not matches(None, '"b"')


def test_covering_names_the_tile_of_a_point_and_both_at_an_edge() -> None:
    lon, lat = LYON
    x = math.radians(lon) * 6378137.0
    y = math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) * 6378137.0
    for z in range(21):
        tx, ty = tile_of(lon, lat, z)
        got = tile_keys.covering(x, y, [z])
        assert (z, tx, ty) in got
        # A neighbour only within the float4 rounding of the index (about 20 m here).
        assert all(abs(gx - tx) + abs(gy - ty) <= 2 for _, gx, gy in got)
    # The middle of a tile: that tile alone, at its zoom and one above.
    size = 2 * tile_keys.HALF_WORLD / 2**10
    middle_x = -tile_keys.HALF_WORLD + 530.5 * size
    middle_y = tile_keys.HALF_WORLD - 360.5 * size
    assert tile_keys.covering(middle_x, middle_y, [9, 10]) == {(9, 265, 180), (10, 530, 360)}
    # The meridian of Greenwich and the equator are edges from zoom 1.
    assert tile_keys.covering(0.0, 0.0, [1]) == {(1, 0, 0), (1, 1, 0), (1, 0, 1), (1, 1, 1)}


def test_a_malformed_message_is_refused() -> None:
    for raw in (b"[]", b'{"layer": 1}', b'{"layer": "projects", "tiles": [[1, 2]]}'):
        with pytest.raises(ValueError):
            tile_keys.parse_message(raw)


def test_the_handler_retries_when_redis_is_down(
    client: TestClient, api_db: DatabaseSettings
) -> None:
    nowhere = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    worker = tiles.worker(nowhere, TileCacheSettings())
    event = ProjectUpdated.model_validate(
        {
            "event_id": "00000000-0000-4000-8000-000000000001",
            "occurred_at": "2026-01-01T00:00:00+00:00",
            "project_id": FIRST,
            "organisation_id": ORG,
        }
    )
    with db.connect(api_db) as conn:
        with pytest.raises(Unavailable):
            worker.handle(conn, [event])
        conn.rollback()


async def _route_reached() -> None:
    raise AssertionError("the FastAPI route was reached")


def test_a_cached_tile_is_answered_by_the_hot_path_as_the_route_would(
    client: TestClient,
) -> None:
    """api/hot_reads.py serves a cache hit itself, with the route's bytes and headers; a miss,
    a query string, a token the route refuses or a number with a leading zero reach the route."""
    x, y = tile_of(*LYON, 11)
    url = f"/v1/tiles/projects/11/{x}/{y}.mvt"
    assert client.get(url).status_code == 200  # stored by the route if it was not yet
    by_route = client.get(url + "?through=route")  # a query string: the route answers
    etag = by_route.headers["etag"]
    by_route_304 = client.get(url + "?through=route", headers={"If-None-Match": etag})
    app = client.app
    app.dependency_overrides[deps.tile] = _route_reached  # type: ignore[attr-defined]
    try:
        hit = client.get(url)
        assert hit.status_code == 200 and hit.content == by_route.content
        assert dict(hit.headers) == dict(by_route.headers)
        not_modified = client.get(url, headers={"If-None-Match": etag})
        assert not_modified.status_code == 304 and not_modified.content == b""
        assert dict(not_modified.headers) == dict(by_route_304.headers)
        signed = client.get(url, headers=token_for(STRANGER))
        assert signed.status_code == 200 and signed.content == hit.content
        nantes_x, nantes_y = tile_of(-1.5536, 47.2184, 15)
        for reaching in (
            f"/v1/tiles/projects/15/{nantes_x}/{nantes_y}.mvt",  # never asked: a miss
            f"/v1/tiles/projects/011/{x}/{y}.mvt",
            url + "?through=route",
        ):
            with pytest.raises(AssertionError, match="route was reached"):
                client.get(reaching)
        with pytest.raises(AssertionError, match="route was reached"):
            client.get(url, headers={"Authorization": "Bearer not-a-token"})
    finally:
        app.dependency_overrides.pop(deps.tile)  # type: ignore[attr-defined]
