"""``geo-engine growth replay``: the offline replay of candidate weights on the digests' logged
clicks (growth/replay.py), as a table or JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from cli.common import strict_float, strict_int
from cli.growth import app
from contracts.growth import ReplayReport
from geo_engine.db import connect
from geo_engine.settings import DatabaseSettings
from growth.report import parse_instant


def _figure(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def table(report: ReplayReport) -> Table:
    """The report as a rich table: one row per ranker and one for the difference."""
    title = (
        f"Rejeu hors ligne : {report.lists} digests, {report.clicks} clics — "
        f"verdict : {report.verdict}"
    )
    out = Table(title=title, caption=report.method)
    for column in ("classement", "version", "clics par liste", "IC 95 %", "NDCG", "écrêtés"):
        out.add_column(column)
    for arm in (report.current, report.candidate):
        out.add_row(
            arm.name,
            arm.version,
            _figure(arm.clicks_per_list),
            f"[{_figure(arm.ci_low)} ; {_figure(arm.ci_high)}]",
            _figure(arm.ndcg),
            str(arm.clipped),
        )
    out.add_row(
        "différence",
        "candidat − actuel",
        f"{report.difference:+.3f}",
        f"[{report.ci_low:+.3f} ; {report.ci_high:+.3f}]",
        "",
        "",
    )
    p_value = _figure(report.interleaving_p_value)
    out.add_row(
        "interleaving",
        "team-draft",
        f"{report.interleaving_wins} gagnées, {report.interleaving_losses} perdues, "
        f"{report.interleaving_ties} nulles",
        f"p = {p_value}",
        "",
        "",
    )
    return out


@app.command("replay")
def replay(
    weights: Path = typer.Option(
        ..., "--weights", help="the candidate's weights (TOML, as recommender/weights/)"
    ),
    eta: float = typer.Option(
        "1", parser=strict_float, help="examination propensity p(k) = (1/k)^eta"
    ),
    clip: float = typer.Option("10", parser=strict_float, help="largest propensity ratio counted"),
    ndcg_at: int = typer.Option(10, parser=strict_int, help="NDCG's cut"),
    resamples: int = typer.Option(1000, parser=strict_int, help="bootstrap resamples"),
    seed: int = typer.Option(0, parser=strict_int, help="seed of the bootstrap and the coin"),
    since: str | None = typer.Option(
        None, help="digests mailed from (ISO 8601; default 28 days before until)"
    ),
    until: str | None = typer.Option(None, help="… until, excluded (ISO 8601; default now)"),
    as_json: bool = typer.Option(False, "--json", help="the report as JSON"),
) -> None:
    """Replay the digests' logged clicks under the current weights and the candidate's: clicks
    per list (inverse propensity), intervals, NDCG, interleaving and a verdict."""
    from growth import replay as engine  # noqa: PLC0415 (heavy: numpy, scipy)
    from recommender.settings import RecommenderSettings  # noqa: PLC0415

    params = engine.ReplayParams(
        eta=eta, clip=clip, ndcg_at=ndcg_at, resamples=resamples, seed=seed
    )
    start, end = engine.window(
        parse_instant(since, "since") if since else None,
        parse_instant(until, "until") if until else None,
        datetime.now(UTC),
    )
    current, coparticipation = engine.current_of(RecommenderSettings())
    candidate = engine.candidate_scorer(current, weights)
    with connect(DatabaseSettings()) as conn:
        report = engine.replay(conn, current, candidate, start, end, params, coparticipation)
    if as_json:
        typer.echo(json.dumps(report.model_dump(mode="json"), ensure_ascii=False))
    else:
        Console().print(table(report))
