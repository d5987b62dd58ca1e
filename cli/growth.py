"""The growth team's commands: ``geo-engine growth experiment create|start|pause|stop|list``
(and the report and replay commands registered beside them)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from cli.common import strict_int
from contracts.errors import InvalidInput
from contracts.experiments import SURFACES, Experiment, ExperimentSpec
from geo_engine import experiments
from geo_engine.db import connect
from geo_engine.settings import ApiSettings, DatabaseSettings
from recommender.variants import check_spec

app = typer.Typer(no_args_is_help=True, help="Experiments, metrics and replays of the loop.")
experiment = typer.Typer(no_args_is_help=True, help="Create, start, pause, stop, list.")
app.add_typer(experiment, name="experiment")

SPEC = typer.Argument(
    ..., help="the experiment as JSON (contracts/experiments.py ExperimentSpec), '-' for stdin"
)


def read_spec(path: Path) -> ExperimentSpec:
    """The spec in the JSON file ``path`` (``-``: standard input); InvalidInput saying what is
    wrong, field by field."""
    try:
        raw = typer.get_binary_stream("stdin").read() if str(path) == "-" else path.read_bytes()
        # A byte-order mark is not JSON, but editors write one: it is dropped.
        text = raw.decode("utf-8-sig")
        return check_spec(ExperimentSpec.model_validate_json(text))
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"invalid experiment {path}: not UTF-8 text") from None
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: "
            + e["msg"].removeprefix("Value error, ")
            for e in exc.errors(include_url=False)
        )
        raise InvalidInput(f"invalid experiment {path}: {reasons}") from None


def _table(rows: list[Experiment]) -> Table:
    table = Table(title="Expériences")
    for column in ("nom", "surface", "unité", "statut", "tranche", "variantes", "démarrée"):
        table.add_column(column)
    for e in rows:
        variants = ", ".join(
            f"{v.name} {v.share:.0%}{' (holdout)' if v.holdout else ''}" for v in e.spec.variants
        )
        started = e.started_at.strftime("%Y-%m-%d %H:%M") if e.started_at else "—"
        lo, hi = e.spec.layer
        table.add_row(
            e.spec.name, e.spec.surface, e.spec.unit, e.status, f"[{lo}, {hi})", variants, started
        )
    return table


@experiment.command("create")
def create(spec: Path = SPEC) -> None:
    """Store an experiment as a draft (nobody is exposed before `start`)."""
    parsed = read_spec(spec)
    with connect(DatabaseSettings()) as conn:
        stored = experiments.create(conn, parsed)
        conn.commit()
    typer.echo(f"experiment {stored.spec.name} created (draft, id {stored.id})")


def _transition(name: str, action: experiments.Action) -> None:
    with connect(DatabaseSettings()) as conn:
        changed = experiments.transition(conn, name, action, datetime.now(UTC))
        conn.commit()
    typer.echo(f"experiment {changed.spec.name} is {changed.status}")


@experiment.command("start")
def start(name: str) -> None:
    """Start (or resume) an experiment: its units get their variants from now on."""
    _transition(name, "start")


@experiment.command("pause")
def pause(name: str) -> None:
    """Pause an experiment: its units get the defaults, nothing is logged, until `start`."""
    _transition(name, "pause")


@experiment.command("stop")
def stop(name: str) -> None:
    """Stop an experiment for good (its figures stay readable)."""
    _transition(name, "stop")


@experiment.command("list")
def list_experiments(
    surface: str | None = typer.Option(None, help=f"only this surface: {', '.join(SURFACES)}"),
    as_json: bool = typer.Option(False, "--json", help="JSON Lines instead of a table"),
) -> None:
    """Experiments, newest first."""
    if surface is not None and surface not in SURFACES:
        raise InvalidInput(f"surface must be one of {', '.join(SURFACES)}, not {surface!r}")
    with connect(DatabaseSettings()) as conn:
        rows = experiments.listing(conn, surface)
    if as_json:
        for e in rows:
            typer.echo(json.dumps(e.model_dump(mode="json"), ensure_ascii=False))
    else:
        Console().print(_table(rows))


@app.command("token")
def staff_token(
    user: int = typer.Option(1, parser=strict_int, help="the staff member's user id (sub)"),
    hours: int = typer.Option(12, parser=strict_int, help="hours the token stays valid (1-168)"),
) -> None:
    """Print a staff bearer token signed with GEO_ENGINE_JWT_SECRET, for the growth dashboard
    (paste it in /staff/session) and /v1/growth. Whoever holds the secret can mint these: an
    operator's tool, like the demo's."""
    from api.auth import make_token  # noqa: PLC0415 (the API's token format, only here)

    if not 1 <= hours <= 168:
        raise InvalidInput(f"--hours must be between 1 and 168, not {hours}")
    secret = ApiSettings().jwt_secret.get_secret_value()
    typer.echo(make_token(user, secret, staff=True, ttl_s=hours * 3600))
