"""``geo-engine geo locate LAT LON`` run as a real subprocess against the loaded France.

Exit 0 with one JSON object on stdout; exit 3 (sea, abroad) and exit 2 (invalid values) with
one line on stderr naming what is wrong. All invocations run concurrently once per module.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import shapely
from shapely.geometry import Point, shape

from geo_engine.settings import DatabaseSettings
from tests.cli import Run, run_cli

pytestmark = pytest.mark.geodata


FOUND = {
    "paris": ("48.856389", "2.352222"),  # Hôtel de Ville
    "ouessant": ("48.4575", "-5.0956"),  # no EPCI, negative longitude
    "reunion": ("-21.1", "55.5"),  # negative latitude, inland La Réunion
}
NOWHERE = {
    "biscay": ("45", "-3"),
}
# name -> (args, words the message must contain)
INVALID = {
    "lat-91": (("91", "2"), ["latitude", "91"]),
    "lat-minus-91": (("-91", "2"), ["latitude", "-91"]),
    "lon-minus-181": (("48", "-181"), ["longitude", "-181"]),
    "lat-abc": (("abc", "2"), ["latitude", "abc"]),
    "lon-nan": (("48", "nan"), ["longitude", "nan"]),
    "lat-closing-markup": (("[/b]", "2"), ["latitude", "[/b]"]),
}
CASES = {
    **{f"found-{k}": v for k, v in FOUND.items()},
    **{f"nowhere-{k}": v for k, v in NOWHERE.items()},
    **{f"invalid-{k}": v[0] for k, v in INVALID.items()},
}


@pytest.fixture(scope="module")
def runs(france_db: DatabaseSettings) -> dict[str, Run]:
    env = {"GEO_ENGINE_DATABASE_URL": france_db.database_url}

    def run(args: tuple[str, str]) -> Run:
        # A narrow terminal must not wrap the one-line messages.
        return run_cli("geo", "locate", *args, env=env, columns=40)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(CASES, pool.map(run, CASES.values()), strict=True))
    return results


def _json(result: Run) -> dict[str, object]:
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    data = json.loads(lines[0])
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("name", list(FOUND))
def test_found_prints_one_json_object(runs: dict[str, Run], name: str) -> None:
    data = _json(runs[f"found-{name}"])
    expected = {"commune", "epci", "departement", "region"}
    if name == "paris":
        expected.add("arrondissement")
    assert set(data) == expected
    commune = data["commune"]
    assert isinstance(commune, dict) and set(commune) == {"code", "name", "population"}


def test_paris_town_hall(runs: dict[str, Run]) -> None:
    paris = _json(runs["found-paris"])
    assert paris["commune"]["code"] == "75056"  # type: ignore[index]
    assert paris["arrondissement"] == {"code": "75104", "name": "Paris 4e Arrondissement"}
    assert paris["epci"] == {  # README section 3
        "code": "200054781",
        "name": "Métropole du Grand Paris",
        "xxl": True,
        "members": 130,
    }
    assert paris["departement"] == {"code": "75", "name": "Paris"}
    assert paris["region"] == {"code": "11", "name": "Île-de-France"}


def test_ouessant_has_a_null_epci(runs: dict[str, Run]) -> None:
    data = _json(runs["found-ouessant"])
    assert data["commune"]["code"] == "29155"  # type: ignore[index]
    assert "epci" in data and data["epci"] is None


def test_negative_latitude_in_la_reunion(runs: dict[str, Run], geodata_dir: Path) -> None:
    doc = json.loads(
        (geodata_dir / "communes" / "communes-2026-974.geojson").read_text(encoding="utf-8")
    )
    covering = sorted(
        f["properties"]["code"]
        for f in doc["features"]
        if shapely.covers(shape(f["geometry"]), Point(55.5, -21.1))
    )
    assert covering, "the test point must be inside La Réunion"
    data = _json(runs["found-reunion"])
    assert data["commune"]["code"] == covering[0]  # type: ignore[index]
    assert data["departement"] == {"code": "974", "name": "La Réunion"}


@pytest.mark.parametrize("name", list(NOWHERE))
def test_nowhere_exits_3_with_one_line(runs: dict[str, Run], name: str) -> None:
    result = runs[f"nowhere-{name}"]
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", list(INVALID))
def test_invalid_values_exit_2_naming_the_value(runs: dict[str, Run], name: str) -> None:
    result = runs[f"invalid-{name}"]
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in INVALID[name][1]:
        assert word in lines[0], (word, lines[0])
