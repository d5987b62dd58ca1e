"""The map page's meetings layer, in a real headless Chromium against the live API: a public
meeting is drawn and its popup says what, when (French, Paris time), where, with its ``.ics``
link; a private project's meeting is not drawn."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from geo_engine import db
from geo_engine.settings import DatabaseSettings
from tests.api_data import organisation, project, territories, write
from tests.test_map_page import Traffic, _jump, browser

pytestmark = [pytest.mark.browser, pytest.mark.geodata]

__all__ = ["browser"]  # the module-scoped Chromium of test_map_page, shared

ORG, PUBLIC, PRIVATE = 9501, 9601, 9602
SHOWN, HIDDEN = 9701, 9702
POINT = (2.3470, 48.8580)


@pytest.fixture(scope="module")
def meetings(api_db: DatabaseSettings) -> Iterator[None]:
    paris = territories(("commune", "75056"))
    write(
        api_db,
        organisations=[organisation(ORG, "Ville de Paris")],
        projects=[
            project(PUBLIC, ORG, paris, title="Les berges en fête"),
            project(PRIVATE, ORG, paris, title="Projet interne", visibility="private"),
        ],
    )
    with db.connect(api_db) as conn:
        conn.execute(
            """INSERT INTO meeting (id, project_id, kind, title, place, location, starts_at,
                                   ends_at)
               VALUES (%(shown)s, %(public)s, 'balade_urbaine', 'Balade <i>des berges</i>',
                       'Quai de la Mégisserie', ST_Point(%(lon)s, %(lat)s, 4326),
                       '2030-03-07 18:30+01', '2030-03-07 20:00+01'),
                      (%(hidden)s, %(private)s, 'atelier', 'Atelier interne', 'Mairie',
                       ST_Point(%(lon)s + 0.001, %(lat)s, 4326),
                       '2030-03-07 18:30+01', '2030-03-07 20:00+01')""",
            {
                "shown": SHOWN,
                "hidden": HIDDEN,
                "public": PUBLIC,
                "private": PRIVATE,
                "lon": POINT[0],
                "lat": POINT[1],
            },
        )
        conn.commit()
    yield


def test_meetings_layer(browser: Browser, live_server: str, meetings: None) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="fr-FR")
    traffic = Traffic(page)
    page.goto(f"{live_server}/map")
    assert page.evaluate("() => typeof window.geoEngineMap") == "object", traffic.console_errors
    _jump(page, POINT[0], POINT[1], 15)
    page.wait_for_function(
        """() => window.geoEngineMap.queryRenderedFeatures({ layers: ["meetings"] }).length > 0""",
        timeout=15_000,
    )
    drawn = page.evaluate(
        """() => window.geoEngineMap.queryRenderedFeatures({ layers: ["meetings"] })
            .map((f) => f.properties.id)"""
    )
    assert set(drawn) == {SHOWN}
    x, y = page.evaluate(
        "([lon, lat]) => { const p = window.geoEngineMap.project([lon, lat]); return [p.x, p.y]; }",
        list(POINT),
    )
    box = page.locator("#map").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + x, box["y"] + y)
    popup = page.locator(".maplibregl-popup")
    popup.wait_for(state="visible", timeout=5_000)
    assert popup.locator(".popup-title").inner_text() == "Balade <i>des berges</i>"
    assert popup.locator("i").count() == 0
    assert popup.locator(".popup-when").inner_text() == "jeudi 7 mars 2030, 18:30 – 20:00"
    assert popup.locator(".popup-place").inner_text() == "Quai de la Mégisserie"
    assert "Balade urbaine" in popup.inner_text()
    link = popup.locator("a.popup-ics")
    assert link.get_attribute("href") == f"{live_server}/v1/meetings/{SHOWN}.ics"
    assert "Projet interne" not in page.content()
    assert any("/v1/meetings?" in u for u in traffic.urls)
    assert not traffic.failures and not traffic.console_errors
    page.close()
