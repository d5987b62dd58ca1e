"""Schema migrations."""

from __future__ import annotations

import typer

from geo_engine import db
from geo_engine.settings import DatabaseSettings

app = typer.Typer(no_args_is_help=True, help="Database schema.")


@app.command()
def upgrade(revision: str = typer.Argument("head")) -> None:
    """Migrate the database schema (alembic) up to REVISION."""
    db.upgrade(DatabaseSettings(), revision)
    typer.echo(f"schema at {revision}")
