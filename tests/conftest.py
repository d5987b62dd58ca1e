"""Tests run against the real PostGIS started by ``make services``, on databases of their own.

Each test run creates a fresh database, migrates it and loads the real geography of France once;
each test then works inside a transaction that is rolled back.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from psycopg import sql
from pydantic import SecretStr

from api.app import create_app
from api.auth import make_token
from api.limits import uvicorn_options
from geo_engine import db
from geo_engine.settings import ApiSettings, DatabaseSettings, GeoSettings
from geo_engine.territories import geodata
from geo_engine.territories.load import load

# Tests make their own standby (tests/test_replica.py): a GEO_ENGINE_READ_DATABASE_URL that
# `make services-replica` wrote to .env would send their API's reads to another server.
os.environ["GEO_ENGINE_READ_DATABASE_URL"] = ""


def _with_database(url: str, name: str) -> str:
    head, _, _ = url.rpartition("/")
    return f"{head}/{name}"


@pytest.fixture(scope="session")
def server_settings() -> DatabaseSettings:
    return DatabaseSettings()


def _name(settings: DatabaseSettings) -> str:
    return settings.database_url.rpartition("/")[2].split("?")[0]


@pytest.fixture(scope="session")
def make_database(
    server_settings: DatabaseSettings,
) -> Iterator[Callable[..., DatabaseSettings]]:
    """Create fresh, migrated databases on the test server (or copies of ``template``, a
    database nobody is connected to); drop them all at the end."""
    created: list[str] = []

    def make(template: DatabaseSettings | None = None) -> DatabaseSettings:
        name = f"geo_engine_test_{uuid.uuid4().hex[:10]}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement += sql.SQL(" TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(_name(template))
            )
        with psycopg.connect(server_settings.database_url, autocommit=True) as conn:
            conn.execute(statement)
        created.append(name)
        settings = DatabaseSettings(database_url=_with_database(server_settings.database_url, name))
        if template is None:
            db.upgrade(settings)
        return settings

    yield make
    with psycopg.connect(server_settings.database_url, autocommit=True) as conn:
        for name in created:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def geo_settings() -> GeoSettings:
    settings = GeoSettings()
    if settings.geodata_dir is None or not settings.geodata_dir.is_dir():
        if os.environ.get("CI"):
            pytest.fail("GEO_ENGINE_GEODATA_DIR is not set or missing, and CI needs the real data")
        pytest.skip("the real geography (shared/geodata) is absent: set GEO_ENGINE_GEODATA_DIR")
    return settings


@pytest.fixture(scope="session")
def geodata_dir(geo_settings: GeoSettings) -> Path:
    return geo_settings.require_geodata_dir()


@pytest.fixture(scope="session")
def france(geodata_dir: Path) -> geodata.GeoDataSet:
    return geodata.read(geodata_dir)


@pytest.fixture(scope="session")
def communes_json(geodata_dir: Path) -> dict[str, dict[str, Any]]:
    """The communes in force of ``membership/communes.json``, read with plain json, by INSEE
    code: the expected values of tests, independent of the loader."""
    records = json.loads((geodata_dir / "membership" / "communes.json").read_text("utf-8"))
    return {r["code"]: r for r in records if r["type"] == "commune-actuelle"}


@pytest.fixture(scope="session")
def former_codes(communes_json: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Former INSEE code → the commune nouvelle that absorbed it."""
    return {
        old: code
        for code, record in communes_json.items()
        for old in record.get("anciensCodes") or []
        if old != code
    }


@pytest.fixture(scope="session")
def france_db(
    make_database: Callable[[], DatabaseSettings],
    france: geodata.GeoDataSet,
    geo_settings: GeoSettings,
) -> DatabaseSettings:
    """A database holding all of France's territories, loaded once per test run."""
    settings = make_database()
    with db.connect(settings) as conn:
        load(conn, france, geo_settings)
        conn.commit()
    return settings


@pytest.fixture
def conn(france_db: DatabaseSettings) -> Iterator[psycopg.Connection]:
    """A connection to the loaded database whose work is rolled back after the test."""
    with db.connect(france_db) as connection:
        yield connection
        connection.rollback()


@pytest.fixture(scope="session")
def france_template(
    make_database: Callable[..., DatabaseSettings], france_db: DatabaseSettings
) -> DatabaseSettings:
    """A frozen copy of ``france_db`` that nobody connects to, so it can be copied at will."""
    return make_database(template=france_db)


@pytest.fixture(scope="session")
def clone_france(
    make_database: Callable[..., DatabaseSettings], france_template: DatabaseSettings
) -> Callable[[], DatabaseSettings]:
    """A new database with France loaded, in about a second: for tests whose writes must be
    committed (the API answers from its own connections), so they cannot be rolled back."""
    return lambda: make_database(template=france_template)


TEST_SECRET = "test-only-secret-of-at-least-32-characters"  # noqa: S105


def token_for(user_id: int, *, staff: bool = False) -> dict[str, str]:
    """Authorization header of a signed-in user, for the API under test."""
    return {"Authorization": f"Bearer {make_token(user_id, TEST_SECRET, staff=staff)}"}


@pytest.fixture(scope="module")
def api_db(clone_france: Callable[[], DatabaseSettings]) -> DatabaseSettings:
    """France, and whatever the module's tests commit: one database per test module."""
    return clone_france()


@pytest.fixture(scope="module")
def api_settings() -> ApiSettings:
    return ApiSettings(jwt_secret=SecretStr(TEST_SECRET), pool_min_size=1, pool_max_size=4)


@pytest.fixture(scope="module")
def client(api_db: DatabaseSettings, api_settings: ApiSettings) -> Iterator[TestClient]:
    """The API in-process (lifespan run, real pool on ``api_db``)."""
    with TestClient(create_app(api_db, api_settings)) as test_client:
        yield test_client


@contextmanager
def serving(app: FastAPI, settings: ApiSettings) -> Iterator[str]:
    """``app`` served by uvicorn on a free port, in a thread, until the block ends, with the
    request bounds of ``settings`` as `geo-engine serve` applies them."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        **uvicorn_options(settings),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def live_server(api_db: DatabaseSettings, api_settings: ApiSettings) -> Iterator[str]:
    """The API served by uvicorn on a free port (for the browser and load tests)."""
    with serving(create_app(api_db, api_settings), api_settings) as url:
        yield url
