"""The floors of an HTTP read, served by ``geo-engine serve --app bench.http_floor:create_app``
(the same uvicorn protocol, workers and sockets as the API) under the same wrk load.

- ``/floor/empty``: a FastAPI route that answers ``{}``: routing, the framework, uvicorn, wrk;
- ``/floor/bytes``: a FastAPI route that answers a real nearby answer's bytes (20 features,
  read once at start-up), so the body's size is the API's;
- ``/raw/bytes``: the same bytes from a bare ASGI callable: uvicorn and wrk alone.

Query strings are the nearby scenario's and are not read. ``/health`` lets the bench wait.
"""

from __future__ import annotations

import psycopg
from fastapi import FastAPI, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from geo_engine.catalog.queries import nearby_statement
from geo_engine.settings import DatabaseSettings

HOTEL_DE_VILLE = (2.3522, 48.8566)


def nearby_answer(database: DatabaseSettings) -> bytes:
    """The anonymous nearby answer around the Hôtel de Ville (20 nearest within 5 km)."""
    lon, lat = HOTEL_DE_VILLE
    text, params = nearby_statement(lon, lat, 5000, 20, None)
    with psycopg.connect(database.database_url) as conn:
        row = conn.execute(text, params).fetchone()
    assert row is not None
    return str(row[0]).encode()


def create_app() -> ASGIApp:
    body = nearby_answer(DatabaseSettings())
    app = FastAPI()

    @app.get("/health")
    async def health() -> Response:
        return Response(b"{}", media_type="application/json")

    @app.get("/floor/empty")
    async def empty() -> Response:
        return Response(b"{}", media_type="application/json")

    @app.get("/floor/bytes")
    async def answer() -> Response:
        return Response(body, media_type="application/geo+json")

    head = [(b"content-type", b"application/geo+json"), (b"content-length", b"%d" % len(body))]

    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/raw/"):
            await app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": head})
        await send({"type": "http.response.body", "body": body})

    return raw
