"""The codes people give for where they live, on the whole data set: commune codes,
arrondissement codes (Paris, Lyon, Marseille), former codes, and the former codes that are also
another commune's postal code (refused, naming both readings).

Expected values are read from ``membership/communes.json`` with plain json, and from
well-known facts (75015 is the postal code of Paris 15e and a 1968 code of Bry-sur-Marne).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg
import pytest

from contracts.users import UserRecord
from geo_engine.settings import UserSettings
from geo_engine.users.places import (
    PlacementError,
    UserBatch,
    UserImportError,
    choose_commune,
    import_users,
    move_user,
    read_commune_codes,
)

pytestmark = pytest.mark.geodata

SETTINGS = UserSettings(home_precision_m=0)


@pytest.fixture(scope="module")
def records(geodata_dir: Path) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(
        (geodata_dir / "membership" / "communes.json").read_text("utf-8")
    )
    return data


@pytest.fixture(scope="module")
def arrondissements(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["code"]: r for r in records if r["type"] == "arrondissement-municipal"}


@pytest.fixture(scope="module")
def postal(communes_json: dict[str, dict[str, Any]]) -> dict[str, set[str]]:
    """Live postal code -> the communes it serves."""
    served: dict[str, set[str]] = defaultdict(set)
    for code, r in communes_json.items():
        for p in r.get("codesPostaux") or []:
            served[p].add(code)
    return served


def _import(conn: psycopg.Connection, *places: dict[str, Any]) -> None:
    batch = UserBatch.from_records(
        [UserRecord.model_validate({"id": i, **p}) for i, p in enumerate(places, start=1)]
    )
    import_users(conn, batch, SETTINGS)


def _places(conn: psycopg.Connection) -> dict[int, tuple[str | None, str | None]]:
    rows = conn.execute(
        "SELECT user_id, commune_code, arrondissement_code FROM user_place"
    ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_the_reported_codes(conn: psycopg.Connection) -> None:
    _import(conn, {"commune": "75115"}, {"postal_code": "75015"})
    assert _places(conn) == {1: ("75056", "75115"), 2: ("75056", "75115")}
    with pytest.raises(UserImportError) as refused:
        _import(conn, {"commune": "75015"})
    message = str(refused.value)
    assert message.startswith("line 1: commune: 75015 is ambiguous")
    assert "former INSEE code (until 1968" in message
    assert "Bry-sur-Marne (94015)" in message
    assert "postal code of Paris 15e Arrondissement (75115, Paris 75056)" in message


def test_every_arrondissement_code_places_in_its_commune(
    conn: psycopg.Connection, arrondissements: dict[str, dict[str, Any]]
) -> None:
    codes = sorted(arrondissements)
    assert len(codes) == 45  # Paris 20, Lyon 9, Marseille 16
    assert {arrondissements[c]["commune"] for c in codes} == {"75056", "69123", "13055"}
    _import(conn, *({"commune": c} for c in codes))
    placed = _places(conn)
    assert [placed[i] for i in range(1, 46)] == [(arrondissements[c]["commune"], c) for c in codes]


def test_every_arrondissement_postal_code_names_its_arrondissement(
    conn: psycopg.Connection, arrondissements: dict[str, dict[str, Any]]
) -> None:
    pairs = sorted((p, c) for c, r in arrondissements.items() for p in r["codesPostaux"])
    assert len(pairs) == 46  # 75116 too, the second postal code of Paris 16e
    _import(conn, *({"postal_code": p} for p, _ in pairs))
    placed = _places(conn)
    assert [placed[i] for i in range(1, len(pairs) + 1)] == [
        (arrondissements[c]["commune"], c) for _, c in pairs
    ]


def test_every_code_in_force_reads_as_itself(
    conn: psycopg.Connection,
    communes_json: dict[str, dict[str, Any]],
    arrondissements: dict[str, dict[str, Any]],
) -> None:
    """Codes in force are INSEE codes first, even the 3,045 that are also another commune's
    postal code (and 13210, Marseille 10e, the postal code of Saint-Rémy-de-Provence)."""
    codes = sorted(communes_json) + sorted(arrondissements)
    read = read_commune_codes(conn, codes)
    assert len(read) == 34_969 + 45
    for code in communes_json:
        assert (read[code].commune, read[code].arrondissement, read[code].problem) == (
            code,
            None,
            None,
        )
    for code, r in arrondissements.items():
        assert (read[code].commune, read[code].arrondissement, read[code].problem) == (
            r["commune"],
            code,
            None,
        )


def test_every_former_code_follows_its_commune_unless_it_is_a_postal_code_elsewhere(
    conn: psycopg.Connection,
    communes_json: dict[str, dict[str, Any]],
    former_codes: dict[str, str],
    postal: dict[str, set[str]],
) -> None:
    """The rule, checked on each of the 4,240 former codes of the data set."""
    ambiguous = {old for old, new in former_codes.items() if postal.get(old, set()) - {new}}
    assert len(former_codes) == 4_240
    assert len(ambiguous) == 415
    assert "75015" in ambiguous and "74011" not in ambiguous

    olds = sorted(former_codes)
    with pytest.raises(UserImportError) as refused:
        _import(conn, *({"commune": old} for old in olds))
    # Exactly the ambiguous lines are refused, each naming both readings.
    errors = refused.value.errors
    assert len(errors) == len(ambiguous)
    by_line = {int(e.split(":")[0].removeprefix("line ")): e for e in errors}
    assert {olds[n - 1] for n in by_line} == ambiguous
    for n, error in by_line.items():
        old = olds[n - 1]
        new = former_codes[old]
        assert f"commune: {old} is ambiguous: a former INSEE code" in error
        assert f"of {communes_json[new]['nom']} ({new})" in error
        others = sorted(postal[old] - {new})
        assert f"({others[0]}" in error or f"{others[0]})" in error, error
        assert (f"{len(others)} communes: " in error) == (len(others) > 1), error
    assert _places(conn) == {}  # all or nothing

    # The others follow their commune nouvelle.
    plain = [old for old in olds if old not in ambiguous]
    _import(conn, *({"commune": old} for old in plain))
    placed = _places(conn)
    assert [placed[i] for i in range(1, len(plain) + 1)] == [(former_codes[o], None) for o in plain]


def test_a_move_reads_codes_alike(conn: psycopg.Connection) -> None:
    _import(conn, {"commune": "51454"})
    move_user(conn, UserRecord(id=1, commune="69383"), SETTINGS)  # Lyon 3e
    assert _places(conn) == {1: ("69123", "69383")}
    move_user(conn, UserRecord(id=1, postal_code="13008"), SETTINGS)  # Marseille 8e
    assert _places(conn) == {1: ("13055", "13208")}
    with pytest.raises(PlacementError, match=r"^commune: 75015 is ambiguous: .*Bry-sur-Marne"):
        move_user(conn, UserRecord(id=1, commune="75015"), SETTINGS)
    assert _places(conn) == {1: ("13055", "13208")}


@pytest.mark.parametrize("code", ["٧٥١١٥", "７５１１５", "7511５"])
def test_codes_are_ascii_digits(code: str) -> None:
    with pytest.raises(ValueError, match="commune"):
        UserRecord.model_validate({"id": 1, "commune": code})
    with pytest.raises(ValueError, match="postal_code"):
        UserRecord.model_validate({"id": 1, "postal_code": code})


def test_choose_reads_codes_alike(
    conn: psycopg.Connection,
    former_codes: dict[str, str],
    postal: dict[str, set[str]],
) -> None:
    # A postal code shared by several communes, one of which absorbed a (plain) former code.
    shared, old = min(
        (p, old)
        for p, served in postal.items()
        if len(served) > 1
        for old, new in former_codes.items()
        if new in served and not postal.get(old, set()) - {new}
    )
    new = former_codes[old]
    _import(conn, {"postal_code": shared}, {"postal_code": shared})
    choose_commune(conn, 1, old)
    assert _places(conn)[1] == (new, None)
    ambiguous = "75015"  # reads as Bry-sur-Marne and as Paris 15e: refused, both named
    with pytest.raises(PlacementError, match="Bry-sur-Marne"):
        choose_commune(conn, 2, ambiguous)
    outsider = next(c for c in sorted(postal["51100"]) if c not in postal[shared])
    with pytest.raises(PlacementError, match="not among"):
        choose_commune(conn, 2, outsider)
    assert _places(conn)[2] == (None, None)
