"""Faults 4.4, 4.5 and 4.6 of issue 7, each with the value that found it, against the API on
the real PostGIS, in-process and served by uvicorn as `geo-engine serve` runs it.

- 4.4 (each was a 500): a cursor holding a non-ASCII character, a NUL in any text field, a
  signed token whose ``sub`` is ``"²"``; and ``bbox`` read Arabic-Indic and full-width digits
  that ``lat``/``lon`` refused. Every number goes through one strict parser now.
- 4.5: a 4.8 MB body tied a worker; a 100 KB query string got uvicorn's plain-text 400.
- 4.6: no ``X-Content-Type-Options: nosniff``, no ``Referrer-Policy``.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import requests
from fastapi.testclient import TestClient

from contracts.errors import (
    POLICIES,
    HeadersTooLarge,
    InvalidInput,
    NotFound,
    OutsideFrance,
    TooLarge,
    Unauthenticated,
    UriTooLong,
)
from geo_engine.settings import ApiSettings
from tests.api_data import assert_problem
from tests.conftest import TEST_SECRET, token_for

pytestmark = pytest.mark.geodata

BBOX = "6.9,43.5,7.5,43.9"  # Nice and around, as in the issue
STAFF = token_for(1, staff=True)
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
BIG_BODY = 4_800_000


def _type(kind: type[Any]) -> str:
    return POLICIES[kind].problem_type


# --------------------------------------------------------------------------------------------
# 4.4 Server errors from bad input


def test_a_cursor_with_a_non_ascii_character_is_a_422(client: TestClient) -> None:
    response = client.get("/v1/projects", params={"bbox": BBOX, "cursor": "MS7DqQ"})
    body = assert_problem(response, 422)
    assert body["detail"] == "cursor: not a cursor this API gave"
    assert body["type"] == _type(InvalidInput)


@pytest.mark.parametrize("cursor", ["é", "MS7D%qQ", "MS4xMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg", "٧"])
def test_any_cursor_this_api_did_not_write_is_a_422(client: TestClient, cursor: str) -> None:
    body = assert_problem(client.get("/v1/projects", params={"bbox": BBOX, "cursor": cursor}), 422)
    assert "cursor" in body["detail"]


ORGANISATION = {"id": 900, "kind": "association", "name": "Les amis du vélo"}
PROJECT = {
    "id": 900,
    "organisation_id": 900,
    "space": "territoires",
    "tool": "carte_participative",
    "title": "Signalez les trottoirs encombrés",
    "scope": {"kind": "national"},
}
CONTRIBUTION = {
    "id": 900,
    "project_id": 900,
    "category": "voirie",
    "title": "Un banc ici",
    "location": {"lon": 7.26, "lat": 43.7},
}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/organisations", {**ORGANISATION, "name": "Les amis\x00du vélo"}, "body.name"),
        ("/v1/projects", {**PROJECT, "title": "Signalez\x00"}, "body.title"),
        ("/v1/projects", {**PROJECT, "description": "rouge \x1b[31m"}, "body.description"),
        ("/v1/projects", {**PROJECT, "title": "deux\nlignes"}, "body.title"),
        ("/v1/contributions", {**CONTRIBUTION, "title": "Un banc\x00"}, "body.title"),
        ("/v1/contributions", {**CONTRIBUTION, "category": "voirie\x7f"}, "body.category"),
    ],
)
def test_a_control_character_in_any_text_field_is_a_422(
    client: TestClient, path: str, body: dict[str, Any], field: str
) -> None:
    problem = assert_problem(client.post(path, json=body, headers=STAFF), 422)
    assert problem["detail"].startswith(f"{field}: ") and "U+00" in problem["detail"], problem
    assert problem["errors"][0]["where"] == field


def test_a_lone_surrogate_in_a_body_is_a_422(client: TestClient) -> None:
    raw = json.dumps({**ORGANISATION, "name": "x"}).replace('"x"', '"\\ud800"').encode()
    response = client.post(
        "/v1/organisations",
        content=raw,
        headers={**STAFF, "content-type": "application/json"},
    )
    assert_problem(response, 422)


def test_a_body_that_is_not_utf_8_is_a_422(client: TestClient) -> None:
    response = client.post(
        "/v1/contributions",
        content=b"\x1e\xff",
        headers={**STAFF, "content-type": "application/json"},
    )
    assert "body" in assert_problem(response, 422)["detail"]


def _token(sub: Any, **more: Any) -> dict[str, str]:
    now = int(time.time())
    claims = {"sub": sub, "iat": now, "exp": now + 600, **more}
    return {"Authorization": f"Bearer {jwt.encode(claims, TEST_SECRET, algorithm='HS256')}"}


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (_token("²"), "sub must be a user id"),
        (_token("٧"), "sub must be a user id"),
        (_token("1", staff="true"), "staff must be true or false"),
        (_token(7), "invalid bearer token"),
    ],
)
@pytest.mark.parametrize("write", [False, True])
def test_a_validly_signed_token_with_a_claim_of_the_wrong_type_is_a_401(
    client: TestClient, headers: dict[str, str], reason: str, write: bool
) -> None:
    if write:
        response = client.post("/v1/organisations", json=ORGANISATION, headers=headers)
    else:
        response = client.get("/v1/projects/1", headers=headers)
    body = assert_problem(response, 401)
    assert reason in body["detail"], body
    assert body["type"] == _type(Unauthenticated)
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


# Every numeric query parameter and path segment, with a value the API accepts in ASCII.
NUMBERS: list[tuple[str, dict[str, str], str]] = [
    ("/v1/territories/locate", {"lat": "43.7", "lon": "7.26"}, "lat"),
    ("/v1/territories/locate", {"lat": "43.7", "lon": "7.26"}, "lon"),
    ("/v1/projects/nearby", {"lat": "43.7", "lon": "7.26", "radius_m": "5000"}, "radius_m"),
    ("/v1/projects/nearby", {"lat": "43.7", "lon": "7.26", "limit": "5"}, "limit"),
    ("/v1/projects", {"bbox": BBOX}, "bbox"),
    ("/v1/projects", {"bbox": BBOX, "limit": "5"}, "limit"),
    ("/v1/contributions/nearby", {"lat": "43.7", "lon": "7.26", "radius_m": "500"}, "radius_m"),
    ("/v1/contributions/nearby", {"lat": "43.7", "lon": "7.26", "project_id": "9"}, "project_id"),
    ("/v1/territories/communes/06088/projects", {"limit": "5"}, "limit"),
    ("/v1/projects/{1}", {}, "path"),
    ("/v1/tiles/projects/{9}/265/187.mvt", {}, "path"),
    ("/v1/tiles/communes/9/{265}/187.mvt", {}, "path"),
    ("/v1/tiles/communes/9/265/{187}.mvt", {}, "path"),
]


def _url(path: str, params: dict[str, str], name: str, digits: dict[int, int] | None) -> Any:
    def convert(text: str) -> str:
        return text.translate(digits) if digits else text

    if name == "path":
        head, rest = path.split("{", 1)
        number, tail = rest.split("}", 1)
        return head + convert(number) + tail, params
    return path, {**params, name: convert(params[name])}


@pytest.mark.parametrize(("path", "params", "name"), NUMBERS)
def test_every_number_refuses_non_ascii_digits(
    client: TestClient, path: str, params: dict[str, str], name: str
) -> None:
    url, query = _url(path, params, name, None)
    assert client.get(url, params=query).status_code in (200, 404), (url, query)
    for digits in (ARABIC_INDIC, FULL_WIDTH):
        url, query = _url(path, params, name, digits)
        body = assert_problem(client.get(url, params=query), 422)
        assert "not a number" in body["detail"] or "not an integer" in body["detail"], body


@pytest.mark.parametrize("value", ["1_000", " 5", "5 ", "+-5", "0x10"])
def test_numbers_are_only_what_a_person_types(client: TestClient, value: str) -> None:
    query = {"lat": "43.7", "lon": "7.26", "radius_m": value}
    assert_problem(client.get("/v1/projects/nearby", params=query), 422)
    assert_problem(client.get("/v1/projects", params={"bbox": f"{value},43.5,7.5,43.9"}), 422)


def test_each_kind_answers_its_own_problem_type(client: TestClient) -> None:
    assert assert_problem(client.get("/v1/projects/999"), 404)["type"] == _type(NotFound)
    at_sea = client.get("/v1/territories/locate", params={"lat": "46.0", "lon": "-5.0"})
    assert assert_problem(at_sea, 404)["type"] == _type(OutsideFrance)
    assert assert_problem(client.get("/v1/nothing"), 404)["type"] == _type(NotFound)


# --------------------------------------------------------------------------------------------
# 4.5 Unbounded requests (defaults: body 256 KiB, request target 8 KiB, headers 16 KiB)

LIMITS = ApiSettings()


def test_the_bounds_are_settings_with_sane_defaults() -> None:
    assert LIMITS.max_body_bytes == 256 * 1024 < BIG_BODY
    assert LIMITS.max_url_bytes == 8 * 1024 and LIMITS.max_header_bytes == 16 * 1024


def test_a_query_over_the_bound_is_a_414(client: TestClient) -> None:
    response = client.get("/v1/projects", params={"bbox": BBOX, "cursor": "A" * 9_000})
    body = assert_problem(response, 414)
    assert body["type"] == _type(UriTooLong) and "8,192" in body["detail"]


def test_headers_over_the_bound_are_a_431(client: TestClient) -> None:
    response = client.get("/health", headers={"X-Padding": "a" * 17_000})
    body = assert_problem(response, 431)
    assert body["type"] == _type(HeadersTooLarge)


def test_a_body_announced_over_the_bound_is_a_413(client: TestClient) -> None:
    response = client.post("/v1/contributions", content=b"{" * BIG_BODY, headers=STAFF)
    body = assert_problem(response, 413)
    assert body["type"] == _type(TooLarge) and "262,144" in body["detail"]


def test_a_streamed_body_is_counted_and_refused_at_the_bound(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(BIG_BODY // 65_536):
            yield b" " * 65_536

    response = client.post(
        "/v1/contributions",
        content=chunks(),
        headers={**STAFF, "content-type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    body = assert_problem(response, 413)
    assert "262,144" in body["detail"]


def test_a_body_under_the_bound_is_read(client: TestClient) -> None:
    padded = json.dumps({**CONTRIBUTION, "title": "x" * 301}).encode() + b" " * 200_000
    response = client.post(
        "/v1/contributions",
        content=padded,
        headers={**STAFF, "content-type": "application/json"},
    )
    assert "body.title" in assert_problem(response, 422)["detail"]


def _raw(
    base_url: str, request: bytes, timeout: float = 10.0
) -> tuple[bytes, dict[str, str], bytes]:
    """Send ``request`` on a fresh connection; the status line, headers and body answered."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65_536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        headers = {
            k.decode().lower(): v.decode().strip()
            for k, v in (line.split(b":", 1) for line in lines[1:])
        }
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65_536)
            if not chunk:
                break
            body += chunk
    return lines[0], headers, body


