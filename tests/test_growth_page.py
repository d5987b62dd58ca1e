"""The growth dashboard, ``GET /growth``: its staff session (form, cookie, 401/403), its files,
the EPCI tiles of its choropleth, and the page in a real headless Chromium against the live API
on seeded exposures, mails and engagement.

Choices the tests pin: an anonymous ``/growth`` is redirected (303) to the session form, while a
wrong ``Authorization`` header is 401 and a non-staff token 403; the page's static files (its JS
and CSS, Chart.js, MapLibre) hold no data and are public. The browser test leaves a screenshot
in ``test-artifacts/growth.png``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page

from api.auth import make_token
from contracts.experiments import ExperimentSpec
from geo_engine import db, experiments
from geo_engine.settings import DatabaseSettings
from tests.browser import ARTIFACTS, axe_violations, chromium
from tests.conftest import TEST_SECRET, token_for

STAFF = 990001
MEMBER = 990002
FIRST_USER = 700_001
USERS = 240
DAYS = 10
# Reims: its Communauté urbaine du Grand Reims is an XXL EPCI of about 140 communes.
REIMS = "51454"
EXPERIMENT = "objet-question"
NOT_FOUND_LOG = "Failed to load resource: the server responded with a status of 404 (Not Found)"


@pytest.fixture(scope="module")
def seeded(api_db: DatabaseSettings) -> dict[str, Any]:
    """240 users in six communes of the Grand Reims, a running digest experiment (control and
    question), a daily digest over ten days to each, opens, clicks and participations (the
    question variant engages more), committed. Returns the EPCI's SIREN and the communes."""
    with db.connect(api_db) as conn:
        siren, communes = conn.execute(
            """SELECT c.epci_siren, array_agg(m.code ORDER BY m.population DESC)
               FROM commune AS c
               JOIN LATERAL (SELECT code, population FROM commune
                             WHERE epci_siren = c.epci_siren
                             ORDER BY population DESC LIMIT 6) AS m ON true
               WHERE c.code = %s GROUP BY c.epci_siren""",
            (REIMS,),
        ).fetchone()
        users = list(range(FIRST_USER, FIRST_USER + USERS))
        conn.execute(
            """INSERT INTO app_user (id, created_at)
               SELECT u, now() - interval '12 days' FROM unnest(%(users)s::bigint[]) AS u""",
            {"users": users},
        )
        conn.execute(
            """INSERT INTO user_place (user_id, commune_code)
               SELECT u, (%(communes)s::text[])[1 + u %% cardinality(%(communes)s::text[])]
               FROM unnest(%(users)s::bigint[]) AS u""",
            {"users": users, "communes": communes},
        )
        spec = ExperimentSpec.model_validate(
            {
                "name": EXPERIMENT,
                "surface": "digest",
                "variants": [
                    {"name": "control", "share": 0.5},
                    {"name": "question", "share": 0.5, "overrides": {"template": "question"}},
                ],
            }
        )
        experiments.create(conn, spec)
        started = datetime.now(UTC) - timedelta(days=DAYS + 1)
        experiment = experiments.transition(conn, EXPERIMENT, "start", started)
        # The assignment's rule, as experiments.assignments applies it in SQL.
        assigned = {
            u: experiments.Assignment(experiment.id, variant, str(u))
            for u in users
            if (variant := experiment.variant_of(str(u))) is not None
        }
        assert len(assigned) == USERS
        mails = conn.execute(
            """SELECT u, 'digest:' || u || ':daily:' || to_char(now() - d * interval '1 day',
                                                                'YYYY-MM-DD')
               FROM unnest(%(users)s::bigint[]) AS u, generate_series(1, %(days)s) AS d""",
            {"users": users, "days": DAYS},
        ).fetchall()
        experiments.log_exposures(conn, [(u, assigned[u], key) for u, key in mails], started)
        # One digest a day to each; opens, clicks and participations as a pure function of the
        # user and the day, more often for the question variant.
        conn.execute(
            """
            WITH mail AS (
                SELECT u, d, e.variant,
                       'digest:' || u || ':daily:' ||
                           to_char(now() - d * interval '1 day', 'YYYY-MM-DD') AS key,
                       now() - d * interval '1 day' AS sent_at,
                       (u + d) %% 2 = 0 AS opened,
                       (u + d) %% (CASE e.variant WHEN 'question' THEN 3 ELSE 7 END) = 0
                           AS clicked,
                       (u + d) %% (CASE e.variant WHEN 'question' THEN 6 ELSE 14 END) = 0
                           AS participated
                FROM unnest(%(users)s::bigint[]) AS u
                CROSS JOIN generate_series(1, %(days)s) AS d
                JOIN (SELECT DISTINCT user_id, variant FROM experiment_exposure) AS e
                  ON e.user_id = u
            ), delivered AS (
                INSERT INTO mail_delivery (key, user_id, kind, message_id, claimed_at, sent_at,
                                           attempts, opened_at)
                SELECT key, u, 'digest', '<' || key || '@geo-engine>', sent_at, sent_at, 1,
                       CASE WHEN opened OR clicked THEN sent_at + interval '1 hour' END
                FROM mail
            )
            INSERT INTO engagement_event (event_id, user_id, kind, project_id, notification,
                                          occurred_at)
            SELECT gen_random_uuid(), u, kind, 9301, key, sent_at + after
            FROM mail, LATERAL (VALUES ('opened', opened OR clicked, interval '1 hour'),
                                       ('clicked', clicked, interval '2 hours'),
                                       ('participated', clicked AND participated,
                                        interval '1 day')) AS k(kind, happened, after)
            WHERE happened
            """,
            {"users": users, "days": DAYS},
        )
        conn.commit()
    return {"siren": siren, "communes": communes}


