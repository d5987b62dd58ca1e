"""Users: import, move, settle a pending choice, show."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
from pydantic import ValidationError

from cli.common import err, progress_bar, strict_float, strict_int
from contracts.errors import InvalidInput, NotFound
from contracts.users import UserRecord
from geo_engine.db import connect
from geo_engine.settings import DatabaseSettings, UserSettings
from geo_engine.users.placement import CommuneIndex
from geo_engine.users.places import (
    UserBatch,
    UserImportError,
    choose_commune,
    import_jsonl,
    import_users,
    move_user,
)

app = typer.Typer(no_args_is_help=True, help="Citizens and where they live.")

BULK_USERS = 20_000  # from this many home points, place them in memory rather than one by one
USER_ID = typer.Argument(..., help="the user's id", parser=strict_int, show_default=False)


def load_batch(batch: UserBatch) -> None:
    """Place and store a batch in one transaction, with progress; exit 2 on bad input."""
    with connect(DatabaseSettings()) as conn, progress_bar() as bar:
        points = int((~np.isnan(batch.lon)).sum())
        index = None
        if points >= BULK_USERS:
            task = bar.add_task("indexing commune outlines", total=None)
            index = CommuneIndex.from_db(conn)
            bar.update(task, total=1, completed=1)
        task = bar.add_task(f"placing and storing {len(batch):,} users", total=None)
        try:
            placement = import_users(conn, batch, UserSettings(), index)
        except UserImportError as exc:
            raise exc.within("nothing imported, invalid input") from None
        conn.commit()
        bar.update(task, total=1, completed=1)
    err.print(
        f"{len(batch) - placement.pending:,} users placed; {placement.pending:,} pending "
        "a choice between communes sharing their postal code"
    )


@app.command("import")
def import_(file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True)) -> None:
    """Import users from JSON Lines (all or nothing: one bad line and nothing is written)."""
    with file.open("rb") as handle:
        total = sum(1 for _ in handle)
    with connect(DatabaseSettings()) as conn, progress_bar() as bar:
        index = None
        if total >= BULK_USERS:
            task = bar.add_task("indexing commune outlines", total=None)
            index = CommuneIndex.from_db(conn)
            bar.update(task, total=1, completed=1)
        task = bar.add_task(f"reading, placing and storing {file.name}", total=total)
        try:
            summary = import_jsonl(
                conn, file, UserSettings(), index, progress=lambda n: bar.advance(task, n)
            )
        except UserImportError as exc:
            raise exc.within("nothing imported, invalid lines") from None
        conn.commit()
        bar.update(task, completed=total)
    err.print(
        f"{summary.users - summary.pending:,} users placed; {summary.pending:,} pending "
        "a choice between communes sharing their postal code"
    )


@app.command()
def move(
    user_id: int = USER_ID,
    lat: float | None = typer.Option(None, help="new home latitude", parser=strict_float),
    lon: float | None = typer.Option(None, help="new home longitude", parser=strict_float),
    commune: str | None = typer.Option(None, help="new commune INSEE code"),
    postal_code: str | None = typer.Option(None, help="new postal code"),
) -> None:
    """Re-place a user who moved: give --lat/--lon, or --commune, or --postal-code."""
    home = {"lat": lat, "lon": lon} if lat is not None or lon is not None else None
    try:
        record = UserRecord(id=user_id, home=home, commune=commune, postal_code=postal_code)
    except ValidationError as exc:
        reasons = (e["msg"].removeprefix("Value error, ") for e in exc.errors(include_url=False))
        raise InvalidInput("; ".join(reasons)) from None
    with connect(DatabaseSettings()) as conn:
        placement = move_user(conn, record, UserSettings())
        conn.commit()
    if placement.candidates[0] is not None:
        typer.echo(f"user {user_id} pending: choose among {', '.join(placement.candidates[0])}")
    else:
        typer.echo(f"user {user_id} now in {placement.commune[0]}")


@app.command()
def choose(user_id: int = USER_ID, commune: str = typer.Argument(...)) -> None:
    """Settle a pending user on one of the communes sharing their postal code."""
    with connect(DatabaseSettings()) as conn:
        settled = choose_commune(conn, user_id, commune)
        conn.commit()
    typer.echo(f"user {user_id} now in {settled.commune}")


@app.command()
def show(user_id: int = USER_ID) -> None:
    """Print a user's place as JSON (the stored home is the coarsened point)."""
    with connect(DatabaseSettings()) as conn:
        row = conn.execute(
            """SELECT p.commune_code, c.name, p.arrondissement_code, p.candidate_communes,
                      p.postal_code, ST_X(p.home), ST_Y(p.home), coalesce(u.timezone, c.timezone)
               FROM app_user u LEFT JOIN user_place p ON p.user_id = u.id
               LEFT JOIN commune c ON c.code = p.commune_code WHERE u.id = %s""",
            (user_id,),
        ).fetchone()
    if row is None:
        raise NotFound(f"no user {user_id}")
    keys = [
        "commune",
        "commune_name",
        "arrondissement",
        "candidates",
        "postal_code",
        "home_lon",
        "home_lat",
        "timezone",
    ]
    typer.echo(json.dumps({"id": user_id, **dict(zip(keys, row, strict=True))}, ensure_ascii=False))
