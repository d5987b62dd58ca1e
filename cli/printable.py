"""``geo-engine digest print``: a commune's printable weekly poster as a PDF (or HTML)."""

from __future__ import annotations

from pathlib import Path

import typer

from consumers import printable
from consumers.settings import MailSettings
from geo_engine.db import connect
from geo_engine.settings import DatabaseSettings


def print_poster(
    commune: str = typer.Option(..., help="INSEE code of the commune"),
    week: str | None = typer.Option(None, help="ISO week, e.g. 2026-W49 (default: this week)"),
    out: Path = typer.Option(..., help="file to write; .html writes the HTML, else a PDF"),
) -> None:
    """Write the weekly poster of a commune (public projects and meetings) for its town hall."""
    with connect(DatabaseSettings()) as conn:
        found = printable.poster(conn, commune, week)
    html = printable.render_html(found, MailSettings().public_url)
    if out.suffix.lower() in {".html", ".htm"}:
        out.write_text(html, encoding="utf-8")
    else:
        out.write_bytes(printable.render_pdf(html))
    typer.echo(f"{out}: affiche de {found.commune_name} ({found.commune_code}), {found.week}")
