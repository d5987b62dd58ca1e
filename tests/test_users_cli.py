"""``geo-engine users …`` run as real subprocesses against a database of their own.

The CLI commits, so it gets a fresh database holding four real Marne communes cut out of the
data files (Reims, Tinqueux and Bezannes, which share the postal code 51430, and
Châlons-en-Champagne): imports that work, imports that fail and write nothing, ``show``,
``choose`` and ``move``. Eight runs in all, in three rounds of concurrent runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from geo_engine import db
from geo_engine.settings import DatabaseSettings, GeoSettings
from geo_engine.territories import geodata
from geo_engine.territories.load import load
from tests import minidata
from tests.cli import Run, run_cli, run_parallel, write_jsonl

pytestmark = [pytest.mark.geodata, pytest.mark.slow]


REIMS, TINQUEUX, BEZANNES, CHALONS = "51454", "51573", "51058", "51108"
REIMS_FORMER_CODE = "51401"  # anciensCodes of Reims in membership/communes.json
SHARED_POSTAL_CODE = "51430"  # Tinqueux and Bezannes
REIMS_HOTEL_DE_VILLE = {"lon": 4.0317, "lat": 49.2583}


@pytest.fixture(scope="module")
def mini_db(
    make_database: Callable[[], DatabaseSettings],
    geodata_dir: Path,
    geo_settings: GeoSettings,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[DatabaseSettings, minidata.MiniData]:
    mini = minidata.cut(geodata_dir, [REIMS, TINQUEUX, BEZANNES, CHALONS])
    assert mini.record(REIMS)["anciensCodes"] == [REIMS_FORMER_CODE]
    assert mini.record(TINQUEUX)["codesPostaux"] == [SHARED_POSTAL_CODE]
    assert mini.record(BEZANNES)["codesPostaux"] == [SHARED_POSTAL_CODE]
    root = mini.write(tmp_path_factory.mktemp("mini-marne"))
    settings = make_database()
    with db.connect(settings) as conn:
        load(conn, geodata.read(root), geo_settings)
        conn.commit()
    return settings, mini


def _cli(settings: DatabaseSettings, *args: str) -> Run:
    return run_cli(
        "users",
        *args,
        env={
            "GEO_ENGINE_DATABASE_URL": settings.database_url,
            "GEO_ENGINE_HOME_PRECISION_M": "100",
        },
    )


def _snapshot(settings: DatabaseSettings) -> list[tuple[Any, ...]]:
    with db.connect(settings) as conn:
        return conn.execute(
            """SELECT u.id, u.interests, p.commune_code, p.candidate_communes, p.postal_code,
                      ST_AsText(p.home)
               FROM app_user u LEFT JOIN user_place p ON p.user_id = u.id ORDER BY u.id"""
        ).fetchall()


def _distance_m(settings: DatabaseSettings, a: dict[str, float], lon: float, lat: float) -> float:
    with db.connect(settings) as conn:
        row = conn.execute(
            """SELECT ST_Distance(ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography,
                                  ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography)""",
            (a["lon"], a["lat"], lon, lat),
        ).fetchone()
    assert row is not None
    return float(row[0])


def _place(settings: DatabaseSettings, user_id: int) -> tuple[Any, ...] | None:
    with db.connect(settings) as conn:
        return conn.execute(
            "SELECT commune_code, candidate_communes FROM user_place WHERE user_id = %s",
            (user_id,),
        ).fetchone()


def test_users_commands(
    mini_db: tuple[DatabaseSettings, minidata.MiniData], tmp_path: Path
) -> None:
    settings, mini = mini_db
    inside_tinqueux = mini.outline(TINQUEUX).representative_point()
    good = write_jsonl(
        tmp_path / "good.jsonl",
        [
            {"id": 1, "home": REIMS_HOTEL_DE_VILLE, "interests": ["mobilite", "culture"]},
            {"id": 2, "commune": REIMS_FORMER_CODE},
            {"id": 3, "postal_code": SHARED_POSTAL_CODE},
            {"id": 4, "postal_code": "51000", "timezone": "America/Cayenne"},
            {"id": 5, "home": {"lon": inside_tinqueux.x, "lat": inside_tinqueux.y}},
        ],
    )
    # Round 1: a good import.
    imported = _cli(settings, "import", str(good))
    assert imported.returncode == 0, imported.stderr
    assert "4 users placed; 1 pending" in imported.stderr.replace(",", "")
    after_import = _snapshot(settings)
    assert [(r[0], r[2], r[3]) for r in after_import] == [
        (1, REIMS, None),
        (2, REIMS, None),
        (3, None, sorted([TINQUEUX, BEZANNES])),
        (4, CHALONS, None),
        (5, TINQUEUX, None),
    ]

    # Round 2: show, two imports that must fail and write nothing, a wrong choice.
    bad = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"id": 10, "commune": REIMS},
            {"id": 1, "commune": CHALONS},  # would move user 1
            {"id": 11, "home": {"lon": 4.03, "lat": 91}},
            {"id": 12, "postal_code": "51100"},
        ],
    )
    elsewhere = write_jsonl(
        tmp_path / "elsewhere.jsonl",
        [
            {"id": 20, "commune": CHALONS},
            {"id": 21, "commune": "75056"},  # a real commune, but not in this database
            {"id": 3, "commune": REIMS},
        ],
    )
    runs = run_parallel(
        lambda *args: _cli(settings, *args),
        {
            "show 1": ["show", "1"],
            "show 3": ["show", "3"],
            "bad": ["import", str(bad)],
            "elsewhere": ["import", str(elsewhere)],
            "choose wrong": ["choose", "3", REIMS],
        },
    )
    shown = json.loads(runs["show 1"].stdout)
    assert runs["show 1"].returncode == 0, runs["show 1"].stderr
    assert shown["id"] == 1 and shown["commune"] == REIMS and shown["commune_name"] == "Reims"
    assert shown["arrondissement"] is None and shown["candidates"] is None
    assert shown["timezone"] == "Europe/Paris"  # the commune's: none was given
    # The stored home is the coarsened point, never the one given, and close to it.
    assert shown["home_lon"] != REIMS_HOTEL_DE_VILLE["lon"]
    assert shown["home_lat"] != REIMS_HOTEL_DE_VILLE["lat"]
    assert _distance_m(settings, REIMS_HOTEL_DE_VILLE, shown["home_lon"], shown["home_lat"]) < 75
    pending = json.loads(runs["show 3"].stdout)
    assert pending["commune"] is None
    assert pending["candidates"] == sorted([TINQUEUX, BEZANNES])
    assert pending["postal_code"] == SHARED_POSTAL_CODE

    assert runs["bad"].returncode == 2
    assert "bad.jsonl:3" in runs["bad"].stderr and "latitude" in runs["bad"].stderr
    assert "bad.jsonl:1" not in runs["bad"].stderr
    assert runs["elsewhere"].returncode == 2
    assert "line 2: commune" in runs["elsewhere"].stderr and "75056" in runs["elsewhere"].stderr
    assert runs["choose wrong"].returncode == 2
    assert BEZANNES in runs["choose wrong"].stderr and TINQUEUX in runs["choose wrong"].stderr
    assert _snapshot(settings) == after_import  # nothing written by any of them

    # Round 3: the right choice, and a move to the shared postal code.
    runs = run_parallel(
        lambda *args: _cli(settings, *args),
        {
            "choose": ["choose", "3", TINQUEUX],
            "move": ["move", "1", "--postal-code", SHARED_POSTAL_CODE],
        },
    )
    assert runs["choose"].returncode == 0, runs["choose"].stderr
    assert _place(settings, 3) == (TINQUEUX, None)
    assert runs["move"].returncode == 0, runs["move"].stderr
    assert BEZANNES in runs["move"].stdout and TINQUEUX in runs["move"].stdout
    assert _place(settings, 1) == (None, sorted([TINQUEUX, BEZANNES]))
