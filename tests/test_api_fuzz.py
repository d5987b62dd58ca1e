"""Schemathesis from the API's own OpenAPI document, against the API served by uvicorn on a
database holding organisations, projects (public and private) and contributions, so that the
answers are not all empty.

Every GET operation is fuzzed with data that fits the document and data that does not, as an
anonymous caller and as a member of the organisation that owns the private projects. Every POST
operation (the writes) is fuzzed the same way, NUL and control characters included, as an
anonymous caller, a member and platform staff (whose writes get past the role checks to the
validation and the database): no answer may be a server error, every refusal is a problem
document.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import BaseModel, SecretStr
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from contracts.api import (
    CommuneDetail,
    ContributionCollection,
    Problem,
    ProjectCollection,
    ProjectDetail,
    Written,
)
from contracts.engagement import EngagementRow, FeedbackStored
from contracts.experiments import Experiment
from contracts.growth import ReplayReport
from contracts.inbox import Marked
from contracts.territories import Location
from contracts.users import UserView
from geo_engine.settings import ApiSettings, DatabaseSettings
from tests.api_data import (
    contribution,
    member,
    national,
    organisation,
    project,
    radius,
    square,
    territories,
    write,
)
from tests.conftest import TEST_SECRET, token_for

pytestmark = [pytest.mark.geodata, pytest.mark.slow]

MEMBER = 7
STAFF = 9
FUZZ = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def fuzz_world(api_db: DatabaseSettings) -> DatabaseSettings:
    rng = random.Random(11)
    projects = [
        project(1, 1, territories(("commune", "75056")), location=(2.3522, 48.8566)),
        project(2, 1, national()),
        project(3, 2, square(2.33, 48.86, 0.01), visibility="private"),
        project(4, 2, radius(4.8357, 45.7676, 2000), tool="carte_participative"),
        project(5, 2, radius(2.35, 48.85, 2000), tool="carte_participative", visibility="private"),
    ]
    for pid in range(10, 60):
        where = (round(rng.uniform(2.2, 2.5), 5), round(rng.uniform(48.8, 48.92), 5))
        projects.append(
            project(
                pid,
                1 + pid % 2,
                territories(("commune", "75056")),
                location=where,
                visibility="private" if pid % 3 == 0 else "public",
                themes=["mobilite"],
                opens_at="2026-03-01T09:00:00+01:00",
                closes_at="2026-04-01T09:00:00+02:00",
            )
        )
    contributions = [
        contribution(
            100 + n,
            4 if n % 2 else 5,
            (round(rng.uniform(2.3, 2.4), 5), round(rng.uniform(48.83, 48.88), 5)),
            title=f"Contribution {n}",
        )
        for n in range(30)
    ]
    write(
        api_db,
        users=[MEMBER, 8, STAFF],
        organisations=[
            organisation(1, "Ville de Paris", kind="commune", territory=("commune", "75056")),
            organisation(2, "Association"),
        ],
        members=[member(2, MEMBER, "agent")],
        projects=projects,
        contributions=contributions,
    )
    return api_db


def _document() -> dict[str, Any]:
    """The OpenAPI document as the app builds it (no database needed to build it)."""
    app = create_app(
        DatabaseSettings(database_url="postgresql://unused@127.0.0.1:1/unused"),
        ApiSettings(jwt_secret=SecretStr(TEST_SECRET)),
    )
    return app.openapi()


# Loaded eagerly: schemathesis.pytest.from_fixture (the lazy loader) fails under pytest 9
# (it writes `request.node._nodeid`, which pytest 9 no longer has).
schema = schemathesis.openapi.from_dict(_document()).include(method="GET")
writes = schemathesis.openapi.from_dict(_document()).include(method="POST")
for fuzzed in (schema, writes):
    # Said out loud rather than left to the defaults: data that breaks the document too, and
    # NUL characters in strings (each was a 500 in fault 4.4 of issue 7).
    fuzzed.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], allow_x00=True
    )
# /health takes no parameter and no credentials: it cannot answer a problem document.
with_problems = schema.exclude(path="/health")


@pytest.fixture(scope="module")
def base_url(live_server: str, fuzz_world: DatabaseSettings) -> str:
    return live_server


@pytest.fixture(scope="module")
def session() -> Any:
    with requests.Session() as s:
        yield s


def _call(
    case: Case[Any],
    base_url: str,
    session: requests.Session,
    as_member: bool,
    *,
    keep_auth: bool,
    staff: bool = False,
) -> Any:
    if not keep_auth:
        # The document declares a bearer scheme, so schemathesis sends made-up Authorization
        # values; those are refused with 401 (tests/test_api.py), which is checked apart.
        case.headers.pop("Authorization", None)
    headers = token_for(STAFF, staff=True) if staff else token_for(MEMBER) if as_member else None
    return case.call(base_url=base_url, session=session, headers=headers)


# The answers' own contracts: the document puts these models under application/json, but the
# API answers application/geo+json (whose schema in the document is empty) and problem+json,
# so schemathesis's response_schema_conformance cannot see them: they are checked here.
CONTRACTS: dict[str, type[BaseModel]] = {
    "/v1/territories/locate": Location,
    "/v1/territories/communes/{insee}": CommuneDetail,
    "/v1/territories/communes/{insee}/projects": ProjectCollection,
    "/v1/projects/nearby": ProjectCollection,
    "/v1/projects": ProjectCollection,
    "/v1/projects/{project_id}": ProjectDetail,
    "/v1/contributions/nearby": ContributionCollection,
}


# Writes answer Written, except these, which answer what they made (their response_model).
POST_CONTRACTS: dict[str, type[BaseModel]] = {
    "/v1/users": UserView,
    "/v1/users/{user_id}/feedback": FeedbackStored,
    "/v1/users/{user_id}/engagements": EngagementRow,
    "/v1/users/{user_id}/inbox/read": Marked,
    "/v1/growth/experiments": Experiment,
    "/v1/growth/experiments/{name}/{action}": Experiment,
    "/v1/growth/replay": ReplayReport,
}


def _matches_contract(case: Case[Any], response: Any) -> None:
    content_type = response.headers.get("content-type", [""])[0]
    if response.status_code >= 400:
        assert content_type == "application/problem+json", content_type
        Problem.model_validate_json(response.content)
        assert response.json()["status"] == response.status_code
    elif case.operation.method.upper() == "POST":
        POST_CONTRACTS.get(case.operation.path, Written).model_validate_json(response.content)
    elif case.operation.path in CONTRACTS:
        CONTRACTS[case.operation.path].model_validate_json(response.content)


@schema.parametrize()
@FUZZ
def test_no_server_error_and_answers_match_the_document(
    case: Case[Any], base_url: str, session: requests.Session
) -> None:
    for as_member in (False, True):
        response = _call(case, base_url, session, as_member, keep_auth=False)
        checks = [not_a_server_error, response_schema_conformance, status_code_conformance]
        if response.status_code < 400:
            # Refusals are application/problem+json, which the document does not declare:
            # test_errors_are_documented_as_problem_documents below holds that bug.
            checks.append(content_type_conformance)
        case.validate_response(response, checks=checks)
        _matches_contract(case, response)


FUZZ_WRITES = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@writes.parametrize()
@FUZZ_WRITES
def test_writes_never_answer_a_server_error(
    case: Case[Any], base_url: str, session: requests.Session
) -> None:
    for as_member, staff in ((False, False), (True, False), (False, True)):
        response = _call(case, base_url, session, as_member, keep_auth=False, staff=staff)
        case.validate_response(response, checks=[not_a_server_error, status_code_conformance])
        _matches_contract(case, response)


# --------------------------------------------------------------------------------------------
# What the document says, read directly (schemathesis reports these as failures of its
# status_code_conformance and content_type_conformance checks when they are not excluded).

DOCUMENT = _document()
GET_OPERATIONS = {path: item["get"] for path, item in DOCUMENT["paths"].items() if "get" in item}


def test_every_post_answer_has_its_contract_checked() -> None:
    # A POST whose success is not Written must be in POST_CONTRACTS, or a rare valid case the
    # fuzzer finds would fail on the wrong model.
    for path, item in DOCUMENT["paths"].items():
        if "post" not in item:
            continue
        for status, answer in item["post"]["responses"].items():
            if not status.startswith("2"):
                continue
            schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
            model = schema.get("$ref", "").rsplit("/", 1)[-1]
            assert model in ("Written", POST_CONTRACTS.get(path, Written).__name__), (path, model)


@pytest.mark.parametrize("path", [p for p in GET_OPERATIONS if p != "/health"])
def test_errors_are_documented_as_problem_documents(path: str) -> None:
    responses = GET_OPERATIONS[path]["responses"]
    for status in ("404", "422"):
        if status in responses:
            assert "application/problem+json" in responses[status].get("content", {}), status


@pytest.mark.parametrize("path", [p for p, op in GET_OPERATIONS.items() if op.get("security")])
def test_401_is_documented_where_a_token_is_read(path: str) -> None:
    assert "401" in GET_OPERATIONS[path]["responses"]


@pytest.mark.parametrize(
    "path",
    [
        p
        for p, op in GET_OPERATIONS.items()
        if "application/geo+json" in op["responses"]["200"].get("content", {})
    ],
)
def test_geojson_answers_have_their_schema_in_the_document(path: str) -> None:
    content = GET_OPERATIONS[path]["responses"]["200"]["content"]
    assert content["application/geo+json"].get("schema"), content