# ---------------------------------------------------------------- the session, over HTTP


def test_anonymous_growth_goes_to_the_session_form(client: TestClient) -> None:
    answer = client.get("/growth", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/staff/session"
    form = client.get("/staff/session")
    assert form.status_code == 200
    assert '<html lang="fr">' in form.text
    assert "Jeton d’équipe" in form.text
    assert 'name="token"' in form.text


def test_a_wrong_header_is_401_and_a_member_is_403(client: TestClient) -> None:
    wrong = client.get("/growth", headers={"Authorization": "Bearer nonsense"})
    assert wrong.status_code == 401
    assert wrong.headers["content-type"] == "application/problem+json"
    member = client.get("/growth", headers=token_for(MEMBER))
    assert member.status_code == 403
    assert "staff" in member.json()["detail"]
    client.cookies.set("geo_engine_staff", make_token(MEMBER, TEST_SECRET))
    try:
        assert client.get("/growth", follow_redirects=False).status_code == 403
    finally:
        client.cookies.clear()


def test_staff_header_gets_the_page_and_its_files(client: TestClient) -> None:
    answer = client.get("/growth", headers=token_for(STAFF, staff=True))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in answer.headers["content-security-policy"]
    assert answer.headers["cache-control"] == "no-store"
    # The browser then names the page as the Origin of its logout form (not "null").
    assert answer.headers["referrer-policy"] == "same-origin"
    html = answer.text
    assert '<html lang="fr">' in html
    assert "Entonnoir" in html
    assets = [p for p in html.split('"') if p.startswith("/growth/static/")]
    assert {urlsplit(a).path.rsplit("/", 1)[1] for a in assets} == {
        "growth.js",
        "growth.css",
        "chart.umd.min.js",
        "maplibre-gl.js",
        "maplibre-gl.css",
    }
    staff = token_for(STAFF, staff=True)
    for asset in assets:
        got = client.get(asset, headers=staff)
        assert got.status_code == 200, asset
        assert got.headers["cache-control"].startswith("private"), asset  # no shared cache
        assert got.content
        assert client.get(asset, headers=token_for(MEMBER)).status_code == 403, asset
        assert client.get(asset).status_code == 401, asset
    assert client.get("/growth/static/growth.html", headers=staff).status_code == 404
    assert client.get("/growth/static/..%2Fgrowth_page.py", headers=staff).status_code == 404
    assert client.get("/staff/session.css").status_code == 200  # the form's, public


def test_the_session_form_refuses_a_member_and_a_forgery(client: TestClient) -> None:
    member = client.post(
        "/staff/session", data={"token": make_token(MEMBER, TEST_SECRET)}, follow_redirects=False
    )
    assert member.status_code == 403
    assert "réservé à l’équipe" in member.text
    assert 'aria-invalid="true"' in member.text
    assert "set-cookie" not in member.headers
    forged = make_token(STAFF, "another-secret-of-at-least-32-characters!", staff=True)
    wrong = client.post("/staff/session", data={"token": forged}, follow_redirects=False)
    assert wrong.status_code == 401
    assert "n’est pas valide" in wrong.text
    assert "set-cookie" not in wrong.headers
    empty = client.post("/staff/session", data={"token": "  "}, follow_redirects=False)
    assert empty.status_code == 401
    for origin in ("https://evil.example", "null"):  # null: a sandboxed frame, say
        elsewhere = client.post(
            "/staff/session",
            data={"token": make_token(STAFF, TEST_SECRET, staff=True)},
            headers={"Origin": origin},
            follow_redirects=False,
        )
        assert elsewhere.status_code == 403, origin
        assert "depuis la page du moteur" in elsewhere.text  # the French form, with the reason
        assert "set-cookie" not in elsewhere.headers


def test_a_staff_session_opens_and_closes(api_db: DatabaseSettings, client: TestClient) -> None:
    token = make_token(STAFF, TEST_SECRET, staff=True, ttl_s=10**9)
    opened = client.post("/staff/session", data={"token": token}, follow_redirects=False)
    assert opened.status_code == 303
    assert opened.headers["location"] == "/growth"
    cookie = opened.headers["set-cookie"].lower()
    assert cookie.startswith("geo_engine_staff=")
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "secure" not in cookie  # plain http here; Secure over https
    assert "max-age=43200" in cookie  # a browser session lasts 12 hours at most
    assert client.get("/growth").status_code == 200  # the client keeps the cookie
    closed = client.post("/staff/session/logout", follow_redirects=False)
    assert closed.status_code == 303
    assert 'geo_engine_staff=""' in closed.headers["set-cookie"]
    client.cookies.clear()
    assert client.get("/growth", follow_redirects=False).status_code == 303


def test_the_epci_tiles_carry_sirens(client: TestClient, seeded: dict[str, Any]) -> None:
    # Reims at zoom 9.
    answer = client.get("/v1/tiles/epcis/9/261/175.mvt")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    assert b"epcis" in answer.content
    assert seeded["siren"].encode() in answer.content
    ocean = client.get("/v1/tiles/epcis/9/0/0.mvt")
    assert ocean.status_code == 200
    assert ocean.content == b""


# ---------------------------------------------------------------- the page in a browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from chromium()


def _origin(url: str) -> str:
    # MapLibre starts its workers from blob:http://host:port/uuid, which belongs to that origin.
    parts = urlsplit(url.removeprefix("blob:"))
    return f"{parts.scheme}://{parts.netloc}"


def _drawn_pixels(page: Page, canvas_id: str) -> int:
    count: int = page.evaluate(
        """(id) => {
            const canvas = document.getElementById(id);
            const data = canvas.getContext("2d")
                .getImageData(0, 0, canvas.width, canvas.height).data;
            let drawn = 0;
            for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) drawn++;
            return drawn;
        }""",
        canvas_id,
    )
    return count


def _legend(page: Page, canvas_id: str) -> list[str]:
    texts: list[str] = page.evaluate(
        """(id) => Chart.getChart(id).legend.legendItems.map((item) => item.text)""", canvas_id
    )
    return texts


def _settle(page: Page) -> None:
    page.evaluate(
        """() => new Promise((resolve) => {
            const map = window.growthMap;
            if (map.loaded() && !map.isMoving()) resolve(); else map.once("idle", resolve);
        })"""
    )


@pytest.mark.browser
@pytest.mark.slow
def test_the_dashboard_in_a_browser(
    browser: Browser, live_server: str, seeded: dict[str, Any]
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, locale="fr-FR")
    urls: list[str] = []
    failures: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    page.on(
        "response", lambda r: failures.append(f"{r.url}: {r.status}") if r.status >= 400 else None
    )
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    # No session yet: the form, in French; a member's token is refused there.
    page.goto(f"{live_server}/growth")
    assert page.url == f"{live_server}/staff/session"
    page.get_by_label("Jeton d’équipe").fill(make_token(MEMBER, TEST_SECRET))
    page.get_by_role("button", name="Ouvrir la session").click()
    assert "réservé à l’équipe" in page.get_by_role("alert").inner_text()
    failures.clear()  # that 403 was the point
    errors.clear()
    staff = make_token(STAFF, TEST_SECRET, staff=True)
    page.get_by_label("Jeton d’équipe").fill(staff)
    page.get_by_role("button", name="Ouvrir la session").click()
    page.wait_for_url(f"{live_server}/growth")

    # Everyone's report first; then the experiment, from the picker when the API lists the
    # experiments (GET /v1/growth/experiments), else from the address (?experiment=name).
    picker = page.get_by_label("Expérience")
    page.wait_for_function("() => document.body.dataset.ready === 'true'", timeout=30_000)
    assert "Tous les utilisateurs" in page.locator("#period").inner_text()
    listing = httpx.get(
        f"{live_server}/v1/growth/experiments", headers=token_for(STAFF, staff=True)
    )
    # Without the route, its 404 is the one expected failure (the page falls back to "tous").
    expected: list[str] = []
    if listing.status_code == 200:
        picker.select_option(EXPERIMENT)
    else:
        assert listing.status_code == 404
        expected = [f"{live_server}/v1/growth/experiments: 404", NOT_FOUND_LOG]
        page.goto(f"{live_server}/growth?experiment={EXPERIMENT}")
        assert picker.input_value() == EXPERIMENT
    page.wait_for_function("() => document.body.dataset.ready === 'true'", timeout=30_000)
    assert EXPERIMENT in page.locator("#period").inner_text()
    # The question variant engages far more (see `seeded`), and the shares are 50/50 by hash.
    assert page.locator("#verdict").inner_text().startswith("Variante gagnante : question.")
    assert page.locator("#srm").is_hidden()

    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1400  # no overflow
    charts = (
        "funnel-chart",
        "daily-chart",
        "diff-chart",
        "cohort-chart",
        "size-chart",
        "xxl-chart",
    )
    for canvas in charts:
        assert _drawn_pixels(page, canvas) > 500, canvas
    assert page.evaluate("() => Chart.getChart('funnel-chart').data.labels") == [
        "Envoyés",
        "Ouverts",
        "Cliqués",
        "Participations",
    ]
    assert _legend(page, "funnel-chart") == ["control", "question"]
    assert _legend(page, "diff-chart") == [
        "Écart mesuré (points de %)",
        "Intervalle de confiance à 95 %",
    ]
    assert _legend(page, "xxl-chart") == [
        "Toutes ses communes",
        "Ses communes de moins de 2 000 habitants",
    ]
    # The text alternatives hold the same figures: 240 users x 10 digests sent.
    funnel_table = page.locator("#funnel-table").inner_text()
    assert "control" in funnel_table and "question" in funnel_table
    sent = page.evaluate(
        "() => Chart.getChart('funnel-chart').data.datasets.reduce((s, d) => s + d.data[0], 0)"
    )
    assert sent == USERS * DAYS

    # The choropleth: EPCIs first, joined by SIREN to the engine's tiles.
    _settle(page)
    state = page.evaluate(
        """(siren) => window.growthMap.getFeatureState(
            { source: "epcis", sourceLayer: "epcis", id: siren })""",
        seeded["siren"],
    )
    assert state["rate"] > 0
    # Then communes, from zoom 9, around Reims.
    page.get_by_label("Commune (à partir du zoom 9)").check()
    page.wait_for_function(
        "() => document.getElementById('map').dataset.level === 'commune'", timeout=10_000
    )
    page.evaluate(
        """() => new Promise((resolve) => {
            window.growthMap.once("idle", resolve);
            window.growthMap.jumpTo({ center: [4.03, 49.25], zoom: 10 });
        })"""
    )
    rated = page.evaluate(
        """() => window.growthMap.queryRenderedFeatures({ layers: ["communes-fill"] })
            .filter((f) => typeof f.state.rate === "number").map((f) => f.id)"""
    )
    assert set(rated) & set(seeded["communes"]), rated
    assert REIMS in page.locator("#map-table").inner_text()

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "growth.png"), full_page=True)

    # axe-core goes in as an inline script, which the page's CSP refuses: the audit runs on a
    # second page, with the same session, in a context that bypasses CSP.
    audit = browser.new_page(
        viewport={"width": 1400, "height": 1000}, locale="fr-FR", bypass_csp=True
    )
    audit.context.add_cookies([{"name": "geo_engine_staff", "value": staff, "url": live_server}])
    audit.goto(f"{live_server}/growth?experiment={EXPERIMENT}")
    audit.wait_for_function("() => document.body.dataset.ready === 'true'", timeout=30_000)
    assert EXPERIMENT in audit.locator("#period").inner_text()
    _settle(audit)
    # Keyboard: from the top of the freshly loaded page, Tab reaches the experiment picker
    # (after the skip link and the session's button).
    for _ in range(3):
        audit.keyboard.press("Tab")
    assert audit.evaluate("() => document.activeElement.id") == "experiment"
    assert axe_violations(audit) == []
    audit.close()

    assert any("/v1/tiles/epcis/" in u for u in urls)
    assert any("/v1/tiles/communes/" in u for u in urls)
    assert any("/v1/growth/report" in u for u in urls)
    assert any("/v1/growth/areas?level=commune" in u for u in urls)
    assert {_origin(u) for u in urls if not u.startswith("data:")} == {live_server}
    assert [f for f in failures if f not in expected] == []
    assert [e for e in errors if e not in expected] == []
    page.close()
