"""Recommendations: for one user, training the learned ranker, and the offline evaluation on
real participatory-budgeting ballots."""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

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


_COLUMNS = ("recall@5", "recall@10", "recall@20", "ndcg@10", "hit@10", "out_of_scope@10")


def _seed(value: str | int) -> int:
    """The seed: ASCII digits only (the default arrives as an int already)."""
    number = value if isinstance(value, int) else strict_int(value)
    if number < 0:
        raise ValueError(f"{number} is negative: a seed is 0 or more")
    return number


def _cell(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}"


@app.command()
def evaluate(
    pabulib: Path | None = typer.Option(
        None,
        "--pabulib",
        help="folder of Pabulib city-edition folders (default: GEO_ENGINE_REALDATA_DIR)",
    ),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    seed: int = typer.Option(0, parser=_seed, help="seed of the voter split and resamples"),
    datasets: str | None = typer.Option(
        None, help="comma-separated edition folders to evaluate (default: every one)"
    ),
) -> None:
    """Evaluate the engine's scorers and the baselines on every city edition under the folder:
    tasks A-D, recall@k and NDCG@k (k = 5, 10, 20) with bootstrap 95% intervals, hit@10 (C),
    out-of-scope@10, catalogue coverage and coverage by district (README, "Evaluation")."""
    from recommender.evaluation.run import evaluate as run  # heavy imports
    from recommender.evaluation.run import target_checks
    from recommender.settings import EvaluationSettings

    settings = EvaluationSettings()
    root = pabulib if pabulib is not None else settings.require_realdata_dir()
    names = [d.strip() for d in datasets.split(",")] if datasets is not None else None
    with progress_bar() as bar:
        rows = run(root, seed, settings, datasets=names, progress=bar)
    if as_json:
        typer.echo(json.dumps({"results": rows}, ensure_ascii=False))
        return
    table = Table("dataset", "task", "scorer", "kind", "users", *_COLUMNS, "coverage@10")
    for row in rows:
        table.add_row(
            row["dataset"],
            row["task"],
            row["scorer"],
            row["kind"],
            str(row["users"]),
            *(_cell(row.get(c)) for c in _COLUMNS),
            _cell(row["coverage@10"]),
        )
    err.print(f"{len(rows)} results")
    typer.echo(_render(table))
    checks = target_checks(rows)
    if checks:
        targets = Table("dataset", "task", "scorer", "metric", "value", "target", "rule", "met")
        for check in checks:
            targets.add_row(
                check["dataset"],
                check["task"],
                check["scorer"],
                check["metric"],
                _cell(check["value"]),
                _cell(check["bar"]),
                check["rule"],
                "yes" if check["met"] else "NO",
            )
        typer.echo(_render(targets))


def _render(table: Table) -> str:
    buffer = io.StringIO()
    Console(width=200, file=buffer).print(table)
    return buffer.getvalue()
