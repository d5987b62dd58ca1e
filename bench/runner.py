"""Run one benchmark on a database of its own (created, migrated and loaded on first use).

Work is done in a transaction that is rolled back, so a benchmark leaves nothing behind and
never touches the engine's own database.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import shapely
from psycopg import sql

from fixtures.population import generate_users
from geo_engine import db
from geo_engine.settings import DatabaseSettings, GeoSettings, UserSettings
from geo_engine.territories import geodata
from geo_engine.territories.load import current_millesime, load
from geo_engine.territories.locate import locate
from geo_engine.users.placement import CommuneIndex
from geo_engine.users.places import place, place_and_store, store_places, validate_places

Figures = dict[str, Any]


def bench_database(
    settings: DatabaseSettings, geo: GeoSettings, suffix: str = "_bench"
) -> DatabaseSettings:
    """``<database><suffix>`` beside the configured one, with France loaded."""
    head, _, name = settings.database_url.rpartition("/")
    bench_name = name.split("?")[0] + suffix
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (bench_name,)
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(bench_name)))
    bench = DatabaseSettings(database_url=f"{head}/{bench_name}")
    db.upgrade(bench)
    with db.connect(bench) as conn:
        if current_millesime(conn) is None:
            load(conn, geodata.read(geo.require_geodata_dir()), geo)
            conn.commit()
    return bench


def placement(conn: psycopg.Connection, size: int, seed: int) -> Figures:
    """Place ``size`` users into communes in memory and store them (binary COPY), two ways in
    the same run: ``serial`` (place all, then COPY, then keys and indexes, every foreign key
    checked) and the engine's ``place_and_store`` (placing overlapped with the COPY, foreign
    keys ``NOT VALID``, then validated, timed apart)."""
    t0 = time.perf_counter()
    batch = generate_users(conn, size, seed)
    # Profiles exist before placement, as after an import's first step.
    with conn.cursor() as cur:
        cur.execute("TRUNCATE user_place, app_user CASCADE")
        with cur.copy("COPY app_user (id) FROM STDIN") as copy:
            copy.write("\n".join(map(str, batch.ids.tolist())) + "\n")
    t1 = time.perf_counter()
    index = CommuneIndex.from_db(conn)
    t2 = time.perf_counter()
    conn.execute("SAVEPOINT serial")
    placed = place(conn, batch, index)
    t3 = time.perf_counter()
    with conn.cursor() as cur:
        store_places(cur, batch, placed, UserSettings())
    t4 = time.perf_counter()
    _check_stored(conn, size)
    conn.execute("ROLLBACK TO SAVEPOINT serial")
    t5 = time.perf_counter()
    pipelined = place_and_store(conn, batch, index, UserSettings(), foreign_keys_not_valid=True)
    t6 = time.perf_counter()
    validated = validate_places(conn)
    t7 = time.perf_counter()
    _check_stored(conn, size)
    assert len(validated) == 3, validated
    assert pipelined.pending == placed.pending
    for a, b in (
        (pipelined.commune, placed.commune),
        (pipelined.arrondissement, placed.arrondissement),
    ):
        assert (a == b).all()
    kernels = shapely_kernels(index, batch.lon, batch.lat)
    kernel = max(kernels.values())
    stored = t6 - t5
    return {
        "users_per_s": round(size / stored),
        "stored_and_enforced_s": round(stored, 3),
        "validate_foreign_keys_s": round(t7 - t6, 3),
        "stored_and_validated_s": round(t7 - t5, 3),
        "users_per_s_validated": round(size / (t7 - t5)),
        "serial_s": round(t4 - t2, 3),
        "serial_place_s": round(t3 - t2, 3),
        "serial_store_s": round(t4 - t3, 3),
        "index_build_s": round(t2 - t1, 3),
        "generate_s": round(t1 - t0, 3),
        "pending_postal_codes": pipelined.pending,
        **{f"kernel_{name}_points_per_s": v for name, v in kernels.items()},
        "kernel_points_per_s": kernel,
        "ratio_to_kernel": round(size / stored / kernel, 3),
        "ratio_to_kernel_validated": round(size / (t7 - t5) / kernel, 3),
    }


def _check_stored(conn: psycopg.Connection, size: int) -> None:
    stored = conn.execute("SELECT count(*) FROM user_place").fetchone()
    assert stored is not None and stored[0] == size


def shapely_kernels(
    index: CommuneIndex, lon: npt.NDArray[np.float64], lat: npt.NDArray[np.float64]
) -> dict[str, int]:
    """Points per second of in-process Shapely placements of the same home points over the same
    prepared commune pieces, nothing stored, run beside the bench; the fastest is the figure
    placement is compared with. ``strtree_within``: the textbook ``STRtree.query(points,
    predicate="within")``; ``strtree_prepared``: the tree's bounding boxes, then
    ``intersects_xy`` on the prepared pieces; ``grid``: the engine's own lookup grid with that
    exact test for boundary cells (:meth:`CommuneIndex.place`)."""
    has = ~np.isnan(lon)
    x, y = lon[has], lat[has]
    points = shapely.points(x, y)
    tree = shapely.STRtree(index.polys)
    figures = {}
    started = time.perf_counter()
    tree.query(points, predicate="within")
    figures["strtree_within"] = time.perf_counter() - started
    started = time.perf_counter()
    point_idx, poly_idx = tree.query(points)
    shapely.intersects_xy(index.polys[poly_idx], x[point_idx], y[point_idx])
    figures["strtree_prepared"] = time.perf_counter() - started
    started = time.perf_counter()
    index.place(x, y)
    figures["grid"] = time.perf_counter() - started
    return {name: round(x.size / s) for name, s in figures.items()}


def locate_points(conn: psycopg.Connection, size: int, seed: int) -> Figures:
    """Single locates, one after another on one connection, over ``size`` points in France."""
    batch = generate_users(conn, size * 2, seed)
    has = np.flatnonzero(~np.isnan(batch.lon))[:size]
    for i in has[:200]:  # warm the cache and the prepared statement
        locate(conn, float(batch.lat[i]), float(batch.lon[i]))
    times = []
    for i in has:
        t = time.perf_counter()
        locate(conn, float(batch.lat[i]), float(batch.lon[i]))
        times.append((time.perf_counter() - t) * 1000)
    q = statistics.quantiles(times, n=100)
    return {"p50_ms": round(q[49], 4), "p99_ms": round(q[98], 4), "points": len(times)}


BENCHMARKS: dict[str, Callable[[psycopg.Connection, int, int], Figures]] = {
    "placement": placement,
    "locate": locate_points,
}
NAMES = [*BENCHMARKS, "http", "audience", "recommend", "consumers", "digest"]
# Sizes when --size is not given: users for audience, projects for http, else users or points.
DEFAULT_SIZES = {"audience": 5_000_000, "consumers": 200_000, "digest": 1_000_000}
DEFAULT_SIZE = 10_000


HTTP_USERS = 20_000


def fixture_database(
    settings: DatabaseSettings,
    geo: GeoSettings,
    suffix: str,
    *fixtures_args: str,
    users: int,
    projects: int,
    seed: int,
) -> DatabaseSettings:
    """``<database><suffix>``: France with ``users`` users and ``projects`` projects, committed
    through `geo-engine fixtures load` (with ``fixtures_args``) and vacuumed, once per size: a
    database that already holds as many is used as it is."""
    database = bench_database(settings, geo, suffix=suffix)
    with db.connect(database) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM app_user), (SELECT count(*) FROM project)"
        ).fetchone()
        if row == (users, projects):
            return database
        conn.execute(
            "TRUNCATE meeting, contribution, project_territory, project_area, project, "
            "organisation_member, organisation, engagement, follow, recommendation_feedback, "
            "user_place, app_user, outbox"
        )
        conn.commit()
    subprocess.run(  # noqa: S603 (our own entry point, fixed arguments)
        [
            str(Path(sys.executable).with_name("geo-engine")),
            "fixtures",
            "load",
            "--users",
            str(users),
            "--projects",
            str(projects),
            "--seed",
            str(seed),
            *fixtures_args,
        ],
        env={**os.environ, "GEO_ENGINE_DATABASE_URL": database.database_url},
        check=True,
    )
    with db.connect(database, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return database


def http_database(
    settings: DatabaseSettings, geo: GeoSettings, projects: int, seed: int
) -> DatabaseSettings:
    """``<database>_bench_http``: France, users and ``projects`` projects (about ten
    contributions each), committed, since the served API reads them from its own connections."""
    return fixture_database(
        settings, geo, "_bench_http", users=HTTP_USERS, projects=projects, seed=seed
    )


def run(name: str, size: int, seed: int, settings: DatabaseSettings, geo: GeoSettings) -> Figures:
    if name == "http":
        from bench.http_load import http_load

        figures = http_load(http_database(settings, geo, size, seed), seed=seed)
    elif name == "audience":
        from bench.audience import run_audience

        figures = run_audience(settings, geo, size, seed)
    elif name == "consumers":
        from bench.consumers import run_consumers

        figures = run_consumers(settings, geo, size, seed)
    elif name == "recommend":
        from bench.recommend import run_recommend

        figures = run_recommend(settings, geo, size, seed)
    elif name == "digest":
        from bench.digest import run_digest

        figures = run_digest(settings, geo, size, seed)
    else:
        bench = bench_database(settings, geo)
        with db.connect(bench) as conn:
            try:
                figures = BENCHMARKS[name](conn, size, seed)
            finally:
                conn.rollback()
    return {
        "name": name,
        "size": size,
        **figures,
        "cores": os.cpu_count(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
