"""A PostgreSQL+PostGIS server of a test's own, which it may stop and start at will, alone or
with a hot standby streaming from it.

The clusters are made by ``scripts/pg_cluster.sh``, the same script ``make services`` runs (as
the ``postgres`` user when the tests run as root), in a temporary folder and on free ports. The
shared test server is never stopped.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
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
    folder: str = "pg"

    @property
    def data(self) -> Path:
        return self.root / self.folder

    @property
    def url(self) -> str:
        return f"postgresql://geo_engine:{self.password}@127.0.0.1:{self.port}/geo_engine"

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


@dataclass(frozen=True)
class Replicated:
    """A primary and a hot standby streaming from it (slot ``geo_engine_standby``)."""

    primary: Cluster
    standby: Cluster

    def settings(self) -> DatabaseSettings:
        """Writes to the primary, the API's reads to the standby."""
        return DatabaseSettings(database_url=self.primary.url, read_database_url=self.standby.url)

    def wait_replayed(self, timeout_s: float = 30.0) -> float:
        """Returns once the standby has replayed all the primary had written when called; the
        seconds that took. TimeoutError after ``timeout_s``."""
        started = time.monotonic()
        with psycopg.connect(self.primary.url, autocommit=True) as primary:
            row = primary.execute("SELECT pg_current_wal_lsn()").fetchone()
        assert row is not None
        with psycopg.connect(self.standby.url, autocommit=True) as standby:
            while True:
                done = standby.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (row[0],)
                ).fetchone()
                if done is not None and done[0]:
                    return time.monotonic() - started
                if time.monotonic() - started > timeout_s:
                    raise TimeoutError(f"the standby did not replay up to {row[0]}")
                time.sleep(0.02)


def _new_root() -> Path:
    if shutil.which("runuser") is None and os.geteuid() == 0:
        raise RuntimeError("running as root needs runuser to start PostgreSQL as 'postgres'")
    # Under the system's temporary folder (not pytest's, which is private to root): the
    # 'postgres' user must reach it.
    return Path(tempfile.mkdtemp(prefix="geo-engine-pg-"))


def _start_primary(cluster: Cluster, *, replication: bool) -> Path:
    """Create and start ``cluster`` with an empty ``geo_engine`` database; its password file."""
    password_file = cluster.root / "password"
    password_file.write_text(cluster.password, encoding="utf-8")
    _script("init", str(cluster.data), str(cluster.port), str(password_file))
    if replication:
        _script("replication", str(cluster.data))
    cluster.start()
    with psycopg.connect(cluster.settings("postgres").database_url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE geo_engine")
        # Tests crash this server on purpose: what was committed must survive it
        # (the development configuration turns synchronous_commit off for speed).
        conn.execute("ALTER SYSTEM SET synchronous_commit = on")
        conn.execute("SELECT pg_reload_conf()")
    return password_file


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """A running cluster with an empty ``geo_engine`` database; removed afterwards."""
    root = _new_root()
    cluster = Cluster(root=root, port=free_port(), password=secrets.token_urlsafe(18))
    try:
        _start_primary(cluster, replication=False)
        yield cluster
    finally:
        if cluster.running():
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def throwaway_replicated() -> Iterator[Replicated]:
    """A running primary with an empty ``geo_engine`` database and a running hot standby of
    it (``pg_basebackup -R`` through a replication slot, as ``make services-replica`` makes
    it); both removed afterwards."""
    root = _new_root()
    password = secrets.token_urlsafe(18)
    primary = Cluster(root=root, port=free_port(), password=password)
    standby_port = free_port()
    while standby_port == primary.port:
        standby_port = free_port()
    standby = Cluster(root=root, port=standby_port, password=password, folder="replica")
    try:
        password_file = _start_primary(primary, replication=True)
        _script(
            "standby",
            str(primary.port),
            str(standby.data),
            str(standby.port),
            str(password_file),
            "geo_engine_standby",
        )
        standby.start()
        yield Replicated(primary=primary, standby=standby)
    finally:
        for cluster in (standby, primary):
            if cluster.running():
                cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