def _assert_raw_problem(answer: tuple[bytes, dict[str, str], bytes], status: int) -> dict[str, Any]:
    status_line, headers, body = answer
    assert status_line.startswith(f"HTTP/1.1 {status} ".encode()), answer
    assert headers["content-type"] == "application/problem+json", headers
    assert headers["x-content-type-options"] == "nosniff"
    problem: dict[str, Any] = json.loads(body)
    assert problem["status"] == status and problem["detail"]
    return problem


def test_a_4_8_mb_body_is_refused_fast_without_being_read(live_server: str) -> None:
    token = STAFF["Authorization"]
    head = (
        "POST /v1/contributions HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Authorization: {token}\r\nContent-Length: {BIG_BODY}\r\n\r\n"
    ).encode()
    started = time.monotonic()
    # Only the head is sent: an answer at all proves the body was not waited for.
    answer = _raw(live_server, head)
    elapsed = time.monotonic() - started
    problem = _assert_raw_problem(answer, 413)
    assert problem["type"] == _type(TooLarge)
    assert answer[1]["connection"] == "close"
    assert elapsed < 2.0, elapsed


def test_a_100_kb_query_string_is_a_414_problem_not_plain_text(live_server: str) -> None:
    response = requests.get(
        f"{live_server}/v1/projects", params={"bbox": BBOX, "cursor": "A" * 100_000}, timeout=30
    )
    assert response.status_code == 414, response.text[:200]
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == _type(UriTooLong)


