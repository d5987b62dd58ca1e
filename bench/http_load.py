"""HTTP load: the API served as in production (``geo-engine serve``, 2 workers) under wrk,
32 connections, on 100,000 projects and 1,000,000 contributions over the real territories.

Each scenario runs twice: at a fixed pace of about 1,000 requests/s (each connection waits
between requests), which is the target's operating point, then flat out, which gives the
ceiling. wrk reports latency from its own clock, so the load generator's cost on the same two
cores is included, as the target asks.

In the same run, tipg (developmentseed's OGC Features and Tiles server, from PyPI, in a venv of
its own: its pins clash with ours) serves the same database's public projects through a view,
with as many workers and database connections, and answers the same boxes
(``/collections/{id}/items?bbox=…&limit=100``) and the same project tiles
(``/collections/{id}/tiles/WebMercatorQuad/{z}/{x}/{y}``); ``vs_tipg`` gives the ratios of
flat-out requests per second. Then the floors: the same server with an empty route and with
the nearby answer's bytes returned as they are (bench/http_floor.py).
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from geo_engine.settings import ApiSettings, DatabaseSettings

WRK_SCRIPT = Path(__file__).with_name("wrk_paths.lua")
CONNECTIONS = 32
THREADS = 2
WORKERS = 2
FLOOR_APP = "bench.http_floor:create_app"
TIPG_VERSION = "1.6.1"
TIPG_SCHEMA = "tipg_bench"
TIPG_COLLECTION = f"{TIPG_SCHEMA}.public_projects"
# Public projects only, with the columns our features carry: tipg serves every row it is given.
TIPG_VIEW = f"""
CREATE SCHEMA IF NOT EXISTS {TIPG_SCHEMA};
CREATE OR REPLACE VIEW {TIPG_COLLECTION} AS
SELECT p.id, p.title, p.tool, p.space, p.status, p.organisation_id, o.name AS organisation,
       p.themes, p.scope_kind AS scope, p.opens_at, p.closes_at, p.results_at, p.place
FROM project AS p JOIN organisation AS o ON o.id = p.organisation_id
WHERE p.visibility = 'public' AND p.place IS NOT NULL
"""


@dataclass(frozen=True)
class Scenario:
    name: str
    paths: list[str]


def _tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


def scenarios(conn: psycopg.Connection, count: int, seed: int) -> list[Scenario]:
    """Requests where people are: around placed projects, drawn at random (seeded)."""
    rng = random.Random(seed)  # noqa: S311 (seeded sampling, not secrets)
    rows = conn.execute(
        "SELECT ST_X(place), ST_Y(place) FROM project WHERE place IS NOT NULL "
        "ORDER BY random() LIMIT %s",
        (count,),
    ).fetchall()
    if not rows:
        raise RuntimeError("no placed project: load fixtures with --projects first")
    points = [(lon + rng.uniform(-0.02, 0.02), lat + rng.uniform(-0.02, 0.02)) for lon, lat in rows]
    nearby = [
        f"/v1/projects/nearby?lat={lat:.5f}&lon={lon:.5f}&radius_m=5000&limit=20"
        for lon, lat in points
    ]
    bbox = [
        f"/v1/projects?bbox={lon - 0.05:.4f},{lat - 0.03:.4f},{lon + 0.05:.4f},{lat + 0.03:.4f}"
        "&limit=100"
        for lon, lat in points
    ]
    project_tiles = []
    commune_tiles = []
    for lon, lat in points:
        z = rng.choice([10, 11, 12, 13, 14])
        x, y = _tile(lon, lat, z)
        project_tiles.append(f"/v1/tiles/projects/{z}/{x}/{y}.mvt")
        z = rng.choice([8, 9, 10, 11, 12, 13])
        x, y = _tile(lon, lat, z)
        commune_tiles.append(f"/v1/tiles/communes/{z}/{x}/{y}.mvt")
    return [
        Scenario("nearby", nearby),
        Scenario("bbox", bbox),
        Scenario("tiles_projects", project_tiles),
        Scenario("tiles_communes", commune_tiles),
    ]


def tipg_scenarios(ours: list[Scenario]) -> list[Scenario]:
    """tipg's paths for the very same boxes and project tiles as ours."""
    by_name = {s.name: s for s in ours}
    items = f"/collections/{TIPG_COLLECTION}/items"
    tiles = f"/collections/{TIPG_COLLECTION}/tiles/WebMercatorQuad"
    bbox = [
        f"{items}?bbox={p.split('bbox=')[1].split('&')[0]}&limit=100" for p in by_name["bbox"].paths
    ]
    project_tiles = [
        tiles + p.removeprefix("/v1/tiles/projects").removesuffix(".mvt")
        for p in by_name["tiles_projects"].paths
    ]
    return [Scenario("tipg_bbox", bbox), Scenario("tipg_tiles_projects", project_tiles)]


