"""A page of features as a FeatureCollection with its signed ``next_cursor``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Response
from fastapi.responses import JSONResponse

from api import cursors
from api.auth import Viewer
from geo_engine.catalog.queries import Page
from geo_engine.settings import ApiSettings

GEOJSON = "application/geo+json"


class GeoJSONResponse(JSONResponse):
    """JSON already encoded by PostgreSQL, served as application/geo+json; as a JSONResponse
    it gets the route's response_model documented under that media type."""

    media_type = GEOJSON

    def render(self, content: Any) -> bytes:
        return content.encode() if isinstance(content, str) else bytes(content)


async def page_response(
    fetch: Callable[[int], Awaitable[Page]],
    cursor: str | None,
    viewer: Viewer,
    settings: ApiSettings,
) -> Response:
    secret = settings.jwt_secret.get_secret_value()
    page = await fetch(cursors.decode(cursor, viewer.user_id, secret))
    next_cursor = (
        ""
        if page.last_id is None
        else f',"next_cursor":"{cursors.encode(page.last_id, viewer.user_id, secret)}"'
    )
    body = '{"type":"FeatureCollection","features":[' + ",".join(page.features) + "]"
    return GeoJSONResponse(body + next_cursor + "}")
