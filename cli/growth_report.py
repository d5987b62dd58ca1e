"""``geo-engine growth report``: the growth report in the terminal (rich tables, French
headings) and, with ``--csv DIR``, one CSV file per table (growth/export.py)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table as RichTable

from cli.growth import app
from contracts.errors import InvalidInput
from geo_engine import experiments
from geo_engine.db import connect
from geo_engine.settings import DatabaseSettings
from growth import export, report
from growth.report import PARIS


def _rich(table: export.Table) -> RichTable:
    shown = RichTable(title=table.title)
    for column in table.columns:
        shown.add_column(column)
    for row in table.rows:
        shown.add_row(
            *(export.shown(v, c in table.percent) for c, v in zip(table.columns, row, strict=True))
        )
    return shown


def _paris(at: datetime) -> str:
    return at.astimezone(PARIS).strftime("%d/%m/%Y %H:%M")


@app.command("report")
def report_command(
    experiment: str | None = typer.Option(
        None, "--experiment", help="the experiment's name (default: everyone, no comparison)"
    ),
    since: str | None = typer.Option(
        None, "--since", help="start, ISO date or instant (Paris time without an offset)"
    ),
    until: str | None = typer.Option(
        None, "--until", help="end (exclusive), ISO date or instant (default: now)"
    ),
    csv_dir: Path | None = typer.Option(
        None, "--csv", file_okay=False, help="also write one CSV file per table into DIR"
    ),
) -> None:
    """The loop's figures per variant over [since, until) (default: the last 30 days): funnel,
    rates, differences with intervals, sample-ratio check, verdict, daily series, sign-up
    cohorts, coverage of communes."""
    end = report.parse_instant(until, "--until") if until else report.default_period()[1]
    start = report.parse_instant(since, "--since") if since else end - report.DEFAULT_PERIOD
    report.check_period(start, end)
    if csv_dir is not None:
        try:
            csv_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidInput(f"--csv: cannot create {csv_dir}: {exc.strerror}") from None
    with connect(DatabaseSettings()) as conn:
        found = experiments.get(conn, experiment) if experiment else None
        figures = report.build_report(conn, found, start, end)
    console = Console()
    who = f"expérience « {experiment} »" if experiment else "tous les utilisateurs"
    console.print(
        f"Rapport de croissance, {who}, du {_paris(start)} au {_paris(end)} (exclu, heure de Paris)"
    )
    written = []
    for table in export.tables(figures):
        console.print(_rich(table))
        if csv_dir is not None:
            written.append(export.write_csv(table, csv_dir))
    console.print(f"Verdict : {figures.verdict}", soft_wrap=True)
    for path in written:
        typer.echo(f"{path} written", err=True)
