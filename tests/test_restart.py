"""A database restart, for real: a PostgreSQL of the test's own is stopped (``pg_ctl stop -m
immediate``, a crash) and started again while the API serves under light load.

While it is down every request is a prompt 503 problem document with ``Retry-After`` (never a
500, never a hang) and ``/health`` names PostgreSQL; once it is back no request fails, reads and
writes alike. The command line says it in one line with Unavailable's exit code.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from contracts.errors import POLICIES, Unavailable
from geo_engine import db, pools
from geo_engine.settings import ApiSettings, DatabaseSettings, GeoSettings, RedisSettings
from geo_engine.territories import geodata
from geo_engine.territories.load import load
from tests import minidata
from tests.cli import run_cli
from tests.conftest import TEST_SECRET, serving, token_for
from tests.pgcluster import Cluster, free_port, throwaway_cluster

pytestmark = [pytest.mark.slow, pytest.mark.geodata]

REIMS, TINQUEUX = "51454", "51573"
PROMPT_S = 3.0  # the longest a request may take while the database is down
UNAVAILABLE = POLICIES[Unavailable]
STAFF = token_for(1, staff=True)
READS = [
    "/v1/territories/locate?lat=49.2535&lon=4.0317",
    f"/v1/territories/communes/{REIMS}",
    "/v1/projects/nearby?lat=49.25&lon=4.03&radius_m=5000",
    "/v1/projects?bbox=3.9,49.2,4.1,49.3",
    "/v1/projects/1",
    "/v1/tiles/projects/12/2093/1393.mvt",
    f"/v1/territories/communes/{REIMS}/projects",
]


@pytest.fixture(scope="module")
def cluster(
    geodata_dir: Path, geo_settings: GeoSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """A server of our own with two real Marne communes and one project near Reims."""
    with throwaway_cluster() as running:
        settings = running.settings()
        db.upgrade(settings)
        mini = minidata.cut(geodata_dir, [REIMS, TINQUEUX])
        root = mini.write(tmp_path_factory.mktemp("mini-reims"))
        with db.connect(settings) as conn:
            load(conn, geodata.read(root), geo_settings)
            conn.commit()
        yield running


@pytest.fixture(scope="module")
def api_settings() -> ApiSettings:
    # The default pool timeout: the one a deployment runs with.
    return ApiSettings(jwt_secret=SecretStr(TEST_SECRET), pool_min_size=2, pool_max_size=4)


@pytest.fixture(scope="module")
def server(cluster: Cluster, api_settings: ApiSettings) -> Iterator[str]:
    with serving(
        create_app(cluster.settings(), api_settings, RedisSettings()), api_settings
    ) as url:
        with httpx.Client(base_url=url, timeout=30) as http:
            org = {"id": 1, "kind": "commune", "name": "Ville de Reims"}
            assert http.post("/v1/organisations", json=org, headers=STAFF).status_code == 200
            assert http.post("/v1/projects", json=_project(1), headers=STAFF).status_code == 200
        yield url


def _project(project_id: int) -> dict[str, Any]:
    return {
        "id": project_id,
        "organisation_id": 1,
        "space": "territoires",
        "tool": "carte_participative",
        "title": f"Projet {project_id}",
        "scope": {"kind": "territories", "territories": [{"level": "commune", "code": REIMS}]},
        "location": {"lon": 4.0317, "lat": 49.2535},
    }


@dataclass(frozen=True)
class Answer:
    path: str
    sent: float
    took: float
    status: int
    headers: httpx.Headers
    body: bytes


def _ask(http: httpx.Client, path: str, **post: Any) -> Answer:
    sent = time.monotonic()
    response = http.post(path, **post) if post else http.get(path)
    return Answer(
        path,
        sent,
        time.monotonic() - sent,
        response.status_code,
        response.headers,
        response.content,
    )


class Load:
    """``threads`` clients, each asking the reads in turn with a short pause, until stopped
    (at most ``limit`` requests each)."""

    def __init__(self, url: str, threads: int = 2, pause_s: float = 0.02, limit: int = 2000):
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(url, n, pause_s, limit), daemon=True)
            for n in range(threads)
        ]

    def _run(self, url: str, n: int, pause_s: float, limit: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            for i in range(limit):
                if self._stop.is_set():
                    return
                answer = _ask(http, READS[(i + n) % len(READS)])
                with self._lock:
                    self.answers.append(answer)
                time.sleep(pause_s)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def _assert_unavailable(answer: Answer) -> dict[str, Any]:
    assert answer.status == 503, (answer.path, answer.status, answer.body)
    assert answer.took <= PROMPT_S, (answer.path, answer.took)
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert int(answer.headers["retry-after"]) >= 1
    body: dict[str, Any] = httpx.Response(200, content=answer.body).json()
    assert body["status"] == 503
    assert body["type"] == UNAVAILABLE.problem_type
    assert body["detail"]
    return body


def test_the_api_through_a_restart(server: str, cluster: Cluster) -> None:
    with httpx.Client(base_url=server, timeout=30) as http, Load(server) as load:
        time.sleep(1.0)
        stopping = time.monotonic()
        cluster.stop("immediate")
        stopped = time.monotonic()

        time.sleep(1.0)  # requests under load meet the broken connections, then wait in vain
        health = _ask(http, "/health")
        write = _ask(http, "/v1/projects", json=_project(2), headers=STAFF)
        time.sleep(3.0)

        starting = time.monotonic()
        cluster.start()
        started = time.monotonic()
        time.sleep(3.0)
        write_after = _ask(http, "/v1/projects", json=_project(3), headers=STAFF)
        health_after = _ask(http, "/health")
        time.sleep(0.5)
    answers = sorted(load.answers, key=lambda a: a.sent)

    # Nothing ever answered 500, whatever the moment.
    assert {a.status for a in answers} <= {200, 503}, sorted({a.status for a in answers})
    before = [a for a in answers if a.sent + a.took < stopping]
    down = [a for a in answers if a.sent > stopped and a.sent + a.took < starting]
    after = [a for a in answers if a.sent > started]
    assert len(before) >= 4 and {a.status for a in before} == {200}
    # Down: every request a prompt 503 problem with Retry-After.
    assert len(down) >= 5, len(down)
    for answer in down:
        if answer.path.startswith("/v1/tiles/") and answer.status == 200:
            # A public tile from the API's cache (api/tile_cache.py): still right, since
            # nothing can be written while the database is down.
            continue
        _assert_unavailable(answer)
    body = _assert_unavailable(health)
    assert [e["where"] for e in body["errors"]] == ["PostgreSQL"]
    assert "PostgreSQL" in body["detail"]
    _assert_unavailable(write)
    # Back: not one error, reads and writes alike.
    assert len(after) >= 20, len(after)
    failed = [(a.path, a.status, a.body[:200]) for a in after if a.status != 200]
    assert failed == []
    assert write_after.status == 200, write_after.body
    assert health_after.status == 200, health_after.body
    assert {a.path for a in after} == set(READS)
    assert max(a.took for a in after) < PROMPT_S


def test_a_quick_restart_while_the_api_is_idle(server: str, cluster: Cluster) -> None:
    """Every pooled connection is broken and none was used during the outage: the first
    requests after it must not pay for them."""
    with httpx.Client(base_url=server, timeout=30) as http:
        assert _ask(http, READS[0]).status == 200
        cluster.stop("immediate")
        cluster.start()
        answers = [_ask(http, path) for path in READS]
        write = _ask(http, "/v1/projects", json=_project(4), headers=STAFF)
    assert [(a.path, a.status) for a in answers] == [(path, 200) for path in READS]
    assert write.status == 200, write.body


def test_the_command_line_against_a_stopped_server(cluster: Cluster) -> None:
    env = {"GEO_ENGINE_DATABASE_URL": cluster.settings().database_url}
    cluster.stop("immediate")
    try:
        for args in (["geo", "locate", "49.2535", "4.0317"], ["db", "upgrade"], ["status"]):
            done = run_cli(*args, env=env, columns=40)
            assert done.returncode == UNAVAILABLE.exit_code == 75, (args, done.stderr)
            assert done.stdout == ""
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1, done.stderr
            assert "cannot reach the database" in lines[0]
            assert "Traceback" not in done.stderr
    finally:
        cluster.start()
    done = run_cli("geo", "locate", "49.2535", "4.0317", env=env)
    assert done.returncode == 0, done.stderr
    assert f'"{REIMS}"' in done.stdout


def test_health_names_redis_when_it_is_down(cluster: Cluster, api_settings: ApiSettings) -> None:
    nowhere = RedisSettings(redis_url="redis://127.0.0.1:1/0")
    with TestClient(create_app(cluster.settings(), api_settings, nowhere)) as client:
        response = client.get("/health")
        assert client.get("/v1/territories/communes/51454").status_code == 200
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["retry-after"]) >= 1
    body = response.json()
    assert [e["where"] for e in body["errors"]] == ["Redis"]
    assert body["type"] == UNAVAILABLE.problem_type


def test_health_when_all_is_up(server: str) -> None:
    response = httpx.get(f"{server}/health", timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert str(body["postgis"]).startswith("3.")
    assert int(str(body["redis"]).split(".")[0]) >= 7


def _terminate(settings: DatabaseSettings, application: str) -> set[int]:
    """Kill the server processes of the connections named ``application``; their pids."""
    with psycopg.connect(settings.database_url, autocommit=True) as admin:
        # Materialized first: a plain WHERE may call pg_terminate_backend before the name test.
        rows = admin.execute(
            """WITH named AS MATERIALIZED (
                   SELECT pid FROM pg_stat_activity WHERE application_name = %s)
               SELECT pid FROM named WHERE pg_terminate_backend(pid)""",
            (application,),
        ).fetchall()
    time.sleep(0.2)  # the processes are gone, their sockets closed
    return {int(r[0]) for r in rows}


def _named(settings: DatabaseSettings, application: str) -> DatabaseSettings:
    return DatabaseSettings(database_url=f"{settings.database_url}?application_name={application}")


def test_a_read_on_a_broken_connection_runs_again_on_a_fresh_one(
    cluster: Cluster, api_settings: ApiSettings
) -> None:
    async def backend(conn: psycopg.AsyncConnection[Any]) -> int:
        cur = await conn.execute("SELECT pg_backend_pid()")
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    async def scenario() -> tuple[set[int], set[int]]:
        pool = pools.read_pool(_named(cluster.settings(), "broken_reads"), api_settings)
        await pool.open(wait=True)
        try:
            killed = _terminate(cluster.settings(), "broken_reads")
            # Every pooled connection is broken: without a second try the first read fails.
            return killed, {await pools.read(pool, backend) for _ in range(4)}
        finally:
            await pool.close()

    killed, served_by = asyncio.run(scenario())
    assert len(killed) == api_settings.pool_min_size
    assert served_by and not served_by & killed


def test_a_write_checks_its_connection_first(cluster: Cluster, api_settings: ApiSettings) -> None:
    pool = pools.write_pool(_named(cluster.settings(), "broken_writes"), api_settings)
    pool.open(wait=True)
    try:
        killed = _terminate(cluster.settings(), "broken_writes")
        # The write is not retried: the connection it is given must already work.
        with pool.connection() as conn:
            conn.execute("CREATE TEMP TABLE written (x int)")
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
    finally:
        pool.close()
    assert len(killed) == 1
    assert row is not None and row[0] not in killed


def test_what_counts_as_a_lost_connection(cluster: Cluster) -> None:
    with db.connect(cluster.settings(), autocommit=True) as conn:
        conn.execute("SET statement_timeout = '50ms'")
        with pytest.raises(psycopg.OperationalError) as canceled:
            conn.execute("SELECT pg_sleep(1)")
    assert not pools.connection_lost(canceled.value)  # a slow query is not an outage
    refused = DatabaseSettings(database_url=f"postgresql://x:y@127.0.0.1:{free_port()}/x")
    with pytest.raises(psycopg.OperationalError) as unreachable:
        db.connect(refused)
    assert pools.connection_lost(unreachable.value)
