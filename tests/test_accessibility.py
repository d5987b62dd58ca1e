"""Accessibility (RGAA, built on WCAG 2.1 AA) of what residents see, in a real headless
Chromium: axe-core finds no serious or critical violation on the map page (loaded, then with
its results list and a project's popup open), on the e-mails the composer writes (an instant
alert and a daily digest), on the unsubscribe page and on the commune's poster; and the map's
search and results list work with the keyboard alone.
"""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from email.message import EmailMessage
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from api.app import create_app
from consumers.content import DigestContent, Item, MeetingInfo, Recipient
from consumers.mail import Mail, compose_alert, compose_digest, links
from geo_engine.settings import ApiSettings, DatabaseSettings
from tests.browser import axe_violations, chromium
from tests.conftest import serving
from tests.smtpsink import LINK_SECRET, free_port, mail_settings
from tests.test_map_page import PUBLIC_TITLE, catalog, settle  # noqa: F401 (a fixture)

pytestmark = pytest.mark.browser

LYON = Recipient(user_id=4242, timezone="Europe/Paris", commune_name="Lyon")
MEETING = MeetingInfo(
    meeting_id=77,
    kind="reunion_publique",
    title="Réunion sur la place",
    place="Salle des fêtes, 1 rue de la Mairie",
    starts_at=datetime(2026, 12, 1, 17, 30, tzinfo=UTC),
    ends_at=datetime(2026, 12, 1, 19, 0, tzinfo=UTC),
)
ITEMS = (
    Item(
        project_id=11,
        title="Réaménager la place <b>Bellecour</b> & ses abords",
        organisation="Ville de Lyon",
        tool="budget_participatif",
        kind="published",
        reason="Un projet dans votre commune",
        section="commune",
        closes_at=datetime(2026, 12, 20, 22, 59, tzinfo=UTC),
    ),
    Item(
        project_id=12,
        title="Plan vélo de la Métropole",
        organisation="Métropole de Lyon",
        tool="consultation",
        kind="meeting_announced",
        reason="Un projet de votre intercommunalité",
        section="epci",
        closes_at=None,
        meeting=MEETING,
    ),
    Item(
        project_id=13,
        title="Budget participatif national",
        organisation="État",
        tool="votation",
        kind="recommended",
        reason="Proche de vos centres d'intérêt",
        section="france",
        closes_at=None,
    ),
)


def _report(where: str, violations: list[dict[str, Any]]) -> str:
    """The violations as a failure message that says what to fix, and where."""
    return f"axe-core on {where}:\n" + json.dumps(violations, ensure_ascii=False, indent=1)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from chromium()


@pytest.fixture(scope="module")
def server(api_db: DatabaseSettings, api_settings: ApiSettings, catalog: None) -> Iterator[str]:  # noqa: F811
    """The API with the mail links' pages, on the map page's catalog."""
    app = create_app(api_db, api_settings, mail_settings=mail_settings(free_port()))
    with serving(app, api_settings) as url:
        yield url


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    # The engine's pages forbid inline scripts (CSP): the test lifts that to inject axe-core.
    opened = browser.new_page(
        viewport={"width": 1280, "height": 800}, locale="fr-FR", bypass_csp=True
    )
    yield opened
    opened.close()


def _heading_levels(page: Page) -> list[int]:
    levels: list[int] = page.evaluate(
        "() => [...document.querySelectorAll('h1, h2, h3, h4, h5, h6')]"
        ".map((h) => Number(h.tagName[1]))"
    )
    return levels


