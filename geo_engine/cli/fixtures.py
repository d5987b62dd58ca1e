"""Synthetic data on the real territories."""

from __future__ import annotations

from pathlib import Path

import typer

from fixtures.population import generate_users, to_jsonl
from geo_engine.cli.common import fail, progress_bar
from geo_engine.cli.users import load_batch
from geo_engine.db import connect
from geo_engine.settings import DatabaseSettings
from geo_engine.users import UserBatch

app = typer.Typer(no_args_is_help=True, help="Deterministic synthetic data (seeded).")

USERS = typer.Option(10_000, "--users", min=1, max=5_000_000, help="how many users")
SEED = typer.Option(42, "--seed", help="same seed, same data")


def _generate(users: int, seed: int) -> UserBatch:
    with connect(DatabaseSettings()) as conn, progress_bar() as bar:
        task = bar.add_task(f"generating {users:,} users", total=users)
        try:
            return generate_users(conn, users, seed, progress=lambda n: bar.advance(task, n))
        except RuntimeError as exc:
            fail(str(exc))


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
def load(count: int = USERS, seed: int = SEED) -> None:
    """Generate a synthetic population and load it in one go."""
    load_batch(_generate(count, seed))
