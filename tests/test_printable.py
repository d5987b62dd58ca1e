"""The printable weekly poster of a commune: what it shows (public projects that concern the
commune, grouped, those closing soon first, the week's meetings in French local time), what it
never shows (a private project, a closed one, a cancelled or other week's meeting), its PDF,
and its refusals (unknown commune 404, bad week 422)."""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from consumers import printable
from contracts.errors import InvalidInput
from geo_engine import db
from geo_engine.audience import LEVELS
from geo_engine.settings import DatabaseSettings
from tests.api_data import assert_problem, national, organisation, project, territories, write
from tests.cli import run_cli

pytestmark = pytest.mark.geodata

LYON_ORG, STATE = 10, 11
COMMUNE_PROJECT, CLOSING, PRIVATE, NATIONAL, CLOSED, ELSEWHERE = 100, 101, 102, 103, 104, 105
WEEK = "2027-W09"  # Monday 1 March 2027


@pytest.fixture(scope="module")
def world(api_db: DatabaseSettings) -> DatabaseSettings:
    lyon = territories(("commune", "69123"))
    write(
        api_db,
        users=[1],
        organisations=[
            organisation(LYON_ORG, "Ville de Lyon", kind="commune", territory=("commune", "69123")),
            organisation(STATE, "Ministère de la Transition"),
        ],
        projects=[
            project(COMMUNE_PROJECT, LYON_ORG, lyon, title="Végétaliser les cours d'école"),
            project(
                CLOSING,
                LYON_ORG,
                lyon,
                title="Budget participatif 2027",
                closes_at="2027-03-06T23:59:00+01:00",
            ),
            project(PRIVATE, LYON_ORG, lyon, title="Projet confidentiel", visibility="private"),
            project(NATIONAL, STATE, national(), title="Grand débat sur l'eau"),
            project(CLOSED, LYON_ORG, lyon, title="Consultation terminée", status="closed"),
            project(
                ELSEWHERE, LYON_ORG, territories(("commune", "13055")), title="Vieux-Port à pied"
            ),
        ],
    )
    with db.connect(api_db) as conn:
        conn.execute(
            """INSERT INTO meeting (id, project_id, kind, title, place, starts_at, ends_at,
                                   cancelled_at)
               VALUES (1, %(c)s, 'reunion_publique', 'Réunion des parents', 'École Michelet',
                       '2027-03-04 18:30+01', '2027-03-04 20:30+01', NULL),
                      (2, %(c)s, 'atelier', 'Atelier de la semaine suivante', 'Mairie',
                       '2027-03-09 18:30+01', '2027-03-09 20:30+01', NULL),
                      (3, %(c)s, 'atelier', 'Atelier annulé', 'Mairie',
                       '2027-03-03 18:30+01', '2027-03-03 20:30+01', now()),
                      (4, %(p)s, 'atelier', 'Atelier confidentiel', 'Mairie',
                       '2027-03-02 18:30+01', '2027-03-02 20:30+01', NULL)""",
            {"c": COMMUNE_PROJECT, "p": PRIVATE},
        )
        conn.commit()
    return api_db


@pytest.fixture(scope="module")
def api(client: TestClient, world: DatabaseSettings) -> TestClient:
    return client


def test_the_poster_shows_what_concerns_the_commune_and_nothing_private(api: TestClient) -> None:
    answer = api.get("/v1/communes/69123/affiche", params={"week": WEEK})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    html = answer.text
    for shown in (
        "Participez à la vie de Lyon",
        "Semaine du lundi 1er mars 2027",
        "Végétaliser les cours d&#39;école",
        "Budget participatif 2027",
        "Grand débat sur l&#39;eau",
        "Dans votre commune",
        "Partout en France",
        "Derniers jours pour participer",
        "jusqu&#39;au samedi 6 mars 2027",
        "Réunion publique : Réunion des parents",
        "Jeudi 4 mars 2027, de 18 h 30 à 20 h 30 · École Michelet",
    ):
        assert shown in html, shown
    for hidden in (
        "confidentiel",
        "Consultation terminée",
        "Vieux-Port",
        "semaine suivante",
        "annulé",
    ):
        assert hidden not in html, hidden
    # Closing soon comes first, then the week's meetings, then the sections.
    order = [html.index(s) for s in ("Budget participatif", "Réunion des parents", "Végétaliser")]
    assert order == sorted(order)
    # An arrondissement answers for its commune.
    by_arrondissement = api.get("/v1/communes/69381/affiche", params={"week": WEEK})
    assert by_arrondissement.text == html


def test_the_pdf_is_a_real_one_page_pdf(api: TestClient) -> None:
    answer = api.get("/v1/communes/69123/affiche", params={"week": WEEK, "format": "pdf"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/pdf"
    pdf = answer.content
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    # PDF 1.7 keeps its objects in compressed streams: read them opened.
    streams = re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.DOTALL)
    opened = b"".join(zlib.decompress(s) for s in streams if s[:1] == b"x")
    assert re.search(rb"/Type\s*/Pages\s*/Kids\s*\[[^\]]*\]\s*/Count 1\b", opened), "one page"
    box = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([0-9.]+)\s+([0-9.]+)\s*\]", pdf + opened)
    assert box is not None and (round(float(box[1])), round(float(box[2]))) == (595, 842)  # A4
    # Its text is drawn (glyph runs), with a Unicode map so it can be copied and searched.
    assert opened.count(b"TJ") > 10
    assert b"/Adobe-Identity-UCS" in opened


def test_refusals(api: TestClient) -> None:
    missing = assert_problem(api.get("/v1/communes/99999/affiche"), 404)
    assert missing["detail"] == "no commune with INSEE code 99999"
    for week in ("2027-9", "2027-W54", "2027-W53", "2027-W00", "２０２７-W09", "W09"):
        problem = assert_problem(api.get("/v1/communes/69123/affiche", params={"week": week}), 422)
        assert "week" in problem["detail"], week
    assert_problem(api.get("/v1/communes/69123/affiche", params={"format": "docx"}), 422)
    assert_problem(api.get("/v1/communes/6912/affiche"), 422)


def test_parse_week() -> None:
    assert str(printable.parse_week("2026-W49")) == "2026-11-30"
    assert str(printable.parse_week("2026-W53")) == "2026-12-28"  # 2026 has 53 ISO weeks
    with pytest.raises(InvalidInput, match="does not exist"):
        printable.parse_week("2027-W53")
    assert printable.french_date(printable.parse_week("2027-W09")) == "lundi 1er mars 2027"
    assert set(printable.SECTION_OF_LEVEL) == set(LEVELS)  # every level has its section


@pytest.mark.slow
def test_cli_writes_the_pdf(world: DatabaseSettings, tmp_path: Path) -> None:
    out = tmp_path / "affiche.pdf"
    env = {"GEO_ENGINE_DATABASE_URL": world.database_url}
    done = run_cli(
        "digest", "print", "--commune", "69123", "--week", WEEK, "--out", str(out), env=env
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes().startswith(b"%PDF-")
    assert "Lyon (69123), 2027-W09" in done.stdout
    refused = run_cli("digest", "print", "--commune", "99999", "--out", str(out), env=env)
    assert refused.returncode == 4 and "no commune with INSEE code 99999" in refused.stderr