def _html_part(mail: Mail) -> str:
    message = email.message_from_bytes(mail.raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html = message.get_body(("html",))
    assert html is not None
    content: str = html.get_content()
    return content


# ---------------------------------------------------------------- e-mails and mail pages


def test_an_instant_alert_passes_axe(page: Page) -> None:
    settings = mail_settings(free_port())
    mail = compose_alert(LYON, ITEMS[:2], "alert:4242:11:published:0:0", settings)
    page.set_content(_html_part(mail))
    # One title, then the projects, each named by a heading: no level skipped.
    assert _heading_levels(page) == [1, 2, 3, 3]
    # Webmails drop <html lang>: the message itself says it is French.
    assert page.locator('[role="article"][lang="fr"]').count() == 1
    violations = axe_violations(page)
    assert not violations, _report("an instant alert", violations)


def test_a_daily_digest_passes_axe(page: Page) -> None:
    settings = mail_settings(free_port())
    digest = DigestContent(frequency="daily", period_start=date(2026, 12, 1), items=ITEMS)
    mail = compose_digest(LYON, digest, "digest:4242:daily:2026-12-01", settings)
    page.set_content(_html_part(mail))
    # The title, one heading per section (commune, EPCI, France), one per project.
    assert _heading_levels(page) == [1, 2, 3, 2, 3, 2, 3]
    violations = axe_violations(page)
    assert not violations, _report("a daily digest", violations)


def test_the_unsubscribe_page_passes_axe(page: Page, server: str) -> None:
    token = links.sign(links.LinkPayload("u", 4242, "digest:4242:daily:2026-12-01"), LINK_SECRET)
    page.goto(f"{server}/m/u/{token}")
    assert page.title() == "Se désinscrire des e-mails"
    violations = axe_violations(page)
    assert not violations, _report("the unsubscribe page", violations)


def test_the_poster_passes_axe(page: Page, server: str) -> None:
    page.goto(f"{server}/v1/communes/75056/affiche?week=2026-W14")
    assert PUBLIC_TITLE in page.content().replace("&lt;", "<").replace("&gt;", ">").replace(
        "&amp;", "&"
    )
    assert page.locator("header, main, footer").count() == 3  # its landmarks
    violations = axe_violations(page)
    assert not violations, _report("the commune's poster", violations)


def test_the_check_finds_what_it_must(page: Page) -> None:
    """The harness itself: a picture without text and grey-on-grey text are reported."""
    page.set_content(
        '<html lang="fr"><body><main><img src="data:,">'
        '<p style="color:#aaa;background:#bbb">Illisible</p></main></body></html>'
    )
    found = {v["id"] for v in axe_violations(page)}
    assert {"image-alt", "color-contrast"} <= found, found


# ---------------------------------------------------------------- the map page


def test_the_map_page_passes_axe(page: Page, server: str) -> None:
    page.goto(f"{server}/map")
    settle(page)
    violations = axe_violations(page)
    assert not violations, _report("the map page, loaded", violations)


def _focused(page: Page) -> dict[str, Any]:
    """What has the focus: its id, class, accessible text, and its outline as drawn."""
    found: dict[str, Any] = page.evaluate(
        """() => {
            const e = document.activeElement;
            const style = getComputedStyle(e);
            return {
                id: e.id, className: String(e.className), text: e.innerText || "",
                tag: e.tagName, inPopup: Boolean(e.closest(".maplibregl-popup")),
                outline: style.outlineStyle, outlineWidth: parseFloat(style.outlineWidth),
            };
        }"""
    )
    return found


def _assert_outlined(focused: dict[str, Any]) -> None:
    assert focused["outline"] != "none" and focused["outlineWidth"] >= 2, focused


@pytest.mark.slow  # about 30 s: the map flies to each project and draws its tiles
def test_the_map_search_and_list_with_the_keyboard_alone(page: Page, server: str) -> None:
    page.goto(f"{server}/map")
    settle(page)

    # The first Tab reaches the skip link; Enter takes it to the labelled search field.
    page.keyboard.press("Tab")
    assert _focused(page)["text"] == "Aller à la recherche « Près de chez moi »"
    page.keyboard.press("Enter")
    focused = _focused(page)
    assert focused["id"] == "place", focused
    _assert_outlined(focused)

    # A commune's name, submitted with Enter: the results are announced (a polite live region).
    page.keyboard.type("paris")
    page.keyboard.press("Enter")
    status = page.locator("#nearby-status")
    assert status.get_attribute("aria-live") == "polite"
    page.wait_for_function(
        "() => /projets? à moins de/.test(document.getElementById('nearby-status').innerText)"
    )
    assert "à moins de 5 km de Paris (75)" in status.inner_text()
    results = page.locator("#nearby-list .result")
    assert results.count() == 2
    assert PUBLIC_TITLE in results.first.inner_text()
    assert _focused(page)["id"] == "place"  # the focus stays where the person typed

    # Tab reaches the results (past the radius and the button); arrows move between them.
    for expected in ("radius", "search"):
        page.keyboard.press("Tab")
        assert _focused(page)["id"] == expected
    page.keyboard.press("Tab")
    first = _focused(page)
    assert first["tag"] == "BUTTON" and PUBLIC_TITLE in first["text"], first
    _assert_outlined(first)
    page.keyboard.press("ArrowDown")
    second = _focused(page)
    assert "Signalez les bancs manquants" in second["text"], second
    page.keyboard.press("ArrowDown")  # the last one stays
    assert _focused(page)["text"] == second["text"]
    page.keyboard.press("ArrowUp")
    assert _focused(page)["text"] == first["text"]

    # Enter opens the project's popup, a dialog that takes the focus.
    page.keyboard.press("Enter")
    popup = page.locator(".maplibregl-popup")
    popup.wait_for(state="visible", timeout=5_000)
    assert popup.get_attribute("role") == "dialog"
    assert popup.locator(".popup-title").inner_text() == PUBLIC_TITLE
    in_popup = _focused(page)
    assert in_popup["inPopup"], in_popup
    _assert_outlined(in_popup)
    settle(page)
    violations = axe_violations(page)
    assert not violations, _report("the map page with its list and a popup open", violations)

    # Escape closes it and gives the focus back to the result it came from.
    page.keyboard.press("Escape")
    popup.wait_for(state="detached", timeout=5_000)
    assert _focused(page)["text"] == first["text"]

    # Space opens the next one; its "Fermer" button, reached with Tab, closes it the same way.
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Space")
    popup.wait_for(state="visible", timeout=5_000)
    assert popup.locator(".popup-title").inner_text() == "Signalez les bancs manquants"
    page.keyboard.press("Tab")
    assert _focused(page)["text"] in ("×", "") and _focused(page)["inPopup"]
    page.keyboard.press("Enter")
    popup.wait_for(state="detached", timeout=5_000)
    assert _focused(page)["text"] == second["text"]


def test_the_map_search_says_what_went_wrong(page: Page, server: str) -> None:
    page.goto(f"{server}/map")
    place = page.get_by_label("Commune, code postal ou coordonnées")
    status = page.locator("#nearby-status")
    for typed, said in (
        ("Zzyzxville", "Aucune commune ne correspond à « Zzyzxville »"),
        ("95,1 2,3", "Coordonnées invalides"),
        ("!!!", "Saisissez le nom d’une commune, un code postal ou des coordonnées."),
    ):
        place.focus()
        page.keyboard.press("Control+A")
        page.keyboard.type(typed)
        page.keyboard.press("Enter")
        page.wait_for_function(
            "(said) => document.getElementById('nearby-status').innerText.includes(said)", arg=said
        )
        assert "status-error" in (status.get_attribute("class") or "")
    # A postal code finds its commune.
    place.focus()
    page.keyboard.press("Control+A")
    page.keyboard.type("75004")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.getElementById('nearby-status').innerText.includes('de Paris (75)')"
    )
