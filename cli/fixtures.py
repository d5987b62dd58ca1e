"""Synthetic data on the real territories."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import psycopg
import typer
from pydantic import BaseModel
from rich.progress import Progress

from cli.catalog import BATCH, Store, store_batched
from cli.common import err, progress_bar
from cli.users import load_batch
from contracts.errors import EngineError
from fixtures.catalog import CONTRIBUTIONS_PER_PROJECT, Catalog, generate_catalog, write_catalog
from fixtures.engagement import generate_engagement, store_engagement
from fixtures.growth_history import demo_experiment, simulate
from fixtures.population import generate_users, to_jsonl
from fixtures.signups import SIGN_UP_WEEKS, spread_sign_ups
from geo_engine.catalog.load import (
    store_contributions,
    store_members,
    store_organisations,
    store_projects,
)
from geo_engine.db import connect
from geo_engine.jsonl import ImportRejected, Line
from geo_engine.settings import CatalogSettings, DatabaseSettings
from geo_engine.users.places import UserBatch

M = TypeVar("M", bound=BaseModel)

app = typer.Typer(no_args_is_help=True, help="Deterministic synthetic data (seeded).")

USERS = typer.Option(10_000, "--users", min=1, max=5_000_000, help="how many users")
SEED = typer.Option(42, "--seed", help="same seed, same data")
CONTRIBUTIONS = typer.Option(
    None,
    "--contributions",
    min=0,
    max=50_000_000,
    help="contributions on participatory maps (default: 10 per project)",
)


def _generate(users: int, seed: int) -> UserBatch:
    with connect(DatabaseSettings()) as conn, progress_bar() as bar:
        task = bar.add_task(f"generating {users:,} users", total=users)
        try:
            return generate_users(conn, users, seed, progress=lambda n: bar.advance(task, n))
        except RuntimeError as exc:  # nothing to generate on (no territories loaded)
            raise EngineError(str(exc)) from exc


def _generate_catalog(projects: int, contributions: int | None, seed: int) -> Catalog:
    """Organisations, members, projects and contributions over the territories and users in
    the database (read only)."""
    count = CONTRIBUTIONS_PER_PROJECT * projects if contributions is None else contributions
    with connect(DatabaseSettings()) as conn, progress_bar() as bar:
        task = bar.add_task(
            f"generating {projects:,} projects and {count:,} contributions",
            total=projects + count,
        )
        try:
            return generate_catalog(
                conn, projects, seed, count, progress=lambda n: bar.advance(task, n)
            )
        except RuntimeError as exc:
            raise EngineError(str(exc)) from exc


def _store_part(
    conn: psycopg.Connection,
    bar: Progress,
    name: str,
    lines: Sequence[Line[M]],
    store: Store[M],
) -> int:
    task = bar.add_task(f"storing {len(lines):,} {name}", total=len(lines))
    return store_batched(
        conn,
        store,
        lines,
        "fixtures",
        BATCH[name],
        progress=lambda n: bar.advance(task, n),
        settings=CatalogSettings(),
    )


def _store_catalog(catalog: Catalog) -> None:
    """Store the catalogue in one transaction (through ``catalog_load``), with progress."""
    with connect(DatabaseSettings()) as conn, progress_bar() as bar:
        try:
            written = [
                _store_part(conn, bar, "organisations", catalog.organisations, store_organisations),
                _store_part(conn, bar, "members", catalog.members, store_members),
                _store_part(conn, bar, "projects", catalog.projects, store_projects),
                _store_part(conn, bar, "contributions", catalog.contributions, store_contributions),
            ]
        except ImportRejected as exc:  # the generator's bug, not the user's input: exit 1
            raise EngineError(
                f"nothing stored, the generated catalogue was rejected:\n{exc.detail}"
            ) from exc
        task = bar.add_task("committing", total=None)
        conn.commit()
        bar.update(task, total=1, completed=1)
    err.print(
        f"{len(catalog.organisations):,} organisations, {len(catalog.members):,} members, "
        f"{len(catalog.projects):,} projects, {len(catalog.contributions):,} contributions "
        f"({sum(written):,} rows written)"
    )


def _load_engagement(seed: int, *, required: bool = True) -> None:
    """Simulate follows and engagement of the users in the database and store them in one
    transaction (bulk COPY, no outbox events: see ``fixtures/engagement.py``). Nothing to
    engage with (no placed user, no public project) is an error when ``required``, else a
    note."""
    with connect(DatabaseSettings()) as conn, progress_bar() as bar:
        task = bar.add_task("simulating engagement", total=None)
        try:
            generated = generate_engagement(conn, seed)
        except RuntimeError as exc:
            if required:
                raise EngineError(str(exc)) from exc
            err.print(f"no engagement simulated: {exc}")
            return
        bar.update(task, total=1, completed=1)
        task = bar.add_task("storing engagement and follows", total=None)
        engagement, follows = store_engagement(conn, generated)
        conn.commit()
        bar.update(task, total=1, completed=1)
    err.print(
        f"{generated.clicks:,} clicks, {generated.participations:,} participations "
        f"({engagement:,} rows written), {follows:,} follows"
    )


@app.command()
def users(
    out: Path = typer.Option(..., "--out", help="JSON Lines file to write"),
    count: int = USERS,
    seed: int = SEED,
) -> None:
    """Write a synthetic population as the JSON Lines `geo-engine users import` reads."""
    batch = _generate(count, seed)
    with out.open("wb") as handle:
        handle.writelines(to_jsonl(batch))
    typer.echo(f"{len(batch):,} users written to {out}")


@app.command()
def catalog(
    out: Path = typer.Option(..., "--out", file_okay=False, help="directory to write into"),
    projects: int = typer.Option(1_000, "--projects", min=1, max=2_000_000, help="how many"),
    contributions: int | None = CONTRIBUTIONS,
    seed: int = SEED,
) -> None:
    """Write organisations, members, projects and contributions as the JSON Lines files the
    `orgs`, `members`, `projects` and `contributions` imports read (members are drawn among
    the users already in the database)."""
    generated = _generate_catalog(projects, contributions, seed)
    with progress_bar() as bar:
        task = bar.add_task(f"writing {out}", total=None)
        paths = write_catalog(generated, out)
        bar.update(task, total=1, completed=1)
    counts = {
        "organisations": len(generated.organisations),
        "members": len(generated.members),
        "projects": len(generated.projects),
        "contributions": len(generated.contributions),
    }
    for name, path in paths.items():
        typer.echo(f"{counts[name]:,} {name} written to {path}")


@app.command()
def load(
    count: int = USERS,
    projects: int = typer.Option(
        0,
        "--projects",
        min=0,
        max=2_000_000,
        help="projects, with organisations, members and contributions (0: users only)",
    ),
    contributions: int | None = CONTRIBUTIONS,
    seed: int = SEED,
    engagement: bool = typer.Option(
        True,
        "--engagement/--no-engagement",
        help="with --projects, simulated follows, clicks and participations (seeded)",
    ),
    announce: bool = typer.Option(
        False,
        "--announce/--no-announce",
        help="keep the load's events in the outbox, so the retention loop announces every "
        "generated user and project (by default they are history: nothing to announce)",
    ),
) -> None:
    """Generate a synthetic population and load it in one go; then, with --projects, a
    catalogue of organisations, members, projects and contributions, and (unless
    --no-engagement) simulated engagement."""
    with connect(DatabaseSettings()) as conn:
        started = conn.execute("SELECT clock_timestamp()").fetchone()
    load_batch(_generate(count, seed))
    if started is not None:
        # Sign-ups spread over the past weeks, so the growth report shows weekly cohorts.
        with connect(DatabaseSettings()) as conn:
            spread = spread_sign_ups(conn, started[0], started[0], seed)
            conn.commit()
        err.print(f"{spread:,} sign-ups spread over the last {SIGN_UP_WEEKS} weeks")
    if projects:
        _store_catalog(_generate_catalog(projects, contributions, seed))
        if engagement:
            _load_engagement(seed, required=False)
    if not announce and started is not None:
        # A generated network is a past state, not news: left in the outbox, its 5,000
        # projects would reach some 11 million inboxes the moment `geo-engine consume` starts.
        with connect(DatabaseSettings()) as conn:
            forgotten = conn.execute(
                "DELETE FROM outbox WHERE created_at >= %s AND published_at IS NULL", started
            ).rowcount
            conn.commit()
        err.print(f"{forgotten:,} events of the generated history left out of the outbox")


@app.command("engagement")
def engagement_(seed: int = SEED) -> None:
    """Simulate follows, clicks and participations of the users in the database on its public
    projects (a seeded behaviour model: geography first, interests, popularity) and store them;
    rows already there for the same user and project are replaced."""
    _load_engagement(seed)


@app.command()
def growth(
    days: int = typer.Option(28, min=1, max=366, help="days of history before today"),
    seed: int = SEED,
) -> None:
    """The growth dashboard's demo: the experiment `objet-du-digest` (the digest's subject line
    by commune, 10 % holdout), created and started if absent, and a seeded history of its
    digests, opens, clicks and participations over the last --days days."""
    now = datetime.now(UTC)
    with connect(DatabaseSettings()) as conn, progress_bar() as bar:
        task = bar.add_task("simulating the experiment's history", total=None)
        experiment = demo_experiment(conn, now)
        users = simulate(conn, experiment, days, now, seed)
        conn.commit()
        bar.update(task, total=1, completed=1)
    err.print(f"experiment {experiment.spec.name}: {users:,} users, {days} days of history")
