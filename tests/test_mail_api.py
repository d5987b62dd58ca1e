"""The mail links over HTTP (api/routes/mail_links.py) against the real database: a person's
click is recorded and redirected, a scanner's fetch is not counted, the open pixel counts
once, the unsubscribe page changes nothing until its button (or RFC 8058's POST) is used, and
every bad token gets the same 404 page."""

from __future__ import annotations

import html
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from api.app import create_app
from consumers.mail import links, message_id
from consumers.settings import MailSettings
from contracts.events import Event
from geo_engine.outbox import read_events
from geo_engine.settings import ApiSettings, DatabaseSettings
from tests.smtpsink import LINK_SECRET, PUBLIC_URL, free_port, mail_settings

PERSON = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}
SCANNER = {"User-Agent": "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))"}


@pytest.fixture(scope="module")
def settings() -> MailSettings:
    return mail_settings(free_port()).model_copy(update={"scanner_burst_s": 0.5})


@pytest.fixture(scope="module")
def web(
    api_db: DatabaseSettings, api_settings: ApiSettings, settings: MailSettings
) -> Iterator[TestClient]:
    app = create_app(api_db, api_settings, mail_settings=settings)
    with TestClient(app, follow_redirects=False) as client:
        yield client


@pytest.fixture
def db(api_db: DatabaseSettings) -> Iterator[psycopg.Connection]:
    with psycopg.connect(api_db.database_url, autocommit=True) as conn:
        yield conn


def _user(db: psycopg.Connection, user_id: int, notifications: str = "{}") -> None:
    db.execute(
        "INSERT INTO app_user (id, notifications) VALUES (%s, %s::jsonb)", (user_id, notifications)
    )


def _mail(
    db: psycopg.Connection, key: str, user_id: int, settings: MailSettings, sent_s_ago: float
) -> None:
    db.execute(
        "INSERT INTO mail_delivery (key, user_id, kind, message_id, sent_at)"
        " VALUES (%s, %s, 'digest', %s, now() - make_interval(secs => %s))",
        (key, user_id, message_id(key, settings), sent_s_ago),
    )


def _events(db: psycopg.Connection, user_id: int) -> list[Event]:
    return [e for e in read_events(db) if getattr(e, "user_id", None) == user_id]


def _token(kind: links.LinkKind, user_id: int, key: str, project_id: int | None = None) -> str:
    return links.sign(links.LinkPayload(kind, user_id, key, project_id), LINK_SECRET)


def _fields(event: Event) -> dict[str, Any]:
    return event.model_dump(exclude={"event_id", "occurred_at", "version"})


def test_a_persons_click_is_recorded_and_redirected(
    web: TestClient, db: psycopg.Connection, settings: MailSettings
) -> None:
    key = "digest:5001:daily:2026-11-30"
    _user(db, 5001)
    _mail(db, key, 5001, settings, sent_s_ago=3600)
    answer = web.get(f"/m/c/{_token('c', 5001, key, 77)}", headers=PERSON)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{PUBLIC_URL}/map?projet=77"
    assert answer.headers["cache-control"] == "no-store"
    [clicked] = _events(db, 5001)
    assert _fields(clicked) == {
        "type": "notification.clicked",
        "user_id": 5001,
        "project_id": 77,
        "notification": key,
    }
    # The same person clicking the same link again later: another click.
    web.get(f"/m/c/{_token('c', 5001, key, 77)}", headers=PERSON)
    assert [e.type for e in _events(db, 5001)] == ["notification.clicked"] * 2


def test_a_scanners_fetches_are_not_clicks(
    web: TestClient, db: psycopg.Connection, settings: MailSettings
) -> None:
    key = "digest:5002:daily:2026-11-30"
    _user(db, 5002)
    _mail(db, key, 5002, settings, sent_s_ago=3600)
    token = _token("c", 5002, key, 78)
    for method, headers in (("GET", SCANNER), ("HEAD", PERSON), ("GET", {"User-Agent": ""})):
        answer = web.request(method, f"/m/c/{token}", headers=headers)
        assert answer.status_code == 303, method
        assert answer.headers["location"] == f"{PUBLIC_URL}/map?projet=78"
    assert _events(db, 5002) == []

    # Just delivered: a fetch within seconds of the sending is a scanner's, whatever it claims.
    fresh = "alert:5002:79:published:0:0"
    _mail(db, fresh, 5002, settings, sent_s_ago=0.5)
    web.get(f"/m/c/{_token('c', 5002, fresh, 79)}", headers=PERSON)
    assert _events(db, 5002) == []


