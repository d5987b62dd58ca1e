"""Benchmarks."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import typer

from cli.common import err
from contracts.errors import InvalidInput
from geo_engine.settings import DatabaseSettings, GeoSettings

# Benchmarks with a module of their own, bench/<name>.py with run_<name>(database, geo, size,
# seed) (a dash in the name is an underscore there), and their default sizes (users; projects
# for catalog-import), beside bench.runner's.
LOOP_BENCHES = {
    "fanout": 5_000_000,
    "replay": 10_000,
    "growth": 100_000,
    "import": 1_000_000,
    "tiles": 100_000,
    "nats": 100_000,
    "catalog-import": 100_000,
}
# Names that are no module's name (a keyword): their module.
BENCH_MODULES = {"import": "imports"}


def runner_of(name: str) -> Callable[[DatabaseSettings, GeoSettings, int, int], dict[str, Any]]:
    """``run_<name>`` (a dash read as an underscore) of the module ``bench/<name>.py`` (or the
    one BENCH_MODULES names) of a benchmark in LOOP_BENCHES."""
    python_name = name.replace("-", "_")
    module = importlib.import_module(f"bench.{BENCH_MODULES.get(name, python_name)}")
    runner: Callable[[DatabaseSettings, GeoSettings, int, int], dict[str, Any]]
    runner = getattr(module, f"run_{python_name}")
    return runner


def bench(
    name: str = typer.Argument(
        ...,
        help="placement, locate, http, audience, recommend, consumers, fanout, digest, replay, "
        "growth, import, nats, catalog-import or mail",
    ),
    size: int | None = typer.Option(
        None,
        min=100,
        help="users, points or projects (default 10,000; audience 5,000,000; digest 1,000,000)",
    ),
    seed: int = typer.Option(42),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Run benchmark NAME on a database of its own (<database>_bench; http: <database>_bench_http,
    served by `geo-engine serve` under wrk, 32 connections; audience: <database>_bench_audience,
    users and 100,000 projects; fanout: the same database, inbox rows committed then deleted;
    mail: no database, SIZE digests composed on one core; replay: <database>_bench_replay, SIZE
    users with one logged digest each, rolled back; growth: <database>_bench_growth, SIZE users
    with 28 days of a digest experiment's history, rolled back; import: `geo-engine users import`
    of SIZE users in a child process, on <database>_bench_import; see bench/README.md)."""
    if name == "mail":
        from bench.mail import DEFAULT_DIGESTS, run_mail

        count = DEFAULT_DIGESTS if size is None else size
        err.print(f"running mail with size {count}…")
        _print(run_mail(count, seed), as_json)
        return
    from bench.runner import DEFAULT_SIZE, DEFAULT_SIZES, NAMES, run  # heavy imports

    if name not in [*NAMES, *LOOP_BENCHES]:
        choices = ", ".join([*NAMES, *LOOP_BENCHES, "mail"])
        raise InvalidInput(f"unknown benchmark {name!r}; choose one of: {choices}")
    if size is None:
        size = LOOP_BENCHES.get(name, DEFAULT_SIZES.get(name, DEFAULT_SIZE))
    err.print(f"running {name} with size {size}…")
    if name in LOOP_BENCHES:
        figures = {
            "name": name,
            "size": size,
            **runner_of(name)(DatabaseSettings(), GeoSettings(), size, seed),
            "cores": os.cpu_count(),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    else:
        figures = run(name, size, seed, DatabaseSettings(), GeoSettings())
    _print(figures, as_json)


def _print(figures: dict[str, object], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(figures))
    else:
        for key, value in figures.items():
            typer.echo(f"{key}: {value}")
