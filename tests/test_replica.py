"""The API's reads on a PostgreSQL hot standby, for real: a primary and a standby of the test's
own (``scripts/pg_cluster.sh``, as ``make services-replica`` makes them), two Marne communes and
a project near Reims.

The standby replays the primary; the API's reads come from it (a project written through the
API is not seen while the standby's replay is paused) and its writes land on the primary; reads
keep answering while the primary takes a heavy write load; a stopped standby is a prompt 503
with ``Retry-After`` for reads while writes go on, and once it is back nothing fails.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from api.app import create_app
from geo_engine import db, pools
from geo_engine.health import lsn_bytes
from geo_engine.settings import ApiSettings, DatabaseSettings, GeoSettings, RedisSettings
from geo_engine.territories import geodata
from geo_engine.territories.load import load
from tests import minidata
from tests.cli import run_cli
from tests.conftest import TEST_SECRET, serving, token_for
from tests.pgcluster import Replicated, free_port, throwaway_replicated

REIMS, TINQUEUX = "51454", "51573"
PROMPT_S = 3.0  # the longest a request may take while the standby is down
STAFF = token_for(1, staff=True)
READS = [
    "/v1/territories/locate?lat=49.2535&lon=4.0317",
    f"/v1/territories/communes/{REIMS}",
    "/v1/projects/nearby?lat=49.25&lon=4.03&radius_m=5000",
    "/v1/projects?bbox=3.9,49.2,4.1,49.3",
    "/v1/projects/1",
    "/v1/tiles/projects/12/2093/1393.mvt",
    f"/v1/territories/communes/{REIMS}/projects",
    "/v1/territories/places?q=reims",
    "/v1/contributions/nearby?lat=49.25&lon=4.03",
    "/v1/tiles/communes/9/261/174.mvt",
    "/v1/tiles/epcis/9/261/174.mvt",
]


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


# ---------------------------------------------------------------- settings (no server)


def test_the_read_url_is_optional_and_reads_the_primary_s_database() -> None:
    primary = "postgresql://u:p@127.0.0.1:5432/geo_engine"
    alone = DatabaseSettings(database_url=primary, read_database_url="")
    assert alone.read_database_url is None and alone.reads_url == primary
    standby = "postgresql://u:p@127.0.0.1:5433/geo_engine?application_name=api"
    both = DatabaseSettings(database_url=primary, read_database_url=standby)
    assert both.reads_url == standby and both.database_url == primary
    # Settings made for another database of the same server read that one on the standby.
    bench = DatabaseSettings(database_url=primary + "_bench", read_database_url=standby)
    assert (
        bench.reads_url == "postgresql://u:p@127.0.0.1:5433/geo_engine_bench?application_name=api"
    )
    with pytest.raises(ValidationError, match="must be a postgresql:// URL"):
        DatabaseSettings(database_url=primary, read_database_url="mysql://h/geo_engine")


def test_a_wal_position_in_bytes() -> None:
    assert lsn_bytes("0/3000148") == 0x3000148
    assert lsn_bytes("16/B374D848") == (0x16 << 32) + 0xB374D848


# ---------------------------------------------------------------- a primary and its standby


@pytest.fixture(scope="module")
def replicated(
    geodata_dir: Path, geo_settings: GeoSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replicated]:
    """Schema and two real Marne communes written on the primary, replayed by the standby."""
    with throwaway_replicated() as running:
        settings = DatabaseSettings(database_url=running.primary.url)
        db.upgrade(settings)
        mini = minidata.cut(geodata_dir, [REIMS, TINQUEUX])
        root = mini.write(tmp_path_factory.mktemp("mini-reims-replica"))
        with db.connect(settings) as conn:
            load(conn, geodata.read(root), geo_settings)
            conn.commit()
        running.wait_replayed()
        yield running


@pytest.fixture(scope="module")
def api_settings() -> ApiSettings:
    return ApiSettings(jwt_secret=SecretStr(TEST_SECRET), pool_min_size=2, pool_max_size=4)


@pytest.fixture(scope="module")
def server(replicated: Replicated, api_settings: ApiSettings) -> Iterator[str]:
    app = create_app(replicated.settings(), api_settings, RedisSettings())
    with serving(app, api_settings) as url:
        with httpx.Client(base_url=url, timeout=30) as http:
            org = {"id": 1, "kind": "commune", "name": "Ville de Reims"}
            assert http.post("/v1/organisations", json=org, headers=STAFF).status_code == 200
            assert http.post("/v1/projects", json=_project(1), headers=STAFF).status_code == 200
        replicated.wait_replayed()
        yield url


def _one(url: str, query: str, *params: object) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


@pytest.mark.slow
@pytest.mark.geodata
def test_the_standby_replays_the_primary_and_refuses_writes(replicated: Replicated) -> None:
    assert _one(replicated.standby.url, "SELECT pg_is_in_recovery()") is True
    assert _one(replicated.primary.url, "SELECT pg_is_in_recovery()") is False
    # France's part was replayed: the same communes, outlines and all.
    query = "SELECT string_agg(code || ST_AsText(geom, 6), ',' ORDER BY code) FROM commune"
    assert _one(replicated.standby.url, query) == _one(replicated.primary.url, query)
    assert REIMS in _one(replicated.standby.url, query)
    with psycopg.connect(replicated.primary.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE replayed (n int)")
        conn.execute("INSERT INTO replayed VALUES (42)")
    replicated.wait_replayed()
    assert _one(replicated.standby.url, "SELECT n FROM replayed") == 42
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        _one(replicated.standby.url, "INSERT INTO replayed VALUES (1) RETURNING n")
    slot = "SELECT active FROM pg_replication_slots WHERE slot_name = 'geo_engine_standby'"
    assert _one(replicated.primary.url, slot) is True
    streaming = "SELECT string_agg(state, ',') FROM pg_stat_replication"
    assert _one(replicated.primary.url, streaming) == "streaming"


@pytest.mark.slow
@pytest.mark.geodata
def test_reads_come_from_the_standby_and_writes_land_on_the_primary(
    server: str, replicated: Replicated
) -> None:
    with (
        httpx.Client(base_url=server, timeout=30) as http,
        psycopg.connect(replicated.standby.url, autocommit=True) as standby,
    ):
        assert http.get("/v1/projects/1").status_code == 200
        standby.execute("SELECT pg_wal_replay_pause()")
        try:
            written = http.post("/v1/projects", json=_project(2), headers=STAFF)
            # The write's answer carries what was written, whatever the standby's lag.
            assert written.status_code == 200, written.text
            assert written.json()["id"] == 2
            on_primary = "SELECT count(*) FROM project WHERE id = 2"
            assert _one(replicated.primary.url, on_primary) == 1
            # The standby has not replayed it: the API's read, which goes there, does not see it.
            time.sleep(0.3)
            assert http.get("/v1/projects/2").status_code == 404
            nearby = http.get("/v1/projects/nearby?lat=49.25&lon=4.03&radius_m=5000").json()
            assert [f["id"] for f in nearby["features"]] == [1]
            paused = http.get("/health")
            assert paused.status_code == 200, paused.text
            lagging = paused.json()["replica"]
            assert lagging["in_recovery"] is True
            assert lagging["behind_bytes"] > 0 and lagging["lag_s"] > 0, lagging
        finally:
            standby.execute("SELECT pg_wal_replay_resume()")
        waited = replicated.wait_replayed()
        assert http.get("/v1/projects/2").status_code == 200, f"replayed in {waited:.3f} s"
        health = http.get("/health")
    assert health.status_code == 200, health.text
    body = health.json()
    assert body["status"] == "ok" and str(body["postgis"]).startswith("3.")
    assert body["replica"]["in_recovery"] is True
    assert body["replica"]["lag_s"] is not None and body["replica"]["behind_bytes"] >= 0


class Readers:
    """``threads`` clients asking the reads in turn, as fast as they are answered, until
    stopped: (path, status, seconds) of every answer."""

    def __init__(self, url: str, threads: int = 2) -> None:
        self.answers: list[tuple[str, int, float]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(url, n), daemon=True) for n in range(threads)
        ]

    def _run(self, url: str, n: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            i = n
            while not self._stop.is_set():
                path = READS[i % len(READS)]
                sent = time.monotonic()
                status = http.get(path).status_code
                with self._lock:
                    self.answers.append((path, status, time.monotonic() - sent))
                i += 1

    def __enter__(self) -> Readers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


class WriteLoad:
    """Bulk inserts of 20,000 rows of 200 bytes (about 5 MB of WAL each), deletes and vacuums
    on the primary, one statement after another, until stopped: the rows written."""

    def __init__(self, url: str) -> None:
        self.rows = 0
        self._url = url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self._url, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS ballast (n bigint, payload text)")
            rounds = 0
            while not self._stop.is_set():
                cur = conn.execute(
                    "INSERT INTO ballast SELECT g, repeat('x', 200)"
                    " FROM generate_series(1, 20000) g"
                )
                self.rows += cur.rowcount
                rounds += 1
                if rounds % 5 == 0:  # dead rows and their vacuum: what a standby's replay
                    conn.execute("DELETE FROM ballast WHERE n % 2 = 0")  # may conflict with
                    conn.execute("VACUUM ballast")

    def __enter__(self) -> WriteLoad:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)


@pytest.mark.slow
@pytest.mark.geodata
def test_reads_keep_answering_while_the_primary_takes_a_heavy_write_load(
    server: str, replicated: Replicated, api_settings: ApiSettings
) -> None:
    """Reads through the standby, and, side by side in the same run for comparison, through an
    API whose reads go to the primary: quiet, then while the primary takes the write load."""
    on_primary = DatabaseSettings(database_url=replicated.primary.url)
    with serving(create_app(on_primary, api_settings, RedisSettings()), api_settings) as beside:
        for url in (server, beside):
            with httpx.Client(base_url=url, timeout=30) as http:
                assert [http.get(path).status_code for path in READS] == [200] * len(READS)
        # Warm: the pools open their other connections, whose first queries fill PostGIS's
        # caches of each server process.
        with Readers(server), Readers(beside):
            time.sleep(1.5)
        with Readers(server) as quiet, Readers(beside) as quiet_primary:
            time.sleep(3.0)
        lags: list[dict[str, Any]] = []
        with (
            httpx.Client(base_url=server, timeout=30) as http,
            Readers(server) as loaded,
            Readers(beside) as loaded_primary,
            WriteLoad(replicated.primary.url) as load,
        ):
            deadline = time.monotonic() + 6.0
            while time.monotonic() < deadline:
                health = http.get("/health")
                assert health.status_code == 200, health.text
                lags.append(health.json()["replica"])
                time.sleep(0.25)
        written = load.rows
    replayed_in = replicated.wait_replayed(timeout_s=120)

    def figures(answers: list[tuple[str, int, float]]) -> str:
        took = sorted(a[2] for a in answers)
        p99 = took[max(0, int(len(took) * 0.99) - 1)]
        return (
            f"{len(took)} reads, median {statistics.median(took) * 1000:.1f} ms,"
            f" p99 {p99 * 1000:.1f} ms, max {took[-1] * 1000:.1f} ms"
        )

    behind = max(lag["behind_bytes"] for lag in lags)
    message = (
        f"quiet: standby {figures(quiet.answers)}, primary {figures(quiet_primary.answers)};"
        f" under load ({written:,} rows written on the primary): standby"
        f" {figures(loaded.answers)}, primary {figures(loaded_primary.answers)}; the standby up"
        f" to {behind:,} bytes and {max(lag['lag_s'] for lag in lags):.3f} s behind, all"
        f" replayed {replayed_in:.2f} s after the load stopped"
    )
    print(message)
    failed = sorted({(path, status) for path, status, _ in loaded.answers if status != 200})
    assert failed == [], message
    assert {a[0] for a in loaded.answers} == set(READS), message
    assert len(loaded.answers) >= 20, message
    assert written >= 100_000, message  # it was a heavy load
    assert max(a[2] for a in loaded.answers) < PROMPT_S, message
    # The load went through the standby while it answered: it replayed every row.
    assert _one(replicated.standby.url, "SELECT count(*) > 0 FROM ballast") is True


@pytest.mark.slow
@pytest.mark.geodata
def test_a_read_the_standby_cancels_for_its_replay_runs_again(
    replicated: Replicated, api_settings: ApiSettings
) -> None:
    with psycopg.connect(replicated.standby.url, autocommit=True) as standby:
        # The standby waits this long for a query in the way of its replay, then cancels it.
        standby.execute("ALTER SYSTEM SET max_standby_streaming_delay = '100ms'")
        standby.execute("SELECT pg_reload_conf()")
    with psycopg.connect(replicated.primary.url, autocommit=True) as primary:
        primary.execute("CREATE TABLE conflicted AS SELECT 7 AS n")
    replicated.wait_replayed()

    def lock_on_primary() -> None:
        # An ACCESS EXCLUSIVE lock is replayed on the standby: it conflicts with the read.
        with psycopg.connect(replicated.primary.url) as primary:
            primary.execute("LOCK TABLE conflicted IN ACCESS EXCLUSIVE MODE")

    calls: list[float] = []

    async def work(conn: psycopg.AsyncConnection[Any]) -> int:
        calls.append(time.monotonic())
        if len(calls) == 1:
            threading.Timer(0.5, lock_on_primary).start()
            cur = await conn.execute("SELECT n FROM conflicted, pg_sleep(5)")
        else:
            cur = await conn.execute("SELECT n FROM conflicted")
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    async def scenario() -> int:
        pool = pools.read_pool(replicated.settings(), api_settings)
        await pool.open(wait=True)
        try:
            return await pools.read(pool, work)
        finally:
            await pool.close()

    canceled_before = _one(replicated.standby.url, _CONFLICTS)
    assert asyncio.run(scenario()) == 7
    assert len(calls) == 2
    assert calls[1] - calls[0] < 4.0  # canceled by the replay, not run to its end
    assert _one(replicated.standby.url, _CONFLICTS) == canceled_before + 1


_CONFLICTS = "SELECT confl_lock FROM pg_stat_database_conflicts WHERE datname = 'geo_engine'"


@pytest.mark.slow
@pytest.mark.geodata
def test_the_command_line_status_reports_the_standby(replicated: Replicated) -> None:
    env = {"GEO_ENGINE_DATABASE_URL": replicated.primary.url}
    done = run_cli("status", env={**env, "GEO_ENGINE_READ_DATABASE_URL": replicated.standby.url})
    assert done.returncode == 0, done.stderr
    replica = json.loads(done.stdout)["replica"]
    assert replica["in_recovery"] is True
    assert replica["lag_s"] >= 0 and replica["behind_bytes"] >= 0
    nowhere = f"postgresql://geo_engine:x@127.0.0.1:{free_port()}/geo_engine"
    down = run_cli("status", env={**env, "GEO_ENGINE_READ_DATABASE_URL": nowhere})
    assert down.returncode == 75, down.stderr
    assert down.stdout == ""
    assert down.stderr.strip().splitlines() == [
        "error: cannot reach the hot standby (GEO_ENGINE_READ_DATABASE_URL); its reads fail"
    ]


@pytest.mark.slow
@pytest.mark.geodata
def test_a_stopped_standby_is_a_503_for_reads_while_writes_go_on(
    server: str, replicated: Replicated
) -> None:
    with httpx.Client(base_url=server, timeout=30) as http:
        assert http.get(READS[0]).status_code == 200
        replicated.standby.stop("immediate")
        try:
            down: list[tuple[httpx.Response, float]] = []
            for path in READS:
                sent = time.monotonic()
                down.append((http.get(path), time.monotonic() - sent))
            health = http.get("/health")
            write = http.post("/v1/projects", json=_project(3), headers=STAFF)
        finally:
            replicated.standby.start()
        replicated.wait_replayed()
        back = [http.get(path) for path in READS]
        replayed = http.get("/v1/projects/3")
    for response, took in down:
        assert took <= PROMPT_S, (response.url, took)
        if response.url.path.startswith("/v1/tiles/") and response.status_code == 200:
            # A public tile the process's cache held (api/tile_cache.py): no read needed.
            assert response.headers["etag"] and response.headers["cache-control"].startswith(
                "public"
            )
            continue
        assert response.status_code == 503, (response.url, response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert int(response.headers["retry-after"]) >= 1
        assert "retry" in response.json()["detail"]
    assert health.status_code == 503
    assert [e["where"] for e in health.json()["errors"]] == ["PostgreSQL replica"]
    assert write.status_code == 200, write.text  # the primary takes the writes meanwhile
    assert [(r.url.path, r.status_code) for r in back] == [
        (httpx.URL(path).path, 200) for path in READS
    ]
    assert replayed.status_code == 200, replayed.text


@pytest.mark.slow
@pytest.mark.geodata
def test_the_api_starts_while_its_standby_is_unreachable(
    replicated: Replicated, api_settings: ApiSettings
) -> None:
    nowhere = f"postgresql://geo_engine:x@127.0.0.1:{free_port()}/geo_engine"
    settings = DatabaseSettings(database_url=replicated.primary.url, read_database_url=nowhere)
    with TestClient(create_app(settings, api_settings, RedisSettings())) as client:
        sent = time.monotonic()
        read = client.get(f"/v1/territories/communes/{REIMS}")
        took = time.monotonic() - sent
        health = client.get("/health")
        write = client.post("/v1/projects", json=_project(4), headers=STAFF)
    assert read.status_code == 503, read.text
    assert took <= PROMPT_S
    assert int(read.headers["retry-after"]) >= 1
    assert health.status_code == 503
    assert [e["where"] for e in health.json()["errors"]] == ["PostgreSQL replica"]
    assert write.status_code == 200, write.text
