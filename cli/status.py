"""Is everything up?"""

from __future__ import annotations

import json

import psycopg
import redis
import typer

from contracts.errors import Conflict, Unavailable
from geo_engine.db import connect
from geo_engine.health import database_status, redis_status
from geo_engine.pools import connection_lost
from geo_engine.settings import DatabaseSettings, RedisSettings


def status() -> None:
    """Print PostGIS, territories, users and Redis status as JSON; exit 75 if a service is down."""
    try:
        with connect(DatabaseSettings()) as conn:
            report = database_status(conn)
    except psycopg.Error as exc:
        if connection_lost(exc):
            raise  # the entry point says it in one line, with Unavailable's exit code
        raise Conflict(
            f"database not migrated (run `geo-engine db upgrade`): {str(exc).strip()}"
        ) from exc
    try:
        report |= redis_status(RedisSettings())
    except redis.RedisError as exc:
        raise Unavailable(f"redis unreachable: {exc}") from None
    typer.echo(json.dumps(report))