def test_a_huge_request_target_or_header_never_reaches_plain_text(live_server: str) -> None:
    target = _raw(live_server, b"GET /v1/projects?bbox=" + b"1" * 2_000_000 + b" HTTP/1.1\r\n\r\n")
    assert _assert_raw_problem(target, 414)["type"] == _type(UriTooLong)
    header = _raw(
        live_server,
        b"GET /health HTTP/1.1\r\nHost: t\r\nX-Padding: " + b"a" * 1_000_000 + b"\r\n\r\n",
    )
    assert _assert_raw_problem(header, 431)["type"] == _type(HeadersTooLarge)
    first = _raw(
        live_server, b"GET /health HTTP/1.1\r\nX-Padding: " + b"a" * 1_000_000 + b"\r\n\r\n"
    )
    assert _assert_raw_problem(first, 431)["type"] == _type(HeadersTooLarge)
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(200))
    headers = _raw(live_server, b"GET /health HTTP/1.1\r\nHost: t\r\n" + many + b"\r\n")
    assert _assert_raw_problem(headers, 431)["type"] == _type(HeadersTooLarge)
    garbage = _raw(live_server, b"NOT HTTP AT ALL\r\n\r\n")
    assert _assert_raw_problem(garbage, 400)["detail"].startswith("malformed HTTP request")


