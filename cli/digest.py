"""Digest and alert rounds, run once, as at a given instant: `geo-engine digest run` and
`geo-engine alerts run`. A second run in the same period sends nothing new."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer

from cli.common import err, progress_bar, strict_int
from consumers.alerts import MailModule
from consumers.settings import LoopSettings, MailSettings
from contracts.errors import InvalidInput
from geo_engine.db import connect
from geo_engine.settings import DatabaseSettings

app = typer.Typer(no_args_is_help=True, help="Daily and weekly digests.")
alerts = typer.Typer(no_args_is_help=True, help="Instant alerts.")


def parse_at(text: str | None) -> datetime:
    """``--at``: an ISO 8601 instant with its offset (``Z`` or ``+02:00``); now when absent."""
    if text is None:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"--at {text!r} is not an ISO 8601 date and time") from None
    if at.tzinfo is None:
        raise InvalidInput(
            f"--at {text!r} has no offset: give one, e.g. 2026-03-29T08:00:00+02:00 or …Z"
        )
    return at


@app.command("run")
def run(
    frequency: str = typer.Option(..., help="daily or weekly"),
    at: str | None = typer.Option(None, help="run as at this ISO 8601 instant (default: now)"),
    shard: int = typer.Option(
        0, parser=strict_int, help="this process's share: users with id % shards = shard"
    ),
    shards: int = typer.Option(1, parser=strict_int, help="how many processes share the round"),
) -> None:
    """One digest round: every user whose local morning (daily) or chosen weekday's morning
    (weekly) has come in the period containing --at gets that period's digest, once. Prints
    the counts as JSON."""
    from consumers.digest import digest_round

    if frequency not in ("daily", "weekly"):
        raise InvalidInput(f"--frequency {frequency!r}: choose daily or weekly")
    instant = parse_at(at)
    if not 0 <= shard < shards:
        raise InvalidInput(f"--shard {shard} of --shards {shards}: give 0 <= shard < shards")
    mail = MailModule(MailSettings())
    with connect(DatabaseSettings()) as conn, progress_bar() as bar:
        task = bar.add_task(f"{frequency} digests", total=None)
        counts = digest_round(
            conn,
            "daily" if frequency == "daily" else "weekly",
            instant,
            mail,
            LoopSettings(),
            mail,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            shard=(shard, shards),
        )
    err.print(f"{counts.sent} digests sent as at {instant.isoformat()}")
    typer.echo(json.dumps(vars(counts)))


@alerts.command("run")
def run_alerts(
    at: str | None = typer.Option(None, help="run as at this ISO 8601 instant (default: now)"),
) -> None:
    """One instant alert round (quiet hours, weekly budget). Prints the counts as JSON."""
    from consumers.alerts import alert_round

    instant = parse_at(at)
    mail = MailModule(MailSettings())
    with connect(DatabaseSettings()) as conn:
        counts = alert_round(conn, instant, mail, LoopSettings(), mail)
    typer.echo(json.dumps(vars(counts)))
