"""Public meetings: JSON Lines import, all or nothing."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.catalog import FILE
from contracts.meetings import MeetingRecord
from geo_engine import meetings as meeting_writes
from geo_engine.db import connect
from geo_engine.jsonl import ImportRejected, read_records
from geo_engine.settings import DatabaseSettings

app = typer.Typer(no_args_is_help=True, help="Public meetings of projects.")


@app.command("import")
def import_meetings(file: Path = FILE) -> None:
    """Announce or replace meetings (one JSON object per line: id, project_id, kind, title,
    place, location, starts_at, ends_at); one bad line and nothing is written."""
    try:
        lines = read_records(file, MeetingRecord, lambda r: r.id)
    except ImportRejected as exc:
        raise exc.within("nothing imported, invalid lines") from None
    with connect(DatabaseSettings()) as conn:
        try:
            written = meeting_writes.store_meetings(conn, lines, file.name)
        except ImportRejected as exc:
            conn.rollback()
            raise exc.within("nothing imported") from None
        conn.commit()
    typer.echo(f"{len(lines):,} meetings imported, {written:,} rows written")