def test_a_burst_of_a_mails_links_counts_once(
    web: TestClient, db: psycopg.Connection, settings: MailSettings
) -> None:
    key = "digest:5003:weekly:2026-11-30"
    _user(db, 5003)
    _mail(db, key, 5003, settings, sent_s_ago=3600)
    for project in (81, 82, 83):  # a scanner following every link at once, as a browser
        web.get(f"/m/c/{_token('c', 5003, key, project)}", headers=PERSON)
    assert [e.project_id for e in _events(db, 5003)] == [81]  # type: ignore[attr-defined]
    time.sleep(settings.scanner_burst_s + 0.2)
    web.get(f"/m/c/{_token('c', 5003, key, 82)}", headers=PERSON)  # a person, later
    assert [e.project_id for e in _events(db, 5003)] == [81, 82]  # type: ignore[attr-defined]


def test_a_mail_the_engine_no_longer_knows_records_nothing(
    web: TestClient, db: psycopg.Connection
) -> None:
    key = "digest:5004:daily:2026-11-30"  # no mail_delivery row: its user was erased
    answer = web.get(f"/m/c/{_token('c', 5004, key, 84)}", headers=PERSON)
    assert answer.status_code == 303
    assert web.get(f"/m/o/{_token('o', 5004, key)}.gif").status_code == 200
    assert _events(db, 5004) == []


def test_every_bad_token_gets_the_same_page(web: TestClient) -> None:
    key = "digest:5005:daily:2026-11-30"
    good = _token("c", 5005, key, 85)
    version, body, mac = good.split(".")
    foreign = links.sign(links.LinkPayload("c", 5005, key, 85), "another secret entirely!!")
    bad_tokens = [
        f"{version}.{body}.{mac[:-3]}AAA",  # tampered MAC
        foreign,  # signed with another secret
        f"v9.{body}.{mac}",
        "nimportequoi",
        "x" * 500,
    ]
    # Each route also refuses a good token of another kind.
    other_kind = {"c": _token("u", 5005, key), "o": good, "u": _token("o", 5005, key)}
    answers = []
    for method, route, suffix in (
        ("GET", "c", ""),
        ("GET", "o", ".gif"),
        ("GET", "u", ""),
        ("POST", "u", ""),
    ):
        for token in [*bad_tokens, other_kind[route]]:
            answer = web.request(method, f"/m/{route}/{token}{suffix}", headers=PERSON)
            answers.append((answer.status_code, answer.headers["content-type"], answer.text))
    statuses = {a[0] for a in answers}
    assert statuses == {404}
    assert {a[1] for a in answers} == {"text/html; charset=utf-8"}
    assert len({a[2] for a in answers}) == 1
    assert "Ce lien n'est pas valide" in html.unescape(answers[0][2])


def test_no_open_redirect(web: TestClient, db: psycopg.Connection) -> None:
    token = _token("c", 5006, "digest:5006:daily:2026-11-30", 86)
    for path in (
        f"/m/c/{token}?next=https://evil.example/",
        f"/m/c/{token}?url=//evil.example",
    ):
        answer = web.get(path, headers={**PERSON, "Referer": "https://evil.example/"})
        assert answer.headers["location"] == f"{PUBLIC_URL}/map?projet=86"
    for path in ("/m/c/https:%2F%2Fevil.example", "/m/c///evil.example", "/m/c/%2F%2Fevil"):
        answer = web.get(path, headers=PERSON)
        assert answer.status_code == 404
        assert "location" not in answer.headers