def test_the_server_keeps_serving_after_refusals(live_server: str) -> None:
    assert requests.get(f"{live_server}/health", timeout=10).status_code == 200
    ok = requests.get(f"{live_server}/v1/projects", params={"bbox": BBOX}, timeout=10)
    assert ok.status_code == 200


def test_the_bounds_are_in_the_openapi_document(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert "414" in document["info"]["description"] and "8,192" in document["info"]["description"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert {"413", "414", "431"} <= set(operation["responses"]), (path, method)


# --------------------------------------------------------------------------------------------
# 4.6 Headers


@pytest.mark.parametrize(
    "url",
    [
        "/health",
        "/openapi.json",
        f"/v1/projects?bbox={BBOX}",
        "/v1/projects/999",
        "/v1/tiles/communes/9/265/187.mvt",
        "/v1/territories/communes/06088",
        "/map",
        "/map/static/map.js",
        "/map/static/nothing.js",
    ],
)
def test_every_answer_forbids_sniffing_and_referrers(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.headers["x-content-type-options"] == "nosniff", url
    assert response.headers["referrer-policy"] == "no-referrer", url


def test_refusals_before_the_routes_carry_the_headers_too(client: TestClient) -> None:
    for response in (
        client.get("/health", headers={"X-Padding": "a" * 17_000}),
        client.post("/v1/contributions", content=b"{" * BIG_BODY, headers=STAFF),
        client.get("/v1/projects/nearby", params={"lat": "٤"}),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"


def test_the_map_page_keeps_its_own_headers(client: TestClient) -> None:
    response = client.get("/map")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers.get_list("referrer-policy") == ["no-referrer"]


@pytest.mark.parametrize("value", ["3.0", "1_0", " 3", "٣"])
def test_ids_in_every_path_are_ascii_digits_only(client: TestClient, value: str) -> None:
    """The users' and members' paths read ids with the same strict parser as the others."""
    for method, path in (
        ("GET", f"/v1/users/{value}"),
        ("PATCH", f"/v1/users/{value}"),
        ("DELETE", f"/v1/members/{value}/2"),
        ("DELETE", f"/v1/members/2/{value}"),
    ):
        answer = client.request(method, path, headers=STAFF, json={} if method == "PATCH" else None)
        body = assert_problem(answer, 422)
        assert "not an integer" in body["detail"], (method, path, body)


@pytest.mark.parametrize("value", [True, 3.0, "3.5"])
def test_ids_in_a_body_are_integers_not_booleans_or_decimals(
    client: TestClient, value: object
) -> None:
    body = assert_problem(
        client.post("/v1/users", headers=STAFF, json={"id": value, "commune": "75056"}), 422
    )
    assert "id" in body["detail"] and "not an integer" in body["detail"], body
