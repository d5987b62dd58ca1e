"""Everything under ``/growth`` and ``/v1/growth`` is for staff: a token that is not staff's
gets 403 on every route and method, whatever the path's parameters or the body, and no token
gets 401 (the dashboard's page itself sends a browser to the session form instead). The routes
are read from the application, so a route added later is covered without editing this test."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute

from tests.conftest import token_for

GROWTH = re.compile(r"^/(v1/)?growth(/|$)")
# A value for each path parameter: real-looking, so the refusal is not a 404 or a 422.
SAMPLES = {"name": "objet-du-digest", "action": "start"}
FILES = {"/growth/static/{name}": "/growth/static/growth.js"}


def _routes(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every API route with its full path, through included routers (which FastAPI keeps as
    routers of their own)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        elif (included := getattr(route, "original_router", None)) is not None:
            yield from _routes(included.routes, prefix + route.include_context.prefix)  # type: ignore[attr-defined]


def _calls(client: TestClient) -> list[tuple[str, str]]:
    calls = []
    for full_path, route in _routes(client.app.routes):  # type: ignore[attr-defined]
        if GROWTH.match(full_path):
            path = FILES.get(full_path) or re.sub(
                r"\{(\w+)\}", lambda m: SAMPLES[m.group(1)], full_path
            )
            calls += [(method, path) for method in sorted(route.methods)]
    return calls


def test_every_growth_route_refuses_a_citizen_and_an_anonymous_caller(client: TestClient) -> None:
    calls = _calls(client)
    paths = {path for _, path in calls}
    # The routes this issue built, so an empty walk cannot pass.
    assert {
        "/growth",
        "/growth/static/growth.js",
        "/v1/growth/experiments",
        "/v1/growth/experiments/objet-du-digest",
        "/v1/growth/experiments/objet-du-digest/start",
        "/v1/growth/report",
        "/v1/growth/areas",
        "/v1/growth/replay",
    } <= paths, sorted(paths)
    citizen = token_for(2)
    for method, path in calls:
        body = {} if method in ("POST", "PUT", "PATCH") else None
        refused = client.request(method, path, json=body, headers=citizen)
        assert refused.status_code == 403, (method, path, refused.text)
        if method != "HEAD":
            assert "staff" in refused.text, (method, path, refused.text)
        anonymous = client.request(method, path, json=body, follow_redirects=False)
        if (method, path) == ("GET", "/growth"):
            assert anonymous.status_code == 303
            assert anonymous.headers["location"] == "/staff/session"
        else:
            assert anonymous.status_code == 401, (method, path, anonymous.text)
    # A trailing slash is not a redirect (whose Location would follow the Host header).
    for path in ("/growth/", "/v1/growth/experiments/"):
        answer = client.get(path, headers={"Host": "evil.example"}, follow_redirects=False)
        assert answer.status_code == 404, (path, answer.headers)
    # A citizen's token in the session cookie is refused too.
    client.cookies.set("geo_engine_staff", citizen["Authorization"].removeprefix("Bearer "))
    try:
        assert client.get("/growth").status_code == 403
        assert client.get("/v1/growth/report").status_code == 403
    finally:
        client.cookies.clear()
