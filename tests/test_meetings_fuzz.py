"""Schemathesis on the meetings' and the poster's operations only (``tests/test_api_fuzz.py``
fuzzes every operation; this runs the new ones with more examples, and meetings in the
database so that the answers are not all 404): no server error, every refusal a problem
document, every status documented."""

from __future__ import annotations

from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error, status_code_conformance

from contracts.api import Problem, Written
from contracts.meetings import MeetingCollection, MeetingView
from geo_engine import db
from geo_engine.settings import DatabaseSettings
from tests.test_api_fuzz import _call, _document, fuzz_world, session

pytestmark = [pytest.mark.geodata, pytest.mark.slow]

__all__ = ["fuzz_world", "session"]  # the fixtures of test_api_fuzz, shared

MEETINGS = "^/v1/(meetings|communes/\\{code\\}/affiche|projects/\\{project_id\\}/meetings)"
reads = schemathesis.openapi.from_dict(_document()).include(path_regex=MEETINGS, method="GET")
announces = schemathesis.openapi.from_dict(_document()).include(path_regex=MEETINGS, method="POST")
for fuzzed in (reads, announces):
    fuzzed.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], allow_x00=True
    )
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
CONTRACTS: dict[str, Any] = {
    "/v1/meetings/{meeting_id}": MeetingView,
    "/v1/meetings": MeetingCollection,
}


@pytest.fixture(scope="module")
def base_url(live_server: str, fuzz_world: DatabaseSettings) -> str:
    with db.connect(fuzz_world) as conn:
        conn.execute(
            """INSERT INTO meeting (id, project_id, kind, title, place, location, starts_at,
                                   ends_at)
               SELECT n, CASE WHEN n % 2 = 0 THEN 1 ELSE 3 END, 'atelier', 'Atelier ' || n,
                      'Mairie', ST_Point(2.35, 48.85, 4326),
                      now() + make_interval(days => n), now() + make_interval(days => n, hours => 2)
               FROM generate_series(1, 20) AS n
               ON CONFLICT DO NOTHING"""
        )
        conn.commit()
    return live_server


def _check(case: Case[Any], response: Any) -> None:
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance])
    if response.status_code >= 400:
        assert response.headers.get("content-type", [""])[0] == "application/problem+json"
        Problem.model_validate_json(response.content)
    elif case.operation.method.upper() == "POST":
        Written.model_validate_json(response.content)
    elif case.operation.path in CONTRACTS:
        CONTRACTS[case.operation.path].model_validate_json(response.content)


@reads.parametrize()
@FUZZ
def test_reads(case: Case[Any], base_url: str, session: requests.Session) -> None:
    for as_member in (False, True):
        _check(case, _call(case, base_url, session, as_member, keep_auth=False))


@announces.parametrize()
@FUZZ
def test_announces(case: Case[Any], base_url: str, session: requests.Session) -> None:
    for as_member, staff in ((True, False), (False, True)):
        _check(case, _call(case, base_url, session, as_member, keep_auth=False, staff=staff))
