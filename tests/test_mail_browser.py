"""The unsubscribe page in a real headless Chromium (Debian's ``/usr/bin/chromium`` through
Playwright), served by uvicorn: opening it changes nothing; its button unsubscribes at once
and shows the French confirmation. Leaves ``test-artifacts/unsubscribe.png``."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from playwright.sync_api import Browser

from api.app import create_app
from consumers.mail import links
from geo_engine.settings import ApiSettings, DatabaseSettings
from tests.browser import ARTIFACTS, chromium
from tests.conftest import serving
from tests.smtpsink import LINK_SECRET, free_port, mail_settings

pytestmark = pytest.mark.browser

USER = 6001


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from chromium()


@pytest.fixture(scope="module")
def mail_server(api_db: DatabaseSettings, api_settings: ApiSettings) -> Iterator[str]:
    settings = mail_settings(free_port())
    with serving(create_app(api_db, api_settings, mail_settings=settings), api_settings) as url:
        yield url


def _email_setting(conn: psycopg.Connection) -> object:
    row = conn.execute(
        "SELECT notifications->'email' FROM app_user WHERE id = %s", (USER,)
    ).fetchone()
    assert row is not None
    return row[0]


def test_the_unsubscribe_button(
    browser: Browser, mail_server: str, api_db: DatabaseSettings
) -> None:
    with psycopg.connect(api_db.database_url, autocommit=True) as conn:
        conn.execute(
            'INSERT INTO app_user (id, notifications) VALUES (%s, \'{"frequency": "weekly"}\')',
            (USER,),
        )
        token = links.sign(
            links.LinkPayload("u", USER, "digest:6001:weekly:2026-11-30"), LINK_SECRET
        )
        page = browser.new_page(locale="fr-FR")
        try:
            page.goto(f"{mail_server}/m/u/{token}")
            assert page.title() == "Se désinscrire des e-mails"
            assert _email_setting(conn) is None  # opening the page changed nothing

            page.get_by_role("button", name="Me désinscrire").click()
            page.wait_for_selector("text=Vous êtes désinscrit(e)")
            assert page.url == f"{mail_server}/m/u/{token}"
            assert _email_setting(conn) is False  # at once
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "unsubscribe.png"))
        finally:
            page.close()
        events = conn.execute(
            "SELECT type FROM outbox WHERE payload->>'user_id' = %s ORDER BY type",
            (str(USER),),
        ).fetchall()
        assert events == [("notification.unsubscribed",), ("user.preferences_changed",)]
