"""The engine stands on real services: PostGIS with France loaded, and Redis."""

from __future__ import annotations

import psycopg
import pytest
import redis

from geo_engine.health import database_status, redis_status
from geo_engine.settings import RedisSettings


def test_database_status_reports_the_loaded_territories(conn: psycopg.Connection) -> None:
    status = database_status(conn)
    assert status["postgis"].startswith("3.")
    assert status["millesime"] == 2026
    assert status["communes"] == 34_969
    assert status["epci"] == 1_255
    assert 4 <= status["epci_xxl"] < 1_255


def test_database_status_counts_pending_users(conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO app_user (id) VALUES (1), (2)")
    conn.execute(
        """INSERT INTO user_place (user_id, commune_code, candidate_communes)
           VALUES (1, '51454', NULL), (2, NULL, ARRAY['51454', '51569'])"""
    )
    status = database_status(conn)
    assert (status["users"], status["users_pending"]) == (2, 1)


def test_redis_answers() -> None:
    status = redis_status(RedisSettings())
    assert status["ping"] is True
    assert int(status["redis"].split(".")[0]) >= 7


def test_unreachable_redis_raises() -> None:
    with pytest.raises(redis.ConnectionError):
        redis_status(RedisSettings(redis_url="redis://127.0.0.1:1/0"))
