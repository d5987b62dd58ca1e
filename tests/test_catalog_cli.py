"""``geo-engine orgs|members|projects|contributions import`` and ``geo-engine fixtures load
--projects`` / ``fixtures catalog`` run as real subprocesses against a database of their own.

The CLI commits, so it gets a fresh database holding four real Marne communes cut out of the data
files (Reims, Tinqueux, Bezannes and Châlons-en-Champagne): a generated catalogue loads, its files
import back, and files with a bad line (or bad lines in two batches) exit 2 and write nothing.
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
PARIS = "75056"  # a real commune, but not in this database
IMPORTS = {
    "orgs": "organisations.jsonl",
    "members": "members.jsonl",
    "projects": "projects.jsonl",
    "contributions": "contributions.jsonl",
}


@pytest.fixture(scope="module")
def mini_db(
    make_database: Callable[[], DatabaseSettings],
    geodata_dir: Path,
    geo_settings: GeoSettings,
    tmp_path_factory: pytest.TempPathFactory,
) -> DatabaseSettings:
    mini = minidata.cut(geodata_dir, [REIMS, TINQUEUX, BEZANNES, CHALONS])
    root = mini.write(tmp_path_factory.mktemp("mini-marne"))
    settings = make_database()
    with db.connect(settings) as conn:
        load(conn, geodata.read(root), geo_settings)
        conn.commit()
    return settings


def _cli(settings: DatabaseSettings, *args: str) -> Run:
    return run_cli(*args, env={"GEO_ENGINE_DATABASE_URL": settings.database_url})


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _snapshot(settings: DatabaseSettings) -> dict[str, list[tuple[Any, ...]]]:
    with db.connect(settings) as conn:
        return {
            "organisation": conn.execute(
                "SELECT id, kind, name, territory_code FROM organisation ORDER BY id"
            ).fetchall(),
            "member": conn.execute(
                "SELECT organisation_id, user_id, role FROM organisation_member ORDER BY 1, 2"
            ).fetchall(),
            "project": conn.execute(
                "SELECT id, organisation_id, tool, title, ST_AsText(place) FROM project ORDER BY id"
            ).fetchall(),
            "territory": conn.execute(
                "SELECT project_id, level, code FROM project_territory ORDER BY 1, 2, 3"
            ).fetchall(),
            "contribution": conn.execute(
                "SELECT id, project_id, category, ST_AsText(geom) FROM contribution ORDER BY id"
            ).fetchall(),
            "outbox": conn.execute(
                "SELECT type, count(*) FROM outbox GROUP BY type ORDER BY type"
            ).fetchall(),
        }


def test_catalog_commands(mini_db: DatabaseSettings, tmp_path: Path) -> None:
    settings = mini_db
    # A population, then a catalogue on it, in one command.
    loaded = _cli(
        settings,
        "fixtures",
        "load",
        "--users",
        "300",
        "--projects",
        "40",
        "--seed",
        "3",
        "--announce",
    )
    assert loaded.returncode == 0, loaded.stderr
    after_load = _snapshot(settings)
    assert len(after_load["project"]) == 40
    assert after_load["organisation"] and after_load["member"]
    assert {c for _, level, c in after_load["territory"] if level == "commune"} <= {
        REIMS,
        TINQUEUX,
        BEZANNES,
        CHALONS,
    }
    assert "40 projects" in loaded.stderr.replace(",", "")
    # Each row the load wrote announced itself, once.
    assert dict(after_load["outbox"]) == {
        "user.registered": 300,
        "organisation.created": len(after_load["organisation"]),
        "member.added": len(after_load["member"]),
        "project.published": 40,
        "contribution.created": len(after_load["contribution"]),
    }

    # Files of another seed, imported back in order: they replace what the load wrote.
    out = tmp_path / "catalog"
    written = _cli(settings, "fixtures", "catalog", "--out", str(out), "--projects", "30")
    assert written.returncode == 0, written.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(IMPORTS.values())
    for command, name in IMPORTS.items():
        run = _cli(settings, command, "import", str(out / name))
        assert run.returncode == 0, (command, run.stderr)
        count = len(_read(out / name))
        assert run.stdout.replace(",", "").startswith(f"{count} "), run.stdout
    imported = _snapshot(settings)
    projects = _read(out / "projects.jsonl")
    by_id = {p["id"]: p for p in projects}
    assert [(r[0], r[3]) for r in imported["project"][:30]] == [
        (p["id"], p["title"]) for p in projects
    ]
    contributions = _read(out / "contributions.jsonl")
    assert {c["id"] for c in contributions} <= {r[0] for r in imported["contribution"]}
    for c in contributions:
        assert by_id[c["project_id"]]["tool"] == "carte_participative"
    # Importing the same file again writes no row.
    again = _cli(settings, "projects", "import", str(out / "projects.jsonl"))
    assert again.returncode == 0 and "0 rows written" in again.stdout, again.stdout
    assert _snapshot(settings) == imported  # ...and announces nothing

    # Bad files, all at once: each exits 2, names its bad lines and writes nothing.
    first_project = projects[0]
    carte = next(p["id"] for p in projects if p["tool"] == "carte_participative")
    not_carte = next(p["id"] for p in projects if p["tool"] != "carte_participative")
    point = {"lon": 4.0317, "lat": 49.2583}
    new_org = {"id": 900, "kind": "association", "name": "Amis de Reims"}
    many = [{**first_project, "id": 5000 + n} for n in range(1, 1201)]
    many[4]["organisation_id"] = 777  # line 5, first batch
    many[1149]["organisation_id"] = 778  # line 1150, second batch
    files = {
        "orgs-json": write_jsonl(tmp_path / "orgs-json.jsonl", [new_org, "{not json", {"id": 901}]),
        "orgs-ref": write_jsonl(
            tmp_path / "orgs-ref.jsonl",
            [
                new_org,
                {**new_org, "id": 901, "territory": {"level": "commune", "code": PARIS}},
            ],
        ),
        "members": write_jsonl(
            tmp_path / "members.jsonl",
            [{"organisation_id": 1, "user_id": 2}, {"organisation_id": 1, "user_id": 99999}],
        ),
        "projects": write_jsonl(
            tmp_path / "projects.jsonl",
            [{**first_project, "id": 900}, {**first_project, "id": 901, "organisation_id": 555}],
        ),
        "many": write_jsonl(tmp_path / "many.jsonl", many),
        "contributions": write_jsonl(
            tmp_path / "contributions.jsonl",
            [
                {"id": 90001, "project_id": carte, "category": "Voirie", "location": point},
                {"id": 90002, "project_id": not_carte, "category": "Voirie", "location": point},
            ],
        ),
    }
    command = {"orgs-json": "orgs", "orgs-ref": "orgs", "many": "projects"}
    runs = run_parallel(
        lambda *args: _cli(settings, *args),
        {name: [command.get(name, name), "import", str(path)] for name, path in files.items()},
    )
    for name, run in runs.items():
        assert run.returncode == 2, (name, run.stdout, run.stderr)
        assert "nothing imported" in run.stderr, (name, run.stderr)
    assert "orgs-json.jsonl:2" in runs["orgs-json"].stderr
    assert "orgs-json.jsonl:3: kind" in runs["orgs-json"].stderr
    assert f"orgs-ref.jsonl:2: territory: no commune with code {PARIS}" in runs["orgs-ref"].stderr
    assert "members.jsonl:2: user_id: no user 99999" in runs["members"].stderr
    assert "projects.jsonl:2: organisation_id: no organisation 555" in runs["projects"].stderr
    assert "many.jsonl:5: organisation_id: no organisation 777" in runs["many"].stderr
    assert "many.jsonl:1150: organisation_id: no organisation 778" in runs["many"].stderr
    assert f"project {not_carte} is a" in runs["contributions"].stderr
    assert "contributions.jsonl:2: project_id" in runs["contributions"].stderr
    assert _snapshot(settings) == imported
