"""HTTP load: the API served as in production (``geo-engine serve``, 2 workers) under wrk,
32 connections, on 100,000 projects and 1,000,000 contributions over the real territories.

Each scenario runs twice: at a fixed pace of about 1,000 requests/s (each connection waits
between requests), which is the target's operating point, then flat out, which gives the
ceiling. wrk reports latency from its own clock, so the load generator's cost on the same two
cores is included, as the target asks.
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

from geo_engine.settings import DatabaseSettings

WRK_SCRIPT = Path(__file__).with_name("wrk_paths.lua")
CONNECTIONS = 32
THREADS = 2


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


class Server:
    """``geo-engine serve`` in a process group of its own, on the bench database."""

    def __init__(self, database: DatabaseSettings, port: int, workers: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "GEO_ENGINE_DATABASE_URL": database.database_url}
        geo_engine = str(Path(sys.executable).with_name("geo-engine"))
        self.process = subprocess.Popen(  # noqa: S603 (our own entry point, fixed arguments)
            [geo_engine, "serve", "--port", str(port), "--workers", str(workers)],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=2):  # noqa: S310
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("the API did not start within 60 s")

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


def http_load(
    database: DatabaseSettings,
    duration_s: int = 20,
    paced_delay_ms: int = 30,
    seed: int = 42,
    work: Path = Path("bench/results"),
) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    with psycopg.connect(database.database_url) as conn:
        plan = scenarios(conn, 20_000, seed)
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM project), (SELECT count(*) FROM contribution)"
        ).fetchone()
    assert counts is not None
    server = Server(database, port=18000 + os.getpid() % 1000, workers=2)
    figures: dict[str, Any] = {"projects": counts[0], "contributions": counts[1]}
    try:
        for scenario in plan:
            wrk(server.base, scenario, 3, 0, work)  # warm-up: caches, prepared statements
            figures[scenario.name] = {
                "paced": wrk(server.base, scenario, duration_s, paced_delay_ms, work),
                "flat_out": wrk(server.base, scenario, duration_s, 0, work),
            }
    finally:
        server.stop()
    return figures
