"""The map page, ``GET /map``: served by the engine with MapLibre GL JS, and driven in a real
headless Chromium (Debian's ``/usr/bin/chromium``, through Playwright) against the live API.

The browser test proves that the page asks nothing of any other server, draws the engine's own
tiles (a private project stays off an anonymous map), opens a project's popup in French and
lists the nearest projects. It leaves a screenshot in ``test-artifacts/map.png``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, Request

from api import map_page
from contracts.catalog import ContributionRecord, OrganisationRecord, ProjectRecord
from geo_engine import db
from geo_engine.catalog.load import store_contributions, store_organisations, store_projects
from geo_engine.jsonl import Line
from geo_engine.settings import DatabaseSettings
from tests.browser import ARTIFACTS, chromium

pytestmark = pytest.mark.browser

# A title with markup in it: the page must show it as text, never as HTML.
PUBLIC_TITLE = "Réaménager la place <b>du Châtelet</b> & ses abords"
PUBLIC = {"id": 9101, "lon": 2.3470, "lat": 48.8580}
PRIVATE = {"id": 9102, "lon": 2.3490, "lat": 48.8572}
MAP_PROJECT = {"id": 9103, "lon": 2.3522, "lat": 48.8566}
CONTRIBUTION = {"id": 9201, "lon": 2.3540, "lat": 48.8560}


@pytest.fixture(scope="module")
def catalog(api_db: DatabaseSettings) -> None:
    """Two organisations, three projects near Châtelet (one private) and a contribution on the
    participatory map, committed."""
    organisations = [
        OrganisationRecord.model_validate(
            {
                "id": 9001,
                "kind": "commune",
                "name": "Ville de Paris",
                "territory": {"level": "commune", "code": "75056"},
            }
        ),
        OrganisationRecord.model_validate(
            {"id": 9002, "kind": "association", "name": "Les Amis du Marais"}
        ),
    ]
    paris = {"kind": "territories", "territories": [{"level": "commune", "code": "75056"}]}
    projects = [
        ProjectRecord.model_validate(
            {
                "id": PUBLIC["id"],
                "organisation_id": 9001,
                "space": "territoires",
                "tool": "budget_participatif",
                "title": PUBLIC_TITLE,
                "opens_at": datetime.fromisoformat("2026-03-01T09:00:00+01:00"),
                "closes_at": datetime.fromisoformat("2026-04-30T18:00:00+02:00"),
                "scope": paris,
                "location": {"lon": PUBLIC["lon"], "lat": PUBLIC["lat"]},
            }
        ),
        ProjectRecord.model_validate(
            {
                "id": PRIVATE["id"],
                "organisation_id": 9002,
                "space": "idees",
                "tool": "consultation",
                "title": "Consultation réservée aux membres",
                "visibility": "private",
                "scope": paris,
                "location": {"lon": PRIVATE["lon"], "lat": PRIVATE["lat"]},
            }
        ),
        ProjectRecord.model_validate(
            {
                "id": MAP_PROJECT["id"],
                "organisation_id": 9001,
                "space": "territoires",
                "tool": "carte_participative",
                "title": "Signalez les bancs manquants",
                "status": "upcoming",
                "scope": paris,
                "location": {"lon": MAP_PROJECT["lon"], "lat": MAP_PROJECT["lat"]},
            }
        ),
    ]
    contribution = ContributionRecord.model_validate(
        {
            "id": CONTRIBUTION["id"],
            "project_id": MAP_PROJECT["id"],
            "category": "Mobilier urbain",
            "title": "Un banc ici",
            "location": {"lon": CONTRIBUTION["lon"], "lat": CONTRIBUTION["lat"]},
        }
    )
    with db.connect(api_db) as conn:
        store_organisations(conn, [Line(n, r) for n, r in enumerate(organisations, 1)])
        store_projects(conn, [Line(n, r) for n, r in enumerate(projects, 1)])
        store_contributions(conn, [Line(1, contribution)])
        conn.commit()


# ---------------------------------------------------------------- the page as HTTP


def test_map_page_is_french_html_with_its_assets(client: TestClient) -> None:
    answer = client.get("/map")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in answer.headers["content-security-policy"]
    html = answer.text
    assert '<html lang="fr">' in html
    assert "Près de chez moi" in html
    assert '"budget_participatif": "Budget participatif"' in html  # labels from contracts
    assets = re.findall(r'(?:href|src)="(/map/static/[^"]+)"', html)
    assert {urlsplit(a).path.rsplit("/", 1)[1] for a in assets} == {
        "maplibre-gl.js",
        "maplibre-gl.css",
        "map.js",
        "map.css",
    }
    for asset in assets:
        got = client.get(asset)
        assert got.status_code == 200, asset
        assert got.content


def test_map_page_stays_out_of_the_api_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/map")]


def test_unknown_asset_is_a_404_problem(client: TestClient) -> None:
    answer = client.get("/map/static/..%2F..%2Fapp.py")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert client.get("/map/static/map.html").status_code == 404


def test_without_maplibre_the_page_says_to_run_make_install(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "maplibre-gl" / "dist"
    monkeypatch.setattr(map_page, "MAPLIBRE_DIST", missing)
    monkeypatch.setitem(
        map_page.ASSETS, "maplibre-gl.js", (missing, "maplibre-gl.js", "text/javascript")
    )
    for path in ("/map", "/map/static/maplibre-gl.js"):
        answer = client.get(path)
        assert answer.status_code == 503
        assert answer.headers["content-type"] == "application/problem+json"
        assert "make install" in answer.json()["detail"]


# ---------------------------------------------------------------- the page in a browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from chromium()


class Traffic:
    """Every request the page makes, and every one that failed or was refused."""

    def __init__(self, page: Page) -> None:
        self.urls: list[str] = []
        self.failures: list[str] = []
        self.console_errors: list[str] = []
        page.on("request", lambda r: self.urls.append(r.url))
        self.cancelled: list[str] = []
        page.on("requestfailed", self._failed)
        page.on(
            "response",
            lambda r: (
                self.failures.append(f"{r.url}: HTTP {r.status}") if r.status >= 400 else None
            ),
        )
        page.on(
            "console",
            lambda m: self.console_errors.append(m.text) if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: self.console_errors.append(str(e)))

    def _failed(self, request: Request) -> None:
        # MapLibre cancels the tiles a moving map no longer needs: not a failure.
        if request.failure == "net::ERR_ABORTED" and "/v1/tiles/" in request.url:
            self.cancelled.append(request.url)
        else:
            self.failures.append(f"{request.url}: {request.failure}")


def _origin(url: str) -> str:
    # MapLibre starts its workers from blob:http://host:port/uuid, which belongs to that origin.
    parts = urlsplit(url.removeprefix("blob:"))
    return f"{parts.scheme}://{parts.netloc}"


def _jump(page: Page, lon: float, lat: float, zoom: float) -> None:
    """Move the map and wait until every tile is loaded and drawn."""
    page.evaluate(
        """([lon, lat, zoom]) => new Promise((resolve) => {
            const map = window.geoEngineMap;
            map.once("idle", resolve);
            map.jumpTo({ center: [lon, lat], zoom: zoom });
        })""",
        [lon, lat, zoom],
    )


def settle(page: Page) -> None:
    """Wait until the map has stopped moving and drawn every tile it asked for."""
    page.evaluate(
        """() => new Promise((resolve) => {
            const map = window.geoEngineMap;
            if (map.loaded() && !map.isMoving()) resolve(); else map.once("idle", resolve);
        })"""
    )


def _rendered(page: Page, layer: str) -> list[dict[str, Any]]:
    features: list[dict[str, Any]] = page.evaluate(
        """(layer) => window.geoEngineMap
            .queryRenderedFeatures({ layers: [layer] })
            .map((f) => f.properties)""",
        layer,
    )
    return features


def test_the_map_in_a_browser(browser: Browser, live_server: str, catalog: None) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="fr-FR")
    traffic = Traffic(page)

    page.goto(f"{live_server}/map")
    assert page.evaluate("() => typeof window.geoEngineMap") == "object", traffic.console_errors
    settle(page)
    # Mainland France at first, with its départements and the Paris projects as a cluster.
    center = page.evaluate("() => window.geoEngineMap.getCenter().toArray()")
    assert -5 < center[0] < 10 and 41 < center[1] < 51.5
    assert len(_rendered(page, "departements-fill")) >= 90
    assert sum(c["count"] for c in _rendered(page, "project-clusters")) == 2

    # Close up: the public projects are drawn, the private one is not.
    _jump(page, PUBLIC["lon"], PUBLIC["lat"], 14)
    ids = {f["id"] for f in _rendered(page, "projects")}
    assert ids == {PUBLIC["id"], MAP_PROJECT["id"]}
    assert PRIVATE["id"] not in ids
    assert _rendered(page, "communes-fill"), "the commune under the view is drawn"
    assert [c["id"] for c in _rendered(page, "contributions")] == [CONTRIBUTION["id"]]

    # A click on the marker opens its popup, in French, with the title as text.
    box = page.locator("#map").bounding_box()
    assert box is not None
    x, y = page.evaluate(
        "([lon, lat]) => { const p = window.geoEngineMap.project([lon, lat]); return [p.x, p.y]; }",
        [PUBLIC["lon"], PUBLIC["lat"]],
    )
    page.mouse.click(box["x"] + x, box["y"] + y)
    popup = page.locator(".maplibregl-popup")
    popup.wait_for(state="visible", timeout=5_000)
    assert popup.locator(".popup-title").inner_text() == PUBLIC_TITLE
    assert popup.locator("b").count() == 0
    assert popup.locator(".popup-tool").inner_text() == "Budget participatif"
    assert popup.locator(".popup-organisation").inner_text() == "Ville de Paris"
    assert popup.locator(".popup-dates").inner_text() == "Du 01/03/2026 au 30/04/2026"

    # "Près de chez moi": coordinates typed the French way, nearest first, with a distance.
    page.get_by_label("Commune, code postal ou coordonnées").fill("48,8575 2,3475")
    page.get_by_role("button", name="Chercher").click()
    results = page.locator("#nearby-list li")
    results.first.wait_for(state="visible", timeout=10_000)
    assert results.count() == 2
    first = results.first.inner_text()
    assert PUBLIC_TITLE in first
    assert "Budget participatif · Ville de Paris" in first
    assert re.search(r"\b\d{1,3} m\b", first), first
    assert results.first.get_attribute("data-project-id") == str(PUBLIC["id"])
    assert "Carte participative" in results.nth(1).inner_text()
    assert "réservée aux membres" not in page.locator("#nearby-list").inner_text()
    assert "2 projets à moins de 5 km" in page.locator("#nearby-status").inner_text()
    settle(page)

    # A view with commune outlines, markers, the popup and the list, for a human to look at.
    _jump(page, 2.345, 48.857, 11.6)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "map.png"))

    assert traffic.urls
    assert not traffic.failures
    assert {_origin(u) for u in traffic.urls} == {live_server}
    assert any("/v1/tiles/communes/" in u for u in traffic.urls)
    assert any("/v1/tiles/projects/" in u for u in traffic.urls)
    assert any("/v1/projects/nearby?" in u for u in traffic.urls)
    assert not traffic.console_errors
    page.close()
