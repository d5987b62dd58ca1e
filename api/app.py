"""The FastAPI application: one connection pool per process, opened in the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import redis.asyncio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from api import growth_page, map_page, problems
from api.deps import PoolDep
from api.hot_reads import HotReads
from api.limits import RequestLimits, openapi_description
from api.routes import (
    affiche,
    growth_experiments,
    growth_metrics,
    growth_replay,
    inbox,
    mail_links,
    meetings,
    projects,
    recommendations,
    territories,
    tiles,
    users,
    writes,
)
from api.tile_cache import TileCache
from consumers.settings import MailSettings
from contracts.api import Problem
from contracts.errors import EngineError, Unavailable
from geo_engine import pools
from geo_engine.health import primary_position, replica_report, standby_status
from geo_engine.settings import (
    ApiSettings,
    DatabaseSettings,
    RedisSettings,
    TileCacheSettings,
    UserSettings,
)
from recommender.service import Recommender
from recommender.settings import RecommenderSettings

log = logging.getLogger("api")


def create_app(
    database: DatabaseSettings | None = None,
    api_settings: ApiSettings | None = None,
    redis_settings: RedisSettings | None = None,
    user_settings: UserSettings | None = None,
    recommender_settings: RecommenderSettings | None = None,
    mail_settings: MailSettings | None = None,
    tile_settings: TileCacheSettings | None = None,
) -> FastAPI:
    database = database or DatabaseSettings()
    api_settings = api_settings or ApiSettings()
    redis_settings = redis_settings or RedisSettings()
    user_settings = user_settings or UserSettings()
    # Loaded before serving: a missing or refused model stops the start with its reason.
    recommender = Recommender.load(recommender_settings or RecommenderSettings())

    # The reads of the async routes (map, tiles, territories, project pages, /health) go to the
    # hot standby when there is one; the write pool (every write, the outbox, and the routes that
    # read what they or their caller just wrote: users, inbox, recommendations) stays on the
    # primary.
    replicated = database.read_database_url is not None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Reads run in autocommit: no BEGIN/COMMIT round trips on the hot paths. Both pools wait
        # at most pool_timeout_s for a connection, then answer 503 (geo_engine/pools.py).
        pool = pools.read_pool(database, api_settings)
        write_pool = pools.write_pool(database, api_settings)
        # A standby down at start does not stop the API: its reads answer 503 until it is back.
        await pool.open(wait=not replicated)
        write_pool.open(wait=True)
        redis_client = redis.asyncio.Redis.from_url(
            redis_settings.redis_url, socket_connect_timeout=1, socket_timeout=1
        )
        app.state.pool, app.state.write_pool, app.state.redis = pool, write_pool, redis_client
        # The public tiles' cache listens to its invalidations (api/tile_cache.py).
        tile_cache = app.state.tile_cache
        listening = asyncio.create_task(tile_cache.run(redis_settings.redis_url, pool))
        try:
            yield
        finally:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
            await redis_client.aclose()
            write_pool.close()
            await pool.close()

    app = FastAPI(
        title="geo-engine",
        version="1",
        summary="Territories, projects and the participatory map of civic participation",
        description=openapi_description(api_settings),
        lifespan=lifespan,
        responses=problems.documented(413, 414, 431),
        # "/v1/growth/experiments/" is a 404, not a redirect whose Location follows the Host
        # header a client sent.
        redirect_slashes=False,
    )
    app.state.api_settings = api_settings
    app.state.user_settings = user_settings
    app.state.recommender = recommender
    app.state.mail_settings = mail_settings or MailSettings()
    # Tiles read from a standby: each (re)subscription reads the primary's WAL position, so a
    # tile older than an invalidation missed meanwhile is not kept (api/tile_cache.py).
    app.state.tile_cache = TileCache(
        tile_settings or TileCacheSettings(), primary=database if replicated else None
    )
    problems.install(app)
    # Inside the request bounds (added last, so outermost): nearby and bbox answered directly.
    if api_settings.hot_reads:
        app.add_middleware(HotReads)
    app.add_middleware(
        RequestLimits,
        max_body_bytes=api_settings.max_body_bytes,
        max_url_bytes=api_settings.max_url_bytes,
        max_header_bytes=api_settings.max_header_bytes,
    )
    for router in (
        territories.router,
        projects.router,
        tiles.router,
        writes.router,
        users.router,
        recommendations.router,
        inbox.router,
        mail_links.router,
        meetings.router,
        affiche.router,
        growth_experiments.router,
        growth_replay.router,
        growth_metrics.router,
    ):
        app.include_router(router)
    app.include_router(map_page.router)
    app.include_router(growth_page.router)

    @app.get("/health", tags=["health"], responses=problems.documented(503))
    async def health(request: Request, db: PoolDep) -> JSONResponse:
        """200 when PostgreSQL (with PostGIS) and Redis answer, and the hot standby the reads go
        to when there is one (`replica`: `in_recovery`, `lag_s` seconds its replay is behind,
        `behind_bytes` of WAL the primary wrote that it has not replayed); 503 naming what is
        down (`PostgreSQL`, `PostgreSQL replica`, `Redis`)."""
        checks: dict[str, Awaitable[Any]] = {
            "PostgreSQL": _primary(request.app.state.write_pool) if replicated else _postgis(db),
            "Redis": _redis(request.app.state.redis),
        }
        if replicated:
            checks["PostgreSQL replica"] = pools.read(db, standby_status)
        outcomes: list[Any] = await asyncio.gather(*checks.values(), return_exceptions=True)
        results = dict(zip(checks, outcomes, strict=True))
        down = [
            {"where": name, "reason": result.detail}
            for name, result in results.items()
            if isinstance(result, EngineError)
        ]
        for result in results.values():
            if isinstance(result, BaseException) and not isinstance(result, EngineError):
                raise result
        if down:
            raise Unavailable(
                " and ".join(e["where"] for e in down) + " unreachable",
                errors=down,
                headers={"Retry-After": str(pools.RETRY_AFTER_S)},
            )
        body: dict[str, Any] = {"status": "ok", "redis": results["Redis"]}
        if replicated:
            body["postgis"], primary_lsn = results["PostgreSQL"]
            body["replica"] = replica_report(primary_lsn, results["PostgreSQL replica"])
        else:
            body["postgis"] = results["PostgreSQL"]
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    _with_problem_schema(app)
    return app


async def _postgis(db: AsyncConnectionPool) -> str | None:
    async def version(conn: psycopg.AsyncConnection[Any]) -> str | None:
        cur = await conn.execute("SELECT postgis_lib_version()")
        row = await cur.fetchone()
        return None if row is None else str(row[0])

    return await pools.read(db, version)


async def _primary(pool: ConnectionPool) -> tuple[str, str]:
    """The primary's PostGIS version and WAL position, through the write pool (in a thread:
    it is a blocking pool)."""

    def position() -> tuple[str, str]:
        try:
            with pool.connection() as conn:
                return primary_position(conn)
        except psycopg.OperationalError as exc:
            if pools.connection_lost(exc):
                raise pools.database_unavailable() from exc
            raise

    return await asyncio.to_thread(position)


async def _redis(client: redis.asyncio.Redis) -> str:
    try:
        info = await client.info("server")
    except (redis.asyncio.RedisError, OSError) as exc:
        log.warning("health: Redis does not answer: %s", exc)
        raise Unavailable("Redis does not answer") from exc
    return str(info["redis_version"])


def _with_problem_schema(app: FastAPI) -> None:
    """Put the RFC 9457 problem document in the OpenAPI components the routes refer to."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["Problem"] = Problem.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
