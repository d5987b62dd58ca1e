"""Organisations, members, projects and contributions: JSON Lines imports, all or nothing."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import TypeVar

import psycopg
import typer
from pydantic import BaseModel
from rich.progress import TaskID

from cli.common import progress_bar
from contracts.catalog import ContributionRecord, MemberRecord, OrganisationRecord, ProjectRecord
from geo_engine.catalog import load as catalog_load
from geo_engine.catalog.imports import catalog_files, import_catalog
from geo_engine.db import connect
from geo_engine.jsonl import ImportRejected, Line, read_records
from geo_engine.settings import CatalogSettings, DatabaseSettings

M = TypeVar("M", bound=BaseModel)
Store = Callable[[psycopg.Connection, Sequence[Line[M]], str, CatalogSettings | None], int]

app = typer.Typer(no_args_is_help=True, help="The whole catalogue at once.")

orgs = typer.Typer(no_args_is_help=True, help="Organisations that run projects.")
members = typer.Typer(no_args_is_help=True, help="Who belongs to which organisation.")
projects = typer.Typer(no_args_is_help=True, help="Participation projects and their scopes.")
contributions = typer.Typer(no_args_is_help=True, help="Points on participatory maps.")

FILE = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="JSON Lines file")

# Rows per store call. Every store is set-wise, and a big one builds the table's indexes once
# after its insert (geo_engine/catalog/bulk.py), which only pays when the batch is the whole
# import: a file is one batch up to this size.
MAX_BATCH = 2_000_000
BATCH = dict.fromkeys(["organisations", "members", "projects", "contributions"], MAX_BATCH)


def store_batched(
    conn: psycopg.Connection,
    store: Store[M],
    lines: Sequence[Line[M]],
    source: str,
    batch: int,
    progress: Callable[[int], None] = lambda _n: None,
    settings: CatalogSettings | None = None,
) -> int:
    """``store`` in batches, in the caller's transaction; rows written.

    Each batch runs under a savepoint: a rejected batch is rolled back and the others are still
    checked, so ImportRejected names every bad line of every batch (and the caller, who must
    then roll back, has nothing to undo but the good batches).
    """
    written = 0
    errors: list[str] = []
    total = 0
    for start in range(0, len(lines), batch):
        chunk = lines[start : start + batch]
        conn.execute("SAVEPOINT catalog_batch")
        try:
            written += store(conn, chunk, source, settings)
        except ImportRejected as exc:
            conn.execute("ROLLBACK TO SAVEPOINT catalog_batch")
            errors.extend(exc.errors)
            total += exc.total
        else:
            conn.execute("RELEASE SAVEPOINT catalog_batch")
        progress(len(chunk))
    if errors:
        raise ImportRejected(errors, total)
    return written


def _import(
    file: Path,
    model: type[M],
    key: Callable[[M], Hashable],
    store: Store[M],
    what: str,
) -> None:
    with file.open("rb") as handle:
        total = sum(1 for _ in handle)
    with progress_bar() as bar:
        task = bar.add_task(f"reading {file.name}", total=total)
        try:
            lines = read_records(file, model, key, progress=lambda n: bar.advance(task, n))
        except ImportRejected as exc:
            raise exc.within("nothing imported, invalid lines") from None
        bar.update(task, completed=total)
        task = bar.add_task(f"storing {len(lines):,} {what}", total=len(lines))
        with connect(DatabaseSettings()) as conn:
            try:
                written = store_batched(
                    conn,
                    store,
                    lines,
                    file.name,
                    BATCH[what],
                    progress=lambda n: bar.advance(task, n),
                    settings=CatalogSettings(),
                )
            except ImportRejected as exc:
                conn.rollback()
                raise exc.within("nothing imported") from None
            conn.commit()
    typer.echo(f"{len(lines):,} {what} imported, {written:,} rows written")


@orgs.command("import")
def import_organisations(file: Path = FILE) -> None:
    """Create or update organisations (all or nothing: one bad line and nothing is written)."""
    _import(
        file,
        OrganisationRecord,
        lambda r: r.id,
        catalog_load.store_organisations,
        "organisations",
    )


@members.command("import")
def import_members(file: Path = FILE) -> None:
    """Add members or change their role (all or nothing)."""
    _import(
        file,
        MemberRecord,
        lambda r: (r.organisation_id, r.user_id),
        catalog_load.store_members,
        "members",
    )


@projects.command("import")
def import_projects(file: Path = FILE) -> None:
    """Create or replace projects with their scopes (all or nothing)."""
    _import(file, ProjectRecord, lambda r: r.id, catalog_load.store_projects, "projects")


@contributions.command("import")
def import_contributions(file: Path = FILE) -> None:
    """Add or update contributions on participatory maps (all or nothing)."""
    _import(
        file,
        ContributionRecord,
        lambda r: r.id,
        catalog_load.store_contributions,
        "contributions",
    )


@app.command("import")
def import_all(
    directory: Path = typer.Argument(
        ...,
        exists=True,
        file_okay=False,
        help="folder of organisations.jsonl, members.jsonl, "
        "projects.jsonl and contributions.jsonl (any of them)",
    ),
) -> None:
    """Import a catalogue folder (as `geo-engine fixtures catalog` writes it) in one
    transaction: all four files or nothing. Errors name file, line, field and reason."""
    files = catalog_files(directory)
    with progress_bar() as bar, connect(DatabaseSettings()) as conn:
        tasks: list[TaskID] = []

        def started(name: str, path: Path) -> None:
            if tasks:
                bar.update(tasks[-1], total=1, completed=1)
            tasks.append(bar.add_task(f"importing {path.name}", total=None))

        try:
            done = import_catalog(conn, files, CatalogSettings(), started)
        except ImportRejected as exc:
            conn.rollback()
            raise exc.within("nothing imported") from None
        bar.update(tasks[-1], total=1, completed=1)
        task = bar.add_task("committing", total=None)
        conn.commit()
        bar.update(task, total=1, completed=1)
    for name, imported in done.items():
        typer.echo(f"{imported.lines:,} {name} imported, {imported.written:,} rows written")
