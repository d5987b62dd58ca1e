"""The commune endpoints answer arrondissement codes (Paris, Lyon, Marseille) with their commune,
naming the arrondissement; the per-commune time zone shows through the API."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from contracts.api import CommuneDetail
from geo_engine.settings import DatabaseSettings
from tests.api_data import assert_problem, feature_ids, organisation, project, territories, write

pytestmark = pytest.mark.geodata


@pytest.mark.parametrize(
    ("code", "commune", "name", "arrondissement", "postal"),
    [
        ("75115", "75056", "Paris", "Paris 15e Arrondissement", ["75015"]),
        ("75116", "75056", "Paris", "Paris 16e Arrondissement", ["75016", "75116"]),
        ("69381", "69123", "Lyon", "Lyon 1er Arrondissement", ["69001"]),
        ("13216", "13055", "Marseille", "Marseille 16e Arrondissement", ["13016"]),
    ],
)
def test_an_arrondissement_code_answers_its_commune(
    client: TestClient, code: str, commune: str, name: str, arrondissement: str, postal: list[str]
) -> None:
    response = client.get(f"/v1/territories/communes/{code}", params={"geometry": "true"})
    assert response.status_code == 200, response.text
    body = CommuneDetail.model_validate_json(response.text)
    assert (body.code, body.name) == (commune, name)
    assert body.arrondissement is not None
    assert (body.arrondissement.code, body.arrondissement.name) == (code, arrondissement)
    assert body.arrondissement.postal_codes == postal
    assert body.arrondissement.population > 0
    assert body.geometry is not None and body.geometry["type"] == "MultiPolygon"
    assert body.timezone == "Europe/Paris"


def test_a_commune_code_names_no_arrondissement(client: TestClient) -> None:
    body = client.get("/v1/territories/communes/75056").json()
    assert body["arrondissement"] is None


def test_a_former_code_or_a_postal_code_is_not_a_commune(client: TestClient) -> None:
    # 75015: the postal code of Paris 15e and a 1968 code of Bry-sur-Marne, an INSEE code of
    # nothing in force; 75121: no arrondissement.
    for code in ("75015", "75121"):
        assert code in assert_problem(client.get(f"/v1/territories/communes/{code}"), 404)["detail"]
        assert_problem(client.get(f"/v1/territories/communes/{code}/projects"), 404)


def test_what_concerns_an_arrondissement_is_what_concerns_its_commune(
    client: TestClient, api_db: DatabaseSettings
) -> None:
    write(
        api_db,
        organisations=[organisation(9001)],
        projects=[
            project(9001, 9001, territories(("commune", "75056"))),
            project(9002, 9001, territories(("commune", "69123"))),
        ],
    )
    paris = client.get("/v1/territories/communes/75056/projects").json()
    fifteenth = client.get("/v1/territories/communes/75115/projects").json()
    assert 9001 in feature_ids(paris)
    assert feature_ids(fifteenth) == feature_ids(paris)
    assert 9002 not in feature_ids(fifteenth)
    assert 9002 in feature_ids(client.get("/v1/territories/communes/69385/projects").json())


@pytest.mark.parametrize(
    ("code", "zone"),
    [
        ("98731", "Pacific/Marquesas"),  # Nuku-Hiva
        ("98719", "Pacific/Gambier"),
        ("98735", "Pacific/Tahiti"),  # Papeete
        ("97411", "Indian/Reunion"),
    ],
)
def test_the_commune_time_zone(client: TestClient, code: str, zone: str) -> None:
    assert client.get(f"/v1/territories/communes/{code}").json()["timezone"] == zone


@pytest.mark.parametrize("code", ["٧٥١١٥", "７５１１５"])
def test_a_code_in_other_digits_is_a_422_problem(client: TestClient, code: str) -> None:
    assert "insee" in assert_problem(client.get(f"/v1/territories/communes/{code}"), 422)["detail"]
