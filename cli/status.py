"""Is everything up?"""

from __future__ import annotations

import json

import psycopg
import redis
import typer

from contracts.errors import Conflict, Unavailable
from geo_engine.db import connect
from geo_engine.health import (
    database_status,
    primary_position,
    redis_status,
    replica_report,
    standby_status_sync,
)
from geo_engine.pools import connection_lost
from geo_engine.settings import DatabaseSettings, RedisSettings


def status() -> None:
    """Print PostGIS, territories, users and Redis status as JSON, and the hot standby's lag
    (``replica``) when GEO_ENGINE_READ_DATABASE_URL names one; exit 75 if a service is down."""
    database = DatabaseSettings()
    try:
        with connect(database) as conn:
            report = database_status(conn)
            _, primary_lsn = primary_position(conn)
    except psycopg.Error as exc:
        if connection_lost(exc):
            raise  # the entry point says it in one line, with Unavailable's exit code
        raise Conflict(
            f"database not migrated (run `geo-engine db upgrade`): {str(exc).strip()}"
        ) from exc
    if database.read_database_url is not None:
        try:
            with psycopg.connect(
                database.reads_url, autocommit=True, connect_timeout=database.connect_timeout_s
            ) as standby:
                report["replica"] = replica_report(primary_lsn, standby_status_sync(standby))
        except psycopg.OperationalError as exc:
            if not connection_lost(exc):
                raise
            raise Unavailable(
                "cannot reach the hot standby (GEO_ENGINE_READ_DATABASE_URL); its reads fail"
            ) from None
    try:
        report |= redis_status(RedisSettings())
    except redis.RedisError as exc:
        raise Unavailable(f"redis unreachable: {exc}") from None
    typer.echo(json.dumps(report))
