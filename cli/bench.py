"""Benchmarks."""

from __future__ import annotations

import json

import typer

from cli.common import err
from contracts.errors import InvalidInput
from geo_engine.settings import DatabaseSettings, GeoSettings


def bench(
    name: str = typer.Argument(..., help="placement, locate, http, audience, recommend or mail"),
    size: int | None = typer.Option(
        None,
        min=100,
        help="how many users, points or projects (default 10,000; audience: 5,000,000 users)",
    ),
    seed: int = typer.Option(42),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Run benchmark NAME on a database of its own (<database>_bench; http: <database>_bench_http,
    served by `geo-engine serve` under wrk, 32 connections; audience: <database>_bench_audience,
    users and 100,000 projects; mail: no database, SIZE digests composed on one core; see
    bench/README.md)."""
    if name == "mail":
        from bench.mail import DEFAULT_DIGESTS, run_mail

        count = DEFAULT_DIGESTS if size is None else size
        err.print(f"running mail with size {count}…")
        _print(run_mail(count, seed), as_json)
        return
    from bench.runner import DEFAULT_SIZE, DEFAULT_SIZES, NAMES, run  # heavy imports

    if name not in NAMES:
        choices = ", ".join([*NAMES, "mail"])
        raise InvalidInput(f"unknown benchmark {name!r}; choose one of: {choices}")
    if size is None:
        size = DEFAULT_SIZES.get(name, DEFAULT_SIZE)
    err.print(f"running {name} with size {size}…")
    _print(run(name, size, seed, DatabaseSettings(), GeoSettings()), as_json)


def _print(figures: dict[str, object], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(figures))
    else:
        for key, value in figures.items():
            typer.echo(f"{key}: {value}")
