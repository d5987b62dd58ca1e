"""The retention loop's scheduled passes, run once by hand (the scheduler runs them in
`geo-engine consume`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer

from cli.common import strict_int
from contracts.errors import InvalidInput
from geo_engine.db import connect
from geo_engine.settings import DatabaseSettings

app = typer.Typer(no_args_is_help=True, help="Run the retention loop's scheduled passes.")


def _instant(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"--at {text!r} is not an ISO date and time") from None
    if at.tzinfo is None:
        raise InvalidInput(f"--at {text!r}: give a time zone (e.g. 2026-03-01T09:00:00+01:00)")
    return at


@app.command()
def tick(
    at: str | None = typer.Option(
        None, "--at", help="run as if at this ISO date and time, with its offset (default: now)"
    ),
    closing_days: int = typer.Option(
        7, parser=strict_int, help="projects closing within this many days are 'closing soon'"
    ),
) -> None:
    """One pass of the scheduled fan-outs, committed: inbox rows 'closing_soon' for projects
    closing within --closing-days, and 'meeting_reminder' for meetings within each lead of
    GEO_ENGINE_MEETING_REMINDER_DAYS. Prints the rows added as JSON; a second run for the same
    time adds nothing."""
    from consumers.fanout import closing_soon, meeting_reminders  # heavy imports
    from consumers.settings import LoopSettings
    from recommender.scorers import load_weighted
    from recommender.settings import RecommenderSettings

    if closing_days < 1:
        raise InvalidInput(f"--closing-days must be at least 1, got {closing_days}")
    now = _instant(at)
    loop = LoopSettings()
    scorer = load_weighted(RecommenderSettings().weights)
    with connect(DatabaseSettings()) as conn:
        closing = closing_soon(conn, now, closing_days, loop, scorer)
        reminders = meeting_reminders(conn, now, loop.meeting_reminder_days, loop, scorer)
        conn.commit()
    typer.echo(json.dumps({"closing_soon": closing, "meeting_reminders": reminders}))


@app.command()
def publish(
    commune: str | None = typer.Option(
        None, help="INSEE code (default: the commune where most residents take mail)"
    ),
) -> None:
    """The demo's first step: a consultation closing in five days, published in a commune;
    prints its id (see `make demo`)."""
    from cli import loop_demo

    loop_demo.publish(commune)


@app.command()
def watch(
    project_id: int = typer.Argument(..., parser=strict_int, help="the project published"),
    mail_dir: Path = typer.Option(Path("var/mail"), help="where the SMTP sink keeps the mails"),
) -> None:
    """The demo's second step, with `geo-engine consume` and the mail sink running: the
    project in its residents' inboxes, their alerts and digests, a click on a mail's link
    coming back as engagement, and the clicker's ranking before and after."""
    from cli import loop_demo

    loop_demo.watch(project_id, mail_dir)
