"""One error model (issue 7, part 3) and the strict parsers of fault 4.4, without a database.

Every exception the engine defines is an ``EngineError`` whose kind has a row in ``POLICIES``;
every text field of ``contracts/`` refuses control characters; numbers are ASCII digits only;
cursors and token claims refuse what they did not write.
"""

from __future__ import annotations

import base64
import importlib
import inspect
import pkgutil
import time
from typing import Any

import jwt
import pytest
from pydantic import BaseModel, ValidationError

from api import cursors
from api.auth import make_token, viewer_from_token
from contracts.catalog import ContributionRecord, OrganisationRecord, ProjectRecord
from contracts.errors import (
    POLICIES,
    Conflict,
    EngineError,
    InvalidInput,
    NotFound,
    OutsideFrance,
    Unauthenticated,
    Unavailable,
    policy_of,
)
from contracts.territories import InvalidCoordinates, parse_coordinates
from contracts.values import check_text, parse_int, parse_number
from geo_engine.jsonl import ImportRejected
from geo_engine.territories.geodata import GeoDataError
from geo_engine.territories.load import MillesimeError
from geo_engine.users.places import PlacementError, UnknownUser, UserImportError
from tests.cli import run_cli

SECRET = "unit-test-secret-of-at-least-32-characters"  # noqa: S105

# --------------------------------------------------------------------------------------------
# The table


def _engine_modules() -> list[Any]:
    modules = []
    for package in ("geo_engine", "api", "contracts"):
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
            if ".migrations" in info.name:
                continue
            modules.append(importlib.import_module(info.name))
    return modules


def test_every_exception_the_engine_defines_is_an_engine_error() -> None:
    defined = [
        (module.__name__, cls)
        for module in _engine_modules()
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == module.__name__
    ]
    assert len(defined) >= 12, defined  # the kinds, and the roots that were apart before
    # Private ones are control flow inside one module (api.limits' body counter), never raised
    # to a caller.
    stray = [f"{m}.{c.__name__}" for m, c in defined if not c.__name__.startswith("_")]
    stray = [name for name in stray if not issubclass(_resolve(name), EngineError)]
    assert stray == [], f"exceptions outside the error model: {stray}"


def _resolve(dotted: str) -> type[BaseException]:
    module, _, name = dotted.rpartition(".")
    cls: type[BaseException] = getattr(importlib.import_module(module), name)
    return cls


def test_the_former_roots_have_their_kind() -> None:
    assert issubclass(ImportRejected, InvalidInput)
    assert issubclass(UserImportError, InvalidInput)
    assert issubclass(PlacementError, InvalidInput)
    assert issubclass(GeoDataError, InvalidInput)
    assert issubclass(MillesimeError, Conflict)
    # Still a ValueError: pydantic validators turn it into a validation error on the field.
    assert issubclass(InvalidCoordinates, InvalidInput) and issubclass(
        InvalidCoordinates, ValueError
    )
    # An unknown user is a not-found before it is a bad placement request.
    assert policy_of(UnknownUser("no user 4")).status == 404
    assert policy_of(UnknownUser("no user 4")) is POLICIES[NotFound]


def test_the_table_keeps_the_exit_codes_the_cli_promised() -> None:
    assert POLICIES[InvalidInput].exit_code == 2
    assert POLICIES[OutsideFrance].exit_code == 3
    assert POLICIES[EngineError].exit_code == 1
    assert POLICIES[Unavailable].exit_code == 75
    statuses = {kind: policy.status for kind, policy in POLICIES.items()}
    assert statuses[InvalidInput] == 422 and statuses[Unauthenticated] == 401
    assert len({p.problem_type for p in POLICIES.values()}) == len(POLICIES)
    # No exit code of an error is 0 (success), and every kind of the module is in the table.
    assert all(p.exit_code != 0 for p in POLICIES.values())
    kinds = [
        cls
        for _, cls in inspect.getmembers(
            importlib.import_module("contracts.errors"), inspect.isclass
        )
        if issubclass(cls, EngineError)
    ]
    assert set(kinds) == set(POLICIES)


def test_the_table_says_what_a_consumer_does_with_each_kind() -> None:
    # A service that is down comes back: retry. An event that cannot hold (bad shape, unknown
    # project, outside France) never will: dead-letter it at once. A conflict means the state
    # already moved on: drop. An unexpected error is retried until max_deliveries.
    assert POLICIES[Unavailable].consumer == "retry"
    assert POLICIES[EngineError].consumer == "retry"
    for kind in (InvalidInput, NotFound, OutsideFrance):
        assert POLICIES[kind].consumer == "dead-letter"
    assert POLICIES[Conflict].consumer == "drop"
    assert policy_of(UnknownUser("no user 4")).consumer == "dead-letter"
    assert {p.consumer for p in POLICIES.values()} == {"retry", "dead-letter", "drop"}


