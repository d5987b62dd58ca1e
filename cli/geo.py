"""Territories: load France's geography, locate a point."""

from __future__ import annotations

import json

import typer

from cli.common import err, progress_bar
from contracts.errors import EngineError, OutsideFrance
from contracts.territories import parse_coordinates
from geo_engine.db import connect
from geo_engine.settings import DatabaseSettings, GeoSettings
from geo_engine.territories import geodata
from geo_engine.territories.load import load as load_territories
from geo_engine.territories.locate import locate as locate_point

app = typer.Typer(no_args_is_help=True, help="Territories of France.")

LOAD_STEPS = [
    "reading files",
    "staging",
    "repairing geometries",
    "upserting territories",
    "remapping users of merged communes",
    "cutting outlines for locate",
    "computing EPCI outlines",
    "committing",
]


@app.command()
def load() -> None:
    """Load (or update to a newer millésime) communes, EPCI, départements and régions."""
    settings = GeoSettings()
    try:
        root = settings.require_geodata_dir()
    except FileNotFoundError as exc:
        raise EngineError(str(exc)) from None
    with progress_bar() as bar:
        task = bar.add_task("reading files", total=len(LOAD_STEPS))

        def step(name: str) -> None:
            bar.update(task, description=name, advance=1)

        data = geodata.read(root)
        with connect(DatabaseSettings()) as conn:
            report = load_territories(conn, data, settings, progress=step)
            step("committing")
            conn.commit()
        bar.update(task, completed=len(LOAD_STEPS), description="done")
    for name, counts in report.changes.items():
        err.print(f"{name}: " + ", ".join(f"{n} {k}" for k, n in counts.items()), highlight=False)
    err.print(f"XXL flags changed: {report.xxl_flags_changed}")
    err.print(f"geometries repaired with ST_MakeValid: {report.repaired_geometries}")
    err.print(
        f"users remapped to merged communes: {report.users_remapped}; "
        f"left unplaced: {report.users_unplaced}"
    )
    verdict = "loaded" if report.changed else "already up to date, nothing changed"
    typer.echo(f"millésime {report.millesime}: {verdict}")


@app.command(context_settings={"ignore_unknown_options": True})
def locate(lat: str, lon: str) -> None:
    """Print the commune, EPCI, département and région of LAT LON as one JSON object.

    Exit 3 when no commune covers the point (sea, abroad), 2 on invalid coordinates.
    """
    flat, flon = parse_coordinates(lat, lon)
    with connect(DatabaseSettings()) as conn:
        location = locate_point(conn, flat, flon)
    if location is None:
        raise OutsideFrance(f"no French commune at lat={flat} lon={flon} (sea or abroad)")
    typer.echo(json.dumps(location.as_json_dict(), ensure_ascii=False))
