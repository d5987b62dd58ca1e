"""The FastAPI application: one connection pool per process, opened in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from api import map_page, problems
from api.deps import PoolDep
from api.routes import projects, territories, tiles, users, writes
from contracts.api import Problem
from geo_engine.settings import ApiSettings, DatabaseSettings, UserSettings


def create_app(
    database: DatabaseSettings | None = None,
    api_settings: ApiSettings | None = None,
    user_settings: UserSettings | None = None,
) -> FastAPI:
    database = database or DatabaseSettings()
    api_settings = api_settings or ApiSettings()
    user_settings = user_settings or UserSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Reads run in autocommit: no BEGIN/COMMIT round trips on the hot paths.
        pool = AsyncConnectionPool(
            database.database_url,
            min_size=api_settings.pool_min_size,
            max_size=api_settings.pool_max_size,
            kwargs={"autocommit": True},
            open=False,
        )
        write_pool = ConnectionPool(database.database_url, min_size=1, max_size=4, open=False)
        await pool.open(wait=True)
        write_pool.open(wait=True)
        app.state.pool, app.state.write_pool = pool, write_pool
        try:
            yield
        finally:
            write_pool.close()
            await pool.close()

    app = FastAPI(
        title="geo-engine",
        version="1",
        summary="Territories, projects and the participatory map of civic participation",
        lifespan=lifespan,
    )
    app.state.api_settings = api_settings
    app.state.user_settings = user_settings
    problems.install(app)
    for router in (territories.router, projects.router, tiles.router, writes.router, users.router):
        app.include_router(router)
    app.include_router(map_page.router)

    @app.get("/health", tags=["health"])
    async def health(db: PoolDep) -> JSONResponse:
        """200 when the database answers."""
        async with db.connection() as connection:
            cur = await connection.execute("SELECT postgis_lib_version()")
            row = await cur.fetchone()
        return JSONResponse({"status": "ok", "postgis": row[0] if row else None})

    _with_problem_schema(app)
    return app


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
