"""The ``geo-engine`` command line: one entry point for every part of the engine."""

from __future__ import annotations

import typer

from geo_engine.cli import bench, db, fixtures, geo, status, users

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
app.add_typer(db.app, name="db")
app.add_typer(geo.app, name="geo")
app.add_typer(users.app, name="users")
app.add_typer(fixtures.app, name="fixtures")
app.command("bench")(bench.bench)
app.command("status")(status.status)
