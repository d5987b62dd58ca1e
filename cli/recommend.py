"""Recommendations: for one user, training the learned ranker, and the offline evaluation."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime

import typer

from cli.common import err, progress_bar, strict_int
from contracts.errors import InvalidInput
from geo_engine.db import connect
from geo_engine.settings import DatabaseSettings

app = typer.Typer(no_args_is_help=True, help="Recommend projects, and measure how well.")


@app.command("for-user")
def for_user(
    user_id: int = typer.Argument(..., parser=strict_int, help="the user's id", show_default=False),
    k: int = typer.Option(10, "--k", parser=strict_int, help="how many recommendations"),
) -> None:
    """The user's top k open projects as JSON: [{project_id, score, reasons, contributions}],
    ranked by the scorer GEO_ENGINE_RECOMMENDER_SCORER names (weighted or learned)."""
    from recommender.service import Recommender  # heavy imports
    from recommender.settings import RecommenderSettings

    recommender = Recommender.load(RecommenderSettings())
    with connect(DatabaseSettings()) as conn:
        found = recommender.for_user(conn, user_id, k)
    typer.echo(json.dumps([asdict(r) for r in found], ensure_ascii=False, indent=2))


def _date(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidInput(f"{text!r} is not a date (YYYY-MM-DD)") from None


@app.command()
def train(
    since: str | None = typer.Option(
        None, help="learn from engagement since this date (YYYY-MM-DD)"
    ),
    seed: int = typer.Option(0, parser=strict_int, help="seed of the split and of the sampling"),
    users: int = typer.Option(
        50_000, parser=strict_int, help="most users whose participations become examples"
    ),
    negatives: int = typer.Option(
        20, parser=strict_int, help="candidates drawn per user as negative examples"
    ),
) -> None:
    """Fit the co-participation model and the learned ranker on the platform's engagement and
    save them in GEO_ENGINE_RECOMMENDER_MODEL_DIR (the ranker with its features, training
    window, library versions and metrics). Prints what was written and measured as JSON."""
    from recommender.settings import RecommenderSettings  # heavy imports
    from recommender.training import train_from_engagement

    if users < 1 or negatives < 1:
        raise InvalidInput("--users and --negatives must be at least 1")
    settings = RecommenderSettings()
    with connect(DatabaseSettings()) as conn, progress_bar() as bar:
        task = bar.add_task("training", total=None)
        report = train_from_engagement(
            conn,
            settings.model_dir,
            since=_date(since) if since else None,
            seed=seed,
            max_users=users,
            negatives=negatives,
            progress=lambda step: bar.update(task, description=step),
        )
        bar.update(task, total=1, completed=1)
    err.print(f"ranker written to {report.ranker}")
    typer.echo(
        json.dumps(
            {
                **asdict(report),
                "ranker": str(report.ranker),
                "coparticipation": str(report.coparticipation),
            }
        )
    )