def test_the_open_pixel_counts_once_per_mail(
    web: TestClient, db: psycopg.Connection, settings: MailSettings
) -> None:
    key = "digest:5007:daily:2026-11-30"
    _user(db, 5007)
    _mail(db, key, 5007, settings, sent_s_ago=60)
    path = f"/m/o/{_token('o', 5007, key)}.gif"
    for _ in range(3):
        answer = web.get(path, headers=PERSON)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "image/gif"
        assert answer.content[:6] == b"GIF89a"
        assert answer.content[6:10] == b"\x01\x00\x01\x00"  # 1 × 1 pixel, little-endian
    [opened] = _events(db, 5007)
    assert _fields(opened) == {"type": "notification.opened", "user_id": 5007, "notification": key}


def _notifications(db: psycopg.Connection, user_id: int) -> tuple[Any, Any]:
    row = db.execute(
        "SELECT notifications, updated_at FROM app_user WHERE id = %s", (user_id,)
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_fetching_the_unsubscribe_page_changes_nothing(
    web: TestClient, db: psycopg.Connection
) -> None:
    _user(db, 5008, '{"frequency": "daily"}')
    before = _notifications(db, 5008)
    token = _token("u", 5008, "digest:5008:daily:2026-11-30")
    for method, headers in (("GET", PERSON), ("GET", SCANNER), ("HEAD", PERSON)):
        answer = web.request(method, f"/m/u/{token}", headers=headers)
        assert answer.status_code == 200
    page = web.get(f"/m/u/{token}", headers=PERSON).text
    assert "Se désinscrire des e-mails" in page
    assert f'<form method="post" action="/m/u/{token}">' in page
    assert "Me désinscrire</button>" in page
    assert _notifications(db, 5008) == before
    assert _events(db, 5008) == []


def test_the_one_click_post_unsubscribes_at_once_and_twice_is_harmless(
    web: TestClient, db: psycopg.Connection
) -> None:
    _user(db, 5009, '{"frequency": "daily", "email": true, "digest_weekday": "friday"}')
    key = "digest:5009:daily:2026-11-30"
    token = _token("u", 5009, key)
    one_click = {"Content-Type": "application/x-www-form-urlencoded"}
    answer = web.post(f"/m/u/{token}", content="List-Unsubscribe=One-Click", headers=one_click)
    assert answer.status_code == 200
    assert "Vous êtes désinscrit(e)" in answer.text
    notifications, _ = _notifications(db, 5009)
    assert notifications == {"frequency": "daily", "email": False, "digest_weekday": "friday"}
    assert [_fields(e) for e in _events(db, 5009)] == [
        {"type": "notification.unsubscribed", "user_id": 5009, "notification": key},
        {"type": "user.preferences_changed", "user_id": 5009},
    ]
    again = web.post(f"/m/u/{token}", content="List-Unsubscribe=One-Click", headers=one_click)
    assert again.status_code == 200 and again.text == answer.text
    assert len(_events(db, 5009)) == 2
    assert _notifications(db, 5009)[0]["email"] is False


def test_with_the_database_down_a_click_still_lands_and_nothing_pretends(
    web: TestClient,
) -> None:
    key = "digest:5010:daily:2026-11-30"
    app: Any = web.app
    working = app.state.write_pool
    dead = ConnectionPool(
        "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1",
        min_size=1,
        timeout=0.5,
        open=False,
    )
    dead.open(wait=False)
    app.state.write_pool = dead
    try:
        click = web.get(f"/m/c/{_token('c', 5010, key, 90)}", headers=PERSON)
        assert click.status_code == 303
        assert click.headers["location"] == f"{PUBLIC_URL}/map?projet=90"
        pixel = web.get(f"/m/o/{_token('o', 5010, key)}.gif", headers=PERSON)
        assert pixel.status_code == 200 and pixel.headers["content-type"] == "image/gif"
        refused = web.post(f"/m/u/{_token('u', 5010, key)}", headers=PERSON)
        assert refused.status_code == 503
        assert "rien n'a été changé" in html.unescape(refused.text)
    finally:
        app.state.write_pool = working
        dead.close(timeout=1)
