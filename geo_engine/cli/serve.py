"""Serve the HTTP API and the map page."""

from __future__ import annotations

import typer
import uvicorn

from geo_engine.cli.common import err
from geo_engine.settings import ApiSettings


def serve(
    port: int | None = typer.Option(None, "--port", help="default: GEO_ENGINE_PORT or 8000"),
    host: str | None = typer.Option(None, "--host", help="default: GEO_ENGINE_HOST or 127.0.0.1"),
    workers: int | None = typer.Option(None, "--workers", help="default: GEO_ENGINE_WORKERS"),
) -> None:
    """Run the API (/v1, OpenAPI at /openapi.json) and the map page (/map)."""
    settings = ApiSettings()
    host = host or settings.host
    port = port or settings.port
    err.print(f"API and map on http://{host}:{port} (map: http://{host}:{port}/map)")
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers or settings.workers,
        log_level="warning",
        access_log=False,
    )
