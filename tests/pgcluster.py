"""A PostgreSQL+PostGIS server of a test's own, which it may stop and start at will.

The cluster is made by ``scripts/pg_cluster.sh``, the same script ``make services`` runs (as the
``postgres`` user when the tests run as root), in a temporary folder and on a free port. The
shared test server is never stopped.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg

from geo_engine.settings import DatabaseSettings

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "pg_cluster.sh"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _script(*args: str) -> None:
    done = subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [str(SCRIPT), *args],
        env={**os.environ, "PG_SHARED_BUFFERS": "128MB"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pg_cluster.sh {' '.join(args)} failed: {done.stderr.strip()}")


@dataclass(frozen=True)
class Cluster:
    root: Path
    port: int
    password: str

    @property
    def data(self) -> Path:
        return self.root / "pg"

    def settings(self, database: str = "geo_engine") -> DatabaseSettings:
        return DatabaseSettings(
            database_url=f"postgresql://geo_engine:{self.password}@127.0.0.1:{self.port}/{database}"
        )

    def start(self) -> None:
        """Returns once the server accepts connections."""
        _script("start", str(self.data))

    def stop(self, mode: Literal["fast", "immediate"] = "fast") -> None:
        """Returns once the server is down; ``immediate`` is a crash: no client is told."""
        _script("stop", str(self.data), mode)

    def running(self) -> bool:
        return (
            subprocess.run(  # noqa: S603
                [str(SCRIPT), "status", str(self.data)], capture_output=True, check=False
            ).returncode
            == 0
        )


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """A running cluster with an empty ``geo_engine`` database; removed afterwards."""
    if shutil.which("runuser") is None and os.geteuid() == 0:
        raise RuntimeError("running as root needs runuser to start PostgreSQL as 'postgres'")
    # Under the system's temporary folder (not pytest's, which is private to root): the
    # 'postgres' user must reach it.
    root = Path(tempfile.mkdtemp(prefix="geo-engine-pg-"))
    cluster = Cluster(root=root, port=free_port(), password=secrets.token_urlsafe(18))
    try:
        password_file = root / "password"
        password_file.write_text(cluster.password, encoding="utf-8")
        _script("init", str(cluster.data), str(cluster.port), str(password_file))
        cluster.start()
        with psycopg.connect(cluster.settings("postgres").database_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE geo_engine")
            # Tests crash this server on purpose: what was committed must survive it
            # (the development configuration turns synchronous_commit off for speed).
            conn.execute("ALTER SYSTEM SET synchronous_commit = on")
            conn.execute("SELECT pg_reload_conf()")
        yield cluster
    finally:
        if cluster.running():
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
