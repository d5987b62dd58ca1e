"""What the engine stands on, checked for real: PostGIS, the territories loaded, Redis."""

from __future__ import annotations

from typing import Any

import psycopg
import redis

from geo_engine.settings import RedisSettings


def database_status(conn: psycopg.Connection) -> dict[str, Any]:
    """PostGIS version, the millésime in force and what is loaded."""
    row = conn.execute(
        """SELECT postgis_lib_version(),
                  (SELECT max(millesime) FROM geodata_release),
                  (SELECT count(*) FROM commune),
                  (SELECT count(*) FROM epci),
                  (SELECT count(*) FROM epci WHERE xxl),
                  (SELECT count(*) FROM app_user),
                  (SELECT count(*) FROM user_place WHERE commune_code IS NULL)"""
    ).fetchone()
    assert row is not None
    keys = ["postgis", "millesime", "communes", "epci", "epci_xxl", "users", "users_pending"]
    return dict(zip(keys, row, strict=True))


def redis_status(settings: RedisSettings) -> dict[str, Any]:
    """Redis answers, and which version it is."""
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2)
    try:
        info = client.info("server")
        return {"redis": info["redis_version"], "ping": bool(client.ping())}
    finally:
        client.close()
