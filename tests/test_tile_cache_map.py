"""The map page with the two project sources, in headless Chromium against the live API: a
signed-in member's page adds the uncached ``projects-private`` tiles (their token sent with
those requests only) and draws their private project; the public tiles carry no token, and an
anonymous page never asks for private tiles."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from geo_engine.settings import DatabaseSettings
from tests.api_data import member, organisation, project, territories, write
from tests.browser import chromium
from tests.conftest import token_for

pytestmark = pytest.mark.browser

MEMBER = 9501
PUBLIC = {"id": 9511, "lon": 2.3470, "lat": 48.8580}
PRIVATE = {"id": 9512, "lon": 2.3490, "lat": 48.8572}


@pytest.fixture(scope="module")
def catalog(api_db: DatabaseSettings) -> None:
    paris = territories(("commune", "75056"))
    write(
        api_db,
        users=[MEMBER],
        organisations=[organisation(9521, "Ville de Paris"), organisation(9522, "Un collectif")],
        members=[member(9522, MEMBER)],
        projects=[
            project(PUBLIC["id"], 9521, paris, location=(PUBLIC["lon"], PUBLIC["lat"])),
            project(
                PRIVATE["id"],
                9522,
                paris,
                title="Réservé au collectif",
                visibility="private",
                location=(PRIVATE["lon"], PRIVATE["lat"]),
            ),
        ],
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from chromium()


def _open(browser: Browser, url: str, token: str | None) -> tuple[Page, list[tuple[str, Any]]]:
    page = browser.new_page(viewport={"width": 1024, "height": 700}, locale="fr-FR")
    if token is not None:
        page.add_init_script(f"window.sessionStorage.setItem('geo_engine_token', '{token}')")
    requests: list[tuple[str, Any]] = []
    page.on("request", lambda r: requests.append((r.url, r.headers.get("authorization"))))
    page.goto(f"{url}/map")
    page.evaluate(
        """([lon, lat]) => new Promise((resolve) => {
            const map = window.geoEngineMap;
            map.once("idle", resolve);
            map.jumpTo({ center: [lon, lat], zoom: 15 });
        })""",
        [PUBLIC["lon"], PUBLIC["lat"]],
    )
    return page, requests


def _ids(page: Page, layer: str) -> set[int]:
    found: list[int] = page.evaluate(
        """(layer) => window.geoEngineMap.getLayer(layer)
            ? window.geoEngineMap.queryRenderedFeatures({ layers: [layer] })
                .map((f) => f.properties.id)
            : []""",
        layer,
    )
    return set(found)


def test_a_members_map_adds_their_private_tiles(
    browser: Browser, live_server: str, catalog: None
) -> None:
    token = token_for(MEMBER)["Authorization"].removeprefix("Bearer ")
    page, requests = _open(browser, live_server, token)
    assert PUBLIC["id"] in _ids(page, "projects")
    assert PRIVATE["id"] not in _ids(page, "projects")
    assert PRIVATE["id"] in _ids(page, "private-projects")
    private = [(u, a) for u, a in requests if "/v1/tiles/projects-private/" in u]
    public = [(u, a) for u, a in requests if "/v1/tiles/projects/" in u]
    assert private and public
    assert all(a == f"Bearer {token}" for _, a in private)
    assert all(a is None for _, a in public)
    page.close()


def test_an_anonymous_map_asks_for_no_private_tile(
    browser: Browser, live_server: str, catalog: None
) -> None:
    page, requests = _open(browser, live_server, None)
    assert PUBLIC["id"] in _ids(page, "projects")
    assert PRIVATE["id"] not in _ids(page, "projects")
    assert not any("/v1/tiles/projects-private/" in u for u, _ in requests)
    page.close()