def test_an_import_rejection_lists_where_and_why() -> None:
    error = ImportRejected(["users.jsonl:3: home: latitude 95.0 is out of range", "no colon"])
    assert error.where_reason() == [
        {"where": "users.jsonl:3", "reason": "home: latitude 95.0 is out of range"},
        {"reason": "no colon"},
    ]
    assert error.within("nothing imported").detail.startswith("nothing imported:\nusers.jsonl:3")


# --------------------------------------------------------------------------------------------
# One strict number parser


@pytest.mark.parametrize(
    ("text", "value"),
    [("48.85", 48.85), ("-1.5e-3", -0.0015), ("+2", 2.0), (".5", 0.5), ("7.", 7.0)],
)
def test_numbers_in_ascii_digits_are_read(text: str, value: float) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "٤٨",
        "４８",
        "²",
        "4٨",
        " 48",
        "48 ",
        "4_8",
        "nan",
        "inf",
        "Infinity",
        "0x10",
        "",
        "1e",
        "1" * 41,
    ],
)
def test_anything_else_is_not_a_number(text: str) -> None:
    with pytest.raises(ValueError, match="not a number"):
        parse_number(text)
    with pytest.raises(ValueError, match="not an integer"):
        parse_int(text)


def test_integers_are_ascii_digits_only() -> None:
    assert parse_int("12") == 12 and parse_int("-3") == -3
    for text in ("1.0", "1e3", "١٢", "１２"):
        with pytest.raises(ValueError):
            parse_int(text)


@pytest.mark.parametrize(("lat", "lon"), [("٤٨.٨", "2.35"), ("48.85", "２.３５"), ("48_85", "2")])
def test_coordinates_given_as_text_go_through_the_same_parser(lat: str, lon: str) -> None:
    with pytest.raises(InvalidCoordinates, match="is not a number"):
        parse_coordinates(lat, lon)


def test_the_cli_refuses_arabic_indic_digits_with_exit_2() -> None:
    done = run_cli("geo", "locate", "٤٨.٨٥", "2.35", env={})
    assert done.returncode == 2, done.stderr
    assert "latitude" in done.stderr and "not a number" in done.stderr
    assert "Traceback" not in done.stderr


# --------------------------------------------------------------------------------------------
# One text validator


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\ud800"])
def test_control_characters_and_lone_surrogates_are_refused(char: str) -> None:
    with pytest.raises(ValueError, match=f"U\\+{ord(char):04X}"):
        check_text(f"Signalez{char}ici")
    with pytest.raises(ValueError, match=f"U\\+{ord(char):04X}"):
        check_text(f"Signalez{char}ici", multiline=True)


def test_line_breaks_only_in_multiline_text() -> None:
    assert check_text("Été à Reims — 🚲", multiline=False) == "Été à Reims — 🚲"
    assert check_text("ligne 1\nligne 2\tfin", multiline=True) == "ligne 1\nligne 2\tfin"
    with pytest.raises(ValueError, match=r"line break or tab \(U\+000A\) at position 7"):
        check_text("ligne 1\nligne 2")


ORG = {"id": 1, "kind": "association", "name": "Les amis du vélo"}
PROJECT = {
    "id": 1,
    "organisation_id": 1,
    "space": "territoires",
    "tool": "carte_participative",
    "title": "Signalez les trottoirs encombrés",
    "description": "Première ligne.\nDeuxième ligne.",
    "scope": {"kind": "national"},
}
CONTRIBUTION = {
    "id": 1,
    "project_id": 1,
    "category": "voirie",
    "title": "Un banc ici",
    "location": {"lon": 4.03, "lat": 49.25},
}
TEXT_FIELDS: list[tuple[type[BaseModel], dict[str, Any], str]] = [
    (OrganisationRecord, ORG, "name"),
    (ProjectRecord, PROJECT, "title"),
    (ProjectRecord, PROJECT, "description"),
    (ContributionRecord, CONTRIBUTION, "category"),
    (ContributionRecord, CONTRIBUTION, "title"),
]


def test_every_free_text_field_of_the_contracts_is_listed_here() -> None:
    free = {
        (model.__name__, name)
        for model in (OrganisationRecord, ProjectRecord, ContributionRecord)
        for name, field in model.model_fields.items()
        if field.annotation is str and not any(hasattr(m, "pattern") for m in field.metadata)
    }
    assert free == {(m.__name__, f) for m, _, f in TEXT_FIELDS}