def floor_scenarios(ours: list[Scenario]) -> list[Scenario]:
    """The same nearby query strings on the floor server's routes (bench/http_floor.py)."""
    nearby = [p.replace("/v1/projects/nearby", "/floor/empty") for p in ours[0].paths]
    return [
        Scenario("floor_fastapi_empty", nearby),
        Scenario("floor_fastapi_bytes", [p.replace("/empty", "/bytes") for p in nearby]),
        Scenario("floor_asgi_bytes", [p.replace("/floor/", "/raw/") for p in nearby]),
    ]


class Server:
    """A server in a process group of its own: by default ``geo-engine serve`` on the bench
    database; ``command`` and ``health`` for another (tipg, the floor app)."""

    def __init__(
        self,
        database: DatabaseSettings,
        port: int,
        workers: int,
        command: list[str] | None = None,
        health: str = "/health",
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.base = f"http://127.0.0.1:{port}"
        geo_engine = str(Path(sys.executable).with_name("geo-engine"))
        self.process = subprocess.Popen(  # noqa: S603 (our own entry points, fixed arguments)
            command or [geo_engine, "serve", "--port", str(port), "--workers", str(workers)],
            env={**os.environ, "GEO_ENGINE_DATABASE_URL": database.database_url, **(env or {})},
            cwd=cwd,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.process.args!r} ended with {self.process.returncode}")
            try:
                with urllib.request.urlopen(self.base + health, timeout=2):  # noqa: S310
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.process.args!r} did not start within 90 s")

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


