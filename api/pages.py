"""A page of features as a FeatureCollection with its signed ``next_cursor``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Response

from api import cursors
from api.auth import Viewer
from geo_engine.project_queries import Page
from geo_engine.settings import ApiSettings

GEOJSON = "application/geo+json"


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
    return Response(body + next_cursor + "}", media_type=GEOJSON)