@pytest.mark.parametrize(("model", "valid", "field"), TEXT_FIELDS)
def test_every_text_field_refuses_a_nul(
    model: type[BaseModel], valid: dict[str, Any], field: str
) -> None:
    model.model_validate(valid)
    with pytest.raises(ValidationError) as caught:
        model.model_validate({**valid, field: "Un\x00banc"})
    errors = caught.value.errors()
    assert [e["loc"] for e in errors] == [(field,)]
    assert "U+0000" in errors[0]["msg"]
    with pytest.raises(ValidationError):
        model.model_validate({**valid, field: "x" * 20_001})


# --------------------------------------------------------------------------------------------
# Cursors and tokens


@pytest.mark.parametrize(
    "cursor",
    [
        "MS7DqQ",  # base64 of "1.é": the 500 of fault 4.4
        "é",
        "MQ",  # "1": no signature
        base64.urlsafe_b64encode("١٢.abcdef0123456789abcdef01".encode()).decode().rstrip("="),
        base64.urlsafe_b64encode(b"1.ABCDEF0123456789ABCDEF01").decode().rstrip("="),
        "!!!!",
        "A" * 201,
    ],
)
def test_a_cursor_this_api_did_not_write_is_invalid_input(cursor: str) -> None:
    with pytest.raises(InvalidInput, match="cursor"):
        cursors.decode(cursor, None, SECRET)


def test_a_cursor_round_trips_for_its_viewer_only() -> None:
    cursor = cursors.encode(1234, 7, SECRET)
    assert cursors.decode(cursor, 7, SECRET) == 1234
    with pytest.raises(InvalidInput, match="to this caller"):
        cursors.decode(cursor, 8, SECRET)


def _token(**claims: Any) -> str:
    now = int(time.time())
    return jwt.encode({"iat": now, "exp": now + 60, **claims}, SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"sub": "²"}, "sub must be a user id"),
        ({"sub": "٧"}, "sub must be a user id"),
        ({"sub": "７"}, "sub must be a user id"),
        ({"sub": "07"}, "sub must be a user id"),
        ({"sub": "0"}, "sub must be a user id"),
        ({"sub": " 7"}, "sub must be a user id"),
        ({"sub": "7.0"}, "sub must be a user id"),
        ({"sub": str(2**63)}, "sub must be a user id"),
        ({"sub": 7}, "ubject must be a string"),
        ({"sub": True}, "ubject must be a string"),
        ({"sub": "7", "staff": "yes"}, "staff must be true or false"),
        ({"sub": "7", "staff": 1}, "staff must be true or false"),
        ({"sub": "7", "exp": "soon"}, "must be an integer"),
        ({"sub": "7", "nbf": "now"}, "must be an integer"),
        ({"sub": "7", "iat": "then"}, "must be an integer"),
    ],
)
def test_every_claim_is_checked_for_its_type(claims: dict[str, Any], reason: str) -> None:
    with pytest.raises(Unauthenticated, match=reason) as caught:
        viewer_from_token(_token(**claims), SECRET)
    header = (caught.value.headers or {})["WWW-Authenticate"]
    assert header.isascii() and header.startswith('Bearer error="invalid_token"')


def test_a_good_token_is_its_viewer() -> None:
    viewer = viewer_from_token(make_token(42, SECRET, staff=True), SECRET)
    assert viewer.user_id == 42 and viewer.staff


def test_a_setting_that_does_not_hold_is_one_line_and_exit_2() -> None:
    done = run_cli(
        "geo", "locate", "48.85", "2.35", env={"GEO_ENGINE_DATABASE_URL": "mysql://x@127.0.0.1/x"}
    )
    assert done.returncode == POLICIES[InvalidInput].exit_code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "GEO_ENGINE_DATABASE_URL must be a postgresql:// URL" in lines[0]


def test_a_user_id_in_other_digits_is_a_usage_error() -> None:
    done = run_cli("users", "show", "١٢", env={})
    assert done.returncode == 2 and "not an integer" in done.stderr, done.stderr


@pytest.mark.parametrize("text", ["1_0", " 10", "١٠", "１０"])
def test_numbers_given_as_strings_in_records_take_the_same_parser(text: str) -> None:
    from contracts.users import UserRecord

    assert UserRecord.model_validate({"id": "10", "postal_code": "51100"}).id == 10
    with pytest.raises(ValidationError, match="not an integer"):
        UserRecord.model_validate({"id": text, "postal_code": "51100"})
    with pytest.raises(ValidationError, match="not a number"):
        UserRecord.model_validate({"id": 1, "home": {"lon": text, "lat": "48.85"}})
    with pytest.raises(ValidationError, match="not an integer"):
        OrganisationRecord.model_validate({**ORG, "id": text})
