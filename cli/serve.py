"""Serve the HTTP API and the map page.

Each worker process binds its own socket with SO_REUSEPORT, so the kernel spreads connections
evenly across workers. (uvicorn's own ``--workers`` share one socket: with keep-alive clients
one worker took most connections and the API used about one core of two.)
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import signal
import socket
import sys
from types import FrameType

import typer
import uvicorn

from api.limits import uvicorn_options
from cli.common import err
from contracts.errors import Conflict
from geo_engine.db import connect
from geo_engine.settings import ApiSettings, DatabaseSettings

APP = "api.app:create_app"


def _config(app: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        factory=True,
        log_level="warning",
        access_log=False,
        **uvicorn_options(ApiSettings()),
    )


def _worker(host: str, port: int, app: str) -> None:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    uvicorn.Server(_config(app)).run(sockets=[sock])


def _port_is_free(host: str, port: int) -> None:
    """Refuse a port another server listens on. The workers' SO_REUSEPORT would otherwise join
    it silently and the kernel would share connections between the two (another checkout,
    another database, another secret); a plain bind (SO_REUSEADDR only) is refused instead."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise Conflict(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def serve(
    port: int | None = typer.Option(None, "--port", help="default: GEO_ENGINE_PORT or 8000"),
    host: str | None = typer.Option(None, "--host", help="default: GEO_ENGINE_HOST or 127.0.0.1"),
    workers: int | None = typer.Option(
        None, "--workers", min=1, max=64, help="default: GEO_ENGINE_WORKERS"
    ),
    app: str = typer.Option(
        APP,
        "--app",
        hidden=True,
        help="another application factory (module:function) served the same way: the HTTP "
        "bench's floors (bench/http_floor.py)",
    ),
) -> None:
    """Run the API (/v1, OpenAPI at /openapi.json) and the map page (/map)."""
    settings = ApiSettings()
    host = host or settings.host
    port = port or settings.port
    workers = workers or settings.workers
    _port_is_free(host, port)
    # One clear line (exit 75) when the database is out of reach, before any worker starts.
    with connect(DatabaseSettings()) as conn:
        conn.execute("SELECT 1")
    err.print(f"API and map on http://{host}:{port} (map: http://{host}:{port}/map)")
    if workers == 1:
        uvicorn.run(
            app,
            factory=True,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            **uvicorn_options(settings),
        )
        return
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker, args=(host, port, app)) for _ in range(workers)]
    for process in processes:
        process.start()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        for process in processes:
            if process.is_alive():
                process.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # One worker ending (crash or signal) stops them all: a half-served API is not served.
    multiprocessing.connection.wait([p.sentinel for p in processes])
    stop(signal.SIGTERM, None)
    for process in processes:
        process.join(timeout=10)
    codes = [p.exitcode or 0 for p in processes]
    sys.exit(max((c for c in codes if c > 0), default=0))
