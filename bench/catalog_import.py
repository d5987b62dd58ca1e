"""The catalogue import at the seed's scale: ``size`` projects from their JSON Lines files.

On ``<database>_bench_catalog`` (France and 20,000 fixture users, committed once through
`geo-engine fixtures load --projects 0`; the catalogue tables empty): the catalogue of ``size``
projects that `geo-engine fixtures catalog --projects SIZE --seed SEED` writes (organisations,
members, projects, ten contributions per project) is generated once into
``$TMPDIR/geo-engine-bench-catalog-SIZE-SEED/`` (not timed), then imported by a fresh Python
process (the figures are its own: peak memory is the import's, not the generator's) through
:func:`geo_engine.catalog.imports.import_catalog`, the function `geo-engine catalog import DIR`
runs, in one transaction that is rolled back. Two variants, one after the other in the same run:

- ``built_once``: the CLI's settings (:class:`CatalogSettings` defaults), so a big import into
  empty tables drops each table's secondary indexes and foreign keys and builds them once;
- ``row_by_row``: the same import with every index and key kept up row by row (the path of the
  API's writes, and of an import small compared with its table).

Each reports ``import_s`` (reading, validating and storing the four files, wall clock),
``projects_per_s``, ``python_cpu_s`` and ``postgres_cpu_s`` (CPU time of the importing process
and of its PostgreSQL backend, which do not depend on what else runs on the machine, unlike the
wall clock; parallel index-build workers not included), ``peak_rss_mb`` (the importing process's
peak resident memory) and, for ``built_once``, ``reimport_s``: the same files again in the same
transaction, nothing left to write.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from geo_engine import db
from geo_engine.catalog.imports import PARTS, catalog_files, import_catalog
from geo_engine.settings import CatalogSettings, DatabaseSettings, GeoSettings

USERS = 20_000
CATALOG_TABLES = (
    "contribution, project_territory, project_area, project, organisation_member, organisation"
)


def catalog_database(settings: DatabaseSettings, geo: GeoSettings, seed: int) -> DatabaseSettings:
    """``<database>_bench_catalog``: France and ``USERS`` users, no catalogue."""
    from bench.runner import fixture_database

    return fixture_database(
        settings, geo, "_bench_catalog", "--no-engagement", users=USERS, projects=0, seed=seed
    )


def catalog_folder(database: DatabaseSettings, size: int, seed: int) -> Path:
    """The four files of a ``size``-project catalogue, written once per (size, seed)."""
    from fixtures.catalog import CONTRIBUTIONS_PER_PROJECT, generate_catalog, write_catalog

    folder = Path(tempfile.gettempdir()) / f"geo-engine-bench-catalog-{size}-{seed}"
    done = folder / "complete"
    if not done.is_file():
        with db.connect(database) as conn:
            catalog = generate_catalog(conn, size, seed, CONTRIBUTIONS_PER_PROJECT * size)
        write_catalog(catalog, folder)
        done.touch()
    return folder


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (a PostgreSQL backend on this machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def import_once(database_url: str, folder: Path, variant: str) -> dict[str, Any]:
    """In this process: import ``folder`` in one transaction, time it, roll it back."""
    settings = CatalogSettings() if variant == "built_once" else None
    files = catalog_files(folder)
    with db.connect(DatabaseSettings(database_url=database_url)) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        backend = int(row[0])
        empty = conn.execute("SELECT count(*) FROM project").fetchone()
        assert empty == (0,), "the bench database's catalogue must be empty"
        cpu, backend_cpu = time.process_time(), _cpu_s(backend)
        started = time.perf_counter()
        done = import_catalog(conn, files, settings)
        import_s = time.perf_counter() - started
        figures: dict[str, Any] = {
            "import_s": round(import_s, 2),
            "projects_per_s": round(done["projects"].lines / import_s),
            "python_cpu_s": round(time.process_time() - cpu, 2),
            "postgres_cpu_s": round(_cpu_s(backend) - backend_cpu, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "rows": {name: imported.written for name, imported in done.items()},
        }
        if variant == "built_once":
            started = time.perf_counter()
            again = import_catalog(conn, files, settings)
            figures["reimport_s"] = round(time.perf_counter() - started, 2)
            assert all(imported.written == 0 for imported in again.values())
        conn.rollback()
    return figures


def run_catalog_import(
    settings: DatabaseSettings, geo: GeoSettings, size: int, seed: int
) -> dict[str, Any]:
    database = catalog_database(settings, geo, seed)
    with db.connect(database) as conn:
        conn.execute(f"TRUNCATE {CATALOG_TABLES} CASCADE")  # left by an interrupted run
        conn.commit()
    folder = catalog_folder(database, size, seed)
    lines = {name: sum(1 for _ in (folder / part.file).open("rb")) for name, part in PARTS.items()}
    figures: dict[str, Any] = {"lines": lines, "load_average": os.getloadavg()[0]}
    for variant in ("built_once", "row_by_row"):
        child = subprocess.run(  # noqa: S603 (this module, fixed arguments)
            [sys.executable, "-m", "bench.catalog_import", database.database_url, str(folder)]
            + [variant],
            capture_output=True,
            text=True,
            check=True,
        )
        figures[variant] = json.loads(child.stdout)
        print(variant, child.stdout.strip(), file=sys.stderr)  # noqa: T201 (a long run's first half)
    figures["load_average_after"] = os.getloadavg()[0]
    return figures


if __name__ == "__main__":
    print(json.dumps(import_once(sys.argv[1], Path(sys.argv[2]), sys.argv[3])))  # noqa: T201
