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
from tests.test_map_page import PUBLIC, PUBLIC_TITLE, catalog, settle  # noqa: F401 (a fixture)

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
    violations = axe_violations(page)
    assert not violations, _report("an instant alert", violations)


def test_a_daily_digest_passes_axe(page: Page) -> None:
    settings = mail_settings(free_port())
    digest = DigestContent(frequency="daily", period_start=date(2026, 12, 1), items=ITEMS)
    mail = compose_digest(LYON, digest, "digest:4242:daily:2026-12-01", settings)
    page.set_content(_html_part(mail))
    assert page.locator("h2").count() == 3  # one heading per section
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
