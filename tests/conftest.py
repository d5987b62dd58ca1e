"""Tests run against the real PostGIS started by ``make services``, on databases of their own.

Each test run creates a fresh database, migrates it and loads the real geography of France once;
each test then works inside a transaction that is rolled back.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from geo_engine import db, geodata
from geo_engine.settings import DatabaseSettings, GeoSettings
from geo_engine.territories_load import load


def _with_database(url: str, name: str) -> str:
    head, _, _ = url.rpartition("/")
    return f"{head}/{name}"


@pytest.fixture(scope="session")
def server_settings() -> DatabaseSettings:
    return DatabaseSettings()


@pytest.fixture(scope="session")
def make_database(server_settings: DatabaseSettings) -> Iterator[Callable[[], DatabaseSettings]]:
    """Create fresh, migrated databases on the test server; drop them all at the end."""
    created: list[str] = []

    def make() -> DatabaseSettings:
        name = f"geo_engine_test_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(server_settings.database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        settings = DatabaseSettings(database_url=_with_database(server_settings.database_url, name))
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
