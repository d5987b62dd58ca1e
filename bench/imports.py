"""`geo-engine users import` of ``size`` users from JSON Lines, as the real command runs it.

The file is written once per size and seed by the fixtures (85% home points, 10% commune
codes, 5% postal codes, as `geo-engine fixtures users`), not timed, and kept in
``<tmp>/geo-engine-bench/``. ``<database>_bench_import`` (France loaded) is emptied of users,
then the clock runs over the command `geo-engine users import FILE` in a child process: its
wall time gives ``users_per_s`` and its own ``ru_maxrss`` (from ``wait4``) ``peak_rss_mb``, the
peak the command has on its own. The users are deleted afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from geo_engine import db
from geo_engine.settings import DatabaseSettings, GeoSettings


def users_file(settings: DatabaseSettings, size: int, seed: int) -> Path:
    """The fixtures' ``size`` users as JSON Lines, written on first use."""
    from fixtures.population import generate_users, to_jsonl

    folder = Path(tempfile.gettempdir()) / "geo-engine-bench"
    folder.mkdir(exist_ok=True)
    path = folder / f"users-{size}-{seed}.jsonl"
    if not path.exists():
        with db.connect(settings) as conn:
            batch = generate_users(conn, size, seed)
        partial = path.with_suffix(".partial")
        with partial.open("wb") as out:
            out.writelines(to_jsonl(batch))
        partial.rename(path)
    return path


def _empty(database: DatabaseSettings) -> None:
    with db.connect(database) as conn:
        conn.execute("TRUNCATE user_place, app_user, outbox CASCADE")
        conn.commit()


def run_import(
    settings: DatabaseSettings, geo: GeoSettings, size: int, seed: int
) -> dict[str, Any]:
    from bench.runner import bench_database

    database = bench_database(settings, geo, suffix="_bench_import")
    path = users_file(database, size, seed)
    _empty(database)
    command = [str(Path(sys.executable).with_name("geo-engine")), "users", "import", str(path)]
    env = {**os.environ, "GEO_ENGINE_DATABASE_URL": database.database_url}
    started = time.perf_counter()
    child = subprocess.Popen(  # noqa: S603 (our own entry point, fixed arguments)
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert child.stderr is not None
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"users import failed ({child.returncode}): {stderr.decode()[-2000:]}")
    with db.connect(database) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM app_user), (SELECT count(*) FROM user_place)"
        ).fetchone()
    assert row == (size, size), row
    _empty(database)
    return {
        "users_per_s": round(size / elapsed),
        "import_s": round(elapsed, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "file_mb": round(path.stat().st_size / 2**20),
        "load_average": round(os.getloadavg()[0], 2),
    }
