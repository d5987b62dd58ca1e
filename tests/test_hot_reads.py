"""The hot path of nearby and bbox (api/hot_reads.py) answers exactly what the routes answer.

The same world as tests/test_api.py (its fixture, in this module's own database) is read by
two applications on it: one with the hot path (the default) and one without
(``hot_reads=False``, every request through the FastAPI routes). Plainly valid requests,
odd-but-valid ones (unknown or repeated parameters, encoded digits, a bearer scheme in capitals)
and invalid ones must get the same status, headers and bytes from both; and an application whose
two routes fail when reached still answers the plainly valid requests (the hot path serves
them) but not the odd ones (they reach the routes).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api import deps
from api.app import create_app
from geo_engine.settings import ApiSettings, DatabaseSettings
from tests.conftest import token_for
from tests.test_api import (  # noqa: F401 (world: the fixture, used by name)
    ADMIN_LYON,
    HOTEL_DE_VILLE,
    LYON_HOTEL_DE_VILLE,
    MEMBER_PARIS,
    NOBODY,
    PARIS_BOX,
    world,
)

pytestmark = [pytest.mark.geodata, pytest.mark.usefixtures("world")]

LON, LAT = HOTEL_DE_VILLE
BOX = ",".join(map(str, PARIS_BOX))
NEARBY = [
    f"/v1/projects/nearby?lat={LAT}&lon={LON}",
    f"/v1/projects/nearby?lat={LAT}&lon={LON}&radius_m=50000&limit=100",
    f"/v1/projects/nearby?lon={LON}&lat={LAT}&radius_m=800&limit=3",
    f"/v1/projects/nearby?lat={LYON_HOTEL_DE_VILLE[1]}&lon={LYON_HOTEL_DE_VILLE[0]}&limit=7",
    "/v1/projects/nearby?lat=46.0&lon=-1.0&radius_m=1000",  # nothing around
    "/v1/projects/nearby?lat=48.8566&lon=2.3522&radius_m=5e3&limit=%2B5",
    "/v1/projects/nearby?lat=%34%38.8566&lon=2.3522",  # percent-encoded ASCII digits
]
BBOX = [
    f"/v1/projects?bbox={BOX}",
    f"/v1/projects?bbox={BOX}&limit=7",
    f"/v1/projects?limit=500&bbox={BOX}",
    "/v1/projects?bbox=4.80,45.73,4.90,45.80&limit=3",
    "/v1/projects?bbox=-1.1,45.9,-1.0,46.0",  # nothing inside
]
# Valid for the routes, but not plain: the hot path leaves them to the routes.
ODD = [
    f"/v1/projects/nearby?lat={LAT}&lon={LON}&unknown=1",
    f"/v1/projects/nearby?lat=1&lat={LAT}&lon={LON}",
    f"/v1/projects?bbox={BOX}&limit=5&limit=9",
    f"/v1/projects?bbox={BOX}&format=geojson",
]
INVALID = [
    "/v1/projects/nearby?lat=91&lon=2",
    f"/v1/projects/nearby?lat={LAT}",
    f"/v1/projects/nearby?lat={LAT}&lon={LON}&radius_m=0",
    f"/v1/projects/nearby?lat={LAT}&lon={LON}&radius_m=nan",
    f"/v1/projects/nearby?lat={LAT}&lon={LON}&limit=101",
    f"/v1/projects/nearby?lat={LAT}&lon={LON}&limit=1.0",
    "/v1/projects/nearby?lat=\u0664\u0668&lon=2",
    "/v1/projects/nearby?lat=%EF%BC%94%EF%BC%98&lon=2",  # full-width digits
    "/v1/projects?bbox=0,40,3,43",
    "/v1/projects?bbox=2,48,3",
    "/v1/projects?bbox=2,48,inf,49",
    f"/v1/projects?bbox={BOX}&cursor=not-a-cursor",
    f"/v1/projects?bbox={BOX}&cursor={'A' * 201}",
    f"/v1/projects?bbox={BOX}&limit=0",
    "/v1/projects",
]
VIEWERS = [None, ADMIN_LYON, MEMBER_PARIS, NOBODY]


def _headers(viewer: int | None, scheme: str = "Bearer") -> dict[str, str]:
    if viewer is None:
        return {}
    token = token_for(viewer)["Authorization"].removeprefix("Bearer ")
    return {"Authorization": f"{scheme} {token}"}


@pytest.fixture(scope="module")
def routed(api_db: DatabaseSettings, api_settings: ApiSettings) -> Iterator[TestClient]:
    """The same API with every request through the FastAPI routes."""
    settings = api_settings.model_copy(update={"hot_reads": False})
    with TestClient(create_app(api_db, settings)) as test_client:
        yield test_client


async def _route_reached() -> None:
    raise AssertionError("the FastAPI route was reached")


@pytest.fixture(scope="module")
def hot_only(api_db: DatabaseSettings, api_settings: ApiSettings) -> Iterator[TestClient]:
    """The API whose two routes fail when reached (their point and box parsers are replaced):
    only the hot path can answer them."""
    app = create_app(api_db, api_settings)
    app.dependency_overrides[deps.lon_lat] = _route_reached
    app.dependency_overrides[deps.bbox] = _route_reached
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _same(client: TestClient, routed: TestClient, url: str, headers: dict[str, str]) -> int:
    hot, route = client.get(url, headers=headers), routed.get(url, headers=headers)
    assert hot.status_code == route.status_code, (url, hot.text, route.text)
    assert hot.content == route.content, url
    assert dict(hot.headers) == dict(route.headers), url
    return hot.status_code


@pytest.mark.parametrize("viewer", VIEWERS)
def test_plain_requests_get_the_routes_bytes(
    client: TestClient, routed: TestClient, viewer: int | None
) -> None:
    for url in NEARBY + BBOX + ODD:
        assert _same(client, routed, url, _headers(viewer)) == 200
    assert _same(client, routed, NEARBY[0], _headers(viewer, "BEARER")) == 200


@pytest.mark.parametrize("viewer", [None, MEMBER_PARIS])
def test_pages_and_cursors_are_the_routes(
    client: TestClient, routed: TestClient, viewer: int | None
) -> None:
    url = f"/v1/projects?bbox={BOX}&limit=25"
    pages = 0
    while True:
        response = client.get(url, headers=_headers(viewer))
        _same(client, routed, url, _headers(viewer))
        cursor = response.json().get("next_cursor")
        pages += 1
        if cursor is None:
            break
        url = f"/v1/projects?bbox={BOX}&limit=25&cursor={cursor}"
    assert pages > 3
    # A cursor given to someone else is refused by both alike.
    other = None if viewer is not None else MEMBER_PARIS
    assert _same(client, routed, url, _headers(other)) in (200, 422)


@pytest.mark.parametrize("url", INVALID)
def test_invalid_requests_get_the_routes_problem(
    client: TestClient, routed: TestClient, url: str
) -> None:
    assert _same(client, routed, url, {}) == 422


@pytest.mark.parametrize(
    "authorization", ["Bearer abc.def.ghi", "Basic x", "Bearer", "Bearer  ", "bearer x y"]
)
def test_bad_tokens_get_the_routes_problem(
    client: TestClient, routed: TestClient, authorization: str
) -> None:
    for url in (NEARBY[0], BBOX[0]):
        assert _same(client, routed, url, {"Authorization": authorization}) == 401


def test_the_hot_path_answers_plain_requests_itself(
    hot_only: TestClient, routed: TestClient
) -> None:
    for url in NEARBY + BBOX:
        for viewer in (None, MEMBER_PARIS):
            answer = hot_only.get(url, headers=_headers(viewer))
            assert answer.status_code == 200, url
            assert answer.content == routed.get(url, headers=_headers(viewer)).content
            assert answer.headers["x-content-type-options"] == "nosniff"
    for url in ODD:  # left to the routes, which fail here
        assert hot_only.get(url).status_code == 500, url
