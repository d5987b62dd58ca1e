"""The public tile cache under wrk: the tile scenarios of ``bench http`` (project tiles at
zoom 10-14, commune tiles at zoom 8-13, around 20,000 project places, 32 connections, the same
two cores) served without the cache and with it, in one run.

Without the cache (``GEO_ENGINE_TILE_CACHE_MAX_BYTES=0``): paced (30 ms between requests per
connection, about 1,000 requests/s if answers were instant) and flat out. With it: a first
paced pass over the paths (cold: each worker reads most tiles for the first time), a second
paced pass (warm) and flat out (warm). Then the hot set, the first 1,000 paths only, which the
warm cache holds whole: the hit path's own cost (flat out also without the cache). The cache is
per worker process (api/tile_cache.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg

from bench.http_load import Scenario, scenarios, wrk
from bench.runner import http_database
from geo_engine.settings import DatabaseSettings, GeoSettings

DURATION_S = 20
PACED_MS = 30
PLACES = 20_000
HOT = 1_000


class _Served:
    """``geo-engine serve`` (2 workers) with this cache size, in a process group of its own,
    as bench http's Server but given three minutes to start: on the shared machine a worker's
    imports alone took 20 s."""

    def __init__(self, database: DatabaseSettings, cache_bytes: int, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.process = _start(database, cache_bytes, port)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=2):  # noqa: S310
                    return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError("the API did not start within 180 s")

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


def _start(database: DatabaseSettings, cache_bytes: int, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "GEO_ENGINE_DATABASE_URL": database.database_url,
        "GEO_ENGINE_TILE_CACHE_MAX_BYTES": str(cache_bytes),
    }
    return subprocess.Popen(  # noqa: S603 (our own entry point, fixed arguments)
        [str(Path(sys.executable).with_name("geo-engine")), "serve", "--port", str(port)]
        + ["--workers", "2"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
    )


def _runs(base: str, scenario: Scenario, work: Path, cached: bool) -> dict[str, Any]:
    # The hot set: the first HOT paths only, which a warm cache holds whole (the hit path).
    hot = Scenario(f"{scenario.name}_hot", scenario.paths[:HOT])
    if not cached:
        return {
            "paced": wrk(base, scenario, DURATION_S, PACED_MS, work),
            "flat_out": wrk(base, scenario, DURATION_S, 0, work),
            "flat_out_hot": wrk(base, hot, DURATION_S, 0, work),
        }
    figures = {
        "paced_cold": wrk(base, scenario, DURATION_S, PACED_MS, work),
        "paced_warm": wrk(base, scenario, DURATION_S, PACED_MS, work),
        "flat_out_warm": wrk(base, scenario, DURATION_S, 0, work),
    }
    wrk(base, hot, 3, 0, work)  # every hot tile into both workers' caches
    figures["paced_hot"] = wrk(base, hot, DURATION_S, PACED_MS, work)
    figures["flat_out_hot"] = wrk(base, hot, DURATION_S, 0, work)
    return figures


def run_tiles(database: DatabaseSettings, geo: GeoSettings, size: int, seed: int) -> dict[str, Any]:
    """Figures per scenario: ``uncached`` and ``cached`` runs, each wrk's requests/s and
    latency percentiles (ms)."""
    served = http_database(database, geo, size, seed)
    with psycopg.connect(served.database_url) as conn:
        plan = [s for s in scenarios(conn, PLACES, seed) if s.name.startswith("tiles_")]
    figures: dict[str, Any] = {}
    # A port per server: the one just stopped may still hold its own.
    ports = iter(range(19000 + os.getpid() % 900, 20000))
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for scenario in plan:
            figures[scenario.name] = {}
            for cached in (False, True):
                server = _Served(served, 128 * 1024 * 1024 if cached else 0, next(ports))
                try:
                    wrk(server.base, Scenario("warmup", scenario.paths[:200]), 2, 0, work)
                    label = "cached" if cached else "uncached"
                    figures[scenario.name][label] = _runs(server.base, scenario, work, cached)
                finally:
                    server.stop()
    return figures