def wrk(
    base: str, scenario: Scenario, duration_s: int, delay_ms: int, work: Path
) -> dict[str, Any]:
    paths = work / f"{scenario.name}.paths"
    paths.write_text("\n".join(scenario.paths) + "\n")
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    result = subprocess.run(  # noqa: S603
        [
            binary,
            f"-t{THREADS}",
            f"-c{CONNECTIONS}",
            f"-d{duration_s}s",
            "--timeout",
            "10s",
            "-s",
            str(WRK_SCRIPT),
            base,
            "--",
            str(paths),
            str(delay_ms),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in result.stdout.splitlines() if x.startswith("{"))
    raw = json.loads(line)
    seconds = raw["duration_us"] / 1e6
    return {
        "requests_per_s": round(raw["requests"] / seconds, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p90_ms": round(raw["p90_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 2),
        "requests": raw["requests"],
        "non_2xx": raw["status_errors"],
        "socket_errors": raw["socket_errors"],
    }


def tipg_uvicorn(venv: Path) -> Path:
    """uvicorn of a venv holding tipg (created with the repository's uv when missing)."""
    uvicorn = venv / "bin" / "uvicorn"
    if uvicorn.exists():
        return uvicorn
    uv = Path(".tools/bin/uv")
    if not uv.exists():
        raise RuntimeError(f"no {uv} to create {venv} (make install first)")
    subprocess.run([str(uv), "venv", "--python", "3.11", str(venv)], check=True)  # noqa: S603
    subprocess.run(  # noqa: S603 (fixed arguments)
        [
            str(uv),
            "pip",
            "install",
            "--python",
            str(venv / "bin" / "python"),
            f"tipg=={TIPG_VERSION}",
            "uvicorn[standard]",
        ],
        check=True,
    )
    return uvicorn


def tipg_server(database: DatabaseSettings, venv: Path, port: int, work: Path) -> Server:
    """tipg on the same database, restricted to the view of public projects; as many workers
    and connections per worker as ours."""
    with psycopg.connect(database.database_url, autocommit=True) as conn:
        conn.execute(TIPG_VIEW)
    uvicorn = tipg_uvicorn(venv).resolve()
    env = {
        "DATABASE_URL": database.database_url,
        "TIPG_DB_SCHEMAS": f'["{TIPG_SCHEMA}"]',
        "DB_MIN_CONN_SIZE": "2",  # tipg reads these two without its TIPG_ prefix
        "DB_MAX_CONN_SIZE": str(ApiSettings().pool_max_size),
        "TIPG_CATALOG_TTL": "0",
    }
    command = [
        str(uvicorn),
        "tipg.main:app",
        "--port",
        str(port),
        "--workers",
        str(WORKERS),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    # Its own directory: tipg reads a .env in the current one.
    return Server(database, port, WORKERS, command=command, health="/healthz", env=env, cwd=work)


def _run(
    base: str,
    plan: list[Scenario],
    duration_s: int,
    delay_ms: int,
    work: Path,
    figures: dict[str, Any],
) -> None:
    for scenario in plan:
        wrk(base, scenario, 3, 0, work)  # warm-up: caches, prepared statements
        figures[scenario.name] = {
            "paced": wrk(base, scenario, duration_s, delay_ms, work),
            "flat_out": wrk(base, scenario, duration_s, 0, work),
        }


def http_load(
    database: DatabaseSettings,
    duration_s: int = 20,
    paced_delay_ms: int = 30,
    seed: int = 42,
    work: Path = Path("bench/results"),
    tipg_venv: Path = Path("var/tipg-venv"),
) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    with psycopg.connect(database.database_url) as conn:
        plan = scenarios(conn, 20_000, seed)
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM project), (SELECT count(*) FROM contribution)"
        ).fetchone()
    assert counts is not None
    port = 18000 + os.getpid() % 1000
    figures: dict[str, Any] = {"projects": counts[0], "contributions": counts[1]}
    server = Server(database, port=port, workers=WORKERS)
    try:
        _run(server.base, plan, duration_s, paced_delay_ms, work, figures)
    finally:
        server.stop()
    # The same two reads through the FastAPI routes (api/hot_reads.py turned off).
    routed = Server(database, port=port + 3, workers=WORKERS, env={"GEO_ENGINE_HOT_READS": "false"})
    try:
        _run(
            routed.base,
            [Scenario(f"{s.name}_fastapi", s.paths) for s in plan[:2]],
            duration_s,
            paced_delay_ms,
            work,
            figures,
        )
    finally:
        routed.stop()
    try:
        tipg = tipg_server(database, tipg_venv, port + 1, work)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        figures["tipg"] = f"not run: {exc}"
    else:
        try:
            _run(tipg.base, tipg_scenarios(plan), duration_s, paced_delay_ms, work, figures)
        finally:
            tipg.stop()
        figures["tipg"] = f"tipg {TIPG_VERSION}, view {TIPG_COLLECTION}"
        figures["vs_tipg"] = {
            name: round(
                figures[name]["flat_out"]["requests_per_s"]
                / figures[f"tipg_{name}"]["flat_out"]["requests_per_s"],
                2,
            )
            for name in ("bbox", "tiles_projects")
        }
    floor = Server(
        database,
        port=port + 2,
        workers=WORKERS,
        command=[
            str(Path(sys.executable).with_name("geo-engine")),
            "serve",
            "--port",
            str(port + 2),
            "--workers",
            str(WORKERS),
            "--app",
            FLOOR_APP,
        ],
    )
    try:
        _run(floor.base, floor_scenarios(plan), duration_s, paced_delay_ms, work, figures)
    finally:
        floor.stop()
    return figures
