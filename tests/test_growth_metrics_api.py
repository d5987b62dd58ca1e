"""``/v1/growth/report`` and ``/v1/growth/areas`` (staff only) and ``geo-engine growth report``
on the hand-computed log of tests/growth_log.py (its figures are checked one by one in
tests/test_growth_metrics.py; here, that the faces show them)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from contracts.growth import AreaRate, Report
from geo_engine import db
from geo_engine.settings import DatabaseSettings
from tests.cli import run_cli
from tests.conftest import token_for
from tests.growth_log import NAME, SINCE, U1, UNTIL, Places, write_log

pytestmark = pytest.mark.geodata

PERIOD = {"since": SINCE.isoformat(), "until": UNTIL.isoformat()}
STAFF = token_for(1, staff=True)


@pytest.fixture(scope="module")
def places(api_db: DatabaseSettings) -> Places:
    with db.connect(api_db) as conn:
        _, found = write_log(conn)
        conn.commit()
    return found


@pytest.mark.parametrize("path", ["/v1/growth/report", "/v1/growth/areas"])
def test_staff_only(client: TestClient, places: Places, path: str) -> None:
    assert client.get(path, params=PERIOD).status_code == 401
    refused = client.get(path, params=PERIOD, headers=token_for(U1))
    assert refused.status_code == 403
    assert "staff" in refused.json()["detail"]
    assert client.get(path, params=PERIOD, headers=STAFF).status_code == 200


def test_report_of_an_experiment(client: TestClient, places: Places) -> None:
    answer = client.get("/v1/growth/report", params={**PERIOD, "experiment": NAME}, headers=STAFF)
    assert answer.status_code == 200
    found = Report.model_validate(answer.json())
    assert found.experiment is not None and found.experiment.spec.name == NAME
    control, treatment = found.variants
    assert (control.funnel.sent, control.funnel.opened, control.click_rate.rate) == (4, 3, 0.5)
    assert (treatment.users, treatment.participation_rate.numerator) == (3, 1)
    assert found.sample_ratio is not None and found.sample_ratio.observed_units == {
        "control": 2,
        "treatment": 3,
    }
    assert found.winner is None and found.verdict.startswith("Pas de gagnant")


def test_report_of_everyone_with_dates(client: TestClient, places: Places) -> None:
    # Dates without an offset are Paris days: 2026-11-01 to 2026-12-01 is the log's period.
    answer = client.get(
        "/v1/growth/report", params={"since": "2026-11-01", "until": "2026-12-01"}, headers=STAFF
    )
    assert answer.status_code == 200
    found = Report.model_validate(answer.json())
    assert found.since == SINCE and found.until == UNTIL
    (tous,) = found.variants
    assert (tous.variant, tous.users, tous.funnel.sent) == ("tous", 6, 10)


def test_default_period_is_the_last_30_days(client: TestClient, places: Places) -> None:
    found = Report.model_validate(client.get("/v1/growth/report", headers=STAFF).json())
    assert (found.until - found.since).days == 30


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"experiment": "nope"}, 404, "no experiment named 'nope'"),
        ({"experiment": "Bad Name!"}, 422, "experiment"),
        ({"since": "hier"}, 422, "since"),
        ({"since": "2026-12-01", "until": "2026-11-01"}, 422, "must be before"),
        ({"since": "2020-01-01", "until": "2026-11-01"}, 422, "longer than"),
    ],
)
def test_bad_requests(
    client: TestClient, places: Places, params: dict[str, str], status: int, words: str
) -> None:
    answer = client.get("/v1/growth/report", params=params, headers=STAFF)
    assert answer.status_code == status
    assert words in str(answer.json())


def test_areas(client: TestClient, places: Places) -> None:
    answer = client.get("/v1/growth/areas", params=PERIOD, headers=STAFF)
    assert answer.status_code == 200
    communes = {a.code: a for a in map(AreaRate.model_validate, answer.json())}
    assert (communes[places.a].users, communes[places.a].rate) == (2, 0.5)
    epcis = client.get("/v1/growth/areas", params={**PERIOD, "level": "epci"}, headers=STAFF)
    found = {a["code"]: a for a in epcis.json()}
    assert (found[places.epci]["users"], found[places.epci]["participated"]) == (4, 2)
    bad = client.get("/v1/growth/areas", params={"level": "region"}, headers=STAFF)
    assert bad.status_code == 422


@pytest.mark.slow  # the command's start-up alone takes seconds
def test_cli_report_and_csv(api_db: DatabaseSettings, places: Places, tmp_path: Path) -> None:
    env = {"GEO_ENGINE_DATABASE_URL": api_db.database_url}
    out = tmp_path / "csv"
    done = run_cli(
        "growth",
        "report",
        "--experiment",
        NAME,
        "--since",
        "2026-11-01",
        "--until",
        "2026-12-01",
        "--csv",
        str(out),
        env=env,
        columns=250,
    )
    assert done.returncode == 0, done.stderr
    for title in ("Variantes", "Comparaisons avec « control »", "Équilibre de l'échantillon"):
        assert title in done.stdout
    assert "75,0 %" in done.stdout  # control's open rate, 3 of 4
    assert "Verdict : Pas de gagnant" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "cohortes.csv",
        "comparaisons.csv",
        "couverture.csv",
        "quotidien.csv",
        "srm.csv",
        "variantes.csv",
    ]
    with (out / "variantes.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["variante"], r["holdout"], r["envoyés"], r["ouverture"]) for r in rows] == [
        ("control", "non", "4", "0.75"),
        ("treatment", "non", "4", "0.5"),
    ]
    with (out / "comparaisons.csv").open(encoding="utf-8") as handle:
        compared = list(csv.DictReader(handle))
    assert {r["métrique"] for r in compared} >= {"taux d'ouverture", "taux de clic"}
    assert {r["significatif"] for r in compared} == {"non"}
    with (out / "quotidien.csv").open(encoding="utf-8") as handle:
        daily = list(csv.DictReader(handle))
    assert sum(int(r["envoyés"]) for r in daily) == 8


@pytest.mark.slow
def test_cli_refuses_clearly(api_db: DatabaseSettings, places: Places) -> None:
    env = {"GEO_ENGINE_DATABASE_URL": api_db.database_url}
    unknown = run_cli("growth", "report", "--experiment", "nope", env=env)
    assert unknown.returncode != 0 and "no experiment named 'nope'" in unknown.stderr
    garbled = run_cli("growth", "report", "--since", "29/11/2026", env=env)
    assert garbled.returncode != 0 and "--since" in garbled.stderr
